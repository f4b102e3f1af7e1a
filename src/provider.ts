import Provider, { type Configuration, type FindAccount, type KoaContextWithOIDC } from 'oidc-provider';
import type { Knex } from 'knex';
import { createAdapterFactory } from '../adapters/index.ts';
import type { ClientsService } from './clients/service.ts';
import type { Config } from './config.ts';
import { registerClientCredentialsGrant } from './grants/client-credentials.ts';
import type { Views } from '../interactions/views.ts';

export interface ProviderDeps {
  config: Config;
  db: Knex;
  clients: ClientsService;
  jwks: { keys: object[] };
  cookieKeys: string[];
  findAccount: FindAccount;
  views: Views;
}

/** Token and session lifetimes in seconds; one place so they stay consistent with each other. */
export const LIFETIMES = {
  AccessToken: 60 * 60,
  ClientCredentials: 60 * 60,
  AuthorizationCode: 60,
  IdToken: 60 * 60,
  RefreshToken: 30 * 24 * 60 * 60,
  Interaction: 60 * 60,
  Session: 14 * 24 * 60 * 60,
  // A grant must outlive every refresh token issued under it, or the token dies early.
  Grant: 30 * 24 * 60 * 60,
} as const;

export function createProvider(deps: ProviderDeps): Provider {
  const { config, clients, views } = deps;

  const configuration: Configuration = {
    adapter: createAdapterFactory(deps.db, clients),
    jwks: deps.jwks as Configuration['jwks'],
    cookies: {
      keys: deps.cookieKeys,
      long: { httpOnly: true, sameSite: 'lax' },
      short: { httpOnly: true, sameSite: 'lax' },
    },
    findAccount: deps.findAccount,
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username', 'updated_at'],
      email: ['email', 'email_verified'],
    },
    scopes: ['openid', 'offline_access', ...config.apiScopes],
    responseTypes: ['code'],
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'none'],
    extraClientMetadata: {
      properties: ['gatehouse:allowed_origins', 'gatehouse:require_pkce'],
    },
    pkce: {
      // PKCE (S256 only in oidc-provider 9) for public clients always, for others on request.
      required: (_ctx, client) => client.clientAuthMethod === 'none' || client['gatehouse:require_pkce'] === true,
    },
    clientBasedCORS: (_ctx, origin, client) => {
      const origins = client['gatehouse:allowed_origins'];
      return Array.isArray(origins) && origins.includes(origin);
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      // Resource servers introspect tokens issued to other clients, so any authenticated
      // confidential client may; a public client only its own tokens.
      introspection: {
        enabled: true,
        allowedPolicy: async (_ctx, client, token) =>
          client.clientAuthMethod !== 'none' || token.clientId === client.clientId,
      },
      // RFC 7009: a client revokes only tokens issued to it.
      revocation: {
        enabled: true,
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
      },
      userinfo: { enabled: true },
      rpInitiatedLogout: { enabled: true },
    },
    // The paths DESIGN.md promises (oidc-provider's defaults are /auth, /me, /token/introspection …).
    routes: {
      authorization: '/authorize',
      token: '/token',
      userinfo: '/userinfo',
      jwks: '/jwks',
      introspection: '/introspect',
      revocation: '/revoke',
      end_session: '/session/end',
    },
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    ttl: {
      AccessToken: LIFETIMES.AccessToken,
      ClientCredentials: LIFETIMES.ClientCredentials,
      AuthorizationCode: LIFETIMES.AuthorizationCode,
      IdToken: LIFETIMES.IdToken,
      RefreshToken: LIFETIMES.RefreshToken,
      Interaction: LIFETIMES.Interaction,
      Session: LIFETIMES.Session,
      Grant: LIFETIMES.Grant,
    },
    renderError: async (ctx: KoaContextWithOIDC, out) => {
      ctx.type = 'html';
      ctx.body = views.render('error.njk', {
        title: 'Something went wrong',
        error: out.error,
        description: out.error_description,
      });
    },
  };

  const provider = new Provider(config.issuer, configuration);
  provider.proxy = config.trustProxy;

  // Stored secrets are hashes (see clients/secrets.ts); this is oidc-provider's supported hook
  // for comparing a presented secret against what the client metadata carries.
  provider.Client.prototype.compareClientSecret = async function compareClientSecret(this: { clientSecret?: string }, presented: string) {
    return typeof this.clientSecret === 'string' && clients.verifySecret(this.clientSecret, presented);
  };

  registerClientCredentialsGrant(provider);
  return provider;
}
