/**
 * What a scope may be called. GATEHOUSE_API_SCOPES, the scopes service and the importer all
 * check names here, so a name one of them takes the others take too.
 */

/** RFC 6749 §3.3 scope-token: printable ASCII but space, `"` and `\`. */
export const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;
export const SCOPE_NAME_MAX = 100;

/**
 * Gatehouse's own scopes: OpenID Connect's and the /userdata one. They are not rows in the
 * scopes table and cannot be created or deleted.
 */
export const BUILT_IN_SCOPES = ['openid', 'profile', 'email', 'offline_access', 'userdata'] as const;
const builtIn = new Set<string>(BUILT_IN_SCOPES);

export const isBuiltInScope = (name: string): boolean => builtIn.has(name);

/** Why `name` cannot be an API scope, or undefined when it can. */
export function scopeNameProblem(name: string): string | undefined {
  if (!name) return 'is required';
  if (name.length > SCOPE_NAME_MAX) return `must be at most ${SCOPE_NAME_MAX} characters`;
  if (!SCOPE_TOKEN.test(name)) return 'must be printable ASCII without spaces, quotes or backslashes';
  if (builtIn.has(name)) return `${name} is a built-in scope (${BUILT_IN_SCOPES.join(' ')})`;
  return undefined;
}
