import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import { preparedQueries, type PreparedQuery, type PreparedResult } from '../stores/prepared.ts';
import { CounterBatches } from './counter-batches.ts';
import { InFlight } from './in-flight.ts';
import { usernameKey } from './service.ts';

/**
 * What one counter does with the attempts it counts. Every attempt is counted (reserved) before
 * its credential is checked, so a burst of parallel attempts is counted as it arrives, not after
 * the checks land.
 */
export interface Limit {
  subject: string;
  /**
   * Failures in a window after which the subject is locked for `lockMs` (never when absent).
   * Failures and attempts still being checked together never exceed it, so no burst checks more.
   */
  lockAfter?: number;
  /**
   * Attempts after which each further one must wait: `stepMs` after the `after`th, `stepMs` more
   * per attempt beyond, at most `maxMs`.
   * `refuse` answers "try again in N seconds" until then (token endpoints answer at once);
   * `wait` lets the attempt through and tells the caller how long to wait first (people).
   */
  backoff?: { after: number; stepMs: number; maxMs: number; mode: 'refuse' | 'wait' };
  /** On success: `clear` forgets the subject (it was the credential's own), `refund` takes the attempt back. */
  onSuccess: 'clear' | 'refund';
}

/** People: a username is slowed from anywhere and locked only per (username, address). */
export const LOGIN_THROTTLE = {
  windowMs: 15 * 60_000,
  lockMs: 15 * 60_000,
  /** Wrong passwords for one username from one address after which that pair is locked. */
  lockUsernameAddressAfter: 5,
  /** Failed sign-ins for one username, from anywhere, after which each further one waits longer. */
  slowUsernameAfter: 3,
  slowStepMs: 500,
  slowMaxMs: 5000,
  /** An address trying many usernames is locked later, as offices share one. */
  lockAddressAfter: 20,
  /** Sign-ins checked at once in one process: for one username, and from one address. */
  inFlightPerUsername: 1,
  /** Sign-ins of one username that wait for the one running (two tabs, a retry), and for how long. */
  waitingPerUsername: 16,
  waitPerUsernameMs: 10_000,
  inFlightPerAddress: 16,
  /** Sign-ins from one address that wait for a turn (an office behind one NAT at nine), and for how long. */
  waitingPerAddress: 64,
  waitPerAddressMs: 10_000,
} as const;

/**
 * Failed client authentication (a wrong client secret at /token, /introspect or /revoke), API
 * keys (/userdata) and admin tokens. Secrets and keys are 256 random bits, so this is not what
 * keeps them safe; it stops one address from guessing at all. A client is never locked from
 * everywhere: knowing its client_id (it is in every authorize URL) must not lock the app out.
 */
export const CREDENTIAL_THROTTLE = {
  /** Wrong secrets for one client from one address after which each further one waits longer. */
  slowClientAddressAfter: 5,
  slowClientStepMs: 2000,
  slowClientMaxMs: 60_000,
  /** Wrong secrets for one client from one address after which that pair is locked. */
  lockClientAddressPairAfter: 20,
  /** Wrong client secrets from one address, for any clients, after which the address is locked. */
  lockClientAddressAfter: 50,
  /** Wrong API keys from one address after which that address is locked. */
  lockApiKeyAddressAfter: 50,
  /** Wrong admin API tokens from one address after which that address is locked. */
  lockAdminTokenAddressAfter: 50,
} as const;

/** Parts of a subject longer than this are stored as their SHA-256: a 15,000-character username is one short row. */
const MAX_PART_LENGTH = 100;

/** `prefix:part|part`, each part at most MAX_PART_LENGTH characters (longer ones hashed). */
export function boundedSubject(prefix: string, ...parts: string[]): string {
  const bounded = parts.map((part) => (part.length <= MAX_PART_LENGTH ? part : `#${createHash('sha256').update(part, 'utf8').digest('base64url')}`));
  return `${prefix}:${bounded.join('|')}`;
}

/** Counters are keyed as accounts are looked up, so no other spelling of a name gets a fresh count. */
const userKey = (username: string) => usernameKey(username.trim());

/** What refused an attempt before anything was checked. */
export interface Refusal {
  ok: false;
  /** Seconds until the subject may try again. */
  retryAfterSeconds: number;
  /** A lock (minutes) rather than a backoff (seconds). */
  locked: boolean;
}

/** A counted attempt: tell it how the check went. */
export interface Reservation {
  ok: true;
  /** How long the caller waits before checking (`wait` backoffs), in ms. */
  waitMs: number;
  /** The check succeeded: clear or refund each counter. */
  succeeded(): Promise<void>;
  /** The credential was wrong: count the failure on each counter. */
  failed(): Promise<void>;
  /** Nothing was checked after all: take the attempt back from every counter. */
  cancel(): Promise<void>;
}

interface Row {
  failures: unknown;
  window_started_at: unknown;
  locked_until: unknown;
  not_before: unknown;
}

/**
 * Counts attempts at every credential Gatehouse checks (passwords at sign-in, client secrets,
 * API keys, admin tokens) in the database, per subject (a username, a client and an address, an
 * address), so every process sees the same counts, and refuses an attempt while its subject is
 * locked or backing off.
 */
export class CredentialThrottle {
  /** Sign-in checks running in this process: one per username, a few per address. */
  readonly signInsInFlight = {
    perUsername: new InFlight(LOGIN_THROTTLE.inFlightPerUsername, LOGIN_THROTTLE.waitingPerUsername, LOGIN_THROTTLE.waitPerUsernameMs),
    perAddress: new InFlight(LOGIN_THROTTLE.inFlightPerAddress, LOGIN_THROTTLE.waitingPerAddress, LOGIN_THROTTLE.waitPerAddressMs),
  };

  /** The counter statements: run on every sign-in and every client authentication. */
  private readonly query: PreparedQuery;
  /** Reservations and releases, one statement per counter and turn. */
  private readonly counters: CounterBatches;

  constructor(
    private readonly db: Knex,
    private readonly settings = LOGIN_THROTTLE,
    private readonly now: () => number = Date.now,
  ) {
    this.query = preparedQueries(db);
    this.counters = new CounterBatches(this.query, db.client.config.client === 'pg' ? 'pg' : 'sqlite', now, settings.windowMs);
  }

  /** Sign-in counters: per username (slowed), per (username, address) (locked), per address (locked). */
  static signInLimits(username: string, address: string): Limit[] {
    const user = userKey(username);
    return [
      { subject: boundedSubject('addr', address), lockAfter: LOGIN_THROTTLE.lockAddressAfter, onSuccess: 'refund' },
      { subject: boundedSubject('user-addr', user, address), lockAfter: LOGIN_THROTTLE.lockUsernameAddressAfter, onSuccess: 'clear' },
      {
        subject: boundedSubject('user', user),
        backoff: { after: LOGIN_THROTTLE.slowUsernameAfter, stepMs: LOGIN_THROTTLE.slowStepMs, maxMs: LOGIN_THROTTLE.slowMaxMs, mode: 'wait' },
        onSuccess: 'clear',
      },
    ];
  }

  /** Client authentication: per (client, address) with backoff then a lock, and per address. Never per client alone. */
  static clientLimits(clientId: string, address: string): Limit[] {
    return [
      { subject: boundedSubject('client-addr', address), lockAfter: CREDENTIAL_THROTTLE.lockClientAddressAfter, onSuccess: 'refund' },
      {
        subject: boundedSubject('client', clientId, address),
        lockAfter: CREDENTIAL_THROTTLE.lockClientAddressPairAfter,
        backoff: {
          after: CREDENTIAL_THROTTLE.slowClientAddressAfter,
          stepMs: CREDENTIAL_THROTTLE.slowClientStepMs,
          maxMs: CREDENTIAL_THROTTLE.slowClientMaxMs,
          mode: 'refuse',
        },
        onSuccess: 'clear',
      },
    ];
  }

  /** Counter for failed API keys: per address (a key names no one before it is verified). */
  static apiKeySubject(address: string): string {
    return boundedSubject('apikey-addr', address);
  }

  /** Counter for failed admin API tokens: per address. */
  static adminTokenSubject(address: string): string {
    return boundedSubject('admintoken-addr', address);
  }

  /** Every counter of one username: the one slowed from anywhere and the locks of every address. */
  static usernameSubjects(username: string): { exact: string; prefix: string } {
    const user = boundedSubject('user', userKey(username)).slice('user:'.length);
    return { exact: `user:${user}`, prefix: `user-addr:${user}|` };
  }

  /**
   * Reserves one attempt on every limit, or refuses it (taking back what it reserved) when one
   * of them is locked, backing off, or has as many attempts failed and in flight as it allows.
   * Each statement checks and reserves at once, so parallel attempts (other processes included)
   * are each counted, and none passes a check that attempts still in flight have already used
   * up. Only failures count against a credential afterwards: a right one (or one never checked)
   * just gives its reservations back. Counters are reserved one after another, in the limits'
   * order, stopping at the first refused (see reserveInTurn): an address that is locked adds no
   * rows for the usernames it goes on trying. The statements of attempts arriving together are
   * shared: one per counter and turn of the event loop (CounterBatches).
   */
  async reserve(limits: Limit[], { together = false }: { together?: boolean } = {}): Promise<Reservation | Refusal> {
    const failuresBySubject = await (together ? this.reserveTogether(limits) : this.reserveInTurn(limits));
    const refused = limits.find((limit) => !failuresBySubject.has(limit.subject));
    if (refused) {
      await this.releaseAll(
        limits.filter((limit) => failuresBySubject.has(limit.subject)),
        'cancel',
      );
      return this.refusal(refused.subject);
    }
    let waitMs = 0;
    for (const limit of limits) {
      const failures = failuresBySubject.get(limit.subject)!;
      const backoff = limit.backoff;
      if (backoff?.mode === 'wait' && failures >= backoff.after)
        waitMs = Math.max(waitMs, Math.min(backoff.maxMs, backoff.stepMs * (failures - backoff.after + 1)));
    }
    return {
      ok: true,
      waitMs,
      succeeded: () => this.releaseAll(limits, 'success'),
      failed: () => this.releaseAll(limits, 'failure'),
      cancel: () => this.releaseAll(limits, 'cancel'),
    };
  }

  /** A statement of the rare paths (a failure), with `pg`'s or SQLite's name for the smaller of two values. */
  private run(statement: Fragment): Promise<PreparedResult> {
    return this.query(this.dialect(statement.text), statement.params);
  }

  private dialect(text: string): string {
    return text.replaceAll('least_of(', this.db.client.config.client === 'pg' ? 'least(' : 'min(');
  }

  /**
   * Every counter at once (one statement each, all in the same turn, so in the same commit):
   * for limits whose subjects are bounded by what exists, such as a client found before its
   * secret is checked, where a refused attempt's rows cannot grow the table. The caller gives
   * back what was reserved when one refused, as for reserveInTurn.
   */
  private async reserveTogether(limits: Limit[]): Promise<Map<string, number>> {
    const answers = await Promise.all(limits.map((limit) => this.counters.reserve(limit)));
    const reserved = new Map<string, number>();
    limits.forEach((limit, i) => {
      if (answers[i] !== undefined) reserved.set(limit.subject, answers[i]);
    });
    return reserved;
  }

  /**
   * One counter at a time, in order, stopping at the first refused: a refused attempt creates no
   * counters past the one that refused it (one statement for all would insert every row first,
   * so a locked address could still grow the table with each username it tries).
   */
  private async reserveInTurn(limits: Limit[]): Promise<Map<string, number>> {
    const reserved = new Map<string, number>();
    for (const limit of limits) {
      const failures = await this.counters.reserve(limit);
      if (failures === undefined) break;
      reserved.set(limit.subject, failures);
    }
    return reserved;
  }

  /**
   * Ends reserved attempts: a success or a cancel gives each counter's reservation back (a
   * success clears its own credential's counters), batched per counter and turn (CounterBatches);
   * a failure is counted counter by counter.
   */
  private async releaseAll(limits: Limit[], how: 'success' | 'failure' | 'cancel'): Promise<void> {
    if (how === 'failure') {
      for (const limit of limits) await this.countFailure(limit);
      return;
    }
    await Promise.all(limits.map((limit) => this.counters.release(limit.subject, how === 'success' && limit.onSuccess === 'clear')));
  }

  private async refusal(subject: string): Promise<Refusal> {
    const row = (await this.db('login_failures').where({ subject }).first()) as Row | undefined;
    const now = this.now();
    const lockedUntil = Number(row?.locked_until ?? 0);
    const until = Math.max(lockedUntil, Number(row?.not_before ?? 0));
    return { ok: false, locked: lockedUntil > now, retryAfterSeconds: Math.max(1, Math.ceil((until - now) / 1000)) };
  }

  /**
   * Ends one reserved attempt that failed: the failure counts (locking at `lockAfter`, backing
   * off from `backoff.after` for `refuse` limits). Successes and cancels are releaseAll's.
   */
  private async countFailure(limit: Limit): Promise<void> {
    const pending = sql`case when login_failures.pending > 0 then login_failures.pending - 1 else 0 end`;
    const now = this.now();
    const stale = sql`login_failures.window_started_at < cast(${now - this.settings.windowMs} as bigint)`;
    const failures = sql`(case when ${stale} then 1 else login_failures.failures + 1 end)`;
    const lockedUntil = sql`case when ${failures} >= cast(${limit.lockAfter ?? null} as integer) then cast(${now + this.settings.lockMs} as bigint) else login_failures.locked_until end`;
    const refuse = limit.backoff?.mode === 'refuse' ? limit.backoff : undefined;
    const notBefore = refuse
      ? sql`case when ${failures} < cast(${refuse.after} as integer) then login_failures.not_before
             else cast(${now} as bigint) + least_of(cast(${refuse.maxMs} as bigint), cast(${refuse.stepMs} as bigint) * (${failures} - cast(${refuse.after} as integer) + 1)) end`
      : sql`login_failures.not_before`;
    // An upsert: the row may have been swept or cleared (an unlock) while the attempt was checked.
    await this.run(sql`insert into login_failures (subject, failures, pending, window_started_at, locked_until, not_before)
       values (${limit.subject}, 1, 0, cast(${now} as bigint), null, null)
       on conflict (subject) do update set
         failures = ${failures},
         pending = ${pending},
         window_started_at = case when ${stale} then cast(${now} as bigint) else login_failures.window_started_at end,
         locked_until = ${lockedUntil},
         not_before = ${notBefore}`);
  }

  /**
   * True for the first caller for `subject` in a window (across processes), false for every
   * other until the lock it leaves ends: a single-use claim on the counters' one-row atomic
   * reservation (one attempt in flight at most, then counted as a failure so the subject stays
   * locked). The subject names what is claimed and must not be a secret itself: hash it.
   */
  async claimOnce(subject: string): Promise<boolean> {
    const reservation = await this.reserve([{ subject, lockAfter: 1, onSuccess: 'refund' }]);
    if (!reservation.ok) return false;
    await reservation.failed();
    return true;
  }

  async clear(subject: string): Promise<void> {
    await this.db('login_failures').where({ subject }).delete();
  }

  /**
   * Lifts every lock and backoff of one username (from every address): an operator's unlock.
   * The rows of the address alone stay: that address tried other names too.
   */
  async clearUsername(username: string): Promise<number> {
    return this.clearSubjects(CredentialThrottle.usernameSubjects(username));
  }

  /** Deletes the counter `exact` and every counter whose subject starts with `prefix`; answers how many. */
  async clearSubjects({ exact, prefix }: { exact: string; prefix: string }): Promise<number> {
    const escaped = prefix.replace(/[!%_]/g, (c) => `!${c}`);
    return this.db('login_failures')
      .where({ subject: exact })
      .orWhereRaw(`subject like ? escape '!'`, [`${escaped}%`])
      .delete();
  }

  /** Deletes counters whose window, lock and backoff are all over: nothing they say still holds. */
  async sweepExpired(): Promise<number> {
    const now = this.now();
    return this.db('login_failures')
      .where('window_started_at', '<', now - this.settings.windowMs)
      .andWhere((w) => w.whereNull('locked_until').orWhere('locked_until', '<=', now))
      .andWhere((w) => w.whereNull('not_before').orWhere('not_before', '<=', now))
      .delete();
  }
}

/** A piece of SQL and its parameters; an interpolated Fragment is inlined, any other value is a `?`. */
interface Fragment {
  text: string;
  params: unknown[];
}
function sql(strings: TemplateStringsArray, ...values: unknown[]): Fragment {
  const params: unknown[] = [];
  let text = strings[0]!;
  values.forEach((value, i) => {
    if (isFragment(value)) {
      text += value.text;
      params.push(...value.params);
    } else {
      text += '?';
      params.push(value);
    }
    text += strings[i + 1]!;
  });
  return { text, params };
}

const isFragment = (value: unknown): value is Fragment => typeof value === 'object' && value !== null && 'text' in value && 'params' in value;

/**
 * Checks a bearer credential that names no one until it is verified (an API key, an admin
 * token), counted per address before it is checked: while the address is locked nothing is
 * verified and the answer is `locked(seconds)`; a credential that verifies is taken back.
 */
export class AddressThrottledCredential {
  constructor(
    private readonly throttle: CredentialThrottle,
    private readonly subjectOf: (address: string) => string,
    private readonly lockAfter: number,
  ) {}

  async verify<T>(address: string, verify: () => Promise<T | undefined>, locked: (seconds: number) => Error): Promise<T | undefined> {
    const reservation = await this.throttle.reserve([{ subject: this.subjectOf(address), lockAfter: this.lockAfter, onSuccess: 'refund' }]);
    if (!reservation.ok) throw locked(reservation.retryAfterSeconds);
    let found: T | undefined;
    try {
      found = await verify();
    } catch (err) {
      await reservation.cancel();
      throw err;
    }
    await (found ? reservation.succeeded() : reservation.failed());
    return found;
  }
}
