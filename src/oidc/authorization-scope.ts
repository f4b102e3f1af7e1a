import { errors, type Client, type KoaContextWithOIDC } from 'oidc-provider';
import { parameterAsSent } from './internals.ts';

/**
 * The scope of an authorization request, settled before oidc-provider shows any page or issues
 * a code. It runs as oidc-provider's `extraParams.scope` validator: validators run on every
 * authorization request, present or not, after oidc-provider's own scope checks and after the
 * redirect URI is known to be registered, and before the interaction is stored or a code issued
 * (upstream's own recipe for a default scope, recipes/default_scope.md, uses the same hook).
 * What is set here is stored with the interaction, so the consent page and the code see it.
 *
 * 1. No scope (the DOT tutorial, Postman with an empty Scope field, the Flask guide): RFC 6749
 *    §3.3 says to use a predefined default or fail with invalid_scope. The default is the
 *    client's `gatehouse:default_scope` (its registered scope unless the operator set another).
 *    Nothing to ask for fails with invalid_scope here, as a redirect to the client, instead of
 *    a sign-in that would end in access_denied.
 * 2. offline_access: oidc-provider drops it unless the request also carries prompt=consent
 *    (OIDC Core §11 lets the OP decide when "other conditions for processing the request
 *    permitting offline access" are in place). Gatehouse's consent page asks for it in plain
 *    words, and the grant remembers the answer, so it is kept for clients with the
 *    refresh_token grant: the refresh token then carries it, and a refresh repeating the
 *    original scope (as Authlib does) is not refused with "refresh token missing requested scope".
 */
export async function settleAuthorizationScope(ctx: KoaContextWithOIDC, value: string | undefined, client: Client): Promise<void> {
  const params = ctx.oidc.params as Record<string, unknown>;
  const asked = requestedScope(ctx);
  let scope = value ? value.split(' ').filter(Boolean) : [];

  const refreshAllowed = client.grantTypeAllowed('refresh_token');
  const codeFlow = typeof params.response_type !== 'string' || params.response_type.split(' ').includes('code');
  // oidc-provider checks the client's registered scope only after dropping offline_access, so
  // that check is made here: a client registered without it still does not get it.
  const registered = typeof client.scope !== 'string' || client.scope.split(' ').includes('offline_access');
  if (asked.includes('offline_access') && refreshAllowed && codeFlow && registered && !scope.includes('offline_access')) {
    scope.push('offline_access');
  }

  if (asked.length === 0) {
    const fallback = typeof client['gatehouse:default_scope'] === 'string' ? client['gatehouse:default_scope'].split(' ').filter(Boolean) : [];
    // The same rule oidc-provider applies to a requested offline_access.
    scope = fallback.filter((s) => s !== 'offline_access' || (refreshAllowed && codeFlow));
  }
  params.scope = scope.length ? scope.join(' ') : undefined;

  // Only scopes the provider knows can be granted; with none, the sign-in would end in
  // access_denied ("no scope was granted"), so say it now, before any page.
  if (ctx.oidc.requestParamOIDCScopes.size === 0) {
    throw asked.length === 0
      ? // No scope to echo back (the types want one; oidc-provider leaves an undefined one out).
        new errors.InvalidScope('the request names no scope and this client has no default scope: send the scope parameter', undefined as unknown as string)
      : new errors.InvalidScope('none of the requested scopes can be granted to this client', asked.join(' '));
  }
}

/** The scope as the request wrote it, before oidc-provider filtered it. */
function requestedScope(ctx: KoaContextWithOIDC): string[] {
  return (parameterAsSent(ctx, 'scope') ?? '').split(' ').filter(Boolean);
}
