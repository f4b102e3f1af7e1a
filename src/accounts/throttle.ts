import type { Knex } from 'knex';
import { localInvalidations, type Invalidations } from '../cache/invalidation.ts';
import { usernameKey } from './service.ts';

/**
 * The invalidation topic of locks; the key is the subject (`client:ID`, `addr:IP` …). Published
 * when a subject becomes locked or a lock is cleared, so every process's CachedLockCheck forgets
 * what it remembered of that subject.
 */
export const LOCKS_TOPIC = 'locks';

/**
 * Slows and then locks sign-in after repeated failures, per username and per client address,
 * in the database so every process sees the same counts.
 */
export const LOGIN_THROTTLE = {
  windowMs: 15 * 60_000,
  /** Failures after which each further attempt waits `delayMs` first. */
  slowAfter: 3,
  slowAddressAfter: 10,
  delayMs: 1000,
  /** Failures after which the username is locked for `lockMs`. */
  lockUsernameAfter: 5,
  /** An address trying many usernames is locked later, as offices share one. */
  lockAddressAfter: 20,
  lockMs: 15 * 60_000,
} as const;

/**
 * Failed client authentication (a wrong client secret at /token, /introspect or /revoke) and
 * failed API keys (/userdata), counted with the same shared counters and window as sign-in.
 * Secrets and keys are 256 random bits, so this is not what keeps them safe; it stops a client
 * id or an address from being used to guess them at all, and weak imported secrets with it.
 * No slow-down step: token endpoints answer at once or, when locked, with 429.
 */
export const CREDENTIAL_THROTTLE = {
  /** Wrong secrets for one client_id, from anywhere, after which that client is locked. */
  lockClientAfter: 20,
  /** Wrong client secrets from one address, for any clients, after which the address is locked. */
  lockClientAddressAfter: 50,
  /** Wrong API keys from one address after which that address is locked. */
  lockApiKeyAddressAfter: 50,
  /** Wrong admin API tokens from one address after which that address is locked. */
  lockAdminTokenAddressAfter: 50,
} as const;

export interface ThrottleState {
  lockedForSeconds: number;
  delayMs: number;
}

/**
 * Counts failed attempts at every credential Gatehouse checks (passwords at sign-in, client
 * secrets, API keys, admin tokens) in the database, per subject (a username, a client, an
 * address), and says when a subject is slowed down or locked.
 */
export class CredentialThrottle {
  /** "Is it locked?" for every client authentication and bearer credential, shared by all of them. */
  readonly locks: CachedLockCheck;

  constructor(
    private readonly db: Knex,
    private readonly invalidations: Invalidations = localInvalidations(),
    private readonly settings = LOGIN_THROTTLE,
  ) {
    this.locks = new CachedLockCheck(this);
    invalidations.subscribe(LOCKS_TOPIC, (subject) => this.locks.forgetSubject(subject));
  }

  /** Counters are keyed as accounts are looked up, so no other spelling of a name gets a fresh count. */
  static subjects(username: string, address: string): { username: string; address: string } {
    return { username: `user:${usernameKey(username.trim())}`, address: `addr:${address}` };
  }

  /** Counters for failed client authentication: per client_id and per address. */
  static clientSubjects(clientId: string, address: string): { username: string; address: string } {
    return { username: `client:${clientId}`, address: `client-addr:${address}` };
  }

  /** Counter for failed API keys: per address (a key names no one before it is verified). */
  static apiKeySubject(address: string): string {
    return `apikey-addr:${address}`;
  }

  /** Counter for failed admin API tokens: per address. */
  static adminTokenSubject(address: string): string {
    return `admintoken-addr:${address}`;
  }

  async state(subjects: { username: string; address: string }): Promise<ThrottleState> {
    const now = Date.now();
    const rows = await this.db('login_failures').whereIn('subject', [subjects.username, subjects.address]);
    let lockedUntil = 0;
    let slow = false;
    for (const row of rows) {
      if (Number(row.window_started_at) + this.settings.windowMs < now && !(row.locked_until && Number(row.locked_until) > now)) continue;
      if (row.locked_until) lockedUntil = Math.max(lockedUntil, Number(row.locked_until));
      // Many people share an address (an office, a proxy): it slows down much later than a name.
      const slowAfter = row.subject === subjects.address ? this.settings.slowAddressAfter : this.settings.slowAfter;
      if (Number(row.failures) >= slowAfter) slow = true;
    }
    return {
      lockedForSeconds: lockedUntil > now ? Math.ceil((lockedUntil - now) / 1000) : 0,
      delayMs: slow ? this.settings.delayMs : 0,
    };
  }

  /**
   * Counts one failure, starting a new window when the last one is over, and locks the subject
   * when the count reaches `lockAfter`. One statement: concurrent failures (other processes
   * included) are each counted, and SQLite never has to turn a read into a write transaction,
   * which fails at once (SQLITE_BUSY) when another connection wrote in between. A failure that
   * leaves the subject locked tells every process at once.
   */
  async recordFailure(subject: string, lockAfter: number): Promise<void> {
    const now = Date.now();
    const windowOver = now - this.settings.windowMs;
    const lockedUntil = now + this.settings.lockMs;
    // Every SET expression sees the row as it was before this statement. The casts tell
    // PostgreSQL what the parameters are (SQLite accepts them as they are).
    const stale = 'login_failures.window_started_at < cast(? as bigint)';
    const failures = `case when ${stale} then 1 else login_failures.failures + 1 end`;
    const result = await this.db.raw(
      `insert into login_failures (subject, failures, window_started_at, locked_until) values (?, 1, cast(? as bigint), cast(? as bigint))
       on conflict (subject) do update set
         failures = ${failures},
         window_started_at = case when ${stale} then cast(? as bigint) else login_failures.window_started_at end,
         locked_until = case when ${failures} >= cast(? as integer) then cast(? as bigint) else null end
       returning locked_until`,
      [subject, now, lockAfter <= 1 ? lockedUntil : null, windowOver, windowOver, now, windowOver, lockAfter, lockedUntil],
    );
    if (returnedRows(result).some((row) => row.locked_until !== null)) await this.invalidations.publish(LOCKS_TOPIC, subject);
  }

  async clear(subject: string): Promise<void> {
    const result = await this.db.raw('delete from login_failures where subject = ? returning locked_until', [subject]);
    // Only a lock needs telling: a plain count is never remembered (a successful sign-in clears one).
    if (returnedRows(result).some((row) => row.locked_until !== null && Number(row.locked_until) > Date.now())) {
      await this.invalidations.publish(LOCKS_TOPIC, subject);
    }
  }
}

/** Rows of a raw `… returning` statement: an array from SQLite, `{ rows }` from PostgreSQL. */
function returnedRows(result: unknown): Array<{ locked_until: unknown }> {
  return (Array.isArray(result) ? result : ((result as { rows?: unknown[] }).rows ?? [])) as Array<{ locked_until: unknown }>;
}

/**
 * "Is this client or address locked?" for every client authentication, answered from memory
 * for up to `rememberMs` once the database said no: a token request would otherwise pay a
 * database read before its real work. A failure in this process forgets the answer at once; a
 * lock set by another process is published (LOCKS_TOPIC) and forgotten here as it arrives,
 * `rememberMs` bounding a lost message.
 */
export class CachedLockCheck {
  private readonly unlocked = new Map<string, { until: number; username: string; address: string }>();
  /** Counts forgetting, so that an answer read before a lock was published is not kept after it. */
  private forgotten = 0;

  constructor(
    private readonly throttle: CredentialThrottle,
    private readonly rememberMs = 1000,
    private readonly maxEntries = 10_000,
  ) {}

  async lockedForSeconds(subjects: { username: string; address: string }): Promise<number> {
    const key = `${subjects.username}\n${subjects.address}`;
    const now = Date.now();
    if ((this.unlocked.get(key)?.until ?? 0) > now) return 0;
    const forgottenBefore = this.forgotten;
    const { lockedForSeconds } = await this.throttle.state(subjects);
    if (lockedForSeconds === 0 && this.forgotten === forgottenBefore) {
      if (this.unlocked.size >= this.maxEntries) this.unlocked.clear();
      this.unlocked.set(key, { until: now + this.rememberMs, ...subjects });
    }
    return lockedForSeconds;
  }

  forget(subjects: { username: string; address: string }): void {
    this.forgotten++;
    this.unlocked.delete(`${subjects.username}\n${subjects.address}`);
  }

  /** Forgets every answer that involved `subject` (all of them without one). */
  forgetSubject(subject: string | undefined): void {
    this.forgotten++;
    if (subject === undefined) {
      this.unlocked.clear();
      return;
    }
    for (const [key, entry] of this.unlocked) {
      if (entry.username === subject || entry.address === subject) this.unlocked.delete(key);
    }
  }
}

/**
 * Checks a bearer credential that names no one until it is verified (an API key, an admin
 * token), counted per address: while the address is locked nothing is verified and the answer
 * is `locked(seconds)`; a credential that does not verify counts one failure.
 */
export class AddressThrottledCredential {
  private readonly locks: CachedLockCheck;

  constructor(
    private readonly throttle: CredentialThrottle,
    private readonly subjectOf: (address: string) => string,
    private readonly lockAfter: number,
  ) {
    this.locks = throttle.locks;
  }

  async verify<T>(address: string, verify: () => Promise<T | undefined>, locked: (seconds: number) => Error): Promise<T | undefined> {
    const subject = this.subjectOf(address);
    const subjects = { username: subject, address: subject };
    const lockedForSeconds = await this.locks.lockedForSeconds(subjects);
    if (lockedForSeconds > 0) throw locked(lockedForSeconds);
    const found = await verify();
    if (!found) {
      this.locks.forget(subjects);
      await this.throttle.recordFailure(subject, this.lockAfter);
    }
    return found;
  }
}
