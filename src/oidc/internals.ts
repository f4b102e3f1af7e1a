/**
 * Every place Gatehouse reaches past oidc-provider's documented configuration into how it works
 * inside. Each reach says what it assumes; test/oidc-internals.test.ts checks each assumption
 * against the installed oidc-provider, so an upgrade that breaks one fails there first.
 *
 * Written against oidc-provider 9.13.3. Everything else in src/oidc/ uses documented
 * configuration, hooks, models and events only.
 */
import Provider, { errors, type AdapterPayload, type Client, type KoaContextWithOIDC } from 'oidc-provider';
import type Koa from 'koa';
// Deep imports (the package has no "exports" map, so these paths resolve): see each use below.
import { getValidateAccessToken, loadAccessTokenAccount, loadAccessTokenClient, loadAccessTokenGrant } from 'oidc-provider/lib/shared/access_token.js';
import revokeGrantAsProviderDoes from 'oidc-provider/lib/helpers/revoke.js';
import instance from 'oidc-provider/lib/helpers/weak_cache.js';
import { AlreadyUsedError } from 'oidc-provider/lib/helpers/re_render_errors.js';

export const UPSTREAM_VERSION = '9.13.3';

// ---- request parameters as sent ---------------------------------------------------------------

/**
 * Assumes: oidc-provider reads an authorization request's parameters from the query of a GET
 * and from the parsed form body of a POST, kept on `ctx.oidc.body` (lib/shared/assemble_params.js
 * and lib/shared/selective_body.js); `ctx.oidc.params` holds them after its own filtering (it
 * drops offline_access, for one). Returns a parameter as the request wrote it, when it is a string.
 */
export function parameterAsSent(ctx: KoaContextWithOIDC, name: string): string | undefined {
  const source = (ctx.method === 'POST' ? (ctx.oidc as { body?: Record<string, unknown> }).body : ctx.query) ?? {};
  const value = source[name];
  return typeof value === 'string' ? value : undefined;
}

// ---- device flow forms --------------------------------------------------------------------------

/**
 * Assumes: the `form` oidc-provider hands to the device flow's userCodeInputSource and
 * userCodeConfirmSource (lib/helpers/user_code_form.js) is a form whose `action` attribute is
 * the code verification URL and whose hidden `xsrf` input carries the value its POST must send
 * back (checked by lib/shared/xsrf.js). Gatehouse renders its own labelled fields, so it needs
 * just these two values, not the markup (which has an inline handler our CSP refuses).
 */
export function deviceFormFields(form: string): { action: string; xsrf: string } {
  const action = /\baction="([^"]*)"/.exec(form)?.[1];
  const xsrf = /name="xsrf" value="([^"]*)"/.exec(form)?.[1];
  if (action === undefined || xsrf === undefined) throw new Error('oidc-provider device form without action or xsrf: see internals.ts');
  return { action: decodeHtml(action), xsrf: decodeHtml(xsrf) };
}

const decodeHtml = (value: string) =>
  value.replace(/&(amp|lt|gt|quot|#39);/g, (_m, name: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'" })[name] ?? '');

/**
 * Assumes: a device code form POSTed without a stored browser session (no session cookie, or
 * one whose session is gone) fails its xsrf check after the session handler has run, and
 * oidc-provider's error handler then writes a new xsrf secret into that never-stored session,
 * which its outermost middleware (ensureSessionSave in lib/helpers/initialize_app.js) tries to
 * `persist()`: that throws for a session without `exp`, and the page becomes a 500. Such a
 * form has nothing to go back to, so the session is left unsaved (`touched` reset, which the
 * session proxy of lib/shared/session.js allows) and the page asks to start again.
 * Returns true when that was the case.
 */
export function dropUnstoredDeviceSession(ctx: KoaContextWithOIDC): boolean {
  const session = ctx.oidc.session as unknown as { exp?: unknown; touched?: boolean } | undefined;
  if (!session || typeof session.exp === 'number') return false;
  session.touched = false;
  return true;
}

// ---- back-channel logout -----------------------------------------------------------------------

/**
 * Assumes: with features.backchannelLogout on, oidc-provider's end_session action
 * (lib/actions/end_session.js) awaits `client.backchannelLogout(accountId, sid)` on the Client
 * model's prototype for each client of the session that has a backchannel_logout_uri, and
 * emits backchannel.error when it rejects. Gatehouse replaces it with its own delivery, which
 * only stores the logout (the person's logout never waits for an app) and is shared with every other
 * way a sign-in ends (see src/logout/backchannel.ts).
 */
export function deliverBackchannelLogoutsWith(
  provider: Provider,
  notify: (sub: string, clientId: string, sid: string | undefined) => void | Promise<void>,
): void {
  provider.Client.prototype.backchannelLogout = async function backchannelLogout(this: { clientId: string }, sub: string, sid: string) {
    await notify(sub, this.clientId, sid);
  };
}

// ---- client authentication ------------------------------------------------------------------

/**
 * Assumes: for client_secret_basic and client_secret_post, oidc-provider's client
 * authentication (lib/shared/client_auth.js) awaits `client.compareClientSecret(presented)` on
 * the Client model's prototype, refuses the client when it resolves falsy, and lets an error it
 * throws propagate unchanged. The documented way to compare against hashed stored secrets.
 */
export function installClientSecretCheck(provider: Provider, check: (client: ClientWithStoredSecret, presented: string) => Promise<boolean>): void {
  provider.Client.prototype.compareClientSecret = async function compareClientSecret(this: ClientWithStoredSecret, presented: string) {
    return check(this, presented);
  };
}

export interface ClientWithStoredSecret {
  clientId: string;
  'gatehouse:stored_secret'?: unknown;
}

/**
 * The answer to a client whose secret is not checked because it is locked: invalid_client
 * (what the token endpoint says about any refused client) with status 429.
 *
 * Assumes: oidc-provider's error handler (lib/shared/error_handler.js) answers with the thrown
 * error's `statusCode` (falling back to `status`), its `error` and its `error_description`, and
 * that `expose` is true for OIDCProviderError subclasses.
 */
export function lockedClientError(description: string, retryAfterSeconds?: number): errors.InvalidClient & { retryAfterSeconds?: number } {
  const locked: errors.InvalidClient & { retryAfterSeconds?: number } = new errors.InvalidClient(description);
  locked.status = locked.statusCode = 429;
  // Read by the error model (src/problem.ts providerProblem) for the Retry-After header.
  if (retryAfterSeconds !== undefined) locked.retryAfterSeconds = retryAfterSeconds;
  return locked;
}

// ---- oidc-provider's errors, for the error model ---------------------------------------------

/** What the error model needs of one of oidc-provider's errors. */
export interface ProviderErrorFacts {
  status: number;
  error: string;
  description: string | undefined;
  /** oidc-provider's own judgement: true for the errors it answers to clients as they are. */
  expose: boolean;
  retryAfterSeconds?: number;
}

/**
 * The facts of an error when it is one of oidc-provider's (raised by it, or by us as one of its
 * classes); undefined for any other error.
 *
 * Assumes: every error oidc-provider answers with extends errors.OIDCProviderError and carries
 * `statusCode` (or `status`), `error` (the OAuth code), `error_description` (meant for the client)
 * and `expose`, as lib/helpers/errors.js defines them.
 */
export function providerErrorFacts(err: unknown): ProviderErrorFacts | undefined {
  if (!(err instanceof errors.OIDCProviderError)) return undefined;
  const e = err as errors.OIDCProviderError & { retryAfterSeconds?: unknown };
  return {
    status: e.statusCode || e.status || 500,
    error: e.error,
    description: e.error_description,
    expose: e.expose === true,
    ...(typeof e.retryAfterSeconds === 'number' ? { retryAfterSeconds: e.retryAfterSeconds } : {}),
  };
}

/**
 * The events each of oidc-provider's endpoints emits with (ctx, err) when it answers an error
 * (other than server_error) itself, as JSON or through renderError.
 *
 * Assumes: lib/helpers/initialize_app.js mounts every route with error('NAME.error') (the error
 * handler of lib/shared/error_handler.js, which emits NAME.error after setting the body, before
 * the response is sent), and the authorization routes with lib/shared/authorization_error_handler.js,
 * which emits authorization.error for exposed errors before answering. This list is every such name.
 */
export const PROVIDER_ERROR_EVENTS = [
  'authorization.error',
  'backchannel_authentication.error',
  'challenge.error',
  'code_verification.error',
  'credential.error',
  'device_authorization.error',
  'device_resume.error',
  'discovery.error',
  'end_session.error',
  'end_session_confirm.error',
  'end_session_success.error',
  'grant.error',
  'introspection.error',
  'jwks.error',
  'openid_credential_issuer.error',
  'pushed_authorization_request.error',
  'registration_create.error',
  'registration_delete.error',
  'registration_read.error',
  'registration_update.error',
  'revocation.error',
  'userinfo.error',
] as const;

/** Calls `listener` with the request and the error whenever an endpoint of oidc-provider answers an error. */
export function onProviderErrorAnswer(provider: Provider, listener: (ctx: Koa.Context, err: unknown) => void): void {
  const emitter = provider as unknown as NodeJS.EventEmitter;
  for (const name of PROVIDER_ERROR_EVENTS) emitter.on(name, listener);
}

// ---- store outages ----------------------------------------------------------------------------

/**
 * A store (the database or Redis) could not be reached. Raised from the adapters so that
 * oidc-provider answers 503 temporarily_unavailable (JSON for APIs, our error page for
 * browsers) instead of a 500, and from our own routes through the same classifier.
 *
 * Assumes: OIDCProviderError's constructor takes (status, error, options with cause); the error
 * handler renders any OIDCProviderError with its status; and the authorization endpoint's error
 * handler (lib/shared/authorization_error_handler.js) redirects an error to the client's
 * redirect_uri unless the error carries `allow_redirect === false`.
 */
export class StoreUnavailableError extends errors.OIDCProviderError {
  readonly store: string;

  constructor(store: 'database' | 'redis', cause?: unknown) {
    super(503, 'temporarily_unavailable', { cause });
    this.store = store;
    this.expose = true;
    // Never send the browser on to the client with a half-finished request.
    this.allow_redirect = false;
    this.error_description = `the ${store} is unreachable; try again shortly`;
  }
}

// ---- consuming codes and refresh tokens -------------------------------------------------------

/**
 * A second redemption of a code (or a rotated refresh token) revokes the grant's tokens; the
 * adapters' atomic consume makes the loser of a race fail as well, but from `consume()`, which
 * oidc-provider calls after its own `consumed` check, so its revoke is skipped. The models'
 * consume is wrapped so that the loser revokes as a sequential second redemption does.
 *
 * Assumes: oidc-provider's grant handlers (lib/helpers/grant_source.js consumeGrantSource)
 * call `source.consume()` on the AuthorizationCode and RefreshToken models' prototypes (one
 * class per provider instance) after checking `source.consumed`, revoking with
 * lib/helpers/revoke.js (ctx, grantId) when it was set; and that `Provider.ctx` is the current
 * request's context while a grant handler runs.
 */
export function revokeWhenConsumeLosesRace(provider: Provider): void {
  for (const Model of [provider.AuthorizationCode, provider.RefreshToken] as Array<{ prototype: { consume(): Promise<void>; grantId?: string } }>) {
    const upstream = Model.prototype.consume;
    Model.prototype.consume = async function consume(this: { consume(): Promise<void>; grantId?: string }) {
      try {
        await upstream.call(this);
      } catch (err) {
        const ctx = Provider.ctx;
        if (err instanceof errors.InvalidGrant && ctx?.oidc && this.grantId) await revokeGrantAsProviderDoes(ctx, this.grantId);
        throw err;
      }
    };
  }
}

/**
 * A device code is confirmed once. oidc-provider reads the code a person submits, checks that
 * it is not `inFlight` yet, and saves it with `inFlight` set: two people pressing Continue for
 * the same code at once both pass that check (any store: the read and the save are two trips).
 * The save that first marks a code in flight must win a claim (`claim`, atomic across processes)
 * or fails as a sequential second confirmation does: "already used", on the code page.
 *
 * Assumes: lib/actions/code_verification.js sets `code.inFlight = true` on the DeviceCode
 * model's instance (one class per provider) and calls `save()`, with no `accountId` and no
 * `error` yet, only on confirmation; its error handler (lib/shared/error_handler.js) renders a
 * ReRenderError (lib/helpers/re_render_errors.js) through userCodeInputSource with status 200.
 */
export function confirmDeviceCodesOnce(provider: Provider, claim: (deviceCodeId: string) => Promise<boolean>): void {
  type DeviceCode = { save(...args: unknown[]): Promise<unknown>; jti: string; inFlight?: boolean; accountId?: string; error?: string };
  const Model = provider.DeviceCode as unknown as { prototype: DeviceCode };
  const upstream = Model.prototype.save;
  Model.prototype.save = async function save(this: DeviceCode, ...args: unknown[]) {
    if (this.inFlight && !this.accountId && !this.error && !(await claim(this.jti))) throw new AlreadyUsedError();
    return upstream.apply(this, args);
  };
}

// ---- grant types ------------------------------------------------------------------------------

type GrantHandler = (ctx: KoaContextWithOIDC) => Promise<void>;

/**
 * Puts our rules in front of one of oidc-provider's own grant handlers, keeping the handler
 * (DPoP, mTLS binding, resource indicators, authorization_details) and its parameters.
 *
 * Assumes: the provider's internal state (lib/helpers/weak_cache.js) holds `grantTypeHandlers`,
 * a Map from grant_type to the handler the token endpoint (lib/actions/token.js) calls with
 * ctx, filled at construction for every enabled built-in grant.
 */
export function guardGrantHandler(provider: Provider, grantType: string, guard: (ctx: KoaContextWithOIDC) => Promise<void> | void): void {
  const handlers = (instance(provider) as { grantTypeHandlers: Map<string, GrantHandler> }).grantTypeHandlers;
  const upstream = handlers.get(grantType);
  if (!upstream) throw new Error(`oidc-provider registered no ${grantType} handler`);
  handlers.set(grantType, async (ctx) => {
    await guard(ctx);
    await upstream(ctx);
  });
}

// ---- access tokens at Gatehouse's own routes --------------------------------------------------

/** What the checks leave on the context: the entities oidc-provider's own checks loaded. */
export interface CheckedAccessToken {
  accountId?: string;
  clientId?: string;
  grantId?: string;
  scope?: string;
  aud?: unknown;
  scopes: Set<string>;
}

const OWN_ROUTE = 'gatehouse:resource';
const resourceContexts = new WeakMap<Provider, new (ctx: Koa.Context, url: string) => { route: string }>();

/**
 * Checks the access token of a request to one of Gatehouse's own routes with oidc-provider's own
 * pieces, in the order its userinfo endpoint (lib/actions/userinfo.js) uses them: the token is
 * found unexpired, a DPoP proof is checked (signature, htm, htu, ath, replay) and must match a
 * DPoP-bound token, an mTLS-bound token needs its certificate; `between` runs next (audience and
 * scope); then the token's client must still be found (a disabled or deleted client is not), its
 * account too (findAccount: a disabled user is not), and its grant still live and matching.
 *
 * Assumes: lib/shared/access_token.js exports getValidateAccessToken, loadAccessTokenClient,
 * loadAccessTokenAccount (the configured findAccount, with the token) and loadAccessTokenGrant as
 * Koa middleware over `ctx.oidc` (an instance of `provider.OIDCContext`
 * built from the Koa ctx), leaving the token at ctx.oidc.entities.AccessToken; and DPoP's htu
 * check (lib/helpers/validate_dpop.js) compares the proof's htu with
 * `ctx.oidc.urlFor(ctx.oidc.route)`, which here is the URL the request was sent to.
 */
export async function checkAccessTokenAsProviderDoes(
  provider: Provider,
  ctx: Koa.Context,
  requestUrl: string,
  between: (token: CheckedAccessToken) => void,
): Promise<CheckedAccessToken> {
  let ResourceContext = resourceContexts.get(provider);
  if (!ResourceContext) {
    const Base = provider.OIDCContext as unknown as new (ctx: Koa.Context) => { route: string; urlFor(name: string, opt?: object): string };
    ResourceContext = class extends Base {
      constructor(
        ctx: Koa.Context,
        private readonly requestUrl: string,
      ) {
        super(ctx);
        this.route = OWN_ROUTE;
      }
      override urlFor(name: string, opt?: object): string {
        return name === OWN_ROUTE ? this.requestUrl : super.urlFor(name, opt);
      }
    };
    resourceContexts.set(provider, ResourceContext);
  }
  const withOidc = ctx as Koa.Context & { oidc: { entities: { AccessToken?: CheckedAccessToken } } };
  withOidc.oidc = new ResourceContext(ctx, requestUrl) as unknown as typeof withOidc.oidc;
  const done = async () => {};
  await validateAccessToken(ctx, done);
  const token = withOidc.oidc.entities.AccessToken!;
  between(token);
  await loadAccessTokenClient(ctx, done);
  if (token.accountId) await loadAccessTokenAccount(ctx, done);
  await loadAccessTokenGrant(ctx, done);
  return token;
}

const validateAccessToken = getValidateAccessToken();

// ---- sessions ---------------------------------------------------------------------------------

interface StoredSession {
  authorizations?: Record<string, unknown>;
  exp?: number;
  save(ttl?: number): Promise<unknown>;
  destroy(): Promise<void>;
}

/**
 * Makes a stored session forget a client (the user signed out of that app from its backend);
 * a session left with no client is ended.
 *
 * Assumes: a Session keeps one entry per client it signed in to under `authorizations`, keyed by
 * client_id (what `session.grantIdFor(clientId)` and RP-initiated logout read), and
 * `save(ttl)` stores it for ttl more seconds.
 */
export async function forgetClientInSession(session: StoredSession, clientId: string): Promise<void> {
  if (!session.authorizations?.[clientId]) return;
  delete session.authorizations[clientId];
  if (Object.keys(session.authorizations).length === 0) {
    await session.destroy();
  } else {
    const remaining = Math.max(1, (session.exp ?? 0) - Math.floor(Date.now() / 1000));
    await session.save(remaining);
  }
}

// ---- imported refresh tokens ------------------------------------------------------------------

interface ImportedArtifact {
  token: string;
  grantId: string;
  accountId: string;
  clientId: string;
  scope: string;
  now: number;
  expiresIn: number;
}

/**
 * The stored payload of a Grant holding an OIDC scope, as oidc-provider saves one.
 *
 * Assumes: the Grant model is stored as { jti, kind: 'Grant', iat, exp, accountId, clientId,
 * openid: { scope } } and read back into a Grant whose getOIDCScope() is that scope.
 */
export function importedGrantPayload(a: ImportedArtifact): AdapterPayload {
  return { jti: a.grantId, kind: 'Grant', iat: a.now, exp: a.now + a.expiresIn, accountId: a.accountId, clientId: a.clientId, openid: { scope: a.scope } };
}

/**
 * The stored payload of an opaque refresh token issued by the authorization code grant.
 *
 * Assumes: oidc-provider upserts an opaque RefreshToken with its own value as id and { jti, kind,
 * iat, exp, iiat, rotations, accountId, clientId, grantId, scope, gty, expiresWithSession }, and
 * the refresh_token grant accepts such a token (gty authorization_code, no session binding).
 * (The adapter stores it under the hash of that id, without jti: adapters/payload-row.ts.)
 */
export function importedRefreshTokenPayload(a: ImportedArtifact): AdapterPayload {
  return {
    jti: a.token,
    kind: 'RefreshToken',
    iat: a.now,
    exp: a.now + a.expiresIn,
    iiat: a.now,
    rotations: 0,
    accountId: a.accountId,
    clientId: a.clientId,
    grantId: a.grantId,
    scope: a.scope,
    gty: 'authorization_code',
    expiresWithSession: false,
  };
}

// ---- introspection of JWT access tokens -------------------------------------------------------

/**
 * Gives `answer` the introspection requests oidc-provider refuses for their token being a JWT,
 * after oidc-provider authenticated the client: `answer`'s result is sent instead, as 200.
 *
 * Assumes: the introspection endpoint (lib/actions/introspection.js) authenticates the client
 * before it refuses a token that parses as a JWS with 400 unsupported_token_type
 * (lib/shared/reject_structured_tokens.js); middleware added with the documented provider.use
 * sees that rendered answer after `await next()`, with ctx.oidc.route, client and params set.
 */
export function answerJwtIntrospection(
  provider: Provider,
  answer: (ctx: KoaContextWithOIDC, client: Client, token: string) => Promise<Record<string, unknown>>,
): void {
  provider.use(async (ctx, next) => {
    await next();
    const oidc = (ctx as KoaContextWithOIDC).oidc;
    if (oidc?.route !== 'introspection' || ctx.status !== 400 || !oidc.client) return;
    if ((ctx.body as { error?: unknown } | undefined)?.error !== 'unsupported_token_type') return;
    const token = (oidc.params as { token?: unknown } | undefined)?.token;
    if (typeof token !== 'string') return;
    ctx.body = await answer(ctx as KoaContextWithOIDC, oidc.client, token);
    ctx.status = 200;
  });
}
