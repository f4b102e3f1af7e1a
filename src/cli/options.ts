import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ValidationError } from '../errors.ts';
import { explainParseError } from './usage.ts';

/** What the operator typed is not a command line the CLI takes: exit 2, with the usage. */
export class UsageError extends Error {}

export type Options = NonNullable<ParseArgsConfig['options']>;

/** A command's arguments against its options, plus --json and --help, which every command takes. */
export function parse<O extends Options>(args: string[], options: O) {
  const every = { ...options, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } satisfies Options;
  try {
    return parseArgs({ args, options: every, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(explainParseError(err, Object.keys(every)));
  }
}

/** The one positional a command takes (a client id, a username…). */
export function requireId(positionals: string[], what: string): string {
  const id = positionals[0];
  if (!id) throw new UsageError(`missing ${what}`);
  if (positionals.length > 1) throw new UsageError(`unexpected argument ${positionals[1]}`);
  return id;
}

// Validation errors name fields as the services do; an operator typed options.
const OPTION_NAMES: Record<string, string> = {
  name: '--name',
  type: '--type',
  grantTypes: '--grant',
  redirectUris: '--redirect-uri',
  postLogoutRedirectUris: '--post-logout-redirect-uri',
  allowedOrigins: '--origin',
  scope: '--scope',
  defaultScope: '--default-scope',
  authMethod: '--auth-method',
  requirePkce: '--require-pkce',
  requirePar: '--require-par',
  requireDpop: '--require-dpop',
  skipConsent: '--skip-consent',
  requireMfa: '--require-mfa',
  allowInsecureRedirect: '--allow-insecure-redirect',
  idTokenSignedResponseAlg: '--id-token-alg',
  logoUri: '--logo-uri',
  clientUri: '--client-uri',
  username: '--username',
  email: '--email',
  description: '--description',
  defaultResource: '--default-resource',
  backchannelLogoutUri: '--backchannel-logout-uri',
  backchannelLogoutSessionRequired: '--backchannel-logout-session-required',
  audience: '--audience',
  scopes: '--scope',
  tokenFormat: '--token-format',
  signingAlg: '--signing-alg',
  accessTokenTtl: '--access-token-ttl',
  issuer: '--issuer',
  clientId: '--client-id',
  clientSecret: '--client-secret-stdin',
  button: '--button',
  position: '--position',
  preset: '--preset',
  createAccounts: '--no-create-accounts',
  idps: '--idp',
};

export function withOptionNames(err: ValidationError): ValidationError {
  return new ValidationError(
    Object.fromEntries(
      Object.entries(err.fields).map(([field, why]) => [(Object.hasOwn(OPTION_NAMES, field) ? OPTION_NAMES[field] : undefined) ?? field, why]),
    ),
    err.code,
  );
}
