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
export function securityHeaders(config: { issuer: string; hstsMaxAge: number }): Koa.Middleware {
  const hsts = strictTransportSecurity(config);
  return async (ctx, next) => {
    ctx.set('x-content-type-options', 'nosniff');
    ctx.set('referrer-policy', 'no-referrer');
    ctx.set('content-security-policy', CONTENT_SECURITY_POLICY);
    ctx.set('x-frame-options', 'DENY');
    if (hsts) ctx.set('strict-transport-security', hsts);
    await next();
  };
}

/**
 * HSTS (RFC 6797) when the issuer is https: once a browser has seen it, it never again asks for
 * the issuer over plain http, so a network attacker cannot strip TLS from the sign-in page.
 * Decided by the issuer, not by each request: behind a TLS-terminating proxy every request
 * arrives over http, and the issuer is the URL people are sent to. Not includeSubDomains: the
 * issuer's host may share a parent domain with sites Gatehouse knows nothing about.
 */
function strictTransportSecurity({ issuer, hstsMaxAge }: { issuer: string; hstsMaxAge: number }): string | undefined {
  if (!issuer.startsWith('https:') || hstsMaxAge === 0) return undefined;
  return `max-age=${hstsMaxAge}`;
}
