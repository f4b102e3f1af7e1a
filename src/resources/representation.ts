import { ValidationError } from '../errors.ts';
import type { Resource, ResourceInput } from './service.ts';

/** A resource as the CLI's --json and the admin API show it. */
export function resourceJson(r: Resource) {
  return {
    audience: r.audience,
    name: r.name,
    scopes: r.scopes,
    token_format: r.tokenFormat,
    signing_alg: r.signingAlg,
    // null: Gatehouse's access token lifetime (GATEHOUSE_ACCESS_TOKEN_TTL).
    access_token_ttl: r.accessTokenTtl,
    created_at: r.createdAt.toISOString(),
    updated_at: r.updatedAt.toISOString(),
  };
}

const FIELDS: Record<string, keyof ResourceInput> = {
  audience: 'audience',
  name: 'name',
  scopes: 'scopes',
  token_format: 'tokenFormat',
  signing_alg: 'signingAlg',
  access_token_ttl: 'accessTokenTtl',
};
const NAMES = Object.fromEntries(Object.entries(FIELDS).map(([json, field]) => [field, json]));
const READ_ONLY = new Set(['created_at', 'updated_at']);

/** An admin API body read into resource input; an unknown field is refused by name. */
export function resourceInputFrom(body: Record<string, unknown>): ResourceInput {
  const input: Record<string, unknown> = {};
  const unknown: string[] = [];
  for (const [key, value] of Object.entries(body)) {
    const field = FIELDS[key];
    if (field) input[field] = value;
    else if (!READ_ONLY.has(key)) unknown.push(key);
  }
  if (unknown.length) throw new ValidationError(Object.fromEntries(unknown.map((k) => [k, 'is not a resource field'])));
  return input as ResourceInput;
}

/** Field errors named as the admin API's caller named the fields (token_format, not tokenFormat). */
export function withResourceFieldNames(err: ValidationError): ValidationError {
  return new ValidationError(Object.fromEntries(Object.entries(err.fields).map(([field, why]) => [NAMES[field] ?? field, why])), err.code);
}
