import { createLocalJWKSet, type JWK, jwtVerify } from 'jose';
import type { Client, FindAccount, KoaContextWithOIDC } from 'oidc-provider';

/** The members of a private JWK that only the signer holds. */
const PRIVATE_MEMBERS = new Set(['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']);
const publicPart = (jwk: object): JWK => Object.fromEntries(Object.entries(jwk).filter(([k]) => !PRIVATE_MEMBERS.has(k))) as JWK;

/**
 * Introspection (RFC 7662) of Gatehouse's JWT access tokens (RFC 9068). oidc-provider does not
 * store them and refuses to introspect them; an API that prefers asking to verifying gets the
 * same answer it would compute itself from /jwks: active while the signature is this issuer's,
 * `typ` is at+jwt and it has not expired, its client still exists, and its person is not disabled. It cannot know more:
 * a JWT is not looked up, so revoking its grant does not make it inactive (see the README).
 *
 * Who may ask follows the opaque tokens' rule (provider.ts): any confidential client, a public
 * client only about its own tokens.
 */
export function jwtAccessTokenIntrospection(jwks: { keys: object[] }, issuer: string, findAccount: FindAccount) {
  const keys = createLocalJWKSet({ keys: jwks.keys.map(publicPart) });
  return async (ctx: KoaContextWithOIDC, client: Client, token: string): Promise<Record<string, unknown>> => {
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, keys, { issuer, typ: 'at+jwt', algorithms: ['ES256', 'RS256', 'PS256'] }));
    } catch {
      return { active: false };
    }
    const owner = typeof payload.client_id === 'string' ? payload.client_id : undefined;
    if (!owner) return { active: false };
    if (owner !== client.clientId) {
      if (client.clientAuthMethod === 'none') return { active: false };
      // A token whose client was disabled or deleted is inactive, as for opaque tokens.
      if (!(await ctx.oidc.provider.Client.find(owner))) return { active: false };
    }
    // A person disabled or deleted since: inactive, as their opaque tokens are.
    if (typeof payload.sub === 'string' && payload.sub !== owner && !(await findAccount(ctx, payload.sub))) return { active: false };
    const { iss, sub, aud, exp, iat, jti, scope, cnf } = payload;
    return { active: true, token_type: 'Bearer', client_id: owner, iss, sub, aud, exp, iat, jti, scope, ...(cnf ? { cnf } : {}) };
  };
}
