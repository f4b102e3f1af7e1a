/**
 * The ceiling of this stack: oidc-provider (the same version Gatehouse runs) with its default
 * in-memory adapter, static clients, devInteractions for sign-ins (any login, no password check),
 * and a findAccount that returns claims without a database. One process.
 *
 * Env: PORT, BARE_ISSUER (default http://127.0.0.1:$PORT), BARE_CC_ID/BARE_CC_SECRET (client
 * credentials client), BARE_WEB_ID/BARE_WEB_SECRET/BARE_REDIRECT_URI (authorization code client).
 */
import { generateKeyPairSync } from 'node:crypto';
import Provider, { type Configuration } from 'oidc-provider';

const port = Number(process.env.PORT ?? 3999);
const issuer = process.env.BARE_ISSUER ?? `http://127.0.0.1:${port}`;

const jwk = (alg: 'RS256' | 'ES256') => {
  const { privateKey } = alg === 'RS256' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ...privateKey.export({ format: 'jwk' }), kid: `bare-${alg}`, alg, use: 'sig' };
};

const configuration: Configuration = {
  clients: [
    {
      client_id: process.env.BARE_CC_ID ?? 'bench-cc',
      client_secret: process.env.BARE_CC_SECRET ?? 'bench-cc-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: 'read write',
    },
    {
      client_id: process.env.BARE_WEB_ID ?? 'bench-web',
      client_secret: process.env.BARE_WEB_SECRET ?? 'bench-web-secret',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: [process.env.BARE_REDIRECT_URI ?? 'http://127.0.0.1:8765/callback'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  jwks: { keys: [jwk('RS256'), jwk('ES256')] } as Configuration['jwks'],
  cookies: { keys: ['bare-provider-cookie-key-0123456789abcdef'] },
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username', 'updated_at'],
    email: ['email', 'email_verified'],
  },
  scopes: ['openid', 'offline_access', 'read', 'write'],
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    userinfo: { enabled: true },
  },
  async findAccount(_ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return { sub, name: `User ${sub}`, preferred_username: sub, updated_at: 1_700_000_000, email: `${sub}@example.com`, email_verified: true };
      },
    };
  },
};

const provider = new Provider(issuer, configuration);
const server = provider.listen(port, () => console.log(`bare oidc-provider on ${issuer}`));
const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
