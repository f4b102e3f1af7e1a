import type Koa from 'koa';

/**
 * django-oauth-toolkit's URL layout under /o/, so apps configured for DOT keep working with
 * GATEHOUSE_COMPAT_PATHS=dot: each path is answered by its standard counterpart.
 */
const DOT_PATHS: Record<string, string> = {
  '/o/authorize/': '/authorize',
  '/o/token/': '/token',
  '/o/revoke_token/': '/revoke',
  '/o/introspect/': '/introspect',
  '/o/userinfo/': '/userinfo',
  '/o/.well-known/openid-configuration/': '/.well-known/openid-configuration',
  '/o/.well-known/openid-configuration': '/.well-known/openid-configuration',
  '/o/.well-known/jwks.json': '/jwks',
  '/o/logout/': '/session/end',
};

export function dotCompatPaths(): Koa.Middleware {
  return async (ctx, next) => {
    const standard = DOT_PATHS[ctx.path];
    if (standard) ctx.path = standard;
    await next();
  };
}
