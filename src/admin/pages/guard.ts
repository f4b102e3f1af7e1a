import type Router from '@koa/router';
import type Koa from 'koa';
import type { AccountsService, User } from '../../accounts/service.ts';
import type { Actor } from '../audit.ts';
import { ADMIN_SESSION, csrfMatches, type AdminSession, type AdminSessionsService } from '../sessions.ts';
import { formFields } from './forms.ts';
import { page, seeOther } from './render.ts';
import type { Views } from '../../web/views.ts';

/** The operator signed in to this request, set once the session is checked. */
export interface Operator {
  user: User;
  session: AdminSession;
  actor: Actor;
}

export const operatorOf = (ctx: Koa.Context): Operator => ctx.state.operator as Operator;

function cookieOptions(ctx: Koa.Context) {
  return { signed: true, httpOnly: true, sameSite: 'strict' as const, secure: ctx.secure, path: ADMIN_SESSION.path, overwrite: true };
}

function clearCookie(ctx: Koa.Context): void {
  ctx.cookies.set(ADMIN_SESSION.cookie, '', cookieOptions(ctx)); // an empty value expires it
}

/** The admin session cookie of a request, over AdminSessionsService (which keeps the rows). */
export class AdminSessionCookie {
  constructor(
    private readonly sessions: AdminSessionsService,
    private readonly maxAgeMs: number = ADMIN_SESSION.absoluteMs,
  ) {}

  /** Signs `userId` in with a new session (the one the browser had is ended) and sets its cookie. */
  async create(ctx: Koa.Context, userId: string): Promise<AdminSession> {
    const { cookieValue, session } = await this.sessions.start(userId, ctx.cookies.get(ADMIN_SESSION.cookie, { signed: true }) || undefined);
    ctx.cookies.set(ADMIN_SESSION.cookie, cookieValue, { ...cookieOptions(ctx), maxAge: this.maxAgeMs });
    return session;
  }

  /** The live session the request's cookie names, or undefined (and the cookie cleared). */
  async current(ctx: Koa.Context): Promise<AdminSession | undefined> {
    const id = ctx.cookies.get(ADMIN_SESSION.cookie, { signed: true });
    if (!id) return undefined;
    const session = await this.sessions.find(id);
    if (!session) clearCookie(ctx);
    return session;
  }

  /** Signs out: the session row is gone, so the cookie is worthless even if a copy survives. */
  async end(ctx: Koa.Context): Promise<void> {
    const id = ctx.cookies.get(ADMIN_SESSION.cookie, { signed: true });
    if (id) await this.sessions.end(id);
    if (ctx.cookies.get(ADMIN_SESSION.cookie)) clearCookie(ctx);
  }
}

/** The signed-in operator: a live session of a user who is still an enabled admin. */
export async function signedIn(ctx: Koa.Context, cookie: AdminSessionCookie, accounts: Pick<AccountsService, 'findActive'>): Promise<Operator | undefined> {
  const session = await cookie.current(ctx);
  if (!session) return undefined;
  const user = await accounts.findActive(session.userId);
  if (!user?.isAdmin) {
    await cookie.end(ctx);
    return undefined;
  }
  return { user, session, actor: { label: `user:${user.id} (${user.username})`, address: ctx.ip, userId: user.id } };
}

/**
 * Every page but the public ones (sign-in, assets) needs a signed-in operator; every POST the
 * session's CSRF token.
 */
interface GuardOptions {
  cookie: AdminSessionCookie;
  accounts: Pick<AccountsService, 'findActive'>;
  views: Views;
  publicPaths: ReadonlySet<string>;
}
export function requireOperator(router: Router, { cookie, accounts, views, publicPaths }: GuardOptions): void {
  router.use(async (ctx, next) => {
    if (publicPaths.has(ctx.path)) return next();
    const operator = await signedIn(ctx, cookie, accounts);
    if (!operator) return seeOther(ctx, '/admin/login');
    ctx.state.operator = operator;
    if (ctx.method === 'POST' && !csrfMatches(operator.session, formFields(ctx).csrf)) {
      return page(
        views,
        ctx,
        'error.njk',
        {
          title: 'Not allowed',
          status: 403,
          description:
            'This form did not come from your admin session (it may be from an old page, or from another site). Go back, reload the page and try again.',
        },
        403,
      );
    }
    await next();
  });
}
