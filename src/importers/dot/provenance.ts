import { redactCredentials } from '../../observability/redact.ts';
import path from 'node:path';
import type { Knex } from 'knex';

/**
 * Which users and clients a DOT import created, and from which source (dot_import_rows). An
 * import only ever touches rows it created itself from the same source: a client or user made
 * in Gatehouse, or brought by another source, with the same client_id, id or username is a
 * collision, refused and reported, never merged.
 */

export type ImportedKind = 'user' | 'client';

/** Rows imported before sources were recorded (see the migration): any source may update them. */
const ANY_SOURCE = '*';

/** How a source is recorded: a file by its absolute path, a database URL without its password. */
export function sourceLabel(source: string): string {
  if (/^postgres(ql)?:\/\//.test(source)) return redactSource(source);
  return path.resolve(source);
}

/** A source as it may be shown or logged: a database URL's password is never. */
export function redactSource(source: string): string {
  return redactCredentials(source, [source]);
}

export type Provenance = { from: 'this source' } | { from: 'gatehouse' } | { from: 'another source'; source: string };

/** Who made the row `key` of `kind`, which exists in Gatehouse. */
export async function provenanceOf(trx: Knex, kind: ImportedKind, key: string, label: string): Promise<Provenance> {
  const row = await trx('dot_import_rows').first('source').where({ kind, key });
  if (!row) return { from: 'gatehouse' };
  const source = String(row.source);
  return source === label || source === ANY_SOURCE ? { from: 'this source' } : { from: 'another source', source };
}

export async function recordImported(trx: Knex, kind: ImportedKind, key: string, label: string): Promise<void> {
  await trx('dot_import_rows').insert({ kind, key, source: label, imported_at: Date.now() });
}

/** Why a row that collides is refused, in words the report shows. */
export function collisionReason(what: string, provenance: Exclude<Provenance, { from: 'this source' }>): string {
  const maker =
    provenance.from === 'gatehouse' ? 'was made in Gatehouse, not by an import of this source' : `was imported from another source (${provenance.source})`;
  return `collides: ${what} ${maker}. Refused and nothing of it changed; rename one of them (or delete the Gatehouse one) and import again`;
}
