import { errors, type Client, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';

/** A resource server as the provider needs it (the resources service's Resource fits). */
export interface ResourceServerSettings {
  audience: string;
  scopes: readonly string[];
  tokenFormat: 'opaque' | 'jwt';
  signingAlg: 'ES256' | 'RS256';
  accessTokenTtl: number | null;
}

/** Where the provider looks resource servers up: the resources service's per-process copy. */
export interface ResourceCatalog {
  find(audience: string): Promise<ResourceServerSettings | undefined>;
}

type ResourceIndicators = NonNullable<NonNullable<Configuration['features']>['resourceIndicators']>;

const defaultResourceOf = (client: Client | undefined): string | undefined => {
  const value = client?.['gatehouse:default_resource'];
  return typeof value === 'string' && value ? value : undefined;
};

/**
 * RFC 8707 resource indicators through oidc-provider's own feature: a client names the API it
 * wants a token for with `resource=` at /authorize and /token (or gets its configured default
 * resource), and the access token is then that API's alone: its audience, only the scopes that
 * API accepts, its format (opaque or an RFC 9068 JWT), signing algorithm and lifetime.
 *
 * - An indicator that is not a resource server Gatehouse knows is invalid_target, as is one
 *   whose scopes the client may hold none of (it could only ever get an empty token for it).
 * - The code flow with `openid` follows RFC 8707 §2.2: the token endpoint issues the token for
 *   the resource named there; without one the access token is Gatehouse's own (userinfo). A client
 *   configured with a default resource wants tokens for its API: its granted default is used.
 */
export function resourceIndicatorsFeature(catalog: ResourceCatalog, defaultTtl: number): ResourceIndicators {
  return {
    enabled: true,
    // Called without `oneOf` where a request names no resource; with `oneOf` (the resources of
    // a grant) where one must be picked for the token.
    defaultResource: async (_ctx: KoaContextWithOIDC, client: Client, oneOf?: readonly string[]) => {
      const fallback = defaultResourceOf(client);
      if (!oneOf) return fallback;
      if (oneOf.length === 1) return oneOf[0];
      return fallback && oneOf.includes(fallback) ? fallback : oneOf;
    },
    useGrantedResource: async (ctx: KoaContextWithOIDC, model) => {
      const fallback = defaultResourceOf(ctx.oidc.client);
      const granted = (model as { resource?: string | string[] }).resource;
      return fallback !== undefined && (granted === fallback || (Array.isArray(granted) && granted.includes(fallback)));
    },
    getResourceServerInfo: async (_ctx: KoaContextWithOIDC, indicator: string, client: Client) => {
      const resource = await catalog.find(indicator);
      if (!resource) throw new errors.InvalidTarget(`${indicator.slice(0, 200)} is not a resource server this provider knows`);
      const held = new Set((client.scope ?? '').split(' '));
      if (!resource.scopes.some((s) => held.has(s))) {
        throw new errors.InvalidTarget(`this client may hold none of the scopes of ${resource.audience} (${resource.scopes.join(' ')})`);
      }
      return {
        audience: resource.audience,
        scope: resource.scopes.join(' '),
        accessTokenTTL: resource.accessTokenTtl ?? defaultTtl,
        accessTokenFormat: resource.tokenFormat,
        ...(resource.tokenFormat === 'jwt' ? { jwt: { sign: { alg: resource.signingAlg } } } : {}),
      };
    },
  };
}

/** An access token's lifetime: its resource server's when it has one, else Gatehouse's. */
export const accessTokenTtl =
  (defaultTtl: number) =>
  (_ctx: unknown, token: { resourceServer?: { accessTokenTTL?: number | undefined } | undefined }): number =>
    token.resourceServer?.accessTokenTTL ?? defaultTtl;
