import type Koa from 'koa';
import { ACCOUNT_SESSION, type AccountSession, type AccountSessionsService } from './sessions.ts';

/**
 * The account-page session cookie of a request, over AccountSessionsService (which keeps the
 * rows). SameSite=Lax, not Strict: a person following a link to /account from an app or a mail
 * arrives signed in; every form still carries the session's CSRF token.
 */
export class AccountSessionCookie {
  constructor(private readonly sessions: AccountSessionsService) {}

  private options(ctx: Koa.Context) {
    return { signed: true, httpOnly: true, sameSite: 'lax' as const, secure: ctx.secure, path: ACCOUNT_SESSION.path, overwrite: true };
  }

  /** The cookie's value, if the browser sent a signed one. */
  value(ctx: Koa.Context): string | undefined {
    return ctx.cookies.get(ACCOUNT_SESSION.cookie, { signed: true }) || undefined;
  }

  /** Signs `userId` in with a new session (the browser's previous one ends) and sets its cookie. */
  async create(ctx: Koa.Context, userId: string): Promise<AccountSession> {
    const { cookieValue, session } = await this.sessions.start(userId, this.value(ctx));
    ctx.cookies.set(ACCOUNT_SESSION.cookie, cookieValue, { ...this.options(ctx), maxAge: ACCOUNT_SESSION.absoluteMs });
    return session;
  }

  /** The live session the cookie names, or undefined (and the cookie cleared). */
  async current(ctx: Koa.Context): Promise<AccountSession | undefined> {
    const value = this.value(ctx);
    if (!value) return undefined;
    const session = await this.sessions.find(value);
    if (!session) this.clear(ctx);
    return session;
  }

  /** Signs out of the account page only: the apps' sessions are left as they are. */
  async end(ctx: Koa.Context): Promise<void> {
    const value = this.value(ctx);
    if (value) await this.sessions.end(value);
    if (ctx.cookies.get(ACCOUNT_SESSION.cookie)) this.clear(ctx);
  }

  private clear(ctx: Koa.Context): void {
    ctx.cookies.set(ACCOUNT_SESSION.cookie, '', this.options(ctx)); // an empty value expires it
  }
}
