import { errors, type KoaContextWithOIDC, type Provider } from 'oidc-provider';
import { USER_SCOPES } from '../clients/rules.ts';
import { guardGrantHandler } from './internals.ts';

const userScopes = new Set<string>(USER_SCOPES);

/**
 * The client credentials grant is oidc-provider's own (DPoP, mTLS binding, resource indicators
 * and authorization_details as upstream has them), with Gatehouse's scope rules in front of
 * it. Upstream lets through scopes the provider does not know and issues a scope-less token
 * when none is asked for; a service expects what OAuth servers do: an unknown or unregistered
 * scope is invalid_scope, and no scope means the client's API scopes (RFC 6749 §3.3 allows a
 * documented default).
 */
export function applyClientCredentialsScopeRules(provider: Provider): void {
  guardGrantHandler(provider, 'client_credentials', settleClientCredentialsScope);
}

function settleClientCredentialsScope(ctx: KoaContextWithOIDC): void {
  const client = ctx.oidc.client!;
  const params = ctx.oidc.params as { scope?: unknown };
  const allowed = (client.scope ?? '').split(' ').filter((s) => s && !userScopes.has(s));
  const requested = typeof params.scope === 'string' ? params.scope.split(' ').filter(Boolean) : [];

  const refused = requested.find((s) => !allowed.includes(s));
  if (refused) {
    throw new errors.InvalidScope(`requested scope is not allowed for this client: ${refused}`, refused);
  }
  params.scope = (requested.length ? [...new Set(requested)] : allowed).join(' ') || undefined;
}
