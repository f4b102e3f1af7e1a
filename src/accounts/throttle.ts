import type { Knex } from 'knex';

/**
 * Slows and then locks sign-in after repeated failures, per username and per client address,
 * in the database so every process sees the same counts.
 */
export const LOGIN_THROTTLE = {
  windowMs: 15 * 60_000,
  /** Failures after which each further attempt waits `delayMs` first. */
  slowAfter: 3,
  delayMs: 1000,
  /** Failures after which the username is locked for `lockMs`. */
  lockUsernameAfter: 5,
  /** An address trying many usernames is locked later, as offices share one. */
  lockAddressAfter: 20,
  lockMs: 15 * 60_000,
} as const;

export interface ThrottleState {
  lockedForSeconds: number;
  delayMs: number;
}

export class LoginThrottle {
  constructor(
    private readonly db: Knex,
    private readonly settings = LOGIN_THROTTLE,
  ) {}

  static subjects(usernameKey: string, address: string): { username: string; address: string } {
    return { username: `user:${usernameKey.toLowerCase()}`, address: `addr:${address}` };
  }

  async state(subjects: string[]): Promise<ThrottleState> {
    const now = Date.now();
    const rows = await this.db('login_failures').whereIn('subject', subjects);
    let lockedUntil = 0;
    let failures = 0;
    for (const row of rows) {
      if (Number(row.window_started_at) + this.settings.windowMs < now && !(row.locked_until && Number(row.locked_until) > now)) continue;
      if (row.locked_until) lockedUntil = Math.max(lockedUntil, Number(row.locked_until));
      failures = Math.max(failures, Number(row.failures));
    }
    return {
      lockedForSeconds: lockedUntil > now ? Math.ceil((lockedUntil - now) / 1000) : 0,
      delayMs: failures >= this.settings.slowAfter ? this.settings.delayMs : 0,
    };
  }

  async recordFailure(subject: string, lockAfter: number): Promise<void> {
    const now = Date.now();
    await this.db.transaction(async (trx) => {
      const row = await trx('login_failures').where({ subject }).first();
      const fresh = !row || Number(row.window_started_at) + this.settings.windowMs < now;
      const failures = fresh ? 1 : Number(row.failures) + 1;
      const values = {
        failures,
        window_started_at: fresh ? now : Number(row.window_started_at),
        locked_until: failures >= lockAfter ? now + this.settings.lockMs : null,
      };
      if (row) await trx('login_failures').where({ subject }).update(values);
      else await trx('login_failures').insert({ subject, ...values });
    });
  }

  async clear(subject: string): Promise<void> {
    await this.db('login_failures').where({ subject }).delete();
  }
}
