import type { Knex } from 'knex';
import type { SecurityEvents } from '../observability/security-events.ts';

/** Who acts: an operator signed in to the admin pages, an admin API token, or the CLI. */
export interface Actor {
  label: string;
  address?: string | undefined;
  /** The operator's own user, when a person signed in to the admin pages acts (not a token or the CLI). */
  userId?: string | undefined;
}

export const CLI_ACTOR: Actor = { label: 'cli' };

export interface AuditEntry {
  id: number;
  at: Date;
  actor: string;
  action: string;
  target: string;
  details: Record<string, unknown>;
  address: string | null;
}

// Field names whose values never enter the log, wherever they appear in details.
const SECRET_FIELDS = /secret|password|token|key$/i;

function withoutSecrets(details: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(details).filter(([k]) => !SECRET_FIELDS.test(k)));
}

export class AuditLog {
  constructor(
    private readonly db: Knex,
    private readonly events?: SecurityEvents,
  ) {}

  /** Stores one entry and logs it as an `admin.change` security event. */
  async record(actor: Actor, action: string, target: string, details: Record<string, unknown> = {}): Promise<void> {
    const entry = {
      actor: actor.label.slice(0, 300),
      action,
      target: target.slice(0, 300),
      details: withoutSecrets(details),
      address: actor.address?.slice(0, 100) ?? null,
    };
    await this.db('audit_log').insert({ ...entry, at: Date.now(), details: JSON.stringify(entry.details) });
    this.events?.record('admin.change', { ...entry, ip: entry.address, address: undefined }, 'info');
  }

  async list({ limit = 100, beforeId }: { limit?: number; beforeId?: number } = {}): Promise<AuditEntry[]> {
    const q = this.db('audit_log').select('*').orderBy('id', 'desc').limit(Math.min(Math.max(limit, 1), 500));
    if (beforeId) q.where('id', '<', beforeId);
    return (await q).map((r: { id: number; at: number | string; actor: string; action: string; target: string; details: string; address: string | null }) => ({
      id: Number(r.id),
      at: new Date(Number(r.at)),
      actor: r.actor,
      action: r.action,
      target: r.target,
      details: JSON.parse(r.details) as Record<string, unknown>,
      address: r.address,
    }));
  }
}
