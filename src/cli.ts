import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError, loadConfig } from './config.ts';
import { GatehouseError, ValidationError } from './errors.ts';
import { openServices, type Services } from './services.ts';
import type { Client } from './clients/service.ts';
import { toClientMetadata } from './clients/metadata.ts';
import type { User } from './accounts/service.ts';
import { readPassword } from './cli-password.ts';
import { asksForHelp, didYouMean, explainParseError, usageFor } from './cli-usage.ts';
import { CLI_ACTOR } from './admin/audit.ts';
import { importFromDot, type ImportReport } from './importers/dot/import.ts';
import { DotSourceError } from './importers/dot/source.ts';
import { adminTokenJson, apiKeyJson, userJson } from './admin/representations.ts';
import { scopeJson, scopesWithBuiltIns } from './scopes/representation.ts';

/**
 * `npm run -s cli -- <command>`: the operator's command line. Every command calls the same
 * services as the admin; --json prints machine-readable output.
 */

const USAGE = `usage: npm run -s cli -- <command> [options] [--json]

  help [COMMAND [SUBCOMMAND]]               this text, or one command's (so does --help or -h
                                            after any command)
  migrate                                   apply database migrations; names what it applied
  clients create --name N --type confidential|public
                 --grant authorization_code|refresh_token|client_credentials (repeatable)
                 [--redirect-uri URI]… [--post-logout-redirect-uri URI]… [--origin URL]…
                 [--scope "openid profile email offline_access"]
                 [--default-scope "openid profile"]  what a request without scope asks for
                                            (default: the --scope; "" refuses such requests)
                 [--auth-method client_secret_basic|client_secret_post|none] [--require-pkce]
                 [--logo-uri URL] [--client-uri URL] [--skip-consent] [--id-token-alg RS256|ES256|PS256]
                 [--allow-insecure-redirect]   plain-http redirect URIs on any host (unsafe)
  clients list
  clients show ID
  clients update ID [any create option] [--no-require-pkce] [--no-skip-consent] [--disable | --enable]
                 [--no-default-scope]       a request without scope asks for the --scope again
  clients delete ID
  clients rotate-secret ID
  users create --username U --email E [--name N] [--password-stdin] [--admin] [--email-verified]
                                            without --password-stdin, asks twice on the terminal
  users list [--search TEXT]
  users show ID|USERNAME
  users set-password ID|USERNAME [--password-stdin]
  users disable ID|USERNAME                 sign-in refused, tokens revoked
  users enable ID|USERNAME
  api-keys create --client CLIENT_ID --scope userdata:read --scope userdata:write [--name N]
                                            prints the key once
  api-keys list [--client CLIENT_ID]
  api-keys revoke KEY_ID
  users grant-admin ID|USERNAME | remove-admin ID|USERNAME
  admin-tokens create --name N              a token for the admin API, printed once
  admin-tokens list | revoke ID
  import dot --from SOURCE [--dry-run]      import django-oauth-toolkit applications, users and
                                            live refresh tokens (SOURCE: SQLite file, postgres://
                                            URL, or a dumpdata .json file)
  keys list
  keys rotate                               new signing keys; the old ones stay published
  keys retire KID                           stop publishing a rotated key
  scopes create --name N --description D    an API scope clients may be given; D is what the
                                            consent page shows
  scopes list                               API scopes and the built-in ones
  scopes delete NAME                        refused while a client's scope holds it`;

class UsageError extends Error {}

const COMMANDS: Record<string, string[]> = {
  migrate: [],
  clients: ['create', 'list', 'show', 'update', 'delete', 'rotate-secret'],
  users: ['create', 'list', 'show', 'set-password', 'disable', 'enable', 'grant-admin', 'remove-admin'],
  'api-keys': ['create', 'list', 'revoke'],
  'admin-tokens': ['create', 'list', 'revoke'],
  import: ['dot'],
  keys: ['list', 'rotate', 'retire'],
  scopes: ['create', 'list', 'delete'],
};

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
  skipConsent: '--skip-consent',
  allowInsecureRedirect: '--allow-insecure-redirect',
  idTokenSignedResponseAlg: '--id-token-alg',
  logoUri: '--logo-uri',
  clientUri: '--client-uri',
  username: '--username',
  email: '--email',
  description: '--description',
};

function withOptionNames(err: ValidationError): ValidationError {
  return new ValidationError(Object.fromEntries(Object.entries(err.fields).map(([field, why]) => [OPTION_NAMES[field] ?? field, why])), err.code);
}

interface Output {
  json: boolean;
  print(human: string, machine: unknown): void;
}

const clientOptions = {
  name: { type: 'string' },
  type: { type: 'string' },
  grant: { type: 'string', multiple: true },
  'redirect-uri': { type: 'string', multiple: true },
  'post-logout-redirect-uri': { type: 'string', multiple: true },
  origin: { type: 'string', multiple: true },
  scope: { type: 'string', multiple: true },
  'default-scope': { type: 'string' },
  'no-default-scope': { type: 'boolean' },
  'auth-method': { type: 'string' },
  'require-pkce': { type: 'boolean' },
  'no-require-pkce': { type: 'boolean' },
  'skip-consent': { type: 'boolean' },
  'no-skip-consent': { type: 'boolean' },
  'allow-insecure-redirect': { type: 'boolean' },
  'no-allow-insecure-redirect': { type: 'boolean' },
  'logo-uri': { type: 'string' },
  'client-uri': { type: 'string' },
  'id-token-alg': { type: 'string' },
  disable: { type: 'boolean' },
  enable: { type: 'boolean' },
} satisfies ParseArgsConfig['options'];

type Options = NonNullable<ParseArgsConfig['options']>;

function parse<O extends Options>(args: string[], options: O) {
  const every = { ...options, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } satisfies Options;
  try {
    return parseArgs({ args, options: every, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(explainParseError(err, Object.keys(every)));
  }
}

function clientInputFrom(values: Record<string, unknown>) {
  const list = (key: string) => values[key] as string[] | undefined;
  return {
    name: values.name,
    type: values.type,
    grantTypes: list('grant'),
    redirectUris: list('redirect-uri'),
    postLogoutRedirectUris: list('post-logout-redirect-uri'),
    allowedOrigins: list('origin'),
    scope: list('scope')?.flatMap((s) => s.split(/\s+/)).filter(Boolean),
    defaultScope: values['no-default-scope'] ? null : typeof values['default-scope'] === 'string' ? values['default-scope'].split(/\s+/).filter(Boolean) : undefined,
    authMethod: values['auth-method'],
    requirePkce: values['require-pkce'] ? true : values['no-require-pkce'] ? false : undefined,
    skipConsent: values['skip-consent'] ? true : values['no-skip-consent'] ? false : undefined,
    allowInsecureRedirect: values['allow-insecure-redirect'] ? true : values['no-allow-insecure-redirect'] ? false : undefined,
    logoUri: values['logo-uri'],
    clientUri: values['client-uri'],
    idTokenSignedResponseAlg: values['id-token-alg'],
  };
}

function clientText(client: Client, clientSecret?: string | null): string {
  const lines = [
    `client_id:     ${client.clientId}`,
    ...(clientSecret ? [`client_secret: ${clientSecret}   (shown once: store it now)`] : []),
    `name:          ${client.name}`,
    `type:          ${client.type}${client.disabled ? ' (disabled)' : ''}`,
    `grant types:   ${client.grantTypes.join(' ')}`,
    `auth method:   ${client.authMethod}`,
    `scope:         ${client.scope.join(' ')}`,
    `default scope: ${client.defaultScope === null ? `${client.scope.join(' ')} (the scope)` : client.defaultScope.length ? client.defaultScope.join(' ') : 'none: a request must name its scope'}`,
    `require PKCE:  ${client.type === 'public' ? 'yes (public client)' : client.requirePkce ? 'yes' : 'no'}`,
  ];
  if (client.redirectUris.length) lines.push(`redirect URIs: ${client.redirectUris.join(' ')}`);
  if (client.postLogoutRedirectUris.length) lines.push(`post-logout:   ${client.postLogoutRedirectUris.join(' ')}`);
  if (client.allowedOrigins.length) lines.push(`origins:       ${client.allowedOrigins.join(' ')}`);
  return lines.join('\n');
}

function requireId(positionals: string[], what: string): string {
  const id = positionals[0];
  if (!id) throw new UsageError(`missing ${what}`);
  if (positionals.length > 1) throw new UsageError(`unexpected argument ${positionals[1]}`);
  return id;
}

async function clientsCommand(services: Services, sub: string | undefined, args: string[], out: Output): Promise<void> {
  const { values, positionals } = parse(args, clientOptions);
  switch (sub) {
    case 'create': {
      if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
      const { client, clientSecret } = await services.admin.createClient(CLI_ACTOR, clientInputFrom(values));
      return out.print(clientText(client, clientSecret), toClientMetadata(client, clientSecret));
    }
    case 'list': {
      const clients = await services.clients.list();
      return out.print(
        clients.length ? clients.map((c) => `${c.clientId}  ${c.type.padEnd(12)} ${c.disabled ? '[disabled] ' : ''}${c.name}`).join('\n') : 'no clients yet',
        clients.map((c) => toClientMetadata(c)),
      );
    }
    case 'show': {
      const client = await services.clients.get(requireId(positionals, 'client id'));
      return out.print(clientText(client), toClientMetadata(client));
    }
    case 'update': {
      const id = requireId(positionals, 'client id');
      const disabled = values.disable ? true : values.enable ? false : undefined;
      const { client, clientSecret } = await services.admin.updateClient(CLI_ACTOR, id, { ...clientInputFrom(values), disabled });
      return out.print(clientText(client, clientSecret), toClientMetadata(client, clientSecret));
    }
    case 'delete': {
      const id = requireId(positionals, 'client id');
      await services.admin.deleteClient(CLI_ACTOR, id);
      return out.print(`deleted client ${id}`, { client_id: id, deleted: true });
    }
    case 'rotate-secret': {
      const { client, clientSecret } = await services.admin.rotateClientSecret(CLI_ACTOR, requireId(positionals, 'client id'));
      return out.print(
        `client_id:     ${client.clientId}\nclient_secret: ${clientSecret}   (shown once; the old secret no longer works)`,
        { client_id: client.clientId, client_secret: clientSecret },
      );
    }
    default:
      throw new UsageError(`unknown clients command ${sub ?? '(none)'}`);
  }
}

function userText(user: User): string {
  return [
    `id (sub):  ${user.id}`,
    `username:  ${user.username}`,
    `email:     ${user.email}${user.emailVerified ? ' (verified)' : ''}`,
    ...(user.name ? [`name:      ${user.name}`] : []),
    `admin:     ${user.isAdmin ? 'yes' : 'no'}`,
    `status:    ${user.disabled ? 'disabled' : 'active'}${user.mustResetPassword ? ', must reset password' : ''}`,
  ].join('\n');
}

const userOptions = {
  username: { type: 'string' },
  email: { type: 'string' },
  name: { type: 'string' },
  'password-stdin': { type: 'boolean' },
  admin: { type: 'boolean' },
  'email-verified': { type: 'boolean' },
  search: { type: 'string' },
} satisfies ParseArgsConfig['options'];

async function usersCommand(services: Services, sub: string | undefined, args: string[], out: Output, stdin: () => Promise<string>): Promise<void> {
  const { values, positionals } = parse(args, userOptions);
  const password = () => readPassword({ fromStdin: Boolean(values['password-stdin']), stdin });
  switch (sub) {
    case 'create': {
      if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
      if (!values.username) throw new UsageError('missing --username');
      if (!values.email) throw new UsageError('missing --email');
      const user = await services.admin.createUser(CLI_ACTOR, {
        username: values.username,
        email: values.email,
        name: values.name,
        password: await password(),
        isAdmin: Boolean(values.admin),
        emailVerified: Boolean(values['email-verified']),
      });
      return out.print(userText(user), userJson(user));
    }
    case 'list': {
      const users = await services.accounts.list(values.search);
      return out.print(
        users.length ? users.map((u) => `${u.id}  ${u.username}  ${u.email}${u.isAdmin ? '  [admin]' : ''}${u.disabled ? '  [disabled]' : ''}`).join('\n') : 'no users',
        users.map(userJson),
      );
    }
    case 'show': {
      const user = await services.accounts.resolve(requireId(positionals, 'user id or username'));
      return out.print(userText(user), userJson(user));
    }
    case 'set-password': {
      const user = await services.accounts.resolve(requireId(positionals, 'user id or username'));
      const updated = await services.admin.setUserPassword(CLI_ACTOR, user.id, await password());
      return out.print(`password changed for ${updated.username}`, userJson(updated));
    }
    case 'disable':
    case 'enable': {
      const user = await services.accounts.resolve(requireId(positionals, 'user id or username'));
      const updated = await services.admin.setUserDisabled(CLI_ACTOR, user.id, sub === 'disable');
      return out.print(`${updated.username} is ${updated.disabled ? 'disabled; its sessions and tokens are revoked' : 'enabled'}`, userJson(updated));
    }
    case 'grant-admin':
    case 'remove-admin': {
      const user = await services.accounts.resolve(requireId(positionals, 'user id or username'));
      const updated = await services.admin.setUserAdmin(CLI_ACTOR, user.id, sub === 'grant-admin');
      return out.print(`${updated.username} is ${updated.isAdmin ? 'now an admin' : 'no longer an admin'}`, userJson(updated));
    }
    default:
      throw new UsageError(`unknown users command ${sub ?? '(none)'}`);
  }
}

const apiKeyOptions = { client: { type: 'string' }, scope: { type: 'string', multiple: true }, name: { type: 'string' } } satisfies Options;

async function apiKeysCommand(services: Services, sub: string | undefined, args: string[], out: Output): Promise<void> {
  const { values, positionals } = parse(args, apiKeyOptions);
  switch (sub) {
    case 'create': {
      if (!values.client) throw new UsageError('missing --client');
      const { key, apiKey } = await services.admin.createApiKey(CLI_ACTOR, values.client, (values.scope ?? []).flatMap((s) => s.split(/\s+/)).filter(Boolean), values.name);
      return out.print(`key:    ${key}   (shown once: store it now)\nid:     ${apiKey.id}\nscopes: ${apiKey.scopes.join(' ')}`, { key, ...apiKeyJson(apiKey) });
    }
    case 'list': {
      const keys = await services.apiKeys.list(values.client);
      return out.print(
        keys.length
          ? keys.map((k) => `${k.id}  ${k.clientId}  ${k.scopes.join(' ')}  ${k.revokedAt ? 'revoked' : `last used ${k.lastUsedAt?.toISOString() ?? 'never'}`}`).join('\n')
          : 'no API keys',
        keys.map(apiKeyJson),
      );
    }
    case 'revoke': {
      const revoked = await services.admin.revokeApiKey(CLI_ACTOR, requireId(positionals, 'API key id'));
      return out.print(`revoked API key ${revoked.id}`, apiKeyJson(revoked));
    }
    default:
      throw new UsageError(`unknown api-keys command ${sub ?? '(none)'}`);
  }
}

const adminTokenOptions = { name: { type: 'string' } } satisfies Options;

async function adminTokensCommand(services: Services, sub: string | undefined, args: string[], out: Output): Promise<void> {
  const { values, positionals } = parse(args, adminTokenOptions);
  const json = adminTokenJson;
  switch (sub) {
    case 'create': {
      if (!values.name) throw new UsageError('missing --name');
      const { token, adminToken } = await services.admin.createAdminToken(CLI_ACTOR, values.name);
      return out.print(`token: ${token}   (shown once: store it now)\nid:    ${adminToken.id}`, { token, ...json(adminToken) });
    }
    case 'list': {
      const tokens = await services.adminTokens.list();
      return out.print(tokens.length ? tokens.map((t) => `${t.id}  ${t.name}${t.revokedAt ? '  [revoked]' : ''}`).join('\n') : 'no admin tokens', tokens.map(json));
    }
    case 'revoke': {
      const revoked = await services.admin.revokeAdminToken(CLI_ACTOR, requireId(positionals, 'admin token id'));
      return out.print(`revoked admin token ${revoked.id}`, json(revoked));
    }
    default:
      throw new UsageError(`unknown admin-tokens command ${sub ?? '(none)'}`);
  }
}

function importReportText(r: ImportReport): string {
  const lines = [`${r.dry_run ? 'DRY RUN: nothing was written. ' : ''}Import from ${r.source}`, '', 'Users:'];
  for (const u of r.users) lines.push(`  ${u.outcome.padEnd(9)} ${u.username} (sub ${u.sub})${u.notes.length ? `\n              ${u.notes.join('\n              ')}` : ''}`);
  lines.push('', 'Clients:');
  for (const c of r.clients) lines.push(`  ${c.outcome.padEnd(9)} ${c.name || '(no name)'} (${c.client_id})${c.notes.length ? `\n              ${c.notes.join('\n              ')}` : ''}`);
  lines.push('', `Refresh tokens: ${r.refresh_tokens.imported} carried over, ${r.refresh_tokens.already_present} already here, ${r.refresh_tokens.not_imported.length} not carried over`);
  for (const t of r.refresh_tokens.not_imported) lines.push(`  #${t.id}: ${t.reason}`);
  for (const n of [...r.refresh_tokens.notes, ...r.notes]) lines.push(`Note: ${n}`);
  const s = (o: Record<string, number>) => Object.entries(o).map(([k, v]) => `${v} ${k}`).join(', ');
  lines.push('', `Users: ${s(r.summary.users)}. Clients: ${s(r.summary.clients)}.`);
  return lines.join('\n');
}

const importOptions = { from: { type: 'string' }, 'dry-run': { type: 'boolean' } } satisfies Options;

async function importCommand(services: Services, sub: string | undefined, args: string[], out: Output, planNote?: string): Promise<void> {
  const { values, positionals } = parse(args, importOptions);
  if (sub !== 'dot') throw new UsageError(`unknown import source ${sub ?? '(none)'}: only "dot" (django-oauth-toolkit) is supported`);
  if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
  if (!values.from) throw new UsageError('missing --from (a DOT SQLite file, a postgres:// URL, or a dumpdata .json file)');
  const report = await importFromDot(services, values.from, { dryRun: Boolean(values['dry-run']) });
  if (planNote) report.notes.push(planNote);
  out.print(importReportText(report), report);
}

async function keysCommand(services: Services, sub: string | undefined, args: string[], out: Output): Promise<void> {
  const { positionals } = parse(args, {});
  const show = async () => {
    const keys = await services.keys.list();
    out.print(
      keys.map((k) => `${k.kid}  ${k.alg}  ${k.status}  created ${k.createdAt.toISOString()}`).join('\n'),
      keys.map((k) => ({ kid: k.kid, alg: k.alg, status: k.status, created_at: k.createdAt.toISOString(), rotated_at: k.rotatedAt?.toISOString() ?? null })),
    );
  };
  switch (sub) {
    case 'list':
      await services.keys.ensureSigningKeys();
      return show();
    case 'rotate':
      await services.admin.rotateSigningKeys(CLI_ACTOR);
      return show();
    case 'retire': {
      const kid = requireId(positionals, 'key id');
      await services.admin.retireSigningKey(CLI_ACTOR, kid);
      return out.print(`retired key ${kid}`, { kid, retired: true });
    }
    default:
      throw new UsageError(`unknown keys command ${sub ?? '(none)'}`);
  }
}

const scopeOptions = { name: { type: 'string' }, description: { type: 'string' } } satisfies Options;

async function scopesCommand(services: Services, sub: string | undefined, args: string[], out: Output): Promise<void> {
  const { values, positionals } = parse(args, scopeOptions);
  switch (sub) {
    case 'create': {
      if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
      if (values.name === undefined) throw new UsageError('missing --name');
      if (values.description === undefined) throw new UsageError('missing --description (the words the consent page shows)');
      const scope = await services.admin.createScope(CLI_ACTOR, { name: values.name, description: values.description });
      return out.print(`created scope ${scope.name}: ${scope.description}`, scopeJson(scope));
    }
    case 'list': {
      if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
      const all = await scopesWithBuiltIns(services.scopes);
      const width = Math.max(...all.map((s) => s.name.length));
      return out.print(all.map((s) => `${s.name.padEnd(width)}  ${s.built_in ? '[built-in] ' : ''}${s.description}`).join('\n'), all);
    }
    case 'delete': {
      const scope = await services.admin.deleteScope(CLI_ACTOR, requireId(positionals, 'scope name'));
      return out.print(`deleted scope ${scope.name}`, { name: scope.name, deleted: true });
    }
    default:
      throw new UsageError(`unknown scopes command ${sub ?? '(none)'}`);
  }
}

/** The options each command takes (besides --json and --help): checked before the database is opened. */
const COMMAND_OPTIONS: Record<string, Options> = {
  migrate: {},
  clients: clientOptions,
  users: userOptions,
  'api-keys': apiKeyOptions,
  'admin-tokens': adminTokenOptions,
  import: importOptions,
  keys: {},
  scopes: scopeOptions,
};

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function runCli(argv: string[]): Promise<number> {
  const json = argv.includes('--json');
  const out: Output = {
    json,
    print(human, machine) {
      process.stdout.write(`${json ? JSON.stringify(machine, null, 2) : human}\n`);
    },
  };
  const fail = (code: string, description: string, exitCode: number) => {
    process.stderr.write(json ? `${JSON.stringify({ error: code, error_description: description })}\n` : `error: ${description}\n`);
    return exitCode;
  };

  const [command, sub, ...rest] = argv;
  if (!command) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  // `help`, `help clients create`, `--help`, `clients --help`, `clients create -h`: the usage of
  // what was named, on stdout.
  if (command === 'help' || asksForHelp(argv)) {
    const [named, namedSub] = (command === 'help' ? argv.slice(1) : argv).filter((a) => !a.startsWith('-'));
    process.stdout.write(`${usageFor(USAGE, named, namedSub)}\n`);
    return 0;
  }

  let services: Services | undefined;
  let scratch: string | undefined;
  try {
    // Known commands are checked before the database is opened, so a typo says so.
    const subcommands = COMMANDS[command];
    if (!subcommands) throw new UsageError(`unknown command ${command}${didYouMean(command, Object.keys(COMMANDS))}`);
    if (subcommands.length && !subcommands.includes(sub ?? '')) {
      throw new UsageError(sub ? `unknown ${command} command ${sub}${didYouMean(sub, subcommands)}` : `${command} needs a command: ${subcommands.join(', ')}`);
    }
    const options = COMMAND_OPTIONS[command];
    const given = options && parse(subcommands.length ? rest : argv.slice(1), options);
    if (!subcommands.length && given?.positionals.length) throw new UsageError(`unexpected argument ${given.positionals[0]}`);
    let config = loadConfig();
    // A dry run writes nothing, not even the embedded database's file: when there is none yet,
    // it plans against an empty database in a scratch directory, removed afterwards.
    let planNote: string | undefined;
    if (command === 'import' && rest.includes('--dry-run') && config.database.client === 'sqlite' && !fs.existsSync(config.database.filename)) {
      planNote = `the database ${config.database.filename} does not exist yet: planned against an empty one, and it was not created`;
      scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-dry-run-'));
      config = { ...config, database: { ...config.database, filename: path.join(scratch, 'gatehouse.sqlite3') } };
    }
    let applied: string[] = [];
    services = await openServices(config, { migrated: (names) => (applied = names.map((n) => n.replace(/\.(ts|js)$/, ''))) });
    switch (command) {
      case 'migrate':
        out.print(
          applied.length ? `applied ${applied.length} migration${applied.length === 1 ? '' : 's'}:\n${applied.map((n) => `  ${n}`).join('\n')}` : 'database is already up to date',
          { migrated: true, applied },
        );
        return 0;
      case 'clients':
        await clientsCommand(services, sub, rest, out);
        return 0;
      case 'keys':
        await keysCommand(services, sub, rest, out);
        return 0;
      case 'import':
        await importCommand(services, sub, rest, out, planNote);
        return 0;
      case 'scopes':
        await scopesCommand(services, sub, rest, out);
        return 0;
      case 'admin-tokens':
        await adminTokensCommand(services, sub, rest, out);
        return 0;
      case 'api-keys':
        await apiKeysCommand(services, sub, rest, out);
        return 0;
      case 'users':
        await usersCommand(services, sub, rest, out, readStdin);
        return 0;
      default:
        throw new UsageError(`unknown command ${command}`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      // The message, then the usage of the command (or of everything, for an unknown command).
      fail('usage', err.message, 2);
      const known = COMMANDS[command];
      if (!json) process.stderr.write(`\n${usageFor(USAGE, known ? command : undefined, known?.includes(sub ?? '') ? sub : undefined)}\n`);
      return 2;
    }
    if (err instanceof ConfigError) return fail('invalid_configuration', err.message, 2);
    if (err instanceof ValidationError) return fail(err.code, withOptionNames(err).description, 1);
    if (err instanceof GatehouseError) return fail(err.code, err.description, 1);
    if (err instanceof DotSourceError) return fail('invalid_source', err.message, 1);
    return fail('server_error', (err as Error).message, 1);
  } finally {
    await services?.close();
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await runCli(process.argv.slice(2));
}
