import type Router from '@koa/router';
import type Koa from 'koa';

/**
 * Whether some route of `router` (other than its `/{*rest}` catch-all) has this path, under any
 * method: the catch-all then answers 405 rather than 404.
 */
export function servesPath<S, C>(router: Router<S, C>, ctx: Koa.Context): boolean {
  return router.match(ctx.path, ctx.method).path.some((layer) => layer.methods.length > 0 && !String(layer.path).endsWith('{*rest}'));
}
