import { randomUUID } from 'node:crypto';
import type Koa from 'koa';
import type { Logger } from './logger.ts';
import type { HttpMetrics } from './metrics.ts';
import type { ReportSecurityEvent, SecurityEvents } from './security-events.ts';

// A request id from the proxy in front is kept (so one id follows the request through both
// logs) when it is short and plain; anything else is replaced rather than logged.
const FORWARDED_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export interface RequestState {
  /** This request's logger: every line carries its req_id. */
  log: Logger;
  requestId: string;
  /** Reports a security event on this request's logger. */
  security: ReportSecurityEvent;
}

const noReport: ReportSecurityEvent = () => undefined;

/**
 * A request's state as requestLog leaves it: the logger is made only when something logs
 * through it (most requests log nothing but their access line, which names the id itself).
 * A class rather than a property defined and a closure made on every request: on the protocol
 * endpoints that was measurable (bench/NOTES.md). Koa's ctx.state stays an object any
 * middleware may add to.
 */
class LoggedRequestState implements RequestState {
  #log: Logger | undefined;

  constructor(
    readonly requestId: string,
    private readonly base: Logger,
    private readonly events: SecurityEvents,
  ) {}

  get log(): Logger {
    this.#log ??= this.base.child({ req_id: this.requestId });
    return this.#log;
  }

  /** Bound once it is read: routes hand the reporter on (securityReporter(ctx)). */
  get security(): ReportSecurityEvent {
    return (event, fields, level) => this.events.record(event, fields, level, this.log);
  }
}

/** The request's security-event reporter; a no-op outside the app (e.g. a route under test alone). */
export const securityReporter = (ctx: Koa.Context): ReportSecurityEvent => (ctx.state as Partial<RequestState>).security ?? noReport;

/**
 * The name a route is counted and logged under: oidc-provider's route name, our router's
 * pattern, or "unmatched" — never the raw path, which carries user ids and would make every
 * user a new metric series.
 */
export function routeName(ctx: Koa.Context): string {
  const named = (ctx.state as { route?: string }).route;
  if (named) return named;
  const oidcRoute = (ctx as { oidc?: { route?: string } }).oidc?.route;
  if (oidcRoute) return oidcRoute;
  // @koa/router's documented context property: the pattern of the route that matched.
  const matched = (ctx as { routerPath?: string | RegExp }).routerPath;
  if (typeof matched === 'string') return matched;
  return 'unmatched';
}

// Interaction ids travel in these paths and, with their cookie, let a browser continue a sign-in;
// a mailed link's token (password reset, address verification) is the credential itself: each is
// logged as a placeholder, like the metrics' route names.
const loggedPath = (path: string) =>
  path
    .replace(/^\/(interaction|authorize)\/[^/]+/, '/$1/:uid')
    .replace(/^\/(password-reset|verify-email)\/[^/]+/, '/$1/:token')
    .slice(0, 512);

/**
 * Gives each request an id (X-Request-Id, echoed back), a logger bound to it, and one access
 * line when it ends. The line holds the path without its query: authorization codes, states
 * and tokens travel in query strings.
 */
export function requestLog(log: Logger, events: SecurityEvents, metrics: HttpMetrics | undefined): Koa.Middleware {
  return async (ctx, next) => {
    const started = process.hrtime.bigint();
    const forwarded = ctx.get('x-request-id');
    const requestId = FORWARDED_ID.test(forwarded) ? forwarded : randomUUID();
    ctx.set('x-request-id', requestId);
    // Koa's state object is empty here (the first middleware to write to it is further in).
    ctx.state = new LoggedRequestState(requestId, log, events);
    try {
      await next();
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const route = routeName(ctx);
      metrics?.observe(ctx.method, route, ctx.status, seconds);
      if (log.isLevelEnabled('info')) {
        const line = { req_id: requestId, method: ctx.method, path: loggedPath(ctx.path), route, status: ctx.status, ms: Math.round(seconds * 1e5) / 100, ip: ctx.ip };
        if (ctx.status >= 500) log.error(line, 'request');
        else log.info(line, 'request');
      }
    }
  };
}
