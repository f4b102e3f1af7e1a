import { ValidationError } from '../errors.ts';
import { presetNamed, type Protocol } from './presets.ts';

/** One rule set for every entry point (CLI, admin API, admin pages): per-field errors, all at once. */

export interface IdpSettings {
  name: string;
  protocol: Protocol;
  preset: string | null;
  issuer: string;
  clientId: string;
  scope: string;
  button: string;
  enabled: boolean;
  createAccounts: boolean;
}

export interface IdpInput {
  name?: unknown;
  preset?: unknown;
  issuer?: unknown;
  clientId?: unknown;
  clientSecret?: unknown;
  scope?: unknown;
  button?: unknown;
  position?: unknown;
  enabled?: unknown;
  createAccounts?: unknown;
}

// The name is part of the redirect URI registered upstream (ISSUER/idp/NAME/callback).
const NAME = /^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses
const CONTROL = /[\x00-\x1F\x7F]/;
const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * An issuer URL, or why not: https, or plain http only on this machine (tests, development),
 * since the client secret and the person's tokens travel over it.
 */
export function issuerProblem(issuer: string): string | undefined {
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    return 'must be a URL, e.g. https://accounts.example.com';
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK.has(url.hostname))) return 'must be an https URL (plain http only for localhost)';
  if (url.search || url.hash || url.username || url.password) return 'must be a URL without query, fragment or credentials';
  return undefined;
}

export const isLoopbackHttp = (issuer: string) => new URL(issuer).protocol === 'http:';

const text = (v: unknown) => (typeof v === 'string' ? v.trim() : v);

/** The settings given, over `current` for an update; the secret and position are checked apart. */
export function checkIdpSettings(input: IdpInput, current?: IdpSettings): IdpSettings {
  const fields: Record<string, string> = {};
  let name = current?.name ?? '';
  if (!current) {
    const given = text(input.name);
    if (typeof given !== 'string' || !NAME.test(given)) fields.name = 'must be 1 to 40 lower-case letters, digits or dashes (it is part of the redirect URI)';
    else name = given;
  } else if (input.name !== undefined && input.name !== current.name) {
    fields.name = 'cannot change: the upstream knows the redirect URI by it; create a new provider instead';
  }

  let protocol: Protocol = current?.protocol ?? 'oidc';
  let preset = current?.preset ?? null;
  let issuer = current?.issuer;
  let scope = current?.scope;
  let displayName = current ? undefined : name;
  if (input.preset !== undefined && input.preset !== null && input.preset !== '') {
    const found = typeof input.preset === 'string' ? presetNamed(input.preset.trim()) : 'must be a string';
    if (typeof found === 'string') fields.preset = found;
    else {
      preset = (input.preset as string).trim();
      protocol = found.protocol;
      issuer = found.issuer;
      scope = found.scope;
      displayName = found.displayName;
    }
  }
  if (input.issuer !== undefined) {
    const given = text(input.issuer);
    const problem = typeof given === 'string' ? issuerProblem(given) : 'must be a string';
    if (problem) fields.issuer = problem;
    // A preset's own address can be replaced (GitHub Enterprise Server, a stand-in in tests).
    else issuer = given as string;
  }
  if (!issuer && !fields.issuer && !fields.preset) fields.issuer = 'is required (the upstream issuer URL), or name a --preset';

  let clientId = current?.clientId ?? '';
  if (input.clientId !== undefined || !current) {
    const given = text(input.clientId);
    if (typeof given !== 'string' || !given || given.length > 500 || CONTROL.test(given))
      fields.clientId = 'is required: the client id registered at the upstream';
    else clientId = given;
  }

  if (input.scope !== undefined) {
    const given = typeof input.scope === 'string' ? input.scope.split(/\s+/).filter(Boolean) : Array.isArray(input.scope) ? input.scope : undefined;
    if (!given || given.some((s) => typeof s !== 'string' || !/^[\x21\x23-\x5B\x5D-\x7E]+$/.test(s))) fields.scope = 'must be scope names separated by spaces';
    else scope = [...new Set(given as string[])].join(' ');
  }
  scope ??= protocol === 'github' ? 'read:user user:email' : 'openid email profile';
  if (protocol === 'oidc' && !scope.split(' ').includes('openid') && !fields.scope)
    fields.scope = 'must include openid (an OpenID Connect provider signs the person in with it)';

  let button = current?.button ?? `Sign in with ${displayName ?? name}`;
  if (input.button !== undefined) {
    const given = text(input.button);
    if (typeof given !== 'string' || !given || given.length > 100 || CONTROL.test(given)) fields.button = 'must be one line of text, at most 100 characters';
    else button = given;
  }
  const flag = (key: 'enabled' | 'createAccounts', fallback: boolean) => {
    const v = input[key];
    if (v === undefined) return fallback;
    if (typeof v !== 'boolean') fields[key] = 'must be true or false';
    return v === true;
  };
  const enabled = flag('enabled', current?.enabled ?? true);
  const createAccounts = flag('createAccounts', current?.createAccounts ?? true);

  if (Object.keys(fields).length) throw new ValidationError(fields);
  return { name, protocol, preset, issuer: issuer!, clientId, scope, button, enabled, createAccounts };
}

/** A position (the button order), or the field error. */
export function checkPosition(v: unknown): number {
  const n = typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 10_000) throw new ValidationError({ position: 'must be a whole number from 0 to 10000' });
  return n;
}

export function checkClientSecret(v: unknown): string {
  if (typeof v !== 'string' || !v.trim() || v.length > 2000)
    throw new ValidationError({ clientSecret: 'is required: the client secret the upstream gave (at most 2000 characters)' });
  return v.trim();
}
