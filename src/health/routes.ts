import Router from '@koa/router';
import type { Services } from '../services.ts';

const withTimeout = <T>(work: Promise<T>, ms: number) =>
  Promise.race([work, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), ms).unref())]);

/** /healthz: the process answers. /readyz: the stores it needs answer too (503 otherwise). */
export function healthRoutes(services: Services): Router {
  const router = new Router();
  router.get('/healthz', (ctx) => {
    ctx.set('cache-control', 'no-store');
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    ctx.set('cache-control', 'no-store');
    const checks: Record<string, 'ok' | 'unreachable'> = {};
    const probe = async (name: string, work: () => Promise<unknown>) => {
      try {
        await withTimeout(work(), 2000);
        checks[name] = 'ok';
      } catch {
        checks[name] = 'unreachable';
      }
    };
    await Promise.all([
      probe('database', () => services.db.raw('select 1')),
      ...(services.stores.redis ? [probe('redis', () => services.stores.redis!.client.ping())] : []),
    ]);
    const ready = Object.values(checks).every((c) => c === 'ok');
    ctx.status = ready ? 200 : 503;
    ctx.body = { status: ready ? 'ready' : 'unavailable', checks };
  });
  return router;
}
