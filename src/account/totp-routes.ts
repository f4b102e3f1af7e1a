import type Router from '@koa/router';
import type Koa from 'koa';
import { checkSecondFactor } from '../accounts/mfa/second-factor.ts';
import { PasswordPassedCookie } from '../web/password-passed.ts';
import type { TotpService } from '../accounts/mfa/totp.ts';
import type { User } from '../accounts/service.ts';
import type { CredentialThrottle } from '../accounts/throttle.ts';
import { securityReporter } from '../observability/request-log.ts';
import { formRefusal } from '../problem.ts';
import { csrfToken, csrfValid } from '../web/csrf.ts';
import type { AccountEventKind } from './events.ts';

interface SignedIn {
  user: User;
  session: { csrf: string };
}

export interface AccountTotpDeps {
  totp: TotpService;
  throttle: CredentialThrottle;
  render: (ctx: Koa.Context, template: string, context: Record<string, unknown>, status?: number) => void;
  /** The account page with an error in the authenticator section. */
  accountPageWithError: (ctx: Koa.Context, signedIn: SignedIn, error: string, status: number) => Promise<void>;
  /** Checks the current password like a sign-in (same throttle); answers the refusal to show, if any. */
  checkCurrentPassword: (ctx: Koa.Context, signedIn: SignedIn, password: string) => Promise<{ status: number; sentence: string } | undefined>;
  /** Signs the person in to the account page (a new account session). */
  signIn: (ctx: Koa.Context, userId: string) => Promise<void>;
  record: (ctx: Koa.Context, userId: string, kind: AccountEventKind) => Promise<void>;
  person: (ctx: Koa.Context) => SignedIn;
}

const passed = new PasswordPassedCookie('gh_account_pwd_ok');
const LOGIN_PATH = '/account/login';
/** What the password-passed cookie of the account page is bound to (an interaction's is bound to its uid). */
const ACCOUNT_BOUND = 'account';

const text = (v: unknown): string => (typeof v === 'string' ? v.trim() : '');
const seeOther = (ctx: Koa.Context, location: string) => {
  ctx.status = 303;
  ctx.redirect(location);
};

/** The QR code as an <img> source: drawn by Gatehouse, shown without any script (CSP allows img data:). */
const svgDataUri = (svg: string) => `data:image/svg+xml;base64,${Buffer.from(svg, 'utf8').toString('base64')}`;

/** What the account page's "Authenticator app" section shows. */
export async function totpSectionView(totp: Pick<TotpService, 'isEnrolled' | 'recoveryCodesLeft'>, userId: string) {
  const enrolled = await totp.isEnrolled(userId);
  return { enrolled, recoveryCodesLeft: enrolled ? await totp.recoveryCodesLeft(userId) : 0 };
}

/**
 * The account page's sign-in code step, for people with an authenticator app: `askForCode`
 * after the right password, then POST /account/login/code. Before a session exists, so it is
 * checked with the sign-in form's CSRF token.
 */
export function accountCodeStep(deps: Pick<AccountTotpDeps, 'totp' | 'throttle' | 'render' | 'signIn'>) {
  const codePage = (ctx: Koa.Context, error?: string, status = 200) =>
    deps.render(ctx, 'account-login-code.njk', { title: 'Enter your code', csrf: csrfToken(ctx), error }, status);
  return {
    /** Whether the person must type a code (the code page is then shown). */
    async askedForCode(ctx: Koa.Context, userId: string): Promise<boolean> {
      if (!(await deps.totp.isEnrolled(userId))) return false;
      passed.set(ctx, LOGIN_PATH, userId, ACCOUNT_BOUND);
      codePage(ctx);
      return true;
    },
    routes(router: Router) {
      router.post('/login/code', async (ctx) => {
        const body = (ctx.request as { body?: Record<string, unknown> }).body ?? {};
        if (!csrfValid(ctx, body.csrf)) return codePage(ctx, 'Your form expired. Please enter the code again.', 403);
        const userId = passed.userId(ctx, ACCOUNT_BOUND);
        if (!userId) return seeOther(ctx, LOGIN_PATH);
        const code = text(body.code);
        if (!code) return codePage(ctx, 'Enter the code from your authenticator app, or a recovery code.', 400);
        if (code.length > 64) return codePage(ctx, 'That is not a code from your authenticator app or a recovery code.', 400);
        const result = await checkSecondFactor(deps.totp, deps.throttle, userId, code, ctx.ip, securityReporter(ctx));
        if (!result.ok) {
          const { status, sentence } = formRefusal(ctx, result.refused);
          return codePage(ctx, sentence, status);
        }
        passed.clear(ctx, LOGIN_PATH);
        await deps.signIn(ctx, userId);
        seeOther(ctx, '/account?notice=signed-in');
      });
    },
  };
}

/**
 * /account/totp…: setting up an authenticator app (the otpauth:// URI as text and as a QR code,
 * then a first code), the ten recovery codes shown once, and removing it (current password
 * again). Behind the account page's session and CSRF check (routes.ts).
 */
export function accountTotpRoutes(router: Router, deps: AccountTotpDeps): void {
  const { totp } = deps;

  const setupPage = async (ctx: Koa.Context, signedIn: SignedIn, error?: string, status = 200) => {
    const setup = await totp.pending(signedIn.user.id, signedIn.user.username);
    if (!setup) return seeOther(ctx, '/account');
    deps.render(
      ctx,
      'account-totp.njk',
      { title: 'Set up an authenticator app', csrf: signedIn.session.csrf, uri: setup.uri, secret: setup.secret, qr: svgDataUri(setup.qrSvg), error },
      status,
    );
  };

  router.post('/totp/setup', async (ctx) => {
    const signedIn = deps.person(ctx);
    const setup = await totp.begin(signedIn.user.id, signedIn.user.username);
    if (!setup) return deps.accountPageWithError(ctx, signedIn, 'You have an authenticator app already: remove it first to set up another.', 409);
    seeOther(ctx, '/account/totp');
  });

  router.get('/totp', async (ctx) => setupPage(ctx, deps.person(ctx)));

  router.post('/totp/confirm', async (ctx) => {
    const signedIn = deps.person(ctx);
    const code = text((ctx.request as { body?: Record<string, unknown> }).body?.code).replace(/\s/g, '');
    if (!/^\d{6}$/.test(code)) return setupPage(ctx, signedIn, 'Enter the six digits your app shows.', 400);
    const recoveryCodes = await totp.confirm(signedIn.user.id, code);
    if (!recoveryCodes) return setupPage(ctx, signedIn, 'That code is not the one your app shows now. Check the app and try again.', 400);
    await deps.record(ctx, signedIn.user.id, 'account.totp_added');
    deps.render(ctx, 'account-recovery-codes.njk', { title: 'Your recovery codes', csrf: signedIn.session.csrf, codes: recoveryCodes });
  });

  router.post('/totp/remove', async (ctx) => {
    const signedIn = deps.person(ctx);
    const current = (ctx.request as { body?: Record<string, unknown> }).body?.current_password;
    if (typeof current !== 'string' || !current)
      return deps.accountPageWithError(ctx, signedIn, 'Enter your current password to remove the authenticator app.', 400);
    const refused = await deps.checkCurrentPassword(ctx, signedIn, current);
    if (refused)
      return deps.accountPageWithError(
        ctx,
        signedIn,
        refused.status === 401 ? 'Your current password is not correct. Nothing was changed.' : refused.sentence,
        refused.status,
      );
    if (!(await totp.remove(signedIn.user.id)))
      return deps.accountPageWithError(ctx, signedIn, 'There is no authenticator app to remove. Nothing was changed.', 404);
    await deps.record(ctx, signedIn.user.id, 'account.totp_removed');
    seeOther(ctx, '/account?notice=totp-removed');
  });
}
