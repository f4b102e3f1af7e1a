import Router from '@koa/router';
import type { Services } from '../services.ts';

/** /healthz: the process answers. /readyz: the stores it needs answer too. */
export function healthRoutes(services: Services): Router {
  const router = new Router();
  router.get('/healthz', (ctx) => {
    ctx.set('cache-control', 'no-store');
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    ctx.set('cache-control', 'no-store');
    try {
      await services.db.raw('select 1');
      ctx.body = { status: 'ready', checks: { database: 'ok' } };
    } catch {
      ctx.status = 503;
      ctx.body = { status: 'unavailable', checks: { database: 'unreachable' } };
    }
  });
  return router;
}
