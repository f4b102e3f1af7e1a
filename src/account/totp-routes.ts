import type Router from '@koa/router';
import type Koa from 'koa';
import type { TotpService } from '../accounts/mfa/totp.ts';
import type { User } from '../accounts/service.ts';
import type { CredentialThrottle } from '../accounts/throttle.ts';
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
  record: (ctx: Koa.Context, userId: string, kind: AccountEventKind) => Promise<void>;
  person: (ctx: Koa.Context) => SignedIn;
}

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
 * /account/totp…: setting up an authenticator app (the otpauth:// URI as text and as a QR code,
 * then a first code), the ten recovery codes shown once, and removing it. Setting one up and
 * removing it both ask for the current password again, like passkeys. Behind the account page's session and CSRF check (routes.ts).
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

  /**
   * The current password, checked like a sign-in (same throttle), before the change named by
   * `action`; false once the account page has said why not.
   */
  const passwordConfirmed = async (ctx: Koa.Context, signedIn: SignedIn, action: string): Promise<boolean> => {
    const current = (ctx.request as { body?: Record<string, unknown> }).body?.current_password;
    if (typeof current !== 'string' || !current) {
      await deps.accountPageWithError(ctx, signedIn, `Enter your current password to ${action}.`, 400);
      return false;
    }
    const refused = await deps.checkCurrentPassword(ctx, signedIn, current);
    if (!refused) return true;
    const sentence = refused.status === 401 ? 'Your current password is not correct. Nothing was changed.' : refused.sentence;
    await deps.accountPageWithError(ctx, signedIn, sentence, refused.status);
    return false;
  };

  // The password first, as removing one asks: a session left open on a shared computer must
  // not be enough to tie the account to someone else's phone.
  router.post('/totp/setup', async (ctx) => {
    const signedIn = deps.person(ctx);
    if (await totp.isEnrolled(signedIn.user.id))
      return deps.accountPageWithError(ctx, signedIn, 'You have an authenticator app already: remove it first to set up another.', 409);
    if (!(await passwordConfirmed(ctx, signedIn, 'set up an authenticator app'))) return;
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
    if (!(await passwordConfirmed(ctx, signedIn, 'remove the authenticator app'))) return;
    if (!(await totp.remove(signedIn.user.id)))
      return deps.accountPageWithError(ctx, signedIn, 'There is no authenticator app to remove. Nothing was changed.', 404);
    await deps.record(ctx, signedIn.user.id, 'account.totp_removed');
    seeOther(ctx, '/account?notice=totp-removed');
  });
}
