import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import type { Logger } from '../observability/logger.ts';

/**
 * Delivers back-channel logout tokens (OpenID Connect Back-Channel Logout 1.0) to the apps a
 * person was signed in to, apart from the person's own logout: a logout answers at once, and
 * an app that is slow, down or answering errors is retried with growing pauses, then given up
 * on with an error in the log. Every attempt is logged and counted.
 *
 * Deliveries are rows (backchannel_deliveries), not this process's memory: a restart, or a CLI
 * run that exits, leaves them for the next process to send. A row holds what the token is made
 * from (app, person, session id), never a token: each attempt signs a fresh one. Any number of
 * processes share the table; one conditional update claims a row for one process for a lease
 * (longer than an attempt may take), so no two send the same delivery, and a process that died
 * while sending is taken over once its lease is out.
 */

/** One logout to tell one app of: what its logout token is made from. */
export interface PendingLogout {
  clientId: string;
  sub: string;
  sid?: string | undefined;
}

export interface DeliveryOutcome {
  outcome: 'delivered' | 'retrying' | 'failed';
  clientId: string;
  attempt: number;
}

export interface DeliveryTimers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface BackchannelDeliveriesOptions {
  db: Knex;
  /** Makes a fresh logout token for `logout` and POSTs it; fails unless the app answers 200 or 204. */
  send: (logout: PendingLogout) => Promise<void>;
  log: Logger;
  /** Counts each outcome (metrics), when metrics are on. */
  count?: (outcome: DeliveryOutcome['outcome']) => void;
  /** Attempts in all, the first included. */
  attempts?: number;
  /** The pause before attempt `n + 1` after `n` failed: 2 s, 4 s, 8 s, 16 s … by default. */
  backoffMs?: (failedAttempts: number) => number;
  /** How long one attempt may take before it counts as failed. */
  timeoutMs?: number;
  /**
   * A serving process also looks this often for deliveries other processes left (a CLI run
   * that exited before a retry, a process that stopped); unset, it sends only its own and what
   * it finds when it starts.
   */
  pollMs?: number;
  /** Injected for tests; the real ones otherwise. */
  timers?: DeliveryTimers;
  now?: () => number;
}

interface Row {
  id: string;
  client_id: string;
  sub: string;
  sid: string | null;
  attempts: number | string;
  due_at: number | string;
  claimed_until: number | string | null;
}

const TABLE = 'backchannel_deliveries';
/** Rows claimed per look: a burst of logouts is sent in batches, not all at once. */
const BATCH = 20;

const realTimers: DeliveryTimers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms).unref(),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export class BackchannelDeliveries {
  private readonly attempts: number;
  private readonly backoffMs: (failedAttempts: number) => number;
  private readonly timeoutMs: number;
  /** How long a claim holds: an attempt's timeout, and time to write its outcome. */
  private readonly leaseMs: number;
  private readonly timers: DeliveryTimers;
  private readonly now: () => number;
  private readonly db: Knex;
  private inFlight = 0;
  private looking: Promise<void> | undefined;
  private lookAgain = false;
  /** The one timer waiting for the next due row (or the next poll). */
  private wake: { handle: unknown; forRow: boolean } | undefined;
  private idleWaiters: Array<() => void> = [];
  private settledWaiters: Array<() => void> = [];
  private closed = false;

  constructor(private readonly options: BackchannelDeliveriesOptions) {
    this.db = options.db;
    this.attempts = options.attempts ?? 5;
    this.backoffMs = options.backoffMs ?? ((n) => 1000 * 2 ** n);
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.leaseMs = this.timeoutMs + 10_000;
    this.timers = options.timers ?? realTimers;
    this.now = options.now ?? (() => Date.now());
  }

  /**
   * Stores the deliveries, then starts sending them; resolves once they are stored (never
   * waits for an app). The caller (a logout) awaits the insert, so an answered logout's
   * deliveries survive a restart.
   */
  async enqueue(logouts: readonly PendingLogout[]): Promise<void> {
    if (this.closed || logouts.length === 0) return;
    const now = this.now();
    await this.db(TABLE).insert(
      logouts.map((l) => ({
        id: randomBytes(12).toString('base64url'),
        client_id: l.clientId,
        sub: l.sub,
        sid: l.sid ?? null,
        attempts: 0,
        due_at: now,
        claimed_until: null,
        created_at: now,
      })),
    );
    this.look();
  }

  /** Sends what earlier runs left, and (with pollMs) keeps looking for what other processes leave. */
  start(): void {
    this.look();
  }

  /** Resolves when nothing is being sent and no retry of this process is waiting (tests, a graceful stop). */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Resolves when nothing is being looked for or sent (a stop: the first attempts of a CLI run's
   * logouts go out; retries waiting stay stored for the next process).
   */
  settled(): Promise<void> {
    if (this.inFlight === 0 && this.looking === undefined) return Promise.resolve();
    return new Promise((resolve) => this.settledWaiters.push(resolve));
  }

  /** Stops looking and retrying in this process; what is being sent finishes. Rows left are sent by the next process. */
  close(): void {
    this.closed = true;
    this.setWake(undefined);
    this.settleIfIdle();
  }

  /** Claims and sends every due row; one look at a time, and one more when asked during it. */
  private look(): void {
    if (this.closed) return;
    if (this.looking) {
      this.lookAgain = true;
      return;
    }
    this.setWake(undefined);
    this.looking = (async () => {
      try {
        do {
          this.lookAgain = false;
          for (const row of await this.dueRows()) if (await this.claim(row)) void this.attempt(row);
        } while (this.lookAgain && !this.closed);
        await this.scheduleNextLook();
      } catch (err) {
        this.options.log.warn(
          { event: 'backchannel_logout.store_error', detail: (err as Error).message },
          'back-channel logouts could not be read; looking again later',
        );
        this.setWake(this.options.pollMs !== undefined ? { ms: this.options.pollMs, forRow: false } : undefined);
      } finally {
        this.looking = undefined;
        this.settleIfIdle();
      }
    })();
  }

  private dueRows(): Promise<Row[]> {
    const now = this.now();
    return this.db(TABLE)
      .select('id', 'client_id', 'sub', 'sid', 'attempts', 'due_at', 'claimed_until')
      .where('due_at', '<=', now)
      .andWhere((q) => q.whereNull('claimed_until').orWhere('claimed_until', '<', now))
      .orderBy('due_at')
      .limit(BATCH);
  }

  /**
   * One conditional update: of the processes that saw the row due, only the one whose update
   * changed it sends it. Its lease (claimed_until) also names the claim, so a process whose
   * lease ran out (and was taken over) does not write the row afterwards.
   */
  private async claim(row: Row): Promise<boolean> {
    const now = this.now();
    const until = now + this.leaseMs;
    const changed = await this.db(TABLE)
      .where({ id: row.id })
      .andWhere('due_at', '<=', now)
      .andWhere((q) => q.whereNull('claimed_until').orWhere('claimed_until', '<', now))
      .update({ claimed_until: until });
    row.claimed_until = until;
    return changed === 1;
  }

  private async attempt(row: Row): Promise<void> {
    this.inFlight++;
    const attempt = Number(row.attempts) + 1;
    const clientId = row.client_id;
    const mine = this.db(TABLE).where({ id: row.id, claimed_until: row.claimed_until });
    try {
      try {
        await this.withTimeout(this.options.send({ clientId, sub: row.sub, sid: row.sid ?? undefined }));
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        if (attempt >= this.attempts) {
          await mine.clone().delete();
          this.report({ outcome: 'failed', clientId, attempt }, reason);
        } else {
          const pause = this.backoffMs(attempt);
          await mine.clone().update({ attempts: attempt, due_at: this.now() + pause, claimed_until: null });
          this.report({ outcome: 'retrying', clientId, attempt }, reason, pause);
        }
        return;
      }
      await mine.clone().delete();
      this.report({ outcome: 'delivered', clientId, attempt });
    } catch (err) {
      // The store failed after the attempt: the lease runs out and the row is tried again.
      this.options.log.warn(
        { event: 'backchannel_logout.store_error', client_id: clientId, detail: (err as Error).message },
        'a back-channel logout outcome could not be stored',
      );
    } finally {
      // The next look is set before this attempt stops counting, so idle() never sees a gap.
      await this.scheduleNextLook().catch(() => undefined);
      this.inFlight--;
      this.settleIfIdle();
    }
  }

  /** Sets the one timer for the next row this process knows to be due (or the next poll). */
  private async scheduleNextLook(): Promise<void> {
    if (this.closed) return;
    const next = await this.db(TABLE).whereNull('claimed_until').orWhere('claimed_until', '<', this.now()).min({ due: 'due_at' }).first();
    if (this.closed) return;
    const due = next?.due === null || next?.due === undefined ? undefined : Number(next.due);
    const poll = this.options.pollMs;
    if (due === undefined) return this.setWake(poll !== undefined ? { ms: poll, forRow: false } : undefined);
    const ms = Math.max(0, due - this.now());
    this.setWake(poll !== undefined && poll < ms ? { ms: poll, forRow: false } : { ms, forRow: true });
  }

  private setWake(next: { ms: number; forRow: boolean } | undefined): void {
    if (this.wake) this.timers.clearTimeout(this.wake.handle);
    this.wake = undefined;
    if (!next || this.closed) return;
    const handle = this.timers.setTimeout(() => {
      if (this.wake?.handle === handle) this.wake = undefined;
      this.look();
    }, next.ms);
    this.wake = { handle, forRow: next.forRow };
  }

  private withTimeout(sending: Promise<void>): Promise<void> {
    return new Promise((resolve, reject) => {
      const handle = this.timers.setTimeout(() => reject(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      sending.then(
        () => {
          this.timers.clearTimeout(handle);
          resolve();
        },
        (err: unknown) => {
          this.timers.clearTimeout(handle);
          reject(err);
        },
      );
    });
  }

  private report(outcome: DeliveryOutcome, reason?: string, retryInMs?: number): void {
    const fields = { event: `backchannel_logout.${outcome.outcome}`, client_id: outcome.clientId, attempt: outcome.attempt, reason, retry_in_ms: retryInMs };
    if (outcome.outcome === 'delivered') this.options.log.info(fields, 'back-channel logout delivered');
    else if (outcome.outcome === 'retrying') this.options.log.warn(fields, 'back-channel logout not delivered; retrying');
    else this.options.log.error(fields, 'back-channel logout not delivered; giving up');
    this.options.count?.(outcome.outcome);
  }

  private isIdle(): boolean {
    return this.inFlight === 0 && this.looking === undefined && !this.wake?.forRow;
  }

  private settleIfIdle(): void {
    if (this.inFlight === 0 && this.looking === undefined) for (const resolve of this.settledWaiters.splice(0)) resolve();
    if (!this.isIdle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
