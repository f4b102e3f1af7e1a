import type Koa from 'koa';

/**
 * Headers for every response. Pages cannot be framed (clickjacking), load only our own styles
 * and scripts (files we serve; never inline ones), and send no Referer, so codes and tokens in
 * URLs do not leak to other sites. CSP form-action is left out on purpose: browsers apply it
 * to the redirect chain after a form post, which ends at the client's redirect_uri.
 */
export async function securityHeaders(ctx: Koa.Context, next: Koa.Next): Promise<void> {
  await next();
  ctx.set('x-content-type-options', 'nosniff');
  ctx.set('referrer-policy', 'no-referrer');
  if (ctx.response.is('html')) {
    ctx.set('content-security-policy', "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; frame-ancestors 'none'; base-uri 'none'");
    ctx.set('x-frame-options', 'DENY');
  }
}
