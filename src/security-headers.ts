import type Koa from 'koa';

const CONTENT_SECURITY_POLICY = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; frame-ancestors 'none'; base-uri 'none'";

/**
 * Headers for every response. Pages cannot be framed (clickjacking), load only our own styles
 * and scripts (files we serve; never inline ones), and send no Referer, so codes and tokens in
 * URLs do not leak to other sites. CSP form-action is left out on purpose: browsers apply it
 * to the redirect chain after a form post, which ends at the client's redirect_uri.
 *
 * Set before the request is handled, not after: so that they are on every answer, error pages
 * rendered further out included (a handler that throws never comes back here), and so that
 * oidc-provider can add the hash of the one inline script it writes (the self-submitting form
 * of response_mode=form_post and of a sign-out without a session) to script-src; without it,
 * that page is blank in a browser. No other inline script is allowed.
 */
export async function securityHeaders(ctx: Koa.Context, next: Koa.Next): Promise<void> {
  ctx.set('x-content-type-options', 'nosniff');
  ctx.set('referrer-policy', 'no-referrer');
  ctx.set('content-security-policy', CONTENT_SECURITY_POLICY);
  ctx.set('x-frame-options', 'DENY');
  await next();
}
