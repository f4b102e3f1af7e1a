import Router from '@koa/router';
import type Koa from 'koa';
import { koaBody } from 'koa-body';
import { MFA_REQUIRED_REASON, type InteractionResults, type Interactions, type MissingConsent } from '../src/oidc/index.ts';
import type { AccountsService } from '../src/accounts/service.ts';
import type { CredentialThrottle } from '../src/accounts/throttle.ts';
import type { ScopesService } from '../src/scopes/service.ts';
import type { ResourcesService } from '../src/resources/service.ts';
import { signInWithPassword } from '../src/accounts/sign-in.ts';
import { PasskeyRefused, type PasskeysService } from '../src/accounts/passkeys/index.ts';
import { GatehouseError } from '../src/errors.ts';
import { formRefusal, interactionErrorPage, problemOf, respondWithPage, type Problem } from '../src/problem.ts';
import { securityReporter } from '../src/observability/request-log.ts';
import { csrfToken, csrfValid } from '../src/web/csrf.ts';
import { describeScope } from './scopes.ts';
import { clientViewOf, codeStep, twoFactorsNeeded } from './code-step.ts';
import type { TotpService } from '../src/accounts/mfa/totp.ts';
import type { Views } from '../src/web/views.ts';
import { amrHasTwoFactors, type MfaPolicy } from '../src/accounts/mfa/policy.ts';
import type { AccountEvents } from '../src/account/events.ts';
import type { IdpsService } from '../src/idps/service.ts';

export interface InteractionDeps {
  /** oidc-provider's interactions (through the provider serving now: it is rebuilt when signing keys change). */
  interactions: Interactions;
  accounts: AccountsService;
  throttle: CredentialThrottle;
  /** The API scopes' stored descriptions, for the consent page. */
  scopes: Pick<ScopesService, 'descriptions'>;
  /** The resource servers, so the consent page names the API a token is asked for. */
  resources: Pick<ResourcesService, 'find'>;
  /** Sign-in with a passkey beside the password form. */
  passkeys: Pick<PasskeysService, 'authenticationOptions' | 'signIn'>;
  views: Views;
  /** Authenticator apps: a person with one is asked for a code after the password (code-step.ts). */
  totp: Pick<TotpService, 'isEnrolled' | 'verify' | 'begin' | 'pending' | 'confirm'>;
  /** GATEHOUSE_REQUIRE_MFA: who must sign in with two factors besides the apps that ask for it. */
  mfaPolicy: MfaPolicy;
  /** The person's account history (an authenticator app set up during a sign-in). */
  accountEvents: Pick<AccountEvents, 'record'>;
  /** The upstream identity providers whose buttons the sign-in page shows (interactions/idp-routes.ts). */
  idps?: Pick<IdpsService, 'offeredTo'>;
}

// Forms only: small urlencoded bodies, parsed on these routes alone (never before the provider).
const formBody = koaBody({ urlencoded: true, json: false, multipart: false, text: false, formLimit: '16kb' });


/**
 * What the consent page lists: the scopes not yet granted, or, when prompt=consent asks again
 * for what was granted before, everything requested.
 */
function scopesToShow(details: unknown, params: Record<string, unknown>, stored: ReadonlyMap<string, string>) {
  const missing = (details as { missingOIDCScope?: string[] }).missingOIDCScope ?? [];
  const shown = missing.length ? missing : typeof params.scope === 'string' ? params.scope.split(' ').filter(Boolean) : [];
  return shown.map((scope) => ({ scope, description: describeScope(scope, stored) }));
}

/**
 * What the consent page asks, API by API: the scopes asked for each resource server (RFC 8707)
 * under its name and audience, then the rest (sign-in scopes) as before. A scope shown under
 * an API is not listed again.
 */
async function consentView(
  details: unknown,
  params: Record<string, unknown>,
  stored: ReadonlyMap<string, string>,
  resources: Pick<ResourcesService, 'find'>,
) {
  const perResource = (details as MissingConsent).missingResourceScopes ?? {};
  const apis = [];
  const underAnApi = new Set<string>();
  for (const [audience, asked] of Object.entries(perResource)) {
    const resource = await resources.find(audience);
    for (const s of asked) underAnApi.add(s);
    apis.push({ name: resource?.name ?? audience, audience, scopes: asked.map((scope) => ({ scope, description: describeScope(scope, stored) })) });
  }
  return { apis, scopes: scopesToShow(details, params, stored).filter((s) => !underAnApi.has(s.scope)) };
}

/**
 * The submitted fields; none when the body is not a form (koa-body leaves it unset for another
 * content type), so such a post fails the CSRF check like any other bad form instead of a 500.
 */
function formFields(ctx: Koa.Context): Record<string, unknown> {
  const body: unknown = (ctx.request as { body?: unknown }).body;
  return typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
}

/** The login and consent pages oidc-provider sends people to, at /interaction/:uid. */
export function interactionRoutes({ interactions, accounts, throttle, scopes, resources, passkeys, views, totp, mfaPolicy, accountEvents, idps }: InteractionDeps): Router {
  const router = new Router({ prefix: '/interaction' });

  const page = (ctx: Koa.Context, template: string, context: Record<string, unknown>, status = 200) => {
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = views.render(template, { csrf: csrfToken(ctx), ...context });
  };

  // The error page of the interactions, for a problem of the one error model (src/problem.ts).
  const errorPage = (ctx: Koa.Context, problem: Problem, wording?: { title: string; description: string }) =>
    respondWithPage(ctx, problem, views.render('error.njk', { csrf: csrfToken(ctx), ...interactionErrorPage(problem), ...wording }));

  // The sign-in page, each time with a fresh passkey challenge bound to this interaction.
  // (context.client.id: which client's list of upstream providers the buttons follow.)
  const loginPage = async (ctx: Koa.Context, uid: string, context: Record<string, unknown>, status = 200) =>
    page(
      ctx,
      'login.njk',
      {
        title: 'Sign in',
        uid,
        passkeyOptions: JSON.stringify(await passkeys.authenticationOptions(uid)),
        passkeyAutofill: true,
        idps: idps ? (await idps.offeredTo((context.client as { id?: unknown } | undefined)?.id)).map((i) => ({ name: i.name, button: i.button })) : [],
        ...context,
      },
      status,
    );

  const clientView = (clientId: unknown) => clientViewOf(interactions, clientId);
  const needsTwoFactors = (user: { isAdmin: boolean }, client: { requireMfa: boolean }, params: Record<string, unknown>) =>
    twoFactorsNeeded(mfaPolicy, user, client, params);

  // Expired or unknown interactions (the cookie is gone, or the link is stale) get our error page.
  router.use(async (ctx, next) => {
    ctx.set('cache-control', 'no-store');
    try {
      await next();
    } catch (err) {
      // Anything else is answered by the app's error handler, through the same error model.
      if (!interactions.isStale(err)) throw err;
      errorPage(ctx, problemOf(err), {
        title: 'This sign-in has expired',
        description: 'The sign-in took too long or was already finished. Go back to the application and start again.',
      });
    }
  });

  const finish = async (ctx: Koa.Context, result: InteractionResults, merge: boolean) => {
    const returnTo = await interactions.finish(ctx, result, { mergeWithLastSubmission: merge });
    ctx.status = 303;
    ctx.redirect(returnTo);
  };

  const codes = codeStep(
    {
      interactions,
      accounts,
      totp,
      throttle,
      record: (userId, kind, address) => accountEvents.record(userId, kind, address),
    },
    page,
  );

  router.get('/:uid', async (ctx) => {
    const { uid, prompt, params } = await interactions.details(ctx);
    const client = await clientView(params.client_id);
    if (prompt.name === 'login') {
      // Signed in already, with one factor, where two are needed: say why the password is asked again.
      const notice = prompt.reasons?.includes(MFA_REQUIRED_REASON) ? `${client.name} asks for a second factor: sign in again, with your password and then your code.` : undefined;
      return loginPage(ctx, uid, { client, username: typeof params.login_hint === 'string' ? params.login_hint : '', notice });
    }
    if (prompt.name === 'consent') {
      return page(ctx, 'consent.njk', { title: `Allow ${client.name}?`, uid, client, ...(await consentView(prompt.details, params, await scopes.descriptions(), resources)) });
    }
    return errorPage(ctx, problemOf(new GatehouseError(400, 'unsupported_interaction', `Gatehouse cannot handle the "${prompt.name}" step.`)));
  });

  router.post('/:uid/login', formBody, async (ctx) => {
    const { uid, prompt, params } = await interactions.details(ctx);
    const client = await clientView(params.client_id);
    const body = formFields(ctx);
    const username = typeof body.username === 'string' ? body.username.trim() : '';
    const password = typeof body.password === 'string' ? body.password : '';
    const again = (status: number, error: string) => loginPage(ctx, uid, { client, username, error }, status);

    if (!csrfValid(ctx, body.csrf)) return again(403, 'Your form expired. Please sign in again.');
    if (prompt.name !== 'login') return again(400, 'You are already signed in. Go back to the application.');
    if (!username || !password) return again(400, 'Enter your username and password.');

    const result = await signInWithPassword(accounts, throttle, username, password, ctx.ip, securityReporter(ctx));
    if (!result.ok) {
      const { status, sentence } = formRefusal(ctx, result.refused);
      return again(status, sentence);
    }
    await codes.afterPassword(ctx, uid, client, result.user, needsTwoFactors(result.user, client, params));
  });
  codes.routes(router, clientView, formFields);

  // A passkey alone signs in: the browser's answer to this interaction's challenge.
  router.post('/:uid/passkey', formBody, async (ctx) => {
    const { uid, prompt, params } = await interactions.details(ctx);
    const client = await clientView(params.client_id);
    const body = formFields(ctx);
    // After a refused passkey the page does not offer the autofill again by itself: a browser
    // that answers it at once would otherwise post the same refused passkey over and over.
    const again = (status: number, error: string) => loginPage(ctx, uid, { client, username: '', error, passkeyAutofill: false }, status);
    if (!csrfValid(ctx, body.csrf)) return again(403, 'Your form expired. Please sign in again.');
    if (prompt.name !== 'login') return again(400, 'You are already signed in. Go back to the application.');
    let signedIn: Awaited<ReturnType<typeof passkeys.signIn>>;
    try {
      signedIn = await passkeys.signIn(uid, typeof body.credential === 'string' ? body.credential : '');
    } catch (err) {
      if (!(err instanceof PasskeyRefused)) throw err;
      securityReporter(ctx)('login.passkey_refused', { ip: ctx.ip });
      return again(401, err.message);
    }
    const user = await accounts.findActive(signedIn.userId);
    if (!user) return again(401, 'That passkey did not sign you in. Try again, or sign in with your password.');
    if (needsTwoFactors(user, client, params) && !amrHasTwoFactors(signedIn.amr)) {
      securityReporter(ctx)('login.passkey_refused', { ip: ctx.ip, sub: user.id, reason: 'one_factor' });
      return again(401, 'This sign-in needs two factors, and that passkey did not check it is you (no PIN or fingerprint). Sign in with your password instead.');
    }
    securityReporter(ctx)('login.succeeded', { username: user.username, method: 'passkey', ip: ctx.ip });
    await finish(ctx, { login: { accountId: user.id, amr: signedIn.amr, ...(signedIn.acr ? { acr: signedIn.acr } : {}) } }, false);
  });

  router.post('/:uid/consent', formBody, async (ctx) => {
    const details = await interactions.details(ctx);
    const body = formFields(ctx);
    const { prompt, params, session } = details;
    if (!csrfValid(ctx, body.csrf)) {
      const client = await clientView(params.client_id);
      return page(ctx, 'consent.njk', {
        title: `Allow ${client.name}?`,
        uid: details.uid,
        client,
        ...(await consentView(prompt.details, params, await scopes.descriptions(), resources)),
        error: 'Your form expired. Please choose again.',
      }, 403);
    }
    if (prompt.name !== 'consent' || !session?.accountId) {
      return errorPage(ctx, problemOf(new GatehouseError(400, 'invalid_request', 'There is nothing to allow here.')));
    }
    if (body.decision !== 'allow') {
      return finish(ctx, { error: 'access_denied', error_description: 'the user denied the request' }, false);
    }

    const grantId = await interactions.grantConsent(details, prompt.details as MissingConsent);
    await finish(ctx, { consent: details.grantId ? {} : { grantId } }, true);
  });

  // The page is read with GET, its forms post: another method gets our error page, not the
  // router's plain text.
  router.all(['/:uid', '/:uid/login', '/:uid/code', '/:uid/enrol', '/:uid/passkey', '/:uid/consent'], async (ctx, next) => {
    if (ctx.method === 'OPTIONS') return next();
    const refused = problemOf(new GatehouseError(405, 'method_not_allowed', 'This address only shows the sign-in page and takes its forms. Go back to the application and start again.'));
    errorPage(ctx, { ...refused, headers: { allow: /\/(login|code|enrol|passkey|consent)\/?$/.test(ctx.path) ? 'POST' : 'GET, HEAD' } });
  });

  return router;
}
