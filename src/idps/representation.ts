import { ValidationError } from '../errors.ts';
import type { IdpInput } from './rules.ts';
import type { Idp, LinkedIdentity } from './service.ts';

/** A provider as the CLI's --json and the admin API show it: never its client secret. */
export function idpJson(idp: Idp, redirectUri: string) {
  return {
    name: idp.name,
    protocol: idp.protocol,
    preset: idp.preset,
    issuer: idp.issuer,
    client_id: idp.clientId,
    scope: idp.scope,
    button: idp.button,
    position: idp.position,
    enabled: idp.enabled,
    create_accounts: idp.createAccounts,
    redirect_uri: redirectUri,
    created_at: idp.createdAt.toISOString(),
    updated_at: idp.updatedAt.toISOString(),
  };
}

export function linkJson(link: LinkedIdentity) {
  return {
    idp: link.idpName,
    subject: link.subject,
    email: link.email,
    created_at: link.createdAt.toISOString(),
    last_used_at: link.lastUsedAt?.toISOString() ?? null,
  };
}

const FIELDS: Record<string, keyof IdpInput> = {
  name: 'name',
  preset: 'preset',
  issuer: 'issuer',
  client_id: 'clientId',
  client_secret: 'clientSecret',
  scope: 'scope',
  button: 'button',
  position: 'position',
  enabled: 'enabled',
  create_accounts: 'createAccounts',
};
const NAMES = Object.fromEntries(Object.entries(FIELDS).map(([json, field]) => [field, json]));
const READ_ONLY = new Set(['protocol', 'redirect_uri', 'created_at', 'updated_at']);

/** An admin API body read into provider input; an unknown field is refused by name. */
export function idpInputFrom(body: Record<string, unknown>): IdpInput {
  const input: Record<string, unknown> = {};
  const unknown: string[] = [];
  for (const [key, value] of Object.entries(body)) {
    const field = Object.hasOwn(FIELDS, key) ? FIELDS[key] : undefined;
    if (field) input[field] = value;
    else if (!READ_ONLY.has(key)) unknown.push(key);
  }
  if (unknown.length) throw new ValidationError(Object.fromEntries(unknown.map((k) => [k, 'is not an identity provider field'])));
  return input as IdpInput;
}

/** Field errors named as the admin API's caller named them (client_id, not clientId). */
export function withIdpFieldNames(err: ValidationError): ValidationError {
  return new ValidationError(Object.fromEntries(Object.entries(err.fields).map(([field, why]) => [NAMES[field] ?? field, why])), err.code);
}
