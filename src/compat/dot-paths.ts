import type Koa from 'koa';

/**
 * django-oauth-toolkit's URL layout, so apps configured for DOT keep working: DOT apps mount
 * DOT wherever they like (`path("o/", include("oauth2_provider.urls"))` in DOT's docs, `oauth/`
 * in the Flask guide), so GATEHOUSE_COMPAT_PATHS takes the prefix: `dot` is `dot:/o`. Each path
 * is answered by its standard counterpart: the request is rewritten before anything else sees
 * it, so status, headers, body and CORS are the standard route's own. Discovery keeps listing
 * the standard paths.
 */
export interface CompatPaths {
  layout: 'dot';
  /** Where DOT's paths live: "/o", "/oauth", "/api/auth" … (no trailing slash). */
  prefix: string;
}

/** DOT's paths after its prefix (as DOT's urls.py writes them), and what answers each. */
const DOT_ENDPOINTS: ReadonlyArray<readonly [string, string]> = [
  ['authorize/', '/authorize'],
  ['token/', '/token'],
  ['revoke_token/', '/revoke'],
  ['introspect/', '/introspect'],
  ['userinfo/', '/userinfo'],
  ['.well-known/openid-configuration/', '/.well-known/openid-configuration'],
  ['.well-known/jwks.json', '/jwks'],
];

/**
 * The first path segments Gatehouse and oidc-provider serve (src/app.ts OWN_PREFIXES, the routes
 * in src/oidc/provider.ts and oidc-provider's defaults for features it may turn on): a prefix there
 * would hide them, or they it.
 */
export const RESERVED_SEGMENTS: ReadonlySet<string> = new Set([
  // Gatehouse's own routes
  'admin', 'interaction', 'userdata', 'logout', 'healthz', 'readyz', 'metrics', 'assets', 'account', 'idp', 'password-reset', 'verify-email',
  // oidc-provider's, as configured and by default
  'authorize', 'auth', 'token', 'userinfo', 'me', 'jwks', 'introspect', 'revoke', 'session', '.well-known',
  'device', 'backchannel', 'challenge', 'request', 'reg', 'credential',
]);

const EXAMPLE = 'e.g. dot:/oauth';

/**
 * Reads GATEHOUSE_COMPAT_PATHS: `dot` (DOT's paths under /o/) or `dot:/PREFIX`. Throws an Error
 * whose message completes "invalid GATEHOUSE_COMPAT_PATHS: …".
 */
export function parseCompatPaths(value: string): CompatPaths {
  if (value === 'dot') return { layout: 'dot', prefix: '/o' };
  if (!value.startsWith('dot:')) {
    throw new Error(`must be "dot" (django-oauth-toolkit's paths under /o/) or "dot:/PREFIX" (the same paths under another prefix, ${EXAMPLE})`);
  }
  const prefix = value.slice('dot:'.length);
  if (!prefix.startsWith('/')) throw new Error(`the prefix must start with "/" (${EXAMPLE}), got "${prefix.slice(0, 100)}"`);
  if (prefix === '/') throw new Error(`the prefix must be a path below "/" (${EXAMPLE}): at the root DOT's paths would shadow Gatehouse's own`);
  if (prefix.endsWith('/')) throw new Error(`the prefix must not end with "/" (dot:${prefix.replace(/\/+$/, '') || '/oauth'}, not dot:${prefix.slice(0, 100)})`);
  if (prefix.length > 200) throw new Error('the prefix must be at most 200 characters');
  const segments = prefix.slice(1).split('/');
  for (const segment of segments) {
    if (segment === '') throw new Error(`the prefix must not hold an empty segment ("//"), got "${prefix}"`);
    if (segment === '.' || segment === '..') throw new Error(`the prefix must not hold "." or ".." segments, got "${prefix}"`);
    if (!/^[A-Za-z0-9._~-]+$/.test(segment)) {
      throw new Error(`the prefix may hold only letters, digits, "-", ".", "_" and "~" between its slashes, got "${prefix.slice(0, 100)}"`);
    }
  }
  if (RESERVED_SEGMENTS.has(segments[0]!)) {
    throw new Error(`the prefix ${prefix} clashes with Gatehouse's own /${segments[0]} paths; choose another (${EXAMPLE})`);
  }
  return { layout: 'dot', prefix };
}

/**
 * `PREFIX/logout/`: DOT's own `o/logout/` is RP-initiated logout, where a browser is sent, while
 * the Flask guide's `POST /oauth/logout/` with `Authorization: Bearer` is Gatehouse's bearer
 * logout (POST /logout). A browser's GET (or HEAD) without credentials is RP-initiated logout
 * at /session/end; anything else (every POST, any request with an Authorization header) is the
 * bearer logout. oidc-provider serves /session/end by GET only, so no POST is lost this way.
 */
function logoutTarget(ctx: Koa.Context): string {
  const browser = (ctx.method === 'GET' || ctx.method === 'HEAD') && !ctx.get('authorization');
  return browser ? '/session/end' : '/logout';
}

/** The standard path that answers `path` under this layout, or undefined if it is not one of DOT's. */
export function standardPathFor(compat: CompatPaths, path: string, ctx?: Koa.Context): string | undefined {
  if (!path.startsWith(`${compat.prefix}/`)) return undefined;
  // DOT writes its paths with a trailing slash (Django's APPEND_SLASH); clients also send them
  // without one.
  const rest = path.slice(compat.prefix.length + 1);
  const bare = rest.endsWith('/') ? rest.slice(0, -1) : rest;
  for (const [dot, standard] of DOT_ENDPOINTS) {
    if (bare === dot.replace(/\/$/, '')) return standard;
  }
  if (bare === 'logout') return ctx ? logoutTarget(ctx) : '/logout';
  // userdata/{sub}/ and userdata/me/: one segment, kept as it came (percent-encoded).
  const userdata = /^userdata\/([^/]+)$/.exec(bare);
  if (userdata) return `/userdata/${userdata[1]}`;
  return undefined;
}

/** Rewrites DOT's paths under the prefix to the standard ones; every other path passes untouched. */
export function dotCompatPaths(compat: CompatPaths): Koa.Middleware {
  return async (ctx, next) => {
    const standard = standardPathFor(compat, ctx.path, ctx);
    if (standard) ctx.path = standard;
    await next();
  };
}
