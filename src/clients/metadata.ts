import type { Client } from './service.ts';
import type { ClientSettingsInput } from './rules.ts';
import { ValidationError } from '../errors.ts';

/**
 * Clients as the outside world names them: the client metadata of OAuth dynamic client
 * registration (RFC 7591), plus Gatehouse's own fields. Used by the CLI's --json output and
 * by the admin API, in both directions.
 */
export function toClientMetadata(client: Client, clientSecret?: string | null) {
  return {
    client_id: client.clientId,
    ...(clientSecret ? { client_secret: clientSecret } : {}),
    client_name: client.name,
    client_type: client.type,
    grant_types: client.grantTypes,
    response_types: client.grantTypes.includes('authorization_code') ? ['code'] : [],
    redirect_uris: client.redirectUris,
    post_logout_redirect_uris: client.postLogoutRedirectUris,
    allowed_origins: client.allowedOrigins,
    scope: client.scope.join(' '),
    // null: a request that names no scope asks for the registered scope; "": it is refused.
    default_scope: client.defaultScope === null ? null : client.defaultScope.join(' '),
    token_endpoint_auth_method: client.authMethod,
    require_pkce: client.requirePkce,
    require_pushed_authorization_requests: client.requirePar,
    dpop_bound_access_tokens: client.requireDpop,
    skip_consent: client.skipConsent,
    require_mfa: client.requireMfa,
    allow_insecure_redirect: client.allowInsecureRedirect,
    id_token_signed_response_alg: client.idTokenSignedResponseAlg,
    logo_uri: client.logoUri,
    client_uri: client.clientUri,
    // RFC 8707: the resource server a request naming no resource gets its access token for.
    default_resource: client.defaultResource,
    backchannel_logout_uri: client.backchannelLogoutUri,
    backchannel_logout_session_required: client.backchannelLogoutSessionRequired,
    disabled: client.disabled,
    created_at: client.createdAt.toISOString(),
    updated_at: client.updatedAt.toISOString(),
  };
}

/**
 * Metadata names and the settings they set. A Map, not an object: the names come from the
 * caller's JSON, and a plain object would "know" `constructor`, `toString` or `__proto__`
 * through its prototype.
 */
const METADATA_FIELDS = new Map<string, keyof ClientSettingsInput | 'disabled'>([
  ['client_name', 'name'],
  ['client_type', 'type'],
  ['grant_types', 'grantTypes'],
  ['redirect_uris', 'redirectUris'],
  ['post_logout_redirect_uris', 'postLogoutRedirectUris'],
  ['allowed_origins', 'allowedOrigins'],
  ['token_endpoint_auth_method', 'authMethod'],
  ['require_pkce', 'requirePkce'],
  ['require_pushed_authorization_requests', 'requirePar'],
  ['dpop_bound_access_tokens', 'requireDpop'],
  ['skip_consent', 'skipConsent'],
  ['require_mfa', 'requireMfa'],
  ['allow_insecure_redirect', 'allowInsecureRedirect'],
  ['id_token_signed_response_alg', 'idTokenSignedResponseAlg'],
  ['logo_uri', 'logoUri'],
  ['client_uri', 'clientUri'],
  ['default_resource', 'defaultResource'],
  ['backchannel_logout_uri', 'backchannelLogoutUri'],
  ['backchannel_logout_session_required', 'backchannelLogoutSessionRequired'],
  ['disabled', 'disabled'],
]);

const METADATA_NAMES = new Map<string, string>([...[...METADATA_FIELDS].map(([metadata, field]): [string, string] => [field, metadata]), ['scope', 'scope'], ['defaultScope', 'default_scope']]);

/** Field errors named as the API's caller named the fields (redirect_uris, not redirectUris). */
export function withMetadataFieldNames(err: ValidationError): ValidationError {
  return new ValidationError(Object.fromEntries(Object.entries(err.fields).map(([field, why]) => [METADATA_NAMES.get(field) ?? field, why])), err.code);
}

/** What the client may not set; everything else unknown is refused too, by name. */
const READ_ONLY = new Set(['client_id', 'client_secret', 'created_at', 'updated_at', 'response_types']);

/**
 * Reads RFC 7591 metadata into client settings. As in dynamic registration, the auth method
 * decides the type: "none" makes a public client, and a new client that names neither is
 * confidential (client_secret_basic is the RFC 7591 default). Returns unknown field names too.
 */
export function fromClientMetadata(body: Record<string, unknown>, { creating }: { creating: boolean }): { input: ClientSettingsInput & { disabled?: boolean }; unknown: string[] } {
  const input: Record<string, unknown> = {};
  const unknown: string[] = [];
  for (const [key, value] of Object.entries(body)) {
    const field = METADATA_FIELDS.get(key);
    if (key === 'scope') input.scope = typeof value === 'string' ? value.split(/\s+/).filter(Boolean) : value;
    else if (key === 'default_scope') input.defaultScope = typeof value === 'string' ? value.split(/\s+/).filter(Boolean) : value;
    else if (field) input[field] = value;
    else if (!READ_ONLY.has(key)) unknown.push(key);
  }
  if (input.type === undefined && input.authMethod !== undefined) {
    input.type = input.authMethod === 'none' ? 'public' : 'confidential';
  } else if (input.type === undefined && creating) {
    input.type = 'confidential';
  }
  if (input.disabled !== undefined && typeof input.disabled !== 'boolean') {
    throw new ValidationError({ disabled: 'must be true or false' }, 'invalid_client_metadata');
  }
  return { input: input as ClientSettingsInput & { disabled?: boolean }, unknown };
}
