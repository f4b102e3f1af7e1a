import type Database from 'better-sqlite3';

/** A write to run inside the group's transaction: synchronous, on the connection it is given. */
export type SqliteWork<T> = (connection: Database.Database) => T;

interface Queued {
  work: SqliteWork<unknown>;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

/**
 * Group commit for one SQLite connection: every write asked for in one turn of the event loop
 * runs in one transaction, and each caller is answered after that transaction has committed
 * (an acknowledged write is as durable as before). A commit, not the statement, was most of a
 * write's cost on the hot paths (bench/NOTES.md): under load, the token inserts of a dozen
 * requests at once become one commit on the token store's connection, and their counter
 * statements one commit per stage on Knex's (updates of the same hot counter rows one page
 * write instead of one per statement).
 *
 * Writes run in the order they were asked for. The transaction is synchronous from BEGIN to
 * COMMIT, so it never holds SQLite's write lock across a turn of the event loop. When a
 * statement of the group fails, nothing of the group was kept: each write runs again alone and
 * answers for itself, as if there had been no group (a lock held by another process past
 * busy_timeout fails them all at once instead: running them again would wait that long again).
 *
 * `connect` lends the connection for one group (Knex's pool waits for a transaction of its own
 * to end first).
 */
export class SqliteGroupCommit {
  private queued: Queued[] = [];
  private scheduled = false;

  constructor(private readonly connect: (use: (connection: Database.Database) => void) => Promise<void>) {}

  run<T>(work: SqliteWork<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queued.push({ work, resolve: resolve as (value: unknown) => void, reject });
      if (this.scheduled) return;
      this.scheduled = true;
      // After the poll phase: every request read in this turn has queued its write by then.
      setImmediate(() => void this.flush());
    });
  }

  /**
   * Runs `work` now, on its own, after the writes still waiting for their group (which commit
   * first, as one): for a write whose caller reads, checks and writes without a turn of the event
   * loop in between, and relies on no other request reading in between (oidc-provider's device
   * code confirmation). Only with a connection that is always at hand, never a pool's.
   */
  runNow<T>(connection: Database.Database, work: SqliteWork<T>): T {
    if (this.queued.length) {
      const group = this.queued;
      this.queued = [];
      runGroup(connection, group);
    }
    return work(connection);
  }

  private async flush(): Promise<void> {
    const group = this.queued;
    this.queued = [];
    this.scheduled = false;
    if (!group.length) return;
    try {
      await this.connect((connection) => runGroup(connection, group));
    } catch (err) {
      // The connection could not be had: nothing ran.
      for (const queued of group) queued.reject(err);
    }
  }
}

function runGroup(connection: Database.Database, group: Queued[]): void {
  if (group.length === 1 || connection.inTransaction) {
    for (const queued of group) runAlone(connection, queued);
    return;
  }
  let results: unknown[];
  try {
    results = transactionOf(connection).immediate(group);
  } catch (err) {
    if (isBusy(err)) {
      for (const queued of group) queued.reject(err);
      return;
    }
    for (const queued of group) runAlone(connection, queued);
    return;
  }
  for (const [i, queued] of group.entries()) queued.resolve(results[i]);
}

function runAlone(connection: Database.Database, queued: Queued): void {
  try {
    queued.resolve(queued.work(connection));
  } catch (err) {
    queued.reject(err);
  }
}

const transactions = new WeakMap<Database.Database, Database.Transaction<(group: Queued[]) => unknown[]>>();

function transactionOf(connection: Database.Database) {
  let transaction = transactions.get(connection);
  if (!transaction) {
    transaction = connection.transaction((group: Queued[]) => group.map((queued) => queued.work(connection)));
    transactions.set(connection, transaction);
  }
  return transaction;
}

const isBusy = (err: unknown) => typeof (err as { code?: unknown })?.code === 'string' && (err as { code: string }).code.startsWith('SQLITE_BUSY');
