import { z } from 'zod';
import { backchannelHostProblem } from '../logout/backchannel-target.ts';
import { ValidationError } from '../errors.ts';
import { SIGNING_ALGS } from '../keys/service.ts';
import { audienceProblem } from '../resources/audience.ts';

/**
 * What a client may be. Every way of creating or editing a client (CLI, admin pages, admin
 * API, importer) goes through `checkClientSettings`, so the rules live here once.
 */

/** RFC 8628: a device without a browser (a CLI, a TV) has the person sign in on another screen. */
export const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
export const GRANT_TYPES = ['authorization_code', 'refresh_token', 'client_credentials', DEVICE_CODE_GRANT] as const;
export const AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'none'] as const;
export const CLIENT_TYPES = ['confidential', 'public'] as const;
/** Scopes that only make sense with a signed-in user; never handed out by client credentials. */
export const USER_SCOPES = ['openid', 'profile', 'email', 'offline_access', 'userdata'] as const;
/**
 * What a client may register for its ID tokens: the algorithms Gatehouse has signing keys for
 * (discovery's id_token_signing_alg_values_supported lists the same, from the keys).
 */
export const ID_TOKEN_ALGS = SIGNING_ALGS;
/**
 * What a stored client may hold. HS256 only for clients that keep their plain secret (imported
 * HS256 clients): it is the HMAC key. PS256 only for clients registered before it was refused
 * (no key signs it): they stay readable, and an operator moves them to RS256 or ES256.
 */
export const STORED_ID_TOKEN_ALGS = [...ID_TOKEN_ALGS, 'PS256', 'HS256'] as const;

export type GrantType = (typeof GRANT_TYPES)[number];
export type AuthMethod = (typeof AUTH_METHODS)[number];
export type ClientType = (typeof CLIENT_TYPES)[number];

/** The settings of a client as stored and as every caller sees them. */
export interface ClientSettings {
  name: string;
  type: ClientType;
  grantTypes: GrantType[];
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  allowedOrigins: string[];
  scope: string[];
  /**
   * What an authorization request that names no scope asks for (RFC 6749 §3.3: "a pre-defined
   * default value"); always within `scope`. `null`: the registered scope itself. `[]`: no default,
   * such requests are refused with invalid_scope.
   */
  defaultScope: string[] | null;
  authMethod: AuthMethod;
  requirePkce: boolean;
  /**
   * Authorization requests must be pushed first (RFC 9126 `require_pushed_authorization_requests`):
   * a plain /authorize link is refused, so nothing of the request travels in the browser's URL.
   */
  requirePar: boolean;
  /** Access tokens must be DPoP-bound (RFC 9449 `dpop_bound_access_tokens`): a token request without a proof is refused. */
  requireDpop: boolean;
  /** First-party app: people are not asked to consent (django-oauth-toolkit's skip_authorization). */
  skipConsent: boolean;
  /**
   * Signing in to this app takes a second factor (an authenticator code or a verified passkey):
   * a person without one sets one up first, and a session signed in with a password alone is
   * asked again. See src/accounts/mfa/policy.ts.
   */
  requireMfa: boolean;
  /**
   * The operator accepts plain-http redirect URIs on hosts other than loopback (an old tutorial's
   * consumer, a lab network). Off by default: RFC 9700 §4.1 wants codes sent over TLS only.
   */
  allowInsecureRedirect: boolean;
  idTokenSignedResponseAlg: (typeof STORED_ID_TOKEN_ALGS)[number];
  logoUri: string | null;
  clientUri: string | null;
  /**
   * The resource server (its audience) a request naming no `resource` gets its access token for
   * (RFC 8707); null: such requests get a token for Gatehouse itself (userinfo, /userdata).
   */
  defaultResource: string | null;
  /**
   * Where Gatehouse POSTs a logout token when a person's sign-in to this app ends
   * (OpenID Connect Back-Channel Logout 1.0); null: the app is not told.
   */
  backchannelLogoutUri: string | null;
  /** The logout token names the session (`sid`) as well as the person. */
  backchannelLogoutSessionRequired: boolean;
}

/** What a caller may send: everything but the name and type has a sensible default. */
export type ClientSettingsInput = Partial<Record<keyof ClientSettings, unknown>>;

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

function checkUri(value: string, { allowPath, allowHttp = false }: { allowPath: boolean; allowHttp?: boolean }): string | null {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `"${value}" is not an absolute URI`;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return `"${value}" must use https`;
  if (url.protocol === 'http:' && !LOOPBACK_HOSTS.has(url.hostname) && !allowHttp) {
    return `"${value}" must use https (http is allowed only for localhost, 127.0.0.1 and [::1], or for any host with --allow-insecure-redirect)`;
  }
  if (value.includes('#')) return `"${value}" must not contain a fragment`;
  if (url.username || url.password) return `"${value}" must not contain credentials`;
  if (!allowPath && (url.pathname !== '/' || url.search || value.endsWith('/'))) {
    return `"${value}" must be an origin (scheme://host[:port]) without a path`;
  }
  return null;
}

const text = (max: number) => z.string('is required').trim().min(1, 'is required').max(max, `must be at most ${max} characters`);
const list = z.array(z.string().trim()).transform((items) => [...new Set(items.filter(Boolean))]);
const optionalUri = z
  .string()
  .trim()
  .transform((v) => v || null)
  .nullable();

const shape = z.object({
  name: text(200),
  type: z.enum(CLIENT_TYPES, 'must be confidential or public'),
  grantTypes: list.pipe(z.array(z.enum(GRANT_TYPES, `must be ${GRANT_TYPES.join(', ')}`))),
  redirectUris: list,
  postLogoutRedirectUris: list,
  allowedOrigins: list,
  scope: list,
  defaultScope: list.nullable().optional(),
  authMethod: z.enum(AUTH_METHODS, `must be one of ${AUTH_METHODS.join(', ')}`).optional(),
  requirePkce: z.boolean('must be true or false').optional(),
  requirePar: z.boolean('must be true or false').optional(),
  requireDpop: z.boolean('must be true or false').optional(),
  skipConsent: z.boolean('must be true or false').optional(),
  requireMfa: z.boolean('must be true or false').optional(),
  allowInsecureRedirect: z.boolean('must be true or false').optional(),
  idTokenSignedResponseAlg: z.enum(ID_TOKEN_ALGS, `must be one of ${ID_TOKEN_ALGS.join(', ')}`).optional(),
  logoUri: optionalUri.optional(),
  clientUri: optionalUri.optional(),
  defaultResource: optionalUri.optional(),
  backchannelLogoutUri: optionalUri.optional(),
  backchannelLogoutSessionRequired: z.boolean('must be true or false').optional(),
});

/** Why a value people ask for is refused, in words (a Map: the value is user input, never a prototype key). */
const refusedReasons = new Map<string, string>([
  ['client_secret_jwt', 'client_secret_jwt needs the plain secret on the server; Gatehouse stores secrets hashed. Use client_secret_basic or client_secret_post'],
  ['HS256', 'HS256 needs the plain client secret on the server; Gatehouse stores secrets hashed. Use RS256 or ES256'],
  ['HS384', 'HS384 needs the plain client secret on the server; Gatehouse stores secrets hashed. Use RS256 or ES256'],
  ['HS512', 'HS512 needs the plain client secret on the server; Gatehouse stores secrets hashed. Use RS256 or ES256'],
  ['PS256', 'Gatehouse has no PS256 signing key, so no ID token of this client could be signed. Use RS256 or ES256'],
]);

/**
 * Checks and normalises client settings. `apiScopes` are the API scopes there are now (rows of
 * the scopes table: ScopesService.names); throws ValidationError naming every field at fault.
 */
export function checkClientSettings(
  input: ClientSettingsInput,
  apiScopes: readonly string[],
  { keepsPlainSecret = false, resources }: { keepsPlainSecret?: boolean; resources?: readonly string[] } = {},
): ClientSettings {
  const fields: Record<string, string> = {};

  for (const [field, value] of [['authMethod', input.authMethod], ['idTokenSignedResponseAlg', input.idTokenSignedResponseAlg]] as const) {
    if (keepsPlainSecret && value === 'HS256') continue;
    const refused = typeof value === 'string' ? refusedReasons.get(value) : undefined;
    if (refused) fields[field] = refused;
  }
  if (Object.keys(fields).length) throw new ValidationError(fields, 'invalid_client_metadata');

  const parsed = (keepsPlainSecret ? shape.extend({ idTokenSignedResponseAlg: z.enum(STORED_ID_TOKEN_ALGS).optional() }) : shape).safeParse({
    grantTypes: [],
    redirectUris: [],
    postLogoutRedirectUris: [],
    allowedOrigins: [],
    scope: [],
    ...Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)),
  });
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const field = String(issue.path[0] ?? 'client');
      fields[field] ??= issue.message;
    }
    throw new ValidationError(fields, 'invalid_client_metadata');
  }
  const s = parsed.data;

  if (s.grantTypes.length === 0) fields.grantTypes = 'choose at least one grant type';
  const authMethod: AuthMethod = s.authMethod ?? (s.type === 'public' ? 'none' : 'client_secret_basic');
  if (s.type === 'public' && authMethod !== 'none') fields.authMethod = 'a public client has no secret: its auth method is none';
  if (s.type === 'confidential' && authMethod === 'none') {
    fields.authMethod = 'a confidential client authenticates with its secret: use client_secret_basic or client_secret_post';
  }
  if (s.type === 'public' && s.grantTypes.includes('client_credentials')) {
    fields.grantTypes = 'a public client cannot use client_credentials: it has no secret to prove who it is';
  }
  if (s.grantTypes.includes('refresh_token') && !s.grantTypes.includes('authorization_code') && !s.grantTypes.includes(DEVICE_CODE_GRANT)) {
    fields.grantTypes = 'refresh_token comes with authorization_code or the device code grant';
  }
  if (s.grantTypes.includes('authorization_code') && s.redirectUris.length === 0) {
    fields.redirectUris = 'the authorization code grant needs at least one redirect URI';
  }

  // Only where the browser is sent back to: origins and logos stay https.
  const allowHttp = s.allowInsecureRedirect ?? false;
  for (const [field, uris, allowPath, allowHttpHere] of [
    ['redirectUris', s.redirectUris, true, allowHttp],
    ['postLogoutRedirectUris', s.postLogoutRedirectUris, true, allowHttp],
    ['allowedOrigins', s.allowedOrigins, false, false],
  ] as const) {
    const problem = uris.map((uri) => checkUri(uri, { allowPath, allowHttp: allowHttpHere })).find(Boolean);
    if (problem) fields[field] = problem;
  }
  for (const field of ['logoUri', 'clientUri', 'backchannelLogoutUri'] as const) {
    const value = s[field];
    if (value) {
      // Gatehouse itself POSTs to the back-channel URI: never to a cloud metadata service (SSRF).
      const problem = checkUri(value, { allowPath: true }) ?? (field === 'backchannelLogoutUri' ? backchannelHostProblem(value) : undefined);
      if (problem) fields[field] = problem;
    }
  }

  if (s.defaultResource) {
    const problem = audienceProblem(s.defaultResource);
    if (problem) fields.defaultResource = problem;
    else if (resources && !resources.includes(s.defaultResource)) {
      fields.defaultResource = `no resource server has the audience ${s.defaultResource}: create it first (resources create --audience …)`;
    }
  }

  const known = new Set<string>([...USER_SCOPES, ...apiScopes]);
  const scope = s.scope.flatMap((v) => v.split(/\s+/)).filter(Boolean);
  const unknown = scope.filter((v) => !known.has(v));
  if (unknown.length) fields.scope = `unknown scope ${unknown.join(', ')}; known scopes are ${[...known].join(' ')}`;
  const registered = scope.length ? [...new Set(scope)] : scopeForGrantTypes(s.grantTypes, apiScopes);

  const defaults = s.defaultScope ? [...new Set(s.defaultScope.flatMap((v) => v.split(/\s+/)).filter(Boolean))] : null;
  if (defaults && !fields.scope) {
    const unknownDefaults = defaults.filter((v) => !known.has(v));
    const unregistered = defaults.filter((v) => known.has(v) && !registered.includes(v));
    if (unknownDefaults.length) {
      fields.defaultScope = `unknown scope ${unknownDefaults.join(', ')}; known scopes are ${[...known].join(' ')}`;
    } else if (unregistered.length) {
      fields.defaultScope = `${unregistered.join(', ')} ${unregistered.length === 1 ? 'is' : 'are'} not in the client's scope (${registered.join(' ')}): the default must be part of what the client may ask`;
    } else if (defaults.includes('offline_access') && !s.grantTypes.includes('refresh_token')) {
      fields.defaultScope = 'offline_access needs the refresh_token grant';
    }
  }

  if (Object.keys(fields).length) throw new ValidationError(fields, 'invalid_client_metadata');

  return {
    name: s.name,
    type: s.type,
    grantTypes: GRANT_TYPES.filter((g) => s.grantTypes.includes(g)),
    redirectUris: s.redirectUris,
    postLogoutRedirectUris: s.postLogoutRedirectUris,
    allowedOrigins: s.allowedOrigins,
    scope: registered,
    defaultScope: defaults,
    authMethod,
    requirePkce: s.requirePkce ?? false,
    requirePar: s.requirePar ?? false,
    requireDpop: s.requireDpop ?? false,
    skipConsent: s.skipConsent ?? false,
    requireMfa: s.requireMfa ?? false,
    allowInsecureRedirect: allowHttp,
    idTokenSignedResponseAlg: s.idTokenSignedResponseAlg ?? 'RS256',
    logoUri: s.logoUri ?? null,
    clientUri: s.clientUri ?? null,
    defaultResource: s.defaultResource ?? null,
    backchannelLogoutUri: s.backchannelLogoutUri ?? null,
    backchannelLogoutSessionRequired: s.backchannelLogoutSessionRequired ?? false,
  };
}

/** Without an explicit scope: sign-in scopes for sign-in clients, the API scopes for services. */
function scopeForGrantTypes(grantTypes: readonly string[], apiScopes: readonly string[]): string[] {
  const scope: string[] = [];
  if (grantTypes.includes('authorization_code') || grantTypes.includes(DEVICE_CODE_GRANT)) scope.push('openid', 'profile', 'email');
  if (grantTypes.includes('refresh_token')) scope.push('offline_access');
  if (grantTypes.includes('client_credentials')) scope.push(...apiScopes);
  return scope;
}

/** What a request that names no scope asks for: the client's default, else its registered scope. */
export function effectiveDefaultScope(settings: Pick<ClientSettings, 'scope' | 'defaultScope'>): string[] {
  return settings.defaultScope ?? settings.scope;
}
