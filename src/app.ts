import fs from 'node:fs';
import Koa from 'koa';
import mount from 'koa-mount';
import type Provider from 'oidc-provider';
import { createViews, type Views } from '../interactions/views.ts';
import { GatehouseError } from './errors.ts';
import { healthRoutes } from './health/routes.ts';
import { createProvider } from './provider.ts';
import { loadCookieKeys, type Services } from './services.ts';
import { findAccountIn } from './accounts/claims.ts';
import { interactionRoutes } from '../interactions/routes.ts';
import { bearerLogoutRoutes } from './logout/routes.ts';
import { securityHeaders } from './security-headers.ts';

export interface GatehouseApp {
  app: Koa;
  provider: Provider;
  views: Views;
}

const stylesheet = fs.readFileSync(new URL('../interactions/public/gatehouse.css', import.meta.url));

/**
 * Composes Gatehouse: our routes beside oidc-provider, mounted last. No body parser and no CORS
 * middleware run here globally: the provider parses its own bodies, and a global CORS layer
 * would answer preflights before oidc-provider's per-client CORS (clientBasedCORS) could.
 */
export async function createApp(services: Services): Promise<GatehouseApp> {
  const { config } = services;
  await services.keys.ensureSigningKeys();
  const views = createViews();
  const cookieKeys = await loadCookieKeys(services.settings, config.cookieKeys);
  const provider = createProvider({
    config,
    db: services.db,
    clients: services.clients,
    jwks: await services.keys.privateJwks(),
    cookieKeys,
    findAccount: findAccountIn(services.accounts),
    views,
  });

  const app = new Koa();
  // Behind a TLS-terminating proxy both apps must trust X-Forwarded-*: discovery builds its
  // endpoint URLs from the request, and would otherwise list http:// endpoints.
  app.proxy = config.trustProxy;
  app.silent = true;
  // Signs our own cookies (CSRF); the same keys oidc-provider signs its cookies with.
  app.keys = cookieKeys;

  app.use(jsonErrors);
  app.use(async (ctx, next) => {
    if (ctx.path === '/assets/gatehouse.css' && (ctx.method === 'GET' || ctx.method === 'HEAD')) {
      ctx.type = 'text/css';
      ctx.set('cache-control', 'public, max-age=3600');
      ctx.body = stylesheet;
      return;
    }
    await next();
  });
  app.use(securityHeaders);
  for (const router of [
    healthRoutes(services),
    interactionRoutes({ provider, accounts: services.accounts, throttle: services.throttle, views }),
    bearerLogoutRoutes(provider, services.db),
  ]) {
    app.use(router.routes());
    app.use(router.allowedMethods());
  }
  app.use(mount(provider));

  return { app, provider, views };
}

/** Maps GatehouseError (and anything unexpected) on our own routes to the JSON error shape. */
async function jsonErrors(ctx: Koa.Context, next: Koa.Next): Promise<void> {
  try {
    await next();
  } catch (err) {
    if (err instanceof GatehouseError) {
      ctx.status = err.status;
      ctx.body = { error: err.code, error_description: err.description };
      return;
    }
    const status = (err as { status?: number; expose?: boolean }).status;
    if (status && status >= 400 && status < 500) {
      ctx.status = status;
      ctx.body = { error: 'invalid_request', error_description: (err as Error).message };
      return;
    }
    ctx.status = 500;
    ctx.body = { error: 'server_error', error_description: 'an unexpected error occurred' };
    ctx.app.emit('error', err, ctx);
  }
}
