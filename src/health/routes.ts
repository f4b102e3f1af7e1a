import Router from '@koa/router';

const withTimeout = <T>(work: Promise<T>, ms: number) =>
  Promise.race([work, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), ms).unref())]);

/** A store's name and how to ask it whether it answers (`select 1`, PING). */
export type StoreProbes = Record<string, () => Promise<unknown>>;

/** /healthz: the process answers. /readyz: the stores it needs answer too (503 otherwise). */
export function healthRoutes(stores: StoreProbes): Router {
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
    await Promise.all(Object.entries(stores).map(([name, work]) => probe(name, work)));
    const ready = Object.values(checks).every((c) => c === 'ok');
    ctx.status = ready ? 200 : 503;
    ctx.body = { status: ready ? 'ready' : 'unavailable', checks };
  });
  return router;
}
