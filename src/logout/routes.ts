import Router from '@koa/router';
import { GatehouseError } from '../errors.ts';
import type { Oidc } from '../oidc/index.ts';

/**
 * POST /logout with Authorization: Bearer <access token> (or DPoP with its proof), for apps that
 * sign a user out from their backend: the token's grant is revoked (access and refresh tokens),
 * and the user's Gatehouse sessions forget that client; a session left with no client is ended.
 */
export function bearerLogoutRoutes(oidc: Pick<Oidc, 'verifyAccessToken' | 'revokeGrant' | 'endSessions'>): Router {
  const router = new Router();
  router.post('/logout', async (ctx) => {
    ctx.set('cache-control', 'no-store');
    if (!/^(Bearer|DPoP) ([\x21-\x7E]+)$/i.test(ctx.get('authorization'))) {
      ctx.set('www-authenticate', 'Bearer realm="gatehouse"');
      throw new GatehouseError(401, 'invalid_token', 'send the access token as Authorization: Bearer <token>');
    }
    const token = await oidc.verifyAccessToken(ctx);
    await oidc.revokeGrant(token.grantId);
    await oidc.endSessions(token.accountId, token.clientId);
    ctx.status = 204;
  });
  // Any other method gets the JSON error of Gatehouse's routes, not the router's plain-text 405.
  router.all('/logout', (ctx) => {
    ctx.set('allow', 'POST');
    throw new GatehouseError(405, 'method_not_allowed', 'use POST /logout with Authorization: Bearer <access token>');
  });
  return router;
}
