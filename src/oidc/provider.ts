import Provider, { type AdapterFactory, type Configuration, type FindAccount, type KoaContextWithOIDC } from 'oidc-provider';
import type { Stores } from '../../adapters/index.ts';
import type { ClientsService } from '../clients/service.ts';
import type { Config } from '../config.ts';
import { clientsNamingUnknownScopes } from './client-scopes.ts';
import { BUILT_IN_SCOPES } from '../scopes/names.ts';
import { applyClientCredentialsScopeRules } from './client-credentials.ts';
import type { Views } from '../web/views.ts';
import { findLatestGrantId } from './artifacts.ts';
import type { CredentialThrottle } from '../accounts/throttle.ts';
import { ACR } from '../accounts/mfa/second-factor.ts';
import { settleAuthorizationScope } from './authorization-scope.ts';
import { confirmEachCodeOnce, deviceFlowFeature, throttleCodeGuessing } from './device-flow.ts';
import { authenticateClientsWithStoredSecrets } from './client-auth.ts';
import { gatehouseInteractionPolicy } from './interaction-policy.ts';
import { answerJwtIntrospection, deliverBackchannelLogoutsWith, onProviderErrorAnswer, revokeWhenConsumeLosesRace } from './internals.ts';
import type { BackchannelLogout } from '../logout/backchannel.ts';
import { trustProxyHops } from '../proxy-trust.ts';
import { jwtAccessTokenIntrospection } from './jwt-introspection.ts';
import { accessTokenTtl, resourceIndicatorsFeature, type ResourceCatalog } from './resource-indicators.ts';
import { interactionErrorPage, problemOf, respondWithPage, setProblemHeaders } from '../problem.ts';

export interface ProviderDeps {
  config: Config;
  stores: Stores;
  adapters: AdapterFactory;
  clients: ClientsService;
  /** The shared failure counters: every client secret is counted there before it is checked. */
  throttle: CredentialThrottle;
  jwks: { keys: object[] };
  /** The API scopes (rows of the scopes table) this provider serves; it is rebuilt when they change. */
  apiScopes: readonly string[];
  /** Resource servers (RFC 8707), looked up per request: a change needs no new provider. */
  resources: ResourceCatalog;
  cookieKeys: string[];
  findAccount: FindAccount;
  views: Views;
  backchannel: BackchannelLogout;
}

/** Where a device asks for its codes, and where a person enters one (verification_uri). */
const DEVICE_AUTHORIZATION_PATH = '/device/auth';
export const CODE_VERIFICATION_PATH = '/device';

export function createProvider(deps: ProviderDeps): Provider {
  const { config, clients, views } = deps;
  const { lifetimes } = config;

  // OIDC Core 3.1.2.1: the authorization endpoint MUST accept POST as well as GET.
  // oidc-provider serves POST only with SameSite=None session cookies (a cross-site form POST
  // carries no Lax cookie), and browsers keep SameSite=None only on Secure cookies: so where
  // Gatehouse is served over https through its trusted TLS proxy, not on a plain-http issuer.
  const httpPost = config.issuer.startsWith('https:') && config.trustProxy;

  const configuration: Configuration = {
    adapter: clientsNamingUnknownScopes(deps.adapters, new Set([...BUILT_IN_SCOPES, ...deps.apiScopes])),
    jwks: deps.jwks as Configuration['jwks'],
    cookies: {
      keys: deps.cookieKeys,
      long: { httpOnly: true, sameSite: httpPost ? 'none' : 'lax' },
      short: { httpOnly: true, sameSite: 'lax' },
    },
    enableHttpPostMethods: httpPost,
    findAccount: deps.findAccount,
    // What a sign-in proved, set by the login result (src/accounts/mfa/second-factor.ts); listed in discovery.
    acrValues: [ACR.password, ACR.mfa],
    claims: {
      // How the person signed in (RFC 8176: pwd, hwk/swk, mfa) and at what level: in every ID
      // token (oidc-provider adds a claim only when a scope lists it or the client asks for it).
      openid: ['sub', 'acr', 'amr'],
      profile: ['name', 'preferred_username', 'updated_at'],
      email: ['email', 'email_verified'],
    },
    scopes: ['openid', 'offline_access', 'userdata', ...deps.apiScopes],
    responseTypes: ['code'],
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'none'],
    // HS256 only serves clients imported from django-oauth-toolkit that keep their plain secret.
    // PS256 only lets a client stored with it before registration refused it still load (for its
    // client credentials): no key signs PS256, so discovery, which lists what the keys can sign,
    // does not offer it.
    enabledJWA: { idTokenSigningAlgValues: ['RS256', 'PS256', 'ES256', 'HS256'] },
    extraClientMetadata: {
      properties: [
        'gatehouse:allowed_origins',
        'gatehouse:require_pkce',
        'gatehouse:stored_secret',
        'gatehouse:skip_consent',
        'gatehouse:require_mfa',
        'gatehouse:default_scope',
        'gatehouse:default_resource',
      ],
    },
    // A request without scope gets the client's default; offline_access survives without
    // prompt=consent. See oidc/authorization-scope.ts.
    extraParams: { scope: settleAuthorizationScope },
    pkce: {
      // PKCE (S256 only in oidc-provider 9) for public clients always, for others on request.
      required: (_ctx, client) => client.clientAuthMethod === 'none' || client['gatehouse:require_pkce'] === true,
    },
    clientBasedCORS: (_ctx, origin, client) => {
      const origins = client['gatehouse:allowed_origins'];
      return Array.isArray(origins) && origins.includes(origin);
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      // resource= (RFC 8707): tokens for the resource servers operators registered, opaque or
      // RFC 9068 JWTs. See oidc/resource-indicators.ts.
      resourceIndicators: resourceIndicatorsFeature(deps.resources, lifetimes.accessToken),
      // Resource servers introspect access tokens issued to other clients, so any authenticated
      // confidential client may; a public client only its own tokens. A refresh token is only
      // ever the client's own business (no resource server receives one): another client
      // holding it learns only active: false.
      // A token whose client is disabled or deleted is inactive (oidc-provider would look the
      // client up afterwards, for pairwise subjects, and fail on a missing one), and so is one
      // whose user is disabled or deleted (findAccount finds no such user), as at /userinfo.
      introspection: {
        enabled: true,
        allowedPolicy: async (ctx, client, token) =>
          (token.clientId === client.clientId || (client.clientAuthMethod !== 'none' && token.kind !== 'RefreshToken')) &&
          (token.clientId === client.clientId || !token.clientId || (await ctx.oidc.provider.Client.find(token.clientId)) !== undefined) &&
          (token.kind === 'ClientCredentials' || (await deps.findAccount(ctx, token.accountId, token)) !== undefined),
      },
      // RFC 7009: a client revokes only tokens issued to it.
      revocation: {
        enabled: true,
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
      },
      userinfo: { enabled: true },
      // OpenID Connect Back-Channel Logout 1.0 for clients with a backchannel_logout_uri: sent by
      // Gatehouse's own delivery (src/logout/backchannel.ts), after the logout has answered.
      backchannelLogout: { enabled: true },
      // RFC 8628 for clients registered with the device_code grant; see oidc/device-flow.ts.
      deviceFlow: deviceFlowFeature(views),
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx, form) => {
          ctx.type = 'html';
          ctx.body = views.render('logout.njk', { title: 'Sign out', form, clientName: ctx.oidc.client?.clientName });
        },
        postLogoutSuccessSource: async (ctx) => {
          ctx.type = 'html';
          ctx.body = views.render('logged-out.njk', { title: 'Signed out', clientName: ctx.oidc.client?.clientName });
        },
      },
    },
    // The paths DESIGN.md promises (oidc-provider's defaults are /auth, /me, /token/introspection …).
    routes: {
      authorization: '/authorize',
      token: '/token',
      userinfo: '/userinfo',
      jwks: '/jwks',
      introspection: '/introspect',
      revocation: '/revoke',
      end_session: '/session/end',
      device_authorization: DEVICE_AUTHORIZATION_PATH,
      code_verification: CODE_VERIFICATION_PATH,
    },
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
      policy: gatehouseInteractionPolicy(config.requireMfa),
    },
    ttl: {
      // A resource server may set its own lifetime (resources create --access-token-ttl).
      AccessToken: accessTokenTtl(lifetimes.accessToken),
      ClientCredentials: accessTokenTtl(lifetimes.accessToken),
      AuthorizationCode: 60,
      // Time for a person to find a browser, type the code, sign in and consent.
      DeviceCode: 10 * 60,
      IdToken: lifetimes.accessToken,
      Interaction: 60 * 60,
      Session: lifetimes.session,
      Grant: lifetimes.grant,
      // Idle lifetime of a refresh token, never past the end of its grant: a refresh token
      // that outlived its grant would fail with "grant is expired" before its stated time.
      RefreshToken: (ctx) => {
        const grantExp = ctx?.oidc?.entities?.Grant?.exp;
        const remaining = typeof grantExp === 'number' ? grantExp - Math.floor(Date.now() / 1000) : Infinity;
        return Math.max(1, Math.min(lifetimes.refreshToken, remaining));
      },
    },
    // Any client registered with the refresh_token grant gets a refresh token with its code,
    // with or without offline_access: confidential web apps expect one.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    // Every use rotates; a rotated token presented again revokes the whole grant.
    rotateRefreshToken: true,
    // Tokens live by their own lifetimes, not by the browser session at Gatehouse.
    expiresWithSession: async () => false,
    // Consent is remembered per user and client, across sessions, while the grant lives.
    // First-party clients (skip_consent) get their grant without asking.
    loadExistingGrant: async (ctx) => {
      const client = ctx.oidc.client!;
      const accountId = ctx.oidc.session!.accountId;
      const grantId =
        ctx.oidc.result?.consent?.grantId ??
        ctx.oidc.session!.grantIdFor(client.clientId) ??
        (accountId ? await findLatestGrantId(deps.stores.db, accountId, client.clientId) : undefined);
      const grant = grantId ? await ctx.oidc.provider.Grant.find(grantId) : undefined;
      if (client['gatehouse:skip_consent'] !== true || !accountId || ctx.oidc.prompts.has('consent')) return grant;
      const firstParty = grant ?? new ctx.oidc.provider.Grant({ accountId, clientId: client.clientId });
      firstParty.addOIDCScope([...ctx.oidc.requestParamOIDCScopes].join(' '));
      if (ctx.oidc.claims?.id_token) firstParty.addOIDCClaims(Object.keys(ctx.oidc.claims.id_token));
      if (ctx.oidc.claims?.userinfo) firstParty.addOIDCClaims(Object.keys(ctx.oidc.claims.userinfo));
      // The API a first-party app asked for with resource= (RFC 8707): its scopes, without asking either.
      for (const [indicator, server] of Object.entries(ctx.oidc.resourceServers ?? {})) {
        const scopes = [...ctx.oidc.requestParamScopes].filter((s) => server.scopes.has(s));
        if (scopes.length) firstParty.addResourceScope(indicator, scopes.join(' '));
      }
      await firstParty.save();
      return firstParty;
    },
    // oidc-provider's hook for its HTML error answers, rendered through Gatehouse's one error
    // model (the same page, and the same rule for what is shown, as our own routes).
    renderError: async (ctx: KoaContextWithOIDC, _out, err) => {
      const problem = problemOf(err);
      respondWithPage(ctx, problem, views.render('error.njk', interactionErrorPage(problem)));
    },
  };

  const provider = new Provider(config.issuer, configuration);
  // Mounted into Gatehouse's app, the provider reads the request through that app's proxy
  // settings; its own are kept the same (see proxy-trust.ts).
  trustProxyHops(provider, config.proxyHops);
  // oidc-provider writes its JSON error answers itself; their headers (Retry-After for a store
  // outage or a locked client) come from the one error model, as on Gatehouse's own routes.
  onProviderErrorAnswer(provider, (ctx, err) => setProblemHeaders(ctx, problemOf(err)));

  authenticateClientsWithStoredSecrets(provider, clients, deps.throttle);
  applyClientCredentialsScopeRules(provider);
  revokeWhenConsumeLosesRace(provider);
  throttleCodeGuessing(provider, views, deps.throttle, CODE_VERIFICATION_PATH);
  confirmEachCodeOnce(provider, deps.throttle);
  deliverBackchannelLogoutsWith(provider, (sub, clientId, sid) => deps.backchannel.notify(sub, [{ clientId, sid }]));
  // RFC 9068 access tokens of resource servers: introspection answers for them too.
  answerJwtIntrospection(provider, jwtAccessTokenIntrospection(deps.jwks, config.issuer, deps.findAccount));
  return provider;
}
