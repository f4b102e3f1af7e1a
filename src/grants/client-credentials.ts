import { errors, type KoaContextWithOIDC, type Provider } from 'oidc-provider';
import { USER_SCOPES } from '../clients/rules.ts';

const userScopes = new Set<string>(USER_SCOPES);

/**
 * The client credentials grant, registered through provider.registerGrantType before the
 * built-in one would be. oidc-provider's own handler lets scopes it does not know through and
 * issues a scope-less token when none is asked for; a service expects what OAuth servers do:
 * an unknown or unregistered scope is invalid_scope, and no scope means the client's API
 * scopes (RFC 6749 §3.3 allows a documented default).
 */
export function registerClientCredentialsGrant(provider: Provider): void {
  provider.registerGrantType('client_credentials', async (ctx: KoaContextWithOIDC) => {
    const client = ctx.oidc.client!;
    const allowed = (client.scope ?? '').split(' ').filter((s) => s && !userScopes.has(s));
    const requested = typeof ctx.oidc.params!.scope === 'string' ? ctx.oidc.params!.scope.split(' ').filter(Boolean) : [];

    const refused = requested.find((s) => !allowed.includes(s));
    if (refused) {
      throw new errors.InvalidScope(`requested scope is not allowed for this client: ${refused}`, refused);
    }

    const scope = (requested.length ? [...new Set(requested)] : allowed).join(' ') || undefined;
    const token = new provider.ClientCredentials({ client, scope });
    ctx.oidc.entity('ClientCredentials', token);
    const accessToken = await token.save();

    ctx.body = {
      access_token: accessToken,
      expires_in: token.expiration,
      token_type: token.tokenType,
      ...(token.scope ? { scope: token.scope } : {}),
    };
  }, ['scope']);
}
