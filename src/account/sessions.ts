import { createHash, randomBytes } from 'node:crypto';
import type { Knex } from 'knex';

/**
 * People signed in to their own account page, /account. A session of its own, apart from
 * oidc-provider's (the apps' sign-in): signing out here leaves the apps signed in, and an app's
 * logout leaves this page signed in. Rows as in admin/sessions.ts: the browser holds a random
 * id in a signed cookie, the table its SHA-256, the user, the session's CSRF token and two
 * timestamps.
 */
export const ACCOUNT_SESSION = {
  cookie: 'gatehouse.account',
  path: '/account',
  idleMs: 30 * 60_000,
  absoluteMs: 12 * 60 * 60_000,
  touchEveryMs: 60_000,
} as const;

export interface AccountSession {
  userId: string;
  csrf: string;
}

type Limits = Pick<typeof ACCOUNT_SESSION, 'idleMs' | 'absoluteMs' | 'touchEveryMs'>;

const COOKIE_VALUE = /^[\w-]{43}$/;
const randomToken = () => randomBytes(32).toString('base64url');
const storedId = (cookieValue: string) => createHash('sha256').update(cookieValue).digest('hex');

export class AccountSessionsService {
  constructor(
    private readonly db: Knex,
    private readonly limits: Limits = ACCOUNT_SESSION,
    private readonly now: () => number = Date.now,
  ) {}

  /** Signs `userId` in with a new id (the `previous` one is ended: an id planted before sign-in is worth nothing). */
  async start(userId: string, previous?: string): Promise<{ cookieValue: string; session: AccountSession }> {
    if (previous !== undefined) await this.end(previous);
    const now = this.now();
    await this.db('account_sessions')
      .where('last_seen_at', '<', now - this.limits.idleMs)
      .orWhere('created_at', '<', now - this.limits.absoluteMs)
      .delete();
    const cookieValue = randomToken();
    const session = { userId, csrf: randomToken() };
    await this.db('account_sessions').insert({ id: storedId(cookieValue), user_id: userId, csrf: session.csrf, created_at: now, last_seen_at: now });
    return { cookieValue, session };
  }

  /** The live session a cookie value names, or undefined; an expired one is ended here. */
  async find(cookieValue: string): Promise<AccountSession | undefined> {
    if (!COOKIE_VALUE.test(cookieValue)) return undefined;
    const row = await this.db('account_sessions')
      .where({ id: storedId(cookieValue) })
      .first();
    if (!row) return undefined;
    const now = this.now();
    if (now - Number(row.last_seen_at) > this.limits.idleMs || now - Number(row.created_at) > this.limits.absoluteMs) {
      await this.end(cookieValue);
      return undefined;
    }
    if (now - Number(row.last_seen_at) >= this.limits.touchEveryMs) {
      await this.db('account_sessions')
        .where({ id: storedId(cookieValue) })
        .update({ last_seen_at: now });
    }
    return { userId: String(row.user_id), csrf: String(row.csrf) };
  }

  /** Ends every account-page session of a user but the one `keep` names (their password changed, or "sign out everywhere"). */
  async endAllOf(userId: string, keep?: string): Promise<void> {
    const query = this.db('account_sessions').where({ user_id: userId });
    if (keep !== undefined && COOKIE_VALUE.test(keep)) query.whereNot({ id: storedId(keep) });
    await query.delete();
  }

  async end(cookieValue: string): Promise<void> {
    if (COOKIE_VALUE.test(cookieValue))
      await this.db('account_sessions')
        .where({ id: storedId(cookieValue) })
        .delete();
  }
}
