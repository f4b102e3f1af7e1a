import type Koa from 'koa';

/**
 * What Gatehouse believes of the X-Forwarded-* headers, given how many proxies stand in front
 * of it (GATEHOUSE_TRUST_PROXY).
 *
 * A proxy such as nginx with `$proxy_add_x_forwarded_for` appends the address it saw to
 * whatever X-Forwarded-For the client sent. So only the rightmost `hops` values were written by
 * our proxies; the client's address is the leftmost of those, and everything further left is
 * whatever the client chose to write. Koa takes the leftmost value of all unless
 * `maxIpsCount` says how many to keep from the right.
 *
 * The provider is mounted into our app (koa-mount composes its middleware onto our context),
 * so oidc-provider reads ctx.ip, ctx.protocol and ctx.host through *this* app's settings; its
 * own app's settings are kept the same all the same, so that nothing depends on which one a
 * future version reads.
 */
export function trustProxyHops(app: Pick<Koa, 'proxy' | 'maxIpsCount'>, hops: number): void {
  app.proxy = hops > 0;
  app.maxIpsCount = hops;
}

/** Headers that say how the client reached the outermost proxy; Koa reads their first value. */
const FORWARDED_SINGLE_VALUES = ['x-forwarded-proto', 'x-forwarded-host'] as const;

/**
 * Koa takes the *first* value of X-Forwarded-Proto and X-Forwarded-Host, which is the client's
 * own when a proxy appends to them rather than setting them. Keep the value written by the
 * outermost trusted proxy instead, counted from the right as for X-Forwarded-For (with fewer
 * values than hops, the leftmost: every value there is then a proxy's). Without proxy trust,
 * Koa ignores these headers anyway.
 */
export function forwardedHeadersFromTrustedHops(hops: number): Koa.Middleware {
  return (ctx, next) => {
    if (hops > 0) {
      const headers = ctx.req.headers;
      for (const name of FORWARDED_SINGLE_VALUES) {
        const raw = headers[name];
        if (typeof raw !== 'string' || !raw.includes(',')) continue;
        const values = raw.split(',').map((v) => v.trim());
        headers[name] = values[Math.max(0, values.length - hops)];
      }
    }
    return next();
  };
}
