import type { Knex } from 'knex';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { alreadyConsumed, nowInSeconds, payloadRow, restoredPayload, storedId, storedUserCode } from './payload-row.ts';
import { guardStore } from '../src/stores/availability.ts';

const TABLE = 'oidc_payloads';

interface PayloadRow {
  payload: string;
  expires_at: number | string | null;
  consumed_at: number | string | null;
}


/**
 * The oidc-provider adapter contract over one Knex table, for SQLite and PostgreSQL alike.
 * One instance per model name; rows of all models share the table, keyed by (model, stored
 * id): the SHA-256 of a bearer id (see payload-row.ts), so the table alone redeems nothing.
 */
export class KnexAdapter implements Adapter {
  constructor(
    private readonly db: Knex,
    private readonly model: string,
  ) {}

  async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
    const row = payloadRow(this.model, id, payload, expiresIn);
    await guardStore('database', () => this.db(TABLE).insert(row).onConflict(['model', 'id']).merge());
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    // Every token request and introspection lands here (three times for an introspection
    // without token_type_hint): fixed SQL skips Knex's query building and compiling.
    const result: PayloadRow[] | { rows: PayloadRow[] } = await guardStore('database', () => this.db.raw(FIND_BY_ID, [this.model, storedId(this.model, id)]));
    return toPayload(this.model, (Array.isArray(result) ? result : result.rows)[0], { id });
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    return this.findWhere({ uid }, {});
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    return this.findWhere({ user_code: storedUserCode(userCode) }, { userCode });
  }

  async destroy(id: string): Promise<void> {
    await guardStore('database', () => this.db(TABLE).where({ model: this.model, id: storedId(this.model, id) }).delete());
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    await guardStore('database', () => this.db(TABLE).where({ model: this.model, grant_id: grantId }).delete());
  }

  /**
   * oidc-provider finds an artifact, checks `consumed`, then calls this. Two requests can both
   * pass the check, so the update itself is the decision: only the one that flips
   * consumed_at from NULL wins; the other fails as a reused grant.
   */
  async consume(id: string): Promise<void> {
    const changed = await guardStore('database', () =>
      this.db(TABLE).where({ model: this.model, id: storedId(this.model, id) }).whereNull('consumed_at').update({ consumed_at: nowInSeconds() }),
    );
    if (changed !== 1) throw alreadyConsumed(this.model);
  }

  private async findWhere(where: Record<string, string>, known: { userCode?: string }): Promise<AdapterPayload | undefined> {
    const row: PayloadRow | undefined = await guardStore('database', () =>
      this.db(TABLE).select('payload', 'expires_at', 'consumed_at').where({ model: this.model, ...where }).first(),
    );
    return toPayload(this.model, row, known);
  }
}

const FIND_BY_ID = `select payload, expires_at, consumed_at from ${TABLE} where model = ? and id = ?`;

function toPayload(model: string, row: PayloadRow | undefined, known: { id?: string; userCode?: string }): AdapterPayload | undefined {
  if (!row) return undefined;
  if (row.expires_at !== null && Number(row.expires_at) <= nowInSeconds()) return undefined;
  const payload = restoredPayload(model, row.payload, known);
  if (row.consumed_at !== null) payload.consumed = Number(row.consumed_at);
  return payload;
}
