import Router from '@koa/router';
import type Koa from 'koa';
import { koaBody } from 'koa-body';
import type { Interactions } from '../src/oidc/index.ts';
import type { AccountsService, User } from '../src/accounts/service.ts';
import type { CredentialThrottle } from '../src/accounts/throttle.ts';
import { signInWithPassword } from '../src/accounts/sign-in.ts';
import { GatehouseError } from '../src/errors.ts';
import type { Idp, IdpsService } from '../src/idps/service.ts';
import { accountForUpstream } from '../src/idps/sign-in.ts';
import { PasskeyRefused, type PasskeysService } from '../src/accounts/passkeys/index.ts';
import { amrHasTwoFactors } from '../src/accounts/mfa/policy.ts';
import { providerLabel, type Upstreams } from '../src/idps/upstream.ts';
import { ACCOUNT_FLOW_PREFIX, enabledIdp as enabledIdpOf, redeemUpstreamAnswer, startUpstream, unknownState } from '../src/web/upstream-flow.ts';
import { formRefusal, interactionErrorPage, isUnexpected, problemOf, respondWithPage } from '../src/problem.ts';
import { securityReporter, type RequestState } from '../src/observability/request-log.ts';
import { csrfToken, csrfValid } from '../src/web/csrf.ts';
import type { Views } from '../src/web/views.ts';
import type { TotpService } from '../src/accounts/mfa/totp.ts';
import type { MfaPolicy } from '../src/accounts/mfa/policy.ts';
import type { FirstFactor } from '../src/accounts/mfa/second-factor.ts';
import type { AccountEvents } from '../src/account/events.ts';
import { clientViewOf, codeStep, twoFactorsNeeded } from './code-step.ts';

export interface IdpRouteDeps {
  interactions: Interactions;
  idps: IdpsService;
  upstreams: Pick<Upstreams, 'start' | 'finish'>;
  accounts: AccountsService;
  throttle: CredentialThrottle;
  views: Views;
  /** The second factor after the upstream's sign-in: the same code and setup steps as after a password (code-step.ts). */
  totp: Pick<TotpService, 'isEnrolled' | 'verify' | 'begin' | 'pending' | 'confirm'>;
  mfaPolicy: MfaPolicy;
  accountEvents: Pick<AccountEvents, 'record'>;
  /** A passkey of the account is proof of owning it, as its password is (the link page). */
  passkeys: Pick<PasskeysService, 'authenticationOptions' | 'signIn' | 'of'>;
}

const formBody = koaBody({ urlencoded: true, json: false, multipart: false, text: false, formLimit: '16kb' });

const fieldsOf = (ctx: Koa.Context): Record<string, unknown> => {
  const body: unknown = (ctx.request as { body?: unknown }).body;
  return typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
};

const refused = (status: number, code: string, sentence: string) => new GatehouseError(status, code, sentence);

/** What is kept while the person proves they own the account the upstream's email belongs to. */
interface HeldLink {
  subject: string;
  email: string;
  userId: string;
}

/**
 * Sign-in through an upstream identity provider:
 *   POST /idp/NAME/start (the sign-in page's button, CSRF) → the upstream →
 *   GET /idp/NAME/callback (the redirect URI registered there) → 303 into the interaction's own
 *   path, where its cookie is sent: GET /interaction/UID/idp/NAME/callback redeems the code once
 *   and signs the person in, creates their account, or asks for proof before linking
 *   (POST /interaction/UID/idp/NAME/link). Every failure is our error page with its status.
 */
export function idpRoutes({ interactions, idps, upstreams, accounts, throttle, views, totp, mfaPolicy, accountEvents, passkeys }: IdpRouteDeps): Router {
  const router = new Router();

  const page = (ctx: Koa.Context, template: string, context: Record<string, unknown>, status = 200) => {
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = views.render(template, { csrf: csrfToken(ctx), ...context });
  };
  // The upstream's sign-in is a first factor like a password: then the code step for a person with
  // an authenticator app, setting one up where two factors are required, else the session. Its
  // forms post to /interaction/UID/code|enrol (interactions/routes.ts), the cookie says "fed".
  const codes = codeStep({ interactions, accounts, totp, throttle, record: (userId, kind, address) => accountEvents.record(userId, kind, address) }, page);

  const errorPage = (ctx: Koa.Context, err: unknown, title?: string) => {
    const problem = problemOf(err);
    if (isUnexpected(problem)) (ctx.state as RequestState).log?.error({ err }, 'unexpected error');
    respondWithPage(ctx, problem, views.render('error.njk', { csrf: csrfToken(ctx), ...interactionErrorPage(problem), ...(title ? { title } : {}) }));
  };

  // Every answer here is a page: the person is between two sites, with no JSON client involved.
  router.use(async (ctx, next) => {
    ctx.set('cache-control', 'no-store');
    try {
      await next();
    } catch (err) {
      if (interactions.isStale(err)) {
        return errorPage(
          ctx,
          refused(
            400,
            'interaction_expired',
            'The sign-in took too long or was already finished, or was started in another browser. Go back to the application and start again.',
          ),
          'This sign-in has expired',
        );
      }
      errorPage(ctx, err, problemOf(err).status === 503 ? undefined : "Signing in didn't work");
    }
  });

  const BACK = 'Go back to the application';
  const flows = { idps, upstreams };
  /** The provider named in the path, while it is enabled; an unknown or disabled one is refused. */
  const enabledIdp = (name: string) => enabledIdpOf(idps, name, BACK);

  const afterUpstream = async (ctx: Koa.Context, details: { uid: string; params: Record<string, unknown> }, user: User, first: FirstFactor) => {
    const client = await clientViewOf(interactions, details.params.client_id);
    await codes.afterFirstFactor(ctx, details.uid, client, user, twoFactorsNeeded(mfaPolicy, user, client, details.params), first);
  };

  router.post('/idp/:name/start', formBody, async (ctx) => {
    const idp = await enabledIdp(ctx.params.name!);
    const body = fieldsOf(ctx);
    if (!csrfValid(ctx, body.csrf)) throw refused(403, 'invalid_csrf', 'Your form expired. Go back to the application and sign in again.');
    const pending = await interactions.pending(body.uid);
    if (pending?.prompt !== 'login') {
      throw refused(400, 'interaction_expired', 'The sign-in took too long or was already finished. Go back to the application and start again.');
    }
    // The client's list (when it has one) says which providers its sign-in page offers.
    if (!(await idps.offeredTo(pending.clientId)).some((i) => i.name === idp.name)) {
      throw refused(403, 'idp_not_offered', `This application does not offer signing in with ${providerLabel(idp)}.`);
    }
    await startUpstream(ctx, flows, idp, String(body.uid));
  });

  // The redirect URI registered upstream, for the apps' sign-ins and the account page's alike. The
  // interaction's cookie (or the account page's flow cookie) is scoped to its own path, so the
  // answer is handed there, unused; which one is what the stored flow says. A state Gatehouse is
  // not waiting for goes no further.
  router.get('/idp/:name/callback', async (ctx) => {
    const idp = await enabledIdp(ctx.params.name!);
    const held = await idps.peekFlow('start', ctx.query.state);
    if (!held || held.idpName !== idp.name) throw unknownState(BACK);
    ctx.status = 303;
    if (held.interactionUid.startsWith(ACCOUNT_FLOW_PREFIX)) return ctx.redirect(`/account/login/idp/${idp.name}/callback?${ctx.querystring}`);
    ctx.redirect(`/interaction/${encodeURIComponent(held.interactionUid)}/idp/${idp.name}/callback?${ctx.querystring}`);
  });

  router.get('/interaction/:uid/idp/:name/callback', async (ctx) => {
    const idp = await enabledIdp(ctx.params.name!);
    const details = await interactions.details(ctx);
    if (details.uid !== ctx.params.uid) throw unknownState(BACK);
    const person = await redeemUpstreamAnswer(ctx, flows, idp, details.uid, BACK, () => {
      if (details.prompt.name !== 'login') throw refused(400, 'invalid_request', 'You are already signed in. Go back to the application.');
    });
    const outcome = await accountForUpstream({ idps, accounts, passkeys }, idp, person);
    if (outcome.kind === 'needsProof') {
      const token = await idps.holdFlow('link', details.uid, idp.name, {
        subject: person.subject,
        email: person.email!,
        userId: outcome.user.id,
      } satisfies HeldLink);
      return linkPage(ctx, details.uid, idp, token, outcome.user, person.email!);
    }
    securityReporter(ctx)(
      'login.upstream_passed',
      { username: outcome.user.username, sub: outcome.user.id, idp: idp.name, created: outcome.created, ip: ctx.ip },
      'info',
    );
    await afterUpstream(ctx, details, outcome.user, 'federated');
  });

  // The person proves they own the account the upstream's verified email belongs to: its password.
  /**
   * The link step a proof form posts to: its provider, interaction, fields and the account to
   * prove. The held link is read, not used: a wrong proof leaves the person the page to try
   * again (throttled); only a right one takes it.
   */
  const linkStep = async (ctx: Koa.Context) => {
    const idp = await enabledIdp(ctx.params.name!);
    const details = await interactions.details(ctx);
    const body = fieldsOf(ctx);
    const token = typeof body.token === 'string' ? body.token : '';
    const heldLink = await idps.readFlow<HeldLink>('link', token, details.uid, idp.name);
    const user = heldLink ? await accounts.findActive(heldLink.userId) : undefined;
    if (!heldLink || !user) throw unknownState(BACK);
    const again = (status: number, error: string) => linkPage(ctx, details.uid, idp, token, user, heldLink.email, error, status);
    return { idp, details, body, token, user, again };
  };

  router.post('/interaction/:uid/idp/:name/link', formBody, async (ctx) => {
    const { idp, details, body, token, user, again } = await linkStep(ctx);
    if (!csrfValid(ctx, body.csrf)) return again(403, 'Your form expired. Enter the password again.');
    const password = typeof body.password === 'string' ? body.password : '';
    if (!password) return again(400, 'Enter the password of the account.');
    const result = await signInWithPassword(accounts, throttle, user.username, password, ctx.ip, securityReporter(ctx));
    if (!result.ok || result.user.id !== user.id) {
      const { status, sentence } = result.ok ? { status: 401, sentence: 'That password is not correct.' } : formRefusal(ctx, result.refused);
      return again(status, sentence);
    }
    // Two posts of the same proof at once: one links, the other finds the token used.
    const taken = await idps.takeFlow<HeldLink>('link', token, details.uid, idp.name);
    if (!taken) throw unknownState(BACK);
    await idps.link(idp.name, taken.subject, user.id, taken.email);
    securityReporter(ctx)('account.idp_linked', { username: user.username, idp: idp.name, ip: ctx.ip });
    await afterUpstream(ctx, details, user, 'federated_password');
  });

  // The person proves the account is theirs with one of its passkeys instead: one that checked it
  // is them (PIN, fingerprint), answering this link flow's own challenge.
  router.post('/interaction/:uid/idp/:name/link-passkey', formBody, async (ctx) => {
    const { idp, details, body, token, user, again } = await linkStep(ctx);
    if (!csrfValid(ctx, body.csrf)) return again(403, 'Your form expired. Try the passkey again.');
    let proof: Awaited<ReturnType<typeof passkeys.signIn>>;
    try {
      proof = await passkeys.signIn(linkChallengeHolder(details.uid), typeof body.credential === 'string' ? body.credential : '');
    } catch (err) {
      if (!(err instanceof PasskeyRefused)) throw err;
      securityReporter(ctx)('login.passkey_refused', { ip: ctx.ip, sub: user.id, reason: 'idp_link' });
      return again(401, `That passkey did not prove the account is yours. Try again, or use the password of ${user.username}.`);
    }
    if (proof.userId !== user.id) {
      securityReporter(ctx)('login.passkey_refused', { ip: ctx.ip, sub: user.id, reason: 'idp_link_other_account' });
      return again(401, `That passkey is not one of ${user.username}'s. Use one of that account's passkeys, or its password.`);
    }
    if (!amrHasTwoFactors(proof.amr)) {
      securityReporter(ctx)('login.passkey_refused', { ip: ctx.ip, sub: user.id, reason: 'one_factor' });
      return again(401, 'That passkey did not check it is you (no PIN or fingerprint), so it cannot prove the account is yours. Use the password instead.');
    }
    const taken = await idps.takeFlow<HeldLink>('link', token, details.uid, idp.name);
    if (!taken) throw unknownState(BACK);
    await idps.link(idp.name, taken.subject, user.id, taken.email);
    securityReporter(ctx)('account.idp_linked', { username: user.username, idp: idp.name, ip: ctx.ip, proof: 'passkey' });
    securityReporter(ctx)('login.succeeded', { username: user.username, sub: user.id, method: `idp:${idp.name}+passkey`, ip: ctx.ip }, 'info');
    // A verified passkey is two factors already (as on the sign-in page): the session at once.
    const returnTo = await interactions.finish(
      ctx,
      { login: { accountId: user.id, amr: ['fed', ...proof.amr], ...(proof.acr ? { acr: proof.acr } : {}) } },
      { mergeWithLastSubmission: false },
    );
    ctx.status = 303;
    ctx.redirect(returnTo);
  });

  const linkPage = async (ctx: Koa.Context, uid: string, idp: Idp, token: string, user: User, email: string, error?: string, status = 200) => {
    const withPasskey = (await passkeys.of(user.id)).length > 0;
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = views.render('idp-link.njk', {
      csrf: csrfToken(ctx),
      title: `Link ${providerLabel(idp)}`,
      uid,
      idp: idp.name,
      provider: providerLabel(idp),
      token,
      username: user.username,
      withPassword: user.hasPassword,
      // A fresh challenge each time the page is shown, bound to this interaction's link step.
      passkeyOptions: withPasskey ? JSON.stringify(await passkeys.authenticationOptions(linkChallengeHolder(uid))) : undefined,
      email,
      error,
    });
  };

  return router;
}

/** The passkey challenge of an interaction's link step: never the sign-in page's (held under the uid alone). */
const linkChallengeHolder = (uid: string) => `idp-link:${uid}`;
