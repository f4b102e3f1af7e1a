import type Router from '@koa/router';
import { readSignInForm } from '../../web/sign-in-form.ts';
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
import type { TotpService } from '../../accounts/mfa/totp.ts';
import { checkSecondFactor } from '../../accounts/mfa/second-factor.ts';
import { PasswordPassedCookie } from '../../web/password-passed.ts';

export interface SessionPagesServices {
  accounts: AccountsService;
  throttle: CredentialThrottle;
  /** An operator with an authenticator app is asked for a code after the password. */
  totp: Pick<TotpService, 'isEnrolled' | 'verify'>;
}

const passed = new PasswordPassedCookie('gh_admin_pwd_ok');
const CODE_PATH = '/admin/login';

/** Signing in to the admin pages and out: for users with the admin flag, in a database session. */
export function sessionPages(router: Router, { accounts, throttle, totp }: SessionPagesServices, cookie: AdminSessionCookie, page: Render): void {
  const loginPage = (ctx: Koa.Context, context: { username?: string; error?: string }, status = 200) =>
    page(ctx, 'login.njk', { title: 'Sign in to Gatehouse admin', csrf: csrfToken(ctx), username: '', ...context }, status);

  router.get('/login', async (ctx) => {
    if (await signedIn(ctx, cookie, accounts)) return seeOther(ctx, '/admin/clients');
    loginPage(ctx, {});
  });

  router.post('/login', async (ctx) => {
    const form = readSignInForm(ctx, formFields(ctx));
    const { username } = form;
    const again = (status: number, error: string) => loginPage(ctx, { username, error }, status);
    if (!form.ok) return again(form.status, form.error);
    const { password } = form;

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
    if (await totp.isEnrolled(user.id)) {
      passed.set(ctx, CODE_PATH, user.id, 'admin');
      return codePage(ctx);
    }
    await cookie.create(ctx, user.id);
    seeOther(ctx, '/admin/clients');
  });

  const codePage = (ctx: Koa.Context, error?: string, status = 200) =>
    page(ctx, 'login-code.njk', { title: 'Enter your code', csrf: csrfToken(ctx), error }, status);

  // The code step, before any admin session exists: checked with the sign-in form's CSRF token.
  router.post('/login/code', async (ctx) => {
    const body = formFields(ctx);
    if (!csrfValid(ctx, body.csrf)) return codePage(ctx, 'Your form expired. Please enter the code again.', 403);
    const userId = passed.userId(ctx, 'admin');
    if (!userId) return seeOther(ctx, '/admin/login');
    const code = text(body.code).trim();
    if (!code || code.length > 64) return codePage(ctx, 'Enter the code from your authenticator app, or a recovery code.', 400);
    const result = await checkSecondFactor(totp, throttle, userId, code, ctx.ip, securityReporter(ctx));
    if (!result.ok) {
      const { status, sentence } = formRefusal(ctx, result.refused);
      return codePage(ctx, sentence, status);
    }
    passed.clear(ctx, CODE_PATH);
    await cookie.create(ctx, userId);
    seeOther(ctx, '/admin/clients');
  });

  router.post('/logout', async (ctx) => {
    await cookie.end(ctx);
    seeOther(ctx, '/admin/login');
  });

  router.get('/', (ctx) => seeOther(ctx, '/admin/clients'));
}
