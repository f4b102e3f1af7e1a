import { createHash, randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { sameSecret } from '../web/csrf.ts';

/**
 * Operators signed in to the admin pages. Sessions live in the database, so any process serves
 * them; the browser holds only a random id in a signed cookie, and the table holds only the
 * SHA-256 of that id (a copy of the table opens no session), the user, the session's own CSRF
 * token and two timestamps. This service owns the table; the cookie is the pages' business
 * (pages/guard.ts).
 */
export const ADMIN_SESSION = {
  cookie: 'gatehouse.admin',
  path: '/admin',
  /** Signed out after this long without a request. */
  idleMs: 30 * 60_000,
  /** Signed out this long after signing in, however busy. */
  absoluteMs: 12 * 60 * 60_000,
  /** last_seen_at is written at most this often: a page view need not always be a write. */
  touchEveryMs: 60_000,
} as const;

export interface AdminSession {
  userId: string;
  /** Every form of this session repeats it in a hidden field named `csrf`. */
  csrf: string;
  createdAt: Date;
  lastSeenAt: Date;
}

type Limits = Pick<typeof ADMIN_SESSION, 'idleMs' | 'absoluteMs' | 'touchEveryMs'>;

const COOKIE_VALUE = /^[\w-]{43}$/;
const randomToken = () => randomBytes(32).toString('base64url');
const storedId = (cookieValue: string) => createHash('sha256').update(cookieValue).digest('hex');

export class AdminSessionsService {
  constructor(
    private readonly db: Knex,
    private readonly limits: Limits = ADMIN_SESSION,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Signs `userId` in: always a new session id (the session `previous` names, one the browser
   * already had, is ended, so an id planted before sign-in is worth nothing), with its own CSRF
   * token. Returns the value for the browser's cookie.
   */
  async start(userId: string, previous?: string): Promise<{ cookieValue: string; session: AdminSession }> {
    if (previous !== undefined) await this.end(previous);
    const now = this.now();
    await this.db('admin_sessions')
      .where('last_seen_at', '<', now - this.limits.idleMs)
      .orWhere('created_at', '<', now - this.limits.absoluteMs)
      .delete();
    const cookieValue = randomToken();
    const session = { userId, csrf: randomToken(), createdAt: new Date(now), lastSeenAt: new Date(now) };
    await this.db('admin_sessions').insert({ id: storedId(cookieValue), user_id: userId, csrf: session.csrf, created_at: now, last_seen_at: now });
    return { cookieValue, session };
  }

  /** The live session a cookie value names, or undefined; an expired one is ended here. */
  async find(cookieValue: string): Promise<AdminSession | undefined> {
    if (!COOKIE_VALUE.test(cookieValue)) return undefined;
    const row = await this.db('admin_sessions').where({ id: storedId(cookieValue) }).first();
    if (!row) return undefined;
    const now = this.now();
    const createdAt = Number(row.created_at);
    const lastSeenAt = Number(row.last_seen_at);
    if (now - lastSeenAt > this.limits.idleMs || now - createdAt > this.limits.absoluteMs) {
      await this.end(cookieValue);
      return undefined;
    }
    if (now - lastSeenAt >= this.limits.touchEveryMs) {
      await this.db('admin_sessions').where({ id: storedId(cookieValue) }).update({ last_seen_at: now });
    }
    return { userId: String(row.user_id), csrf: String(row.csrf), createdAt: new Date(createdAt), lastSeenAt: new Date(now) };
  }

  /** Signs a user out of every admin session (their password changed, or they were disabled). */
  async endAllOf(userId: string): Promise<void> {
    await this.db('admin_sessions').where({ user_id: userId }).delete();
  }

  /** Signs out: the session row is gone, so the cookie is worthless even if a copy survives. */
  async end(cookieValue: string): Promise<void> {
    if (COOKIE_VALUE.test(cookieValue)) await this.db('admin_sessions').where({ id: storedId(cookieValue) }).delete();
  }
}

/** True when `submitted` is the session's CSRF token. */
export function csrfMatches(session: AdminSession, submitted: unknown): boolean {
  return sameSecret(submitted, session.csrf);
}
