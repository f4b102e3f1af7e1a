import Router from '@koa/router';
import type { Knex } from 'knex';
import type Provider from 'oidc-provider';
import { GatehouseError } from '../errors.ts';
import { revokeGrantForBearerLogout } from '../grants/revocation.ts';
import type { GrantsService } from '../grants/service.ts';

/** POST /logout with Authorization: Bearer <access token>. */
export function bearerLogoutRoutes(provider: () => Provider, grants: GrantsService, db: Knex): Router {
  const router = new Router();
  router.post('/logout', async (ctx) => {
    ctx.set('cache-control', 'no-store');
    const match = /^Bearer ([\x21-\x7E]+)$/i.exec(ctx.get('authorization'));
    if (!match) {
      ctx.set('www-authenticate', 'Bearer realm="gatehouse"');
      throw new GatehouseError(401, 'invalid_token', 'send the access token as Authorization: Bearer <token>');
    }
    try {
      await revokeGrantForBearerLogout(provider(), grants, db, match[1]!);
    } catch (err) {
      if (err instanceof GatehouseError && err.status === 401) {
        ctx.set('www-authenticate', 'Bearer realm="gatehouse", error="invalid_token"');
      }
      throw err;
    }
    ctx.status = 204;
  });
  // Any other method gets the JSON error of Gatehouse's routes, not the router's plain-text 405.
  router.all('/logout', (ctx) => {
    ctx.set('allow', 'POST');
    throw new GatehouseError(405, 'method_not_allowed', 'use POST /logout with Authorization: Bearer <access token>');
  });
  return router;
}
