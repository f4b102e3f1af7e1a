import type Router from '@koa/router';
import { readSignInForm } from '../../web/sign-in-form.ts';
import type Koa from 'koa';
import { csrfToken } from '../../web/csrf.ts';
import type { AccountsService } from '../../accounts/service.ts';
import { signInWithPassword } from '../../accounts/sign-in.ts';
import { formRefusal } from '../../problem.ts';
import type { CredentialThrottle } from '../../accounts/throttle.ts';
import { securityReporter } from '../../observability/request-log.ts';
import { formFields } from './forms.ts';
import { signedIn, type AdminSessionCookie } from './guard.ts';
import { seeOther, type Render } from './render.ts';
import type { TotpService } from '../../accounts/mfa/totp.ts';
import { secondFactorRequired } from '../../accounts/mfa/policy.ts';
import type { Config } from '../../config.ts';
import type { AccountEvents } from '../../account/events.ts';
import { signInSteps, type SignInSurface } from '../../web/sign-in-steps.ts';
import { PasswordPassedCookie } from '../../web/password-passed.ts';

export interface SessionPagesServices {
  accounts: AccountsService;
  throttle: CredentialThrottle;
  /** An operator with an authenticator app is asked for a code after the password; one who must have one sets it up. */
  totp: Pick<TotpService, 'isEnrolled' | 'verify' | 'begin' | 'pending' | 'confirm'>;
  /** GATEHOUSE_REQUIRE_MFA (`requireMfa`): under `admins` or `all`, operators sign in with two factors. */
  config: Pick<Config, 'requireMfa'>;
  /** The operator's own account history (an authenticator app set up while signing in). */
  accountEvents: Pick<AccountEvents, 'record'>;
}

const passed = new PasswordPassedCookie('gh_admin_pwd_ok');
const STEPS_PATH = '/admin/login';

/** Signing in to the admin pages and out: for users with the admin flag, in a database session. */
export function sessionPages(
  router: Router,
  { accounts, throttle, totp, config, accountEvents }: SessionPagesServices,
  cookie: AdminSessionCookie,
  page: Render,
): void {
  const loginPage = (ctx: Koa.Context, context: { username?: string; error?: string }, status = 200) =>
    page(ctx, 'login.njk', { title: 'Sign in to Gatehouse admin', csrf: csrfToken(ctx), username: '', ...context }, status);

  // The steps after the password, shared with the apps' and the account page's sign-ins.
  const steps = signInSteps({ accounts, totp, throttle, record: (userId, kind, address) => accountEvents.record(userId, kind, address) }, passed);
  const surface: SignInSurface = {
    bound: 'admin',
    path: STEPS_PATH,
    pages: {
      code: (ctx, error, status = 200) => page(ctx, 'login-code.njk', { title: 'Enter your code', csrf: csrfToken(ctx), error }, status),
      enrol: (ctx, setup, error, status = 200) =>
        page(
          ctx,
          'login-enrol.njk',
          { title: 'Set up an authenticator app', csrf: csrfToken(ctx), ...setup, confirmAction: '/admin/login/enrol', error },
          status,
        ),
      recoveryCodes: (ctx, codes, continueTo) => page(ctx, 'login-recovery-codes.njk', { title: 'Your recovery codes', codes, continueTo }),
      passwordFirst: (ctx) => seeOther(ctx, '/admin/login'),
    },
    complete: async (ctx, user) => {
      await cookie.create(ctx, user.id);
      return '/admin/clients';
    },
  };

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
    await steps.afterPassword(ctx, surface, user, secondFactorRequired(config.requireMfa, user));
  });

  // The steps after the password, before any admin session exists: checked with the sign-in form's CSRF token.
  router.post('/login/code', async (ctx) => steps.code(ctx, surface, formFields(ctx)));
  router.post('/login/enrol', async (ctx) => steps.enrol(ctx, surface, formFields(ctx)));

  router.post('/logout', async (ctx) => {
    await cookie.end(ctx);
    seeOther(ctx, '/admin/login');
  });

  router.get('/', (ctx) => seeOther(ctx, '/admin/clients'));
}
