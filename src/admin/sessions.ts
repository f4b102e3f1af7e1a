import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Knex } from 'knex';
import type Koa from 'koa';

/**
 * Operators signed in to the admin pages. Sessions live in the database, so any process serves
 * them; the browser holds only a random id in a signed cookie, and the table holds only the
 * SHA-256 of that id (a copy of the table opens no session), the user, the session's own CSRF
 * token and two timestamps.
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

export class AdminSessions {
  constructor(
    private readonly db: Knex,
    private readonly limits: Limits = ADMIN_SESSION,
  ) {}

  /**
   * Signs `userId` in: always a new session id (a session the browser already had is ended,
   * so an id planted before sign-in is worth nothing), with its own CSRF token.
   */
  async create(ctx: Koa.Context, userId: string): Promise<AdminSession> {
    await this.end(ctx);
    const now = Date.now();
    await this.db('admin_sessions')
      .where('last_seen_at', '<', now - this.limits.idleMs)
      .orWhere('created_at', '<', now - this.limits.absoluteMs)
      .delete();
    const id = randomToken();
    const session = { userId, csrf: randomToken(), createdAt: new Date(now), lastSeenAt: new Date(now) };
    await this.db('admin_sessions').insert({ id: storedId(id), user_id: userId, csrf: session.csrf, created_at: now, last_seen_at: now });
    ctx.cookies.set(ADMIN_SESSION.cookie, id, { ...cookieOptions(ctx), maxAge: this.limits.absoluteMs });
    return session;
  }

  /** The live session the request's cookie names, or undefined; an expired one is ended here. */
  async current(ctx: Koa.Context): Promise<AdminSession | undefined> {
    const id = ctx.cookies.get(ADMIN_SESSION.cookie, { signed: true });
    if (!id || !COOKIE_VALUE.test(id)) return undefined;
    const row = await this.db('admin_sessions').where({ id: storedId(id) }).first();
    if (!row) {
      clearCookie(ctx);
      return undefined;
    }
    const now = Date.now();
    const createdAt = Number(row.created_at);
    const lastSeenAt = Number(row.last_seen_at);
    if (now - lastSeenAt > this.limits.idleMs || now - createdAt > this.limits.absoluteMs) {
      await this.end(ctx);
      return undefined;
    }
    if (now - lastSeenAt >= this.limits.touchEveryMs) {
      await this.db('admin_sessions').where({ id: storedId(id) }).update({ last_seen_at: now });
    }
    return { userId: String(row.user_id), csrf: String(row.csrf), createdAt: new Date(createdAt), lastSeenAt: new Date(now) };
  }

  /** Signs out: the session row is gone, so the cookie is worthless even if a copy survives. */
  async end(ctx: Koa.Context): Promise<void> {
    const id = ctx.cookies.get(ADMIN_SESSION.cookie, { signed: true });
    if (id && COOKIE_VALUE.test(id)) await this.db('admin_sessions').where({ id: storedId(id) }).delete();
    if (ctx.cookies.get(ADMIN_SESSION.cookie)) clearCookie(ctx);
  }
}

/** True when `submitted` is the session's CSRF token. */
export function csrfMatches(session: AdminSession, submitted: unknown): boolean {
  if (typeof submitted !== 'string') return false;
  // Bytes, not characters: a token of the right length in non-ASCII characters is longer in
  // bytes, and timingSafeEqual throws on buffers of different lengths.
  const [given, expected] = [Buffer.from(submitted), Buffer.from(session.csrf)];
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function cookieOptions(ctx: Koa.Context) {
  return { signed: true, httpOnly: true, sameSite: 'strict' as const, secure: ctx.secure, path: ADMIN_SESSION.path, overwrite: true };
}

function clearCookie(ctx: Koa.Context): void {
  ctx.cookies.set(ADMIN_SESSION.cookie, '', cookieOptions(ctx)); // an empty value expires it
}
