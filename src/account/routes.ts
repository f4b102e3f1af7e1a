import Router from '@koa/router';
import { readSignInForm } from '../web/sign-in-form.ts';
import type Koa from 'koa';
import { koaBody } from 'koa-body';
import type { AccountsService, User } from '../accounts/service.ts';
import { MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, sameTypedPassword } from '../accounts/passwords.ts';
import { signInWithPassword } from '../accounts/sign-in.ts';
import type { CredentialThrottle } from '../accounts/throttle.ts';
import type { ClientsService } from '../clients/service.ts';
import { GatehouseError, NotFoundError, ValidationError } from '../errors.ts';
import { servesPath } from '../admin/served-path.ts';
import { securityReporter } from '../observability/request-log.ts';
import type { ReportSecurityEvent } from '../observability/security-events.ts';
import type { Oidc } from '../oidc/index.ts';
import { formRefusal, interactionErrorPage, isUnexpected, problemOf, respondWithPage } from '../problem.ts';
import { csrfToken, sameSecret } from '../web/csrf.ts';
import type { Views } from '../web/views.ts';
import type { EmailVerificationService } from '../accounts/recovery/email-verification.ts';
import type { AccountEvents, AccountEventKind } from './events.ts';
import { accountPageView } from './view-model.ts';
import { addPasskeyRoutes, PASSKEY_NOTICES, passkeysView } from './passkey-routes.ts';
import type { PasskeysService } from '../accounts/passkeys/index.ts';
import { AccountSessionCookie } from './cookie.ts';
import type { AccountSession, AccountSessionsService } from './sessions.ts';
import type { TotpService } from '../accounts/mfa/totp.ts';
import { accountTotpRoutes, totpSectionView } from './totp-routes.ts';
import { PasswordPassedCookie } from '../web/password-passed.ts';
import { signInSteps, type SignInSurface } from '../web/sign-in-steps.ts';
import { secondFactorRequired, type MfaPolicy } from '../accounts/mfa/policy.ts';
import { addIdpAccountRoutes, IDP_NOTICES, linkedIdentitiesView } from './idp-routes.ts';
import type { IdpsService } from '../idps/service.ts';
import type { Upstreams } from '../idps/upstream.ts';
import { addUpstreamSignInRoutes, UPSTREAM_SIGN_IN_PATH } from './upstream-sign-in.ts';

export interface AccountPageDeps {
  accounts: AccountsService;
  throttle: CredentialThrottle;
  clients: Pick<ClientsService, 'find'>;
  accountSessions: AccountSessionsService;
  accountEvents: AccountEvents;
  oidc: Pick<Oidc, 'grantsOf' | 'revokeGrantOf' | 'sessionsOf' | 'endSession' | 'endSessions'>;
  views: Views;
  /** Mails a link to a new address; the account takes it once the link is followed. Absent without SMTP. */
  emailChange: Pick<EmailVerificationService, 'startChange'> | undefined;
  passkeys: Pick<PasskeysService, 'of' | 'registrationOptions' | 'register' | 'rename' | 'remove'>;
  /** Authenticator apps (totp-routes.ts). */
  totp: TotpService;
  /** GATEHOUSE_REQUIRE_MFA: `all` (and `admins`, for operators) holds this page's sign-in to two factors too. */
  mfaPolicy: MfaPolicy;
  /** Sign-ins linked through upstream providers (idp-routes.ts), and signing in here with one (upstream-sign-in.ts). */
  idps?: Pick<IdpsService, 'linksOf' | 'list' | 'unlink' | 'offeredTo' | 'find' | 'holdFlow' | 'takeFlow' | 'linkOf' | 'touch'>;
  /** The upstream half of that sign-in; without it the sign-in page shows no provider buttons. */
  upstreams?: Pick<Upstreams, 'start' | 'finish'>;
}

const passed = new PasswordPassedCookie('gh_account_pwd_ok');

// Forms only: small urlencoded bodies, parsed on these routes alone.
const formBody = koaBody({ urlencoded: true, json: false, multipart: false, text: false, formLimit: '16kb' });

const text = (v: unknown): string => (typeof v === 'string' ? v : '');
/** The sign-in and its steps after the password: before any account session, checked with the sign-in form's CSRF token. */
const SIGN_IN_PATHS: ReadonlySet<string> = new Set(['/account/login', '/account/login/code', '/account/login/enrol']);

function formFields(ctx: Koa.Context): Record<string, unknown> {
  const body: unknown = (ctx.request as { body?: unknown }).body;
  return typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
}

/** What the redirect after a change says; a fixed list, so a link cannot put words on the page. */
const NOTICES: Record<string, string> = {
  'signed-in': 'You are signed in to your account.',
  'name-saved': 'Your name is saved.',
  'email-sent':
    'A mail is on its way to the new address: your account uses it once you follow the link in that mail (within 24 hours). Until then it keeps the current one.',
  'password-changed': 'Your password is changed. Your other sessions are signed out and apps must sign you in again; this page stays signed in.',
  'access-removed': 'The app’s access is removed: its tokens stop working, and it must ask you again.',
  'session-ended': 'That session is signed out.',
  'sessions-ended': 'You are signed out everywhere else: every app session, and the account page on other devices.',
  ...PASSKEY_NOTICES,
  ...IDP_NOTICES,
  'totp-removed': 'Your authenticator app is removed: signing in asks for your password alone. Its recovery codes no longer work.',
};

/** Which section of the page a form's error belongs to. */
type Section = 'name' | 'email' | 'password' | 'totp' | 'apps' | 'sessions' | 'passkeys' | 'idps';

interface SignedIn {
  user: User;
  session: AccountSession;
}

const seeOther = (ctx: Koa.Context, location: string) => {
  ctx.status = 303;
  ctx.redirect(location);
};

/**
 * The person's own account page, /account: their name, their password, the apps they allowed,
 * their sessions and their recent security events. Signed in to with a session of its own
 * (sessions.ts), not an app's: it works without any app, and neither signs the other out.
 * oidc-provider is reached through src/oidc/ only (`oidc`).
 */
export function accountRoutes(deps: AccountPageDeps): Router {
  const { accounts, throttle, accountSessions, accountEvents, oidc, views } = deps;
  const router = new Router({ prefix: '/account' });
  const cookie = new AccountSessionCookie(accountSessions);

  const render = (ctx: Koa.Context, template: string, context: Record<string, unknown>, status = 200) => {
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = views.render(template, { wide: template === 'account.njk', ...context });
  };

  // The enabled providers' buttons (every one: this page belongs to no app and its list).
  const upstreamButtons = async () =>
    deps.idps && deps.upstreams ? (await deps.idps.offeredTo(undefined)).map((i) => ({ name: i.name, button: i.button })) : [];
  const loginPage = async (ctx: Koa.Context, context: { username?: string; error?: string }, status = 200) =>
    render(
      ctx,
      'account-login.njk',
      { title: 'Sign in to your account', csrf: csrfToken(ctx), username: '', idps: await upstreamButtons(), ...context },
      status,
    );

  const accountPage = async (
    ctx: Koa.Context,
    { user, session }: SignedIn,
    errors: Partial<Record<Section, string>> = {},
    status = 200,
    typed: { name?: string; email?: string } = {},
    extra: Record<string, unknown> = {},
  ) => {
    const key = ctx.query.notice;
    const notice = typeof key === 'string' && Object.hasOwn(NOTICES, key) ? NOTICES[key] : undefined;
    const view = await accountPageView(user, { oidc, clients: deps.clients, accountEvents });
    render(
      ctx,
      'account.njk',
      {
        title: 'Your account',
        csrf: session.csrf,
        notice,
        errors,
        name: typed.name ?? user.name,
        newEmail: typed.email ?? '',
        canChangeEmail: deps.emailChange !== undefined,
        totp: await totpSectionView(deps.totp, user.id),
        ...view,
        ...(await passkeysView(deps.passkeys, { user, session })),
        ...(deps.idps ? await linkedIdentitiesView(deps.idps, { user }) : { linkedIdentities: [] }),
        ...extra,
      },
      status,
    );
  };

  const record = (ctx: Koa.Context, userId: string, kind: AccountEventKind) => accountEvents.record(userId, kind, ctx.ip);

  // The current password, asked again before a change: checked like a sign-in (same throttle:
  // these forms are no way around it); a correct one is not logged as a sign-in.
  const confirmPassword = async (ctx: Koa.Context, signedIn: SignedIn, password: string) => {
    const result = await signInWithPassword(accounts, throttle, signedIn.user.username, password, ctx.ip, passwordCheckReporter(securityReporter(ctx)));
    if (result.ok && result.user.id === signedIn.user.id) return undefined;
    const refused = result.ok ? new GatehouseError(401, 'access_denied', 'the current password is not correct') : result.refused;
    const { status, sentence } = formRefusal(ctx, refused);
    return { status, sentence: status === 401 ? 'Your current password is not correct. Nothing was changed.' : sentence };
  };

  // Errors become the sign-in pages' error page: the status and what went wrong, never a stack trace.
  router.use(async (ctx, next) => {
    ctx.set('cache-control', 'no-store');
    try {
      await next();
    } catch (err) {
      const problem = problemOf(err);
      if (isUnexpected(problem)) ctx.app.emit('error', err, ctx);
      respondWithPage(ctx, problem, views.render('error.njk', interactionErrorPage(problem)));
    }
  });
  router.use(formBody);

  // Every page but sign-in needs a signed-in, enabled person; every POST the session's CSRF token.
  router.use(async (ctx, next) => {
    if (SIGN_IN_PATHS.has(ctx.path) || UPSTREAM_SIGN_IN_PATH.test(ctx.path)) return next();
    const signedIn = await currentPerson(ctx, cookie, accounts);
    if (!signedIn) return seeOther(ctx, '/account/login');
    ctx.state.account = signedIn;
    if (ctx.method === 'POST' && !sameSecret(formFields(ctx).csrf, signedIn.session.csrf)) {
      return render(
        ctx,
        'error.njk',
        {
          title: 'Not allowed',
          error: 'csrf_mismatch',
          description:
            'This form did not come from your account page (it may be from an old page, or from another site). Nothing was changed. Go back, reload the page and try again.',
        },
        403,
      );
    }
    await next();
  });
  const person = (ctx: Koa.Context) => ctx.state.account as SignedIn;

  // The steps after the password, shared with the apps' and the admin's sign-ins.
  const steps = signInSteps({ accounts, totp: deps.totp, throttle, record: (userId, kind, address) => accountEvents.record(userId, kind, address) }, passed);
  const surface: SignInSurface = {
    bound: 'account',
    path: '/account/login',
    pages: {
      code: (ctx, error, status = 200) => render(ctx, 'account-login-code.njk', { title: 'Enter your code', csrf: csrfToken(ctx), error }, status),
      enrol: (ctx, setup, error, status = 200) =>
        render(
          ctx,
          'sign-in-enrol.njk',
          { title: 'Set up an authenticator app', csrf: csrfToken(ctx), ...setup, confirmAction: '/account/login/enrol', error },
          status,
        ),
      recoveryCodes: (ctx, codes, continueTo) => render(ctx, 'sign-in-recovery-codes.njk', { title: 'Your recovery codes', codes, continueTo }),
      passwordFirst: (ctx) => seeOther(ctx, '/account/login'),
    },
    complete: async (ctx, user) => {
      await cookie.create(ctx, user.id);
      return '/account?notice=signed-in';
    },
  };

  router.get('/login', async (ctx) => {
    if (await currentPerson(ctx, cookie, accounts)) return seeOther(ctx, '/account');
    await loginPage(ctx, {});
  });

  router.post('/login', async (ctx) => {
    const form = readSignInForm(ctx, formFields(ctx));
    const { username } = form;
    const again = (status: number, error: string) => loginPage(ctx, { username, error }, status);
    if (!form.ok) return again(form.status, form.error);
    const { password } = form;
    // The same throttle and counters as every other sign-in form.
    const result = await signInWithPassword(accounts, throttle, username, password, ctx.ip, securityReporter(ctx));
    if (!result.ok) {
      const { status, sentence } = formRefusal(ctx, result.refused);
      return again(status, sentence);
    }
    await steps.afterPassword(ctx, surface, result.user, secondFactorRequired(deps.mfaPolicy, result.user));
  });
  router.post('/login/code', async (ctx) => steps.code(ctx, surface, formFields(ctx)));
  if (deps.idps && deps.upstreams) {
    addUpstreamSignInRoutes(router, {
      idps: deps.idps,
      upstreams: deps.upstreams,
      accounts,
      steps,
      surface,
      secondFactorRequired: (user) => secondFactorRequired(deps.mfaPolicy, user),
      fields: formFields,
    });
  }
  router.post('/login/enrol', async (ctx) => steps.enrol(ctx, surface, formFields(ctx)));

  router.post('/logout', async (ctx) => {
    await cookie.end(ctx);
    seeOther(ctx, '/account/login');
  });

  router.get('/', async (ctx) => accountPage(ctx, person(ctx)));

  router.post('/name', async (ctx) => {
    const signedIn = person(ctx);
    const name = text(formFields(ctx).name);
    // Line breaks and other control characters would only garble the ID token's name claim.
    if (/\p{Cc}/u.test(name)) return accountPage(ctx, signedIn, { name: 'Your name cannot contain line breaks or control characters.' }, 400, { name: '' });
    try {
      await accounts.update(signedIn.user.id, { name });
    } catch (err) {
      if (err instanceof ValidationError) return accountPage(ctx, signedIn, { name: `Your name ${err.fields.name ?? 'is not valid'}.` }, 400, { name });
      throw err;
    }
    await record(ctx, signedIn.user.id, 'account.name_changed');
    seeOther(ctx, '/account?notice=name-saved');
  });

  router.post('/email', async (ctx) => {
    const signedIn = person(ctx);
    const email = text(formFields(ctx).email).trim();
    if (!deps.emailChange) return accountPage(ctx, signedIn, { email: 'This Gatehouse sends no mail: ask the people who run it to change your address.' }, 409);
    if (email.toLowerCase() === signedIn.user.email.toLowerCase())
      return accountPage(ctx, signedIn, { email: 'That is your current address already.' }, 400, { email });
    try {
      await deps.emailChange.startChange(signedIn.user.id, email);
    } catch (err) {
      if (err instanceof ValidationError) return accountPage(ctx, signedIn, { email: `The address ${err.fields.email ?? 'is not valid'}.` }, 400, { email });
      throw err;
    }
    await record(ctx, signedIn.user.id, 'account.email_change_requested');
    seeOther(ctx, '/account?notice=email-sent');
  });

  router.post('/password', async (ctx) => {
    const signedIn = person(ctx);
    const body = formFields(ctx);
    const current = text(body.current_password);
    const password = text(body.password);
    const confirm = text(body.password_confirm);
    const refuse = (status: number, error: string) => accountPage(ctx, signedIn, { password: error }, status);
    if (!current || !password || !confirm) return refuse(400, 'Enter your current password, and the new one twice.');
    if (!sameTypedPassword(password, confirm)) return refuse(400, 'The new password and its confirmation differ. Nothing was changed.');
    if (password.length < MIN_PASSWORD_LENGTH) return refuse(400, `The new password must be at least ${MIN_PASSWORD_LENGTH} characters.`);
    if (password.length > MAX_PASSWORD_LENGTH) return refuse(400, `The new password must be at most ${MAX_PASSWORD_LENGTH} characters.`);
    const wrong = await confirmPassword(ctx, signedIn, current);
    if (wrong) return refuse(wrong.status, wrong.sentence);
    // Ends every session of the person (this page's too) and revokes their tokens; this
    // browser then gets a new account session, so it stays signed in here alone.
    await accounts.setPassword(signedIn.user.id, password);
    await cookie.create(ctx, signedIn.user.id);
    await record(ctx, signedIn.user.id, 'account.password_changed');
    seeOther(ctx, '/account?notice=password-changed');
  });

  router.post('/apps/remove', async (ctx) => {
    const signedIn = person(ctx);
    const grantId = text(formFields(ctx).grant);
    const theirs = (await oidc.grantsOf(signedIn.user.id)).some((g) => g.grantId === grantId);
    if (!theirs) return accountPage(ctx, signedIn, { apps: 'That app’s access was removed already, or is not yours. Nothing was changed.' }, 404);
    await oidc.revokeGrantOf(signedIn.user.id, grantId);
    await record(ctx, signedIn.user.id, 'account.access_removed');
    seeOther(ctx, '/account?notice=access-removed');
  });

  router.post('/sessions/end', async (ctx) => {
    const signedIn = person(ctx);
    const handle = text(formFields(ctx).session);
    const theirs = (await oidc.sessionsOf(signedIn.user.id)).some((s) => s.handle === handle);
    if (!theirs) return accountPage(ctx, signedIn, { sessions: 'That session has ended already, or is not yours. Nothing was changed.' }, 404);
    await oidc.endSession(signedIn.user.id, handle);
    await record(ctx, signedIn.user.id, 'account.session_ended');
    seeOther(ctx, '/account?notice=session-ended');
  });

  router.post('/sessions/end-all', async (ctx) => {
    const signedIn = person(ctx);
    await oidc.endSessions(signedIn.user.id);
    await accountSessions.endAllOf(signedIn.user.id, cookie.value(ctx));
    await record(ctx, signedIn.user.id, 'account.sessions_ended');
    seeOther(ctx, '/account?notice=sessions-ended');
  });

  addPasskeyRoutes(router, {
    passkeys: deps.passkeys,
    person,
    fields: formFields,
    confirmPassword,
    refuse: (ctx, signedIn, status, sentence) => accountPage(ctx, signedIn, { passkeys: sentence }, status),
    show: (ctx, signedIn, context) => accountPage(ctx, signedIn, {}, 200, {}, context),
    record,
    done: (ctx, notice) => seeOther(ctx, `/account?notice=${notice}`),
  });

  if (deps.idps) {
    addIdpAccountRoutes(router, {
      idps: deps.idps,
      passkeys: deps.passkeys,
      person,
      fields: formFields,
      refuse: (ctx, signedIn, status, sentence) => accountPage(ctx, signedIn as SignedIn, { idps: sentence }, status),
      record,
      done: (ctx, notice) => seeOther(ctx, `/account?notice=${notice}`),
    });
  }

  accountTotpRoutes(router, {
    totp: deps.totp,
    throttle,
    render,
    accountPageWithError: (ctx, signedIn, error, status) => accountPage(ctx, signedIn as SignedIn, { totp: error }, status),
    checkCurrentPassword: (ctx, signedIn, password) => confirmPassword(ctx, signedIn as SignedIn, password),
    record,
    person,
  });

  // A form's address opened as a page (back, a bookmark) shows the account page; any other
  // address under /account gets the error page, not the provider's JSON.
  router.all('/{*rest}', async (ctx, next) => {
    if (ctx.method === 'OPTIONS') return next();
    if (servesPath(router, ctx) && (ctx.method === 'GET' || ctx.method === 'HEAD')) return seeOther(ctx, '/account');
    if (servesPath(router, ctx)) throw new GatehouseError(405, 'method_not_allowed', 'This address does not take that kind of request.');
    throw new NotFoundError('This page');
  });

  return router;
}

/** The person this request's account cookie signs in: a live session of an enabled user. */
async function currentPerson(ctx: Koa.Context, cookie: AccountSessionCookie, accounts: Pick<AccountsService, 'findActive'>): Promise<SignedIn | undefined> {
  const session = await cookie.current(ctx);
  if (!session) return undefined;
  const user = await accounts.findActive(session.userId);
  if (!user) {
    await cookie.end(ctx);
    return undefined;
  }
  return { user, session };
}

/** Reports a current-password check: failures and locks as any sign-in's, success under its own name. */
function passwordCheckReporter(report: ReportSecurityEvent): ReportSecurityEvent {
  return (event, fields, level) => report(event === 'login.password_accepted' ? 'account.password_confirmed' : event, fields, level);
}
