import type Koa from 'koa';
import { authenticationOf, checkSecondFactor, type FirstFactor } from '../accounts/mfa/second-factor.ts';
import type { TotpService } from '../accounts/mfa/totp.ts';
import type { AccountsService, User } from '../accounts/service.ts';
import type { CredentialThrottle } from '../accounts/throttle.ts';
import { securityReporter } from '../observability/request-log.ts';
import { formRefusal } from '../problem.ts';
import { csrfValid } from './csrf.ts';
import type { PasswordPassedCookie } from './password-passed.ts';

/** What a person's authenticator app is given while they set it up, as the pages show it. */
export interface TotpSetupView {
  uri: string;
  secret: string;
  /** The QR code as an <img> source: drawn by Gatehouse, shown without any script (CSP allows img data:). */
  qr: string;
}

/** How the sign-in ended: RFC 8176 amr and the acr, as the session and the ID token carry them. */
export type Authentication = ReturnType<typeof authenticationOf>;

/** The pages of one sign-in form's steps after the password (an app's, /admin's, /account's). */
export interface SignInPages {
  /** Asks for a code from the person's authenticator app (field `code`). */
  code(ctx: Koa.Context, error?: string, status?: number): void | Promise<void>;
  /** Sets up an authenticator app before the sign-in can finish (field `code`). */
  enrol(ctx: Koa.Context, setup: TotpSetupView, error?: string, status?: number): void | Promise<void>;
  /** The recovery codes of the new app, shown once, with a link on to where the finished sign-in goes (`continueTo`). */
  recoveryCodes(ctx: Koa.Context, codes: readonly string[], continueTo: string): void | Promise<void>;
  /** This browser passed no password step for this form (or too long ago): back to the password. */
  passwordFirst(ctx: Koa.Context): void | Promise<void>;
}

/** One sign-in form, for one request: where its password-passed cookie lives and what finishing does. */
export interface SignInSurface {
  /** What the password-passed cookie is bound to: an interaction's uid, or the form's name. */
  bound: string;
  /** The cookie's path: the form's own addresses only. */
  path: string;
  pages: SignInPages;
  /** Starts the session the person signed in for (the sign-in is complete); answers where the browser goes next. */
  complete(ctx: Koa.Context, user: User, authentication: Authentication): Promise<string>;
}

export interface SignInStepsDeps {
  accounts: Pick<AccountsService, 'findActive'>;
  totp: Pick<TotpService, 'isEnrolled' | 'verify' | 'begin' | 'pending' | 'confirm'>;
  throttle: CredentialThrottle;
  /** The person's account history ("Authenticator app set up"). */
  record?: (userId: string, kind: 'account.totp_added', address: string) => Promise<void>;
}

const svgDataUri = (svg: string) => `data:image/svg+xml;base64,${Buffer.from(svg, 'utf8').toString('base64')}`;
const text = (v: unknown): string => (typeof v === 'string' ? v.trim() : '');

/**
 * The one path from "the first factor was right" (the password, or an upstream identity
 * provider's sign-in: `first`, kept in the cookie so the amr says which) to a session, for every sign-in form: the code
 * step for a person with an authenticator app; for one who needs a second factor (the MFA
 * policy, decided by the caller with secondFactorRequired) and has none, setting up an app
 * first, inside the sign-in (they cannot skip it: no step opens without its own stage of the
 * password-passed cookie, and the session starts with the first right code, which turns the app
 * on once, in one conditional update); else the session at once. "Signed in" (login.succeeded) is reported
 * here, when the session starts, not when the password was right.
 */
export function signInSteps(deps: SignInStepsDeps, cookie: PasswordPassedCookie) {
  const { accounts, totp, throttle } = deps;

  const complete = async (ctx: Koa.Context, surface: SignInSurface, user: User, authentication: Authentication): Promise<string> => {
    securityReporter(ctx)('login.succeeded', { ip: ctx.ip, username: user.username, sub: user.id, amr: authentication.amr }, 'info');
    return surface.complete(ctx, user, authentication);
  };
  const completeAndGo = async (ctx: Koa.Context, surface: SignInSurface, user: User, authentication: Authentication) => {
    const next = await complete(ctx, surface, user, authentication);
    ctx.status = 303;
    ctx.redirect(next);
  };

  // A new secret each time: a setup left pending by someone else who knew the password is never shown.
  const startEnrolment = async (ctx: Koa.Context, surface: SignInSurface, user: User, first: FirstFactor) => {
    const setup = await totp.begin(user.id, user.username);
    if (!setup) return surface.pages.passwordFirst(ctx);
    cookie.set(ctx, surface.path, user.id, surface.bound, 'enrol', first);
    await surface.pages.enrol(ctx, { uri: setup.uri, secret: setup.secret, qr: svgDataUri(setup.qrSvg) });
  };

  const enrolAgain = async (ctx: Koa.Context, surface: SignInSurface, user: User, error: string, status: number) => {
    const setup = await totp.pending(user.id, user.username);
    if (!setup) return surface.pages.passwordFirst(ctx);
    await surface.pages.enrol(ctx, { uri: setup.uri, secret: setup.secret, qr: svgDataUri(setup.qrSvg) }, error, status);
  };

  /** The person of this stage, still enabled; undefined (and the password page) otherwise. */
  const personAt = async (ctx: Koa.Context, surface: SignInSurface, stage: 'code' | 'enrol') => {
    const passed = cookie.passed(ctx, surface.bound, stage);
    const user = passed ? await accounts.findActive(passed.userId) : undefined;
    if (!user || !passed) {
      await surface.pages.passwordFirst(ctx);
      return undefined;
    }
    return { user, first: passed.first };
  };

  /** After the right first factor: the code page, the setup page, or the session. */
  const afterFirstFactor = async (ctx: Koa.Context, surface: SignInSurface, user: User, required: boolean, first: FirstFactor): Promise<void> => {
    if (await totp.isEnrolled(user.id)) {
      cookie.set(ctx, surface.path, user.id, surface.bound, 'code', first);
      return surface.pages.code(ctx);
    }
    if (!required) return completeAndGo(ctx, surface, user, authenticationOf(false, first));
    // Someone with a passkey typed their password instead: they set up an app too (their passkey
    // may not check who holds it, and then it is one factor; a refusal there must not be a dead end).
    await startEnrolment(ctx, surface, user, first);
  };

  return {
    afterFirstFactor,
    /** After the right password (afterFirstFactor with the password). */
    afterPassword: (ctx: Koa.Context, surface: SignInSurface, user: User, required: boolean) => afterFirstFactor(ctx, surface, user, required, 'password'),

    /** The code form: a code from the app or a recovery code, under the code throttle. */
    async code(ctx: Koa.Context, surface: SignInSurface, fields: Record<string, unknown>): Promise<void> {
      if (!csrfValid(ctx, fields.csrf)) return surface.pages.code(ctx, 'Your form expired. Please enter the code again.', 403);
      const at = await personAt(ctx, surface, 'code');
      if (!at) return;
      const { user, first } = at;
      const code = text(fields.code);
      if (!code) return surface.pages.code(ctx, 'Enter the code from your authenticator app, or a recovery code.', 400);
      if (code.length > 64) return surface.pages.code(ctx, 'That is not a code from your authenticator app or a recovery code.', 400);
      const result = await checkSecondFactor(totp, throttle, user.id, code, ctx.ip, securityReporter(ctx));
      if (!result.ok) {
        const { status, sentence } = formRefusal(ctx, result.refused);
        return surface.pages.code(ctx, sentence, status);
      }
      cookie.clear(ctx, surface.path);
      await completeAndGo(ctx, surface, user, authenticationOf(true, first));
    },

    /**
     * The setup form: the first code of the new app turns it on and finishes the sign-in (the
     * code is the second factor); the recovery codes are then shown once, with the way on.
     */
    async enrol(ctx: Koa.Context, surface: SignInSurface, fields: Record<string, unknown>): Promise<void> {
      const csrfOk = csrfValid(ctx, fields.csrf);
      const at = await personAt(ctx, surface, 'enrol');
      if (!at) return;
      const { user, first } = at;
      if (!csrfOk) return enrolAgain(ctx, surface, user, 'Your form expired. Please enter the code again.', 403);
      const code = text(fields.code).replace(/\s/g, '');
      if (!/^\d{6}$/.test(code)) return enrolAgain(ctx, surface, user, 'Enter the six digits your app shows.', 400);
      const codes = await totp.confirm(user.id, code);
      if (!codes) return enrolAgain(ctx, surface, user, 'That code is not the one your app shows now. Check the app and try again.', 400);
      await deps.record?.(user.id, 'account.totp_added', ctx.ip);
      cookie.clear(ctx, surface.path);
      const next = await complete(ctx, surface, user, authenticationOf(true, first));
      await surface.pages.recoveryCodes(ctx, codes, next);
    },
  };
}

export type SignInSteps = ReturnType<typeof signInSteps>;
