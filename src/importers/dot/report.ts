import type { ValidationError } from '../../errors.ts';

/** What `import dot` reports: per user and client, what happened and why, and the refresh tokens carried over. */

export type Outcome = 'imported' | 'updated' | 'unchanged' | 'refused';

export interface ReportEntry {
  outcome: Outcome;
  notes: string[];
}
export interface UserReport extends ReportEntry {
  sub: string;
  username: string;
}
export interface ClientReport extends ReportEntry {
  client_id: string;
  name: string;
}
/** A user or client of the source refused because Gatehouse has one by that name that this source did not import. */
export interface Collision {
  kind: 'user' | 'client';
  /** The sub or client_id, as the source names it. */
  id: string;
  name: string;
  reason: string;
}
export interface ImportReport {
  source: string;
  dry_run: boolean;
  users: UserReport[];
  clients: ClientReport[];
  collisions: Collision[];
  refresh_tokens: { imported: number; already_present: number; not_imported: Array<{ id: number; reason: string }>; notes: string[] };
  notes: string[];
  summary: Record<'users' | 'clients', Record<Outcome, number>>;
}

/** Long text from the source is shown clipped: the report stays readable whatever the dump holds. */
export const clip = (v: string, max = 200) => (v.length > max ? `${v.slice(0, max)}…` : v);

/** Field errors as one sentence: "username may contain letters, digits and . _ @ + - only". */
export const fieldErrors = (err: ValidationError) =>
  Object.entries(err.fields)
    .map(([field, why]) => `${field} ${why}`)
    .join('; ');

/** How many entries had each outcome. */
export const count = (entries: ReportEntry[]) => {
  const out: Record<Outcome, number> = { imported: 0, updated: 0, unchanged: 0, refused: 0 };
  for (const e of entries) out[e.outcome]++;
  return out;
};
