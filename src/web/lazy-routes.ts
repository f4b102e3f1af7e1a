import type Koa from 'koa';
import compose from 'koa-compose';
import { GatehouseError } from '../errors.ts';
import type { RequestState } from '../observability/request-log.ts';

/**
 * A route table as @koa/router builds it: its routes, and its answers to other methods. (Its
 * middleware types ask for the router's own context; Koa hands them the app's.)
 */
export interface RouteTable {
  routes(): (ctx: never, next: never) => unknown;
  allowedMethods(): (ctx: never, next: never) => unknown;
}

/** A router's routes and allowed-methods answers, as one middleware. */
export const routesOf = (table: RouteTable): Koa.Middleware => compose([table.routes(), table.allowedMethods()] as Koa.Middleware[]);

/**
 * A route table loaded by the first request under one of `prefixes`, not at start: the pages
 * only a browser or an operator uses (admin, account, sign-in) and what they import (form
 * parsing, their own views) then take no memory in a process that only answers protocol
 * requests. A request outside `prefixes` passes on without loading it, so the prefixes must
 * cover every path the table serves. Requests arriving while it loads wait for the one load;
 * a load that fails answers 503 (and is logged), and the next request tries again.
 */
export function lazyRoutes(name: string, prefixes: readonly string[], load: () => Promise<RouteTable>): Koa.Middleware {
  let routes: Koa.Middleware | undefined;
  let loading: Promise<Koa.Middleware> | undefined;
  const loadThenServe = async (ctx: Koa.Context, next: Koa.Next) => {
    try {
      loading ??= load().then(routesOf, (err: unknown) => {
        loading = undefined;
        throw err;
      });
      routes ??= await loading;
    } catch (err) {
      (ctx.state as RequestState).log?.error({ err }, `could not load the ${name} routes`);
      throw new GatehouseError(503, 'temporarily_unavailable', `The ${name} pages could not be loaded; try again shortly.`);
    }
    return routes(ctx, next);
  };
  // Once loaded, a request costs what the router itself costs, and one outside the prefixes
  // a string comparison per prefix.
  return (ctx, next) => {
    if (!prefixes.some((prefix) => ctx.path.startsWith(prefix))) return next();
    return routes ? routes(ctx, next) : loadThenServe(ctx, next);
  };
}
