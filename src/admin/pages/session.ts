import type Router from '@koa/router';
import type Koa from 'koa';
import { csrfToken, csrfValid } from '../../web/csrf.ts';
import type { AccountsService } from '../../accounts/service.ts';
import { signInWithPassword } from '../../accounts/sign-in.ts';
import { formRefusal } from '../../problem.ts';
import type { CredentialThrottle } from '../../accounts/throttle.ts';
import { securityReporter } from '../../observability/request-log.ts';
import { formFields, text } from './forms.ts';
import { signedIn, type AdminSessionCookie } from './guard.ts';
import { seeOther, type Render } from './render.ts';

export interface SessionPagesServices {
  accounts: AccountsService;
  throttle: CredentialThrottle;
}

/** Signing in to the admin pages and out: for users with the admin flag, in a database session. */
export function sessionPages(router: Router, { accounts, throttle }: SessionPagesServices, cookie: AdminSessionCookie, page: Render): void {
  const loginPage = (ctx: Koa.Context, context: { username?: string; error?: string }, status = 200) =>
    page(ctx, 'login.njk', { title: 'Sign in to Gatehouse admin', csrf: csrfToken(ctx), username: '', ...context }, status);

  router.get('/login', async (ctx) => {
    if (await signedIn(ctx, cookie, accounts)) return seeOther(ctx, '/admin/clients');
    loginPage(ctx, {});
  });

  router.post('/login', async (ctx) => {
    const body = formFields(ctx);
    const username = text(body.username).trim();
    const password = text(body.password);
    const again = (status: number, error: string) => loginPage(ctx, { username, error }, status);

    if (!csrfValid(ctx, body.csrf)) return again(403, 'Your form expired. Please sign in again.');
    if (!username || !password) return again(400, 'Enter your username and password.');

    // The same throttle, and the same counters, as the sign-in page of the interactions.
    const result = await signInWithPassword(accounts, throttle, username, password, ctx.ip, securityReporter(ctx));
    if (!result.ok) {
      const { status, sentence } = formRefusal(ctx, result.refused);
      return again(status, sentence);
    }
    const { user } = result;
    if (!user.isAdmin) {
      return again(403, `${user.username} is not an operator. Only users with the admin flag can sign in to Gatehouse admin; ask an operator to grant it.`);
    }
    await cookie.create(ctx, user.id);
    seeOther(ctx, '/admin/clients');
  });

  router.post('/logout', async (ctx) => {
    await cookie.end(ctx);
    seeOther(ctx, '/admin/login');
  });

  router.get('/', (ctx) => seeOther(ctx, '/admin/clients'));
}
