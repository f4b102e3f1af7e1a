import Koa from 'koa';
import compose from 'koa-compose';
import { createViews, type Views } from './web/views.ts';
import { servedAssets } from './web/assets.ts';
import { ACCOUNT_LINK_PREFIXES } from '../interactions/account-link-paths.ts';
import { GatehouseError } from './errors.ts';
import { healthRoutes } from './health/routes.ts';
import { bearerLogoutRoutes } from './logout/routes.ts';
import { createProvider, findAccountIn, mount, oidcBoundary, type Provider } from './oidc/index.ts';
import { securityHeaders } from './security-headers.ts';
import { forwardedHeadersFromTrustedHops, trustProxyHops } from './proxy-trust.ts';
import { userdataRoutes } from './userdata/routes.ts';
import { lazyRoutes, routesOf } from './web/lazy-routes.ts';
import { loadCookieKeys, type Services } from './services.ts';
import { interactionErrorPage, isUnexpected, problemOf, respondWithJson, respondWithPage } from './problem.ts';
import { dotCompatPaths } from './compat/dot-paths.ts';
import { requestLog, securityReporter, type RequestState } from './observability/request-log.ts';
import { watchProvider } from './observability/security-events.ts';

export interface GatehouseApp {
  app: Koa;
  views: Views;
  /** The provider serving requests now; replaced when the signing keys change. */
  provider(): Provider;
  /** Reloads the signing keys from the database; rebuilds the provider if they changed. */
  reloadSigningKeys(): Promise<boolean>;
}

/** Where Gatehouse's own routes live; every other path is oidc-provider's. */
export const OWN_PREFIXES = ['/healthz', '/readyz', '/interaction/', '/logout', '/admin', '/userdata', '/account', '/idp/', ...ACCOUNT_LINK_PREFIXES];

const keyFingerprint = (jwks: { keys: Array<{ kid?: string }> }) => jwks.keys.map((k) => k.kid).join(',');

/**
 * Composes Gatehouse: our routes beside oidc-provider, mounted last. No body parser and no CORS
 * middleware run here globally: the provider parses its own bodies, and a global CORS layer
 * would answer preflights before oidc-provider's per-client CORS (clientBasedCORS) could.
 */
export async function createApp(services: Services): Promise<GatehouseApp> {
  const { config } = services;
  await services.keys.ensureSigningKeys();
  await services.clients.sealPlainSecrets();
  const views = createViews();
  const cookieKeys = await loadCookieKeys(services.settings, config.cookieKeys);
  const buildProvider = (jwks: { keys: object[] }, apiScopes: readonly string[]) => {
    const built = createProvider({
      config,
      stores: services.stores,
      adapters: services.adapters,
      clients: services.clients,
      throttle: services.throttle,
      jwks,
      apiScopes,
      resources: services.resources,
      cookieKeys,
      findAccount: findAccountIn(services.accounts),
      views,
      backchannel: services.backchannel,
    });
    watchProvider(built, services.events, services.log, services.metrics);
    return built;
  };

  let jwks = await services.keys.privateJwks();
  let apiScopes = await services.scopes.names();
  let provider = buildProvider(jwks, apiScopes);
  let mounted = mount(provider);
  const current = () => provider;
  const oidc = oidcBoundary(current, services.grants);
  // oidc-provider's configuration is fixed at construction: other keys or scopes need a new
  // provider. Requests in flight finish on the old one; all state lives in the stores.
  const rebuild = () => {
    provider = buildProvider(jwks, apiScopes);
    mounted = mount(provider);
  };
  // The scopes list is cached per process and dropped by message when it changes anywhere
  // (services.scopes); the provider follows it before each protocol request.
  const withCurrentScopes = async () => {
    const latest = await services.scopes.names();
    if (latest === apiScopes) return;
    const changed = latest.join(' ') !== apiScopes.join(' ');
    apiScopes = latest;
    if (changed) rebuild();
  };

  const app = new Koa();
  // Behind a TLS-terminating proxy X-Forwarded-* must be trusted, from exactly the configured
  // number of proxies: discovery builds its endpoint URLs from the request (it would otherwise
  // list http:// endpoints), and throttles and the audit log count the client's address.
  trustProxyHops(app, config.proxyHops);
  app.silent = true;
  // Signs our own cookies (CSRF); the same keys oidc-provider signs its cookies with.
  app.keys = cookieKeys;

  app.use(forwardedHeadersFromTrustedHops(config.proxyHops));
  app.use(requestLog(services.log, services.events, services.metrics));
  app.use(securityHeaders(config));
  app.use(errorResponses(views));
  app.use(knownMethodsOnly);
  // prom-client (observability/metrics.ts) is loaded only where metrics are on.
  if (services.metrics) app.use((await import('./observability/metrics.ts')).metricsRoute(services.metrics, config.metrics.token));
  if (config.compatPaths) app.use(dotCompatPaths(config.compatPaths));
  app.use(servedAssets);
  // Each route module gets the services it uses, never the database. The pages of browsers and
  // operators (sign-in, account, admin) are loaded by their first request (web/lazy-routes.ts):
  // a process that only answers protocol and API requests never holds them in memory.
  const { admin, clients, accounts, apiKeys, adminTokens, audit, scopes, resources, throttle, adminSessions } = services;
  const ownRoutes = compose([
    routesOf(
      healthRoutes({
        database: () => services.db.raw('select 1'),
        ...(services.stores.redis ? { redis: () => services.stores.redis!.client.ping() } : {}),
      }),
    ),
    lazyRoutes('sign-in', ['/interaction/'], async () =>
      (await import('../interactions/routes.ts')).interactionRoutes({ interactions: oidc.interactions, accounts: services.accounts, throttle: services.throttle, scopes: services.scopes, resources: services.resources, passkeys: services.passkeys, views, totp: services.totp, mfaPolicy: config.requireMfa, accountEvents: services.accountEvents, idps: services.idps }),
    ),
    lazyRoutes('identity provider', ['/idp/', '/interaction/'], async () =>
      (await import('../interactions/idp-routes.ts')).idpRoutes({ interactions: oidc.interactions, idps: services.idps, upstreams: services.upstreams, accounts: services.accounts, throttle: services.throttle, views, totp: services.totp, mfaPolicy: config.requireMfa, accountEvents: services.accountEvents, passkeys: services.passkeys }),
    ),
    lazyRoutes('account link', ACCOUNT_LINK_PREFIXES, async () =>
      (await import('../interactions/reset-routes.ts')).accountLinkRoutes({ passwordResets: services.passwordResets, emailVerification: services.emailVerification, views }),
    ),
    routesOf(bearerLogoutRoutes(oidc)),
    lazyRoutes('account', ['/account'], async () =>
      (await import('./account/routes.ts')).accountRoutes({
        accounts,
        throttle,
        clients,
        accountSessions: services.accountSessions,
        accountEvents: services.accountEvents,
        oidc,
        views,
        emailChange: config.mail ? services.emailVerification : undefined,
        passkeys: services.passkeys,
        totp: services.totp,
        mfaPolicy: config.requireMfa,
        idps: services.idps,
        upstreams: services.upstreams,
      }),
    ),
    lazyRoutes('admin API', ['/admin/api'], async () =>
      (await import('./admin/api-routes.ts')).adminApiRoutes({ config, admin, clients, accounts, apiKeys, adminTokens, audit, scopes, resources, throttle, idps: services.idps }),
    ),
    lazyRoutes('admin', ['/admin'], async () =>
      (await import('./admin/pages/index.ts')).adminPageRoutes({ admin, clients, accounts, apiKeys, audit, scopes, resources, throttle, adminSessions, totp: services.totp, config, accountEvents: services.accountEvents, idps: services.idps }, views),
    ),
    routesOf(
      userdataRoutes({ verifyAccessToken: oidc.verifyAccessToken, hasLiveGrant: oidc.hasLiveGrant, throttle: services.throttle, accounts: services.accounts, apiKeys: services.apiKeys, userdata: services.userdata, maxBytes: config.userdataMaxBytes }),
    ),
  ]);
  // Protocol requests (token, introspection, userinfo, discovery…) go straight to the provider
  // instead of through a dozen route tables that cannot match them.
  app.use((ctx, next) => (OWN_PREFIXES.some((prefix) => ctx.path.startsWith(prefix)) ? ownRoutes(ctx, next) : next()));
  app.use(async (ctx, next) => {
    await withCurrentScopes();
    return mounted(ctx, next);
  });
  // Nothing answered: an unknown path, or a method a protocol endpoint does not take (GET /token).
  app.use(() => {
    throw new GatehouseError(404, 'not_found', 'nothing is served at this path with this method');
  });

  return {
    app,
    views,
    provider: current,
    async reloadSigningKeys() {
      const latest = await services.keys.privateJwks();
      if (keyFingerprint(latest as { keys: Array<{ kid?: string }> }) === keyFingerprint(jwks as { keys: Array<{ kid?: string }> })) return false;
      // Requests in flight finish on the old provider; all state lives in the stores.
      jwks = latest;
      rebuild();
      return true;
    },
  };
}

const SERVED_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/**
 * A method no route of Gatehouse serves (PROPFIND, TRACE …) is refused as a client error, not
 * with the routers' 501: it is the request that is wrong, and nothing behind may see it.
 */
const knownMethodsOnly: Koa.Middleware = (ctx, next) => {
  if (SERVED_METHODS.has(ctx.method)) return next();
  ctx.set('allow', [...SERVED_METHODS].join(', '));
  throw new GatehouseError(405, 'method_not_allowed', `${ctx.method.slice(0, 20)} is not a method Gatehouse serves`);
};

/**
 * Answers errors on our own routes through the one error model (src/problem.ts): JSON
 * {"error", "error_description"}, or our error page for a browser on an interaction page.
 */
function errorResponses(views: Views): Koa.Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      const problem = problemOf(err);
      if (err instanceof GatehouseError) {
        // A wrong API key, admin token or access token on our own routes, or one refused unchecked
        // because its address is locked after too many.
        // (ctx.ip only then: the socket of a request answered early may be gone already.)
        const fields = () => ({ path: ctx.path.slice(0, 200), error: problem.code, ip: ctx.ip });
        if (problem.status === 401) securityReporter(ctx)('authentication.failed', fields());
        if (problem.status === 429) securityReporter(ctx)('authentication.locked', fields());
      } else if (isUnexpected(problem)) {
        (ctx.state as RequestState).log?.error({ err }, 'unexpected error');
      }
      if (ctx.path.startsWith('/interaction/') && ctx.accepts('json', 'html') === 'html') {
        respondWithPage(ctx, problem, views.render('error.njk', interactionErrorPage(problem)));
      } else {
        respondWithJson(ctx, problem);
      }
    }
  };
}
