import Database from 'better-sqlite3';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { alreadyConsumed, nowInSeconds, payloadRow, restoredPayload, storedId, storedUserCode } from './payload-row.ts';
import { guardStore } from '../src/stores/availability.ts';
import { tightenDatabaseFiles } from '../src/db.ts';
import { SqliteGroupCommit } from '../src/stores/sqlite-group-commit.ts';

/**
 * The oidc-provider adapter contract over the same `oidc_payloads` table as KnexAdapter, for
 * the embedded SQLite default, through better-sqlite3 prepared statements on a connection of
 * its own. Token requests hit this on every call; building and preparing SQL through Knex
 * each time cost more than the query itself. better-sqlite3 is synchronous, so statements of
 * one process never interleave, and WAL lets this connection and Knex's share the file.
 * Token inserts commit in groups, one transaction per turn of the event loop (SqliteGroupCommit):
 * a token is acknowledged after the commit that holds it, as before, at a fraction of the cost.
 * Only tokens: a new token's id is known to nobody before its answer, so no other request can
 * look for it in between. Every other write runs at once, as oidc-provider expects of a store
 * where it reads, checks and saves (a device code confirmed by two people at once: the second
 * must find the first's save).
 */

const GROUPED_MODELS = new Set(['AccessToken', 'ClientCredentials', 'RefreshToken']);

interface Row {
  payload: string;
  expires_at: number | null;
  consumed_at: number | null;
}

export class SqliteStatements {
  readonly db: Database.Database;
  readonly upsert: Database.Statement;
  readonly findById: Database.Statement<[string, string], Row>;
  readonly findByUid: Database.Statement<[string, string], Row>;
  readonly findByUserCode: Database.Statement<[string, string], Row>;
  readonly destroy: Database.Statement;
  readonly revokeByGrantId: Database.Statement;
  readonly consume: Database.Statement;
  /** Every write of this connection, in the order asked for: token inserts in groups, the others at once. */
  readonly writes: SqliteGroupCommit;

  constructor(filename: string, synchronous: 'normal' | 'full') {
    this.db = new Database(filename, { fileMustExist: true });
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${synchronous.toUpperCase()}`);
    this.db.pragma('busy_timeout = 5000');
    // 32 MiB of page cache (SQLite's default is 2): token lookups in a table of millions of
    // rows otherwise read most index pages from the OS with a system call each.
    this.db.pragma('cache_size = -32768');
    tightenDatabaseFiles(filename);
    const select = 'select payload, expires_at, consumed_at from oidc_payloads where model = ? and';
    this.upsert = this.db.prepare(
      `insert into oidc_payloads (model, id, payload, grant_id, uid, user_code, account_id, client_id, expires_at, consumed_at)
       values (@model, @id, @payload, @grant_id, @uid, @user_code, @account_id, @client_id, @expires_at, @consumed_at)
       on conflict (model, id) do update set payload = excluded.payload, grant_id = excluded.grant_id, uid = excluded.uid,
         user_code = excluded.user_code, account_id = excluded.account_id, client_id = excluded.client_id,
         expires_at = excluded.expires_at, consumed_at = excluded.consumed_at`,
    );
    this.findById = this.db.prepare(`${select} id = ?`);
    this.findByUid = this.db.prepare(`${select} uid = ?`);
    this.findByUserCode = this.db.prepare(`${select} user_code = ?`);
    this.destroy = this.db.prepare('delete from oidc_payloads where model = ? and id = ?');
    this.revokeByGrantId = this.db.prepare('delete from oidc_payloads where model = ? and grant_id = ?');
    this.consume = this.db.prepare('update oidc_payloads set consumed_at = ? where model = ? and id = ? and consumed_at is null');
    this.writes = new SqliteGroupCommit(async (use) => use(this.db));
  }

  close(): void {
    this.db.close();
  }
}

export class SqliteAdapter implements Adapter {
  constructor(
    private readonly statements: SqliteStatements,
    private readonly model: string,
  ) {}

  // Writes wait up to busy_timeout for another writer (an import, the CLI); past it, the
  // request answers 503 like a store that cannot be reached.
  async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
    const row = payloadRow(this.model, id, payload, expiresIn);
    const write = () => this.statements.upsert.run(row);
    await guardStore('database', async () => (GROUPED_MODELS.has(this.model) ? this.statements.writes.run(write) : this.atOnce(write)));
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    return toPayload(this.model, this.statements.findById.get(this.model, storedId(this.model, id)), { id });
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    return toPayload(this.model, this.statements.findByUid.get(this.model, uid), {});
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    return toPayload(this.model, this.statements.findByUserCode.get(this.model, storedUserCode(userCode)), { userCode });
  }

  async destroy(id: string): Promise<void> {
    const stored = storedId(this.model, id);
    await guardStore('database', async () => this.atOnce(() => this.statements.destroy.run(this.model, stored)));
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    await guardStore('database', async () => this.atOnce(() => this.statements.revokeByGrantId.run(this.model, grantId)));
  }

  /** A write at once, after the token inserts still waiting for their group (writes keep their order). */
  private atOnce<T>(write: () => T): T {
    return this.statements.writes.runNow(this.statements.db, write);
  }

  /** Compare-and-set, as in KnexAdapter: only the request that flips consumed_at wins. */
  async consume(id: string): Promise<void> {
    const stored = storedId(this.model, id);
    const now = nowInSeconds();
    const { changes } = await guardStore('database', async () => this.atOnce(() => this.statements.consume.run(now, this.model, stored)));
    if (changes !== 1) throw alreadyConsumed(this.model);
  }
}

function toPayload(model: string, row: Row | undefined, known: { id?: string; userCode?: string }): AdapterPayload | undefined {
  if (!row) return undefined;
  if (row.expires_at !== null && row.expires_at <= nowInSeconds()) return undefined;
  const payload = restoredPayload(model, row.payload, known);
  if (row.consumed_at !== null) payload.consumed = row.consumed_at;
  return payload;
}
