import anyTest, { type TestFn } from 'ava';
import Database from 'better-sqlite3';
import { generateClientId } from '../src/clients/secrets.ts';
import { loadConfig } from '../src/config.ts';
import { openServices, type Services } from '../src/services.ts';
import { runCli as spawnCli, type CliResult } from './support/cli.ts';
import { createTestDatabase, startTestGatehouse, type TestDatabase, type TestGatehouse } from './support/gatehouse.ts';
import { basicAuth } from './support/http.ts';

/**
 * Every `clients` command as an operator runs it: a spawned CLI over the database of a running
 * Gatehouse, checked against what the server then does with the client.
 */

interface Context {
  gh: TestGatehouse;
  /** A database where every attempt to create a client fails: it must stay empty. */
  rejected: { env: Record<string, string>; database: TestDatabase; services: Services };
}

const test = anyTest as TestFn<Context>;

/**
 * Every test here spawns the CLI; a CLI start costs about two seconds of CPU. Started all at once
 * they thrash a small machine, so at most a few run at a time (each still a real process).
 */
const MAX_CLIS = 3;
let running = 0;
const waiting: (() => void)[] = [];
async function runCli(args: string[], env: Record<string, string>): Promise<CliResult> {
  if (running >= MAX_CLIS) await new Promise<void>((resolve) => waiting.push(resolve));
  running++;
  try {
    return await spawnCli(args, env);
  } finally {
    running--;
    waiting.shift()?.();
  }
}

test.before(async (t) => {
  const gh = await startTestGatehouse();
  const database = await createTestDatabase('sqlite');
  const env = { DATABASE_URL: database.url };
  // Migrated here, before any CLI runs against it.
  const services = await openServices(loadConfig(env));
  t.context = { gh, rejected: { env, database, services } };
});

test.after.always(async (t) => {
  await t.context.gh?.close();
  await t.context.rejected?.services.close();
  await t.context.rejected?.database.drop();
});

async function clientCredentials(gh: TestGatehouse, clientId: string, clientSecret: string, scope?: string) {
  const res = await fetch(`${gh.url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(clientId, clientSecret) },
    body: new URLSearchParams({ grant_type: 'client_credentials', ...(scope ? { scope } : {}) }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

function ok(t: { is(a: unknown, b: unknown, m?: string): void }, result: CliResult): CliResult {
  t.is(result.code, 0, `exit code ${result.code}; stderr: ${result.stderr}`);
  return result;
}

/** stderr without the line oidc-provider prints when it runs on a Node version it does not recommend. */
const errorLines = (stderr: string) =>
  stderr.split('\n').filter((l) => l.trim() && !/^oidc-provider WARNING: Unsupported runtime/.test(l));

test('an operator creates a confidential client with every option and gets its id and secret once', async (t) => {
  const { gh } = t.context;
  const created = ok(t, await runCli([
    'clients', 'create',
    '--name', 'Orders web app',
    '--type', 'confidential',
    '--grant', 'authorization_code', '--grant', 'refresh_token', '--grant', 'client_credentials',
    '--redirect-uri', 'https://orders.example.com/callback',
    '--redirect-uri', 'http://localhost:5000/callback',
    '--post-logout-redirect-uri', 'https://orders.example.com/bye',
    '--origin', 'https://orders.example.com',
    '--scope', 'openid profile email offline_access read',
    '--auth-method', 'client_secret_post',
    '--json',
  ], gh.env));
  const json = created.json();
  t.is(typeof json.client_id, 'string');
  t.true(json.client_id.length >= 16);
  t.is(typeof json.client_secret, 'string');
  t.true(json.client_secret.length >= 43, 'a client secret carries at least 256 bits');
  t.like(json, {
    client_name: 'Orders web app',
    client_type: 'confidential',
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
    redirect_uris: ['https://orders.example.com/callback', 'http://localhost:5000/callback'],
    post_logout_redirect_uris: ['https://orders.example.com/bye'],
    allowed_origins: ['https://orders.example.com'],
    scope: 'openid profile email offline_access read',
    token_endpoint_auth_method: 'client_secret_post',
    disabled: false,
  });

  // The database holds an HMAC of the secret, never the secret itself.
  const row = readClientRow(gh, json.client_id);
  t.true(String(row.secret_hash).startsWith('hmac-sha256$'), String(row.secret_hash));
  t.false(JSON.stringify(row).includes(json.client_secret), 'the plain secret is stored in some column');

  // The server accepts it at once, with the secret in the body as its auth method says.
  const res = await fetch(`${gh.url}/token`, {
    method: 'POST',
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: json.client_id, client_secret: json.client_secret }),
  });
  t.is(res.status, 200);
  t.is(((await res.json()) as { scope: string }).scope, 'read');
});

test('an operator creates a public client, which has no secret', async (t) => {
  const { gh } = t.context;
  const created = ok(t, await runCli([
    'clients', 'create', '--name', 'Orders SPA', '--type', 'public',
    '--grant', 'authorization_code', '--grant', 'refresh_token',
    '--redirect-uri', 'https://spa.example.com/cb',
    '--post-logout-redirect-uri', 'https://spa.example.com/',
    '--origin', 'https://spa.example.com',
    '--json',
  ], gh.env));
  const json = created.json();
  t.false('client_secret' in json);
  t.like(json, {
    client_type: 'public',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token'],
    redirect_uris: ['https://spa.example.com/cb'],
    post_logout_redirect_uris: ['https://spa.example.com/'],
    allowed_origins: ['https://spa.example.com'],
  });
  t.deepEqual(json.scope.split(' ').sort(), ['email', 'offline_access', 'openid', 'profile']);
  t.is(readClientRow(gh, json.client_id).secret_hash, null);
});

test('the secret is shown at creation in the human output too, and never again by list or show', async (t) => {
  const { gh } = t.context;
  const created = ok(t, await runCli(['clients', 'create', '--name', 'Ledger', '--type', 'confidential', '--grant', 'client_credentials'], gh.env));
  const id = /client_id:\s+(\S+)/.exec(created.stdout)?.[1];
  const secret = /client_secret:\s+(\S+)/.exec(created.stdout)?.[1];
  t.truthy(id, created.stdout);
  t.truthy(secret, created.stdout);
  t.regex(created.stdout, /shown once/);

  const [listJson, showJson, showText] = await Promise.all([
    runCli(['clients', 'list', '--json'], gh.env),
    runCli(['clients', 'show', id!, '--json'], gh.env),
    runCli(['clients', 'show', id!], gh.env),
  ]);
  for (const r of [listJson, showJson, showText]) {
    ok(t, r);
    t.false(r.stdout.includes(secret!), 'the secret was printed again');
    t.false(/"client_secret"|client_secret:/.test(r.stdout), r.stdout);
  }
  const listed = listJson.json<Record<string, unknown>[]>();
  t.true(Array.isArray(listed));
  const mine = listed.find((c) => c.client_id === id);
  t.like(mine, { client_id: id, client_name: 'Ledger', client_type: 'confidential', grant_types: ['client_credentials'], scope: 'read write' });
  t.like(showJson.json(), { client_id: id, client_name: 'Ledger', token_endpoint_auth_method: 'client_secret_basic' });
  t.regex(showText.stdout, new RegExp(`client_id:\\s+${id}`));
  t.regex(showText.stdout, /name:\s+Ledger/);
});

test('an operator finds clients by part of their name or client_id with clients list --search, as in the admin', async (t) => {
  const { gh } = t.context;
  const created = ok(t, await runCli(['clients', 'create', '--name', 'Searchable Payroll', '--type', 'confidential', '--grant', 'client_credentials', '--json'], gh.env)).json();
  const byName = ok(t, await runCli(['clients', 'list', '--search', 'PAYROLL', '--json'], gh.env)).json<Array<{ client_id: string }>>();
  t.deepEqual(byName.map((c) => c.client_id), [created.client_id]);
  const byId = ok(t, await runCli(['clients', 'list', '--search', created.client_id.slice(2, 12), '--json'], gh.env)).json<Array<{ client_id: string }>>();
  t.true(byId.some((c) => c.client_id === created.client_id));
  const none = ok(t, await runCli(['clients', 'list', '--search', 'no-such-client-anywhere'], gh.env));
  t.regex(none.stdout, /no client matches/);
});

test('an operator adds a redirect URI and changes the scope of a client', async (t) => {
  const { gh } = t.context;
  const { client_id, client_secret } = ok(t, await runCli([
    'clients', 'create', '--name', 'Reports', '--type', 'confidential',
    '--grant', 'authorization_code', '--grant', 'client_credentials',
    '--redirect-uri', 'https://reports.example.com/cb', '--scope', 'openid read', '--json',
  ], gh.env)).json();
  t.is((await clientCredentials(gh, client_id, client_secret, 'write')).status, 400, 'write was not granted yet');

  const updated = ok(t, await runCli([
    'clients', 'update', client_id,
    '--redirect-uri', 'https://reports.example.com/cb', '--redirect-uri', 'https://reports.example.com/cb2',
    '--scope', 'openid profile read write',
    '--name', 'Reports v2',
    '--json',
  ], gh.env)).json();
  t.false('client_secret' in updated, 'an update does not reveal or change the secret');
  t.like(updated, {
    client_id,
    client_name: 'Reports v2',
    redirect_uris: ['https://reports.example.com/cb', 'https://reports.example.com/cb2'],
    scope: 'openid profile read write',
    // What was not mentioned stays as it was.
    grant_types: ['authorization_code', 'client_credentials'],
    token_endpoint_auth_method: 'client_secret_basic',
  });

  // Stored, not only printed.
  const stored = await gh.services.clients.get(client_id);
  t.deepEqual(stored.redirectUris, ['https://reports.example.com/cb', 'https://reports.example.com/cb2']);
  t.deepEqual(stored.scope, ['openid', 'profile', 'read', 'write']);

  // The server sees the change, and the secret still works.
  const res = await clientCredentials(gh, client_id, client_secret, 'write');
  t.is(res.status, 200);
  t.is(res.body.scope, 'write');

  // An update that breaks a rule is refused and changes nothing, not even the fields that were fine.
  const broken = await runCli(['clients', 'update', client_id, '--redirect-uri', 'http://reports.example.com/cb', '--name', 'Broken'], gh.env);
  t.is(broken.code, 1);
  t.is(errorLines(broken.stderr).length, 1, broken.stderr);
  t.regex(errorLines(broken.stderr)[0]!, /redirectUris|--redirect-uri/);
  const unchanged = await gh.services.clients.get(client_id);
  t.is(unchanged.name, 'Reports v2');
  t.deepEqual(unchanged.redirectUris, ['https://reports.example.com/cb', 'https://reports.example.com/cb2']);
});

test('a deleted client is gone: show fails clearly and the server refuses it', async (t) => {
  const { gh } = t.context;
  const { client_id, client_secret } = ok(t, await runCli(['clients', 'create', '--name', 'Temp', '--type', 'confidential', '--grant', 'client_credentials', '--json'], gh.env)).json();
  t.is((await clientCredentials(gh, client_id, client_secret)).status, 200);

  const deleted = ok(t, await runCli(['clients', 'delete', client_id, '--json'], gh.env));
  t.deepEqual(deleted.json(), { client_id, deleted: true });

  const show = await runCli(['clients', 'show', client_id], gh.env);
  t.is(show.code, 1, show.stderr);
  const lines = errorLines(show.stderr);
  t.is(lines.length, 1, show.stderr);
  t.regex(lines[0]!, new RegExp(`^error: client ${client_id} does not exist$`));
  t.is(show.stdout, '');
  t.is((await gh.services.clients.list()).filter((c) => c.clientId === client_id).length, 0);

  const res = await clientCredentials(gh, client_id, client_secret);
  t.is(res.status, 401);
  t.is(res.body.error, 'invalid_client');
});

test('after rotate-secret the old secret is refused and the new one works', async (t) => {
  const { gh } = t.context;
  const { client_id, client_secret: oldSecret } = ok(t, await runCli(['clients', 'create', '--name', 'Rotating', '--type', 'confidential', '--grant', 'client_credentials', '--json'], gh.env)).json();
  t.is((await clientCredentials(gh, client_id, oldSecret)).status, 200);

  const rotated = ok(t, await runCli(['clients', 'rotate-secret', client_id, '--json'], gh.env)).json();
  t.deepEqual(Object.keys(rotated).sort(), ['client_id', 'client_secret']);
  t.is(rotated.client_id, client_id);
  t.not(rotated.client_secret, oldSecret);
  t.true(rotated.client_secret.length >= 43);

  const old = await clientCredentials(gh, client_id, oldSecret);
  t.is(old.status, 401);
  t.is(old.body.error, 'invalid_client');
  const fresh = await clientCredentials(gh, client_id, rotated.client_secret);
  t.is(fresh.status, 200);
  t.is(fresh.body.token_type, 'Bearer');

  // What the database holds is an HMAC of the new secret: neither secret is stored in the clear.
  const row = readClientRow(gh, client_id);
  const hash = String(row.secret_hash);
  t.true(hash.startsWith('hmac-sha256$'), hash);
  for (const secret of [oldSecret, rotated.client_secret]) {
    t.false(hash.includes(secret));
    t.false(JSON.stringify(row).includes(secret), 'a plain secret is stored in some column');
  }
});

/** The clients row as the SQLite file holds it, read with better-sqlite3 as an attacker with the file would. */
function readClientRow(gh: TestGatehouse, clientId: string): Record<string, unknown> {
  if (gh.config.database.client !== 'sqlite') throw new Error('this reads the SQLite file');
  const db = new Database(gh.config.database.filename, { readonly: true, fileMustExist: true });
  try {
    const row = db.prepare('select * from clients where client_id = ?').get(clientId) as Record<string, unknown> | undefined;
    if (!row) throw new Error(`no row for client ${clientId}`);
    return row;
  } finally {
    db.close();
  }
}

test('a client id never starts with a dash, which the command line would take for an option', (t) => {
  // One id in 64 used to start with "-", and then `clients show <id>` failed with
  // "Unknown option '-x'". Thousands of ids make a regression all but certain to show.
  const ids = Array.from({ length: 5000 }, generateClientId);
  t.deepEqual(ids.filter((id) => id.startsWith('-')), []);
  t.true(ids.every((id) => /^[A-Za-z0-9_][A-Za-z0-9_-]{23}$/.test(id)));
  t.is(new Set(ids).size, ids.length);
});

// ---------------------------------------------------------------------------------------------
// Bad input: a non-zero exit, one line naming the field, and nothing stored.

const confidential = ['--type', 'confidential'];
const badInput: { title: string; args: string[]; field: RegExp; says?: RegExp; json?: boolean }[] = [
  { title: 'without --name', args: [...confidential, '--grant', 'client_credentials'], field: /\bname\b/, says: /required/ },
  { title: 'with an unknown --type', args: ['--name', 'X', '--type', 'secret-agent', '--grant', 'client_credentials'], field: /\btype\b/, says: /confidential or public/ },
  { title: 'with an unknown grant', args: ['--name', 'X', ...confidential, '--grant', 'password'], field: /grantTypes|--grant/, says: /authorization_code/ },
  {
    title: 'with a public client asking for client_credentials (--json)',
    args: ['--name', 'X', '--type', 'public', '--grant', 'client_credentials', '--json'],
    field: /grantTypes|--grant/,
    says: /client_credentials/,
    json: true,
  },
  {
    title: 'with a public client using client_secret_basic',
    args: ['--name', 'X', '--type', 'public', '--grant', 'authorization_code', '--redirect-uri', 'https://a.example/cb', '--auth-method', 'client_secret_basic'],
    field: /authMethod|--auth-method/,
    says: /none/,
  },
  { title: 'with a confidential client using auth method none', args: ['--name', 'X', ...confidential, '--grant', 'client_credentials', '--auth-method', 'none'], field: /authMethod|--auth-method/ },
  { title: 'with a relative redirect URI', args: ['--name', 'X', ...confidential, '--grant', 'authorization_code', '--redirect-uri', '/callback'], field: /redirectUris|--redirect-uri/, says: /"\/callback"/ },
  {
    title: 'with a redirect URI carrying a fragment',
    args: ['--name', 'X', ...confidential, '--grant', 'authorization_code', '--redirect-uri', 'https://a.example/cb#frag'],
    field: /redirectUris|--redirect-uri/,
    says: /fragment/,
  },
  {
    title: 'with an http redirect URI on a host that is not loopback',
    args: ['--name', 'X', ...confidential, '--grant', 'authorization_code', '--redirect-uri', 'http://a.example/cb'],
    field: /redirectUris|--redirect-uri/,
    says: /https/,
  },
  { title: 'with authorization_code and no redirect URI', args: ['--name', 'X', ...confidential, '--grant', 'authorization_code'], field: /redirectUris|--redirect-uri/ },
  { title: 'with an unknown scope', args: ['--name', 'X', ...confidential, '--grant', 'client_credentials', '--scope', 'read admin'], field: /\bscope\b/, says: /\badmin\b/ },
  {
    title: 'with the client_secret_jwt auth method',
    args: ['--name', 'X', ...confidential, '--grant', 'client_credentials', '--auth-method', 'client_secret_jwt'],
    field: /authMethod|--auth-method/,
    says: /stores secrets hashed/,
  },
  {
    title: 'with an HS256 ID token algorithm',
    args: ['--name', 'X', ...confidential, '--grant', 'authorization_code', '--redirect-uri', 'https://a.example/cb', '--id-token-alg', 'HS256'],
    field: /idTokenSignedResponseAlg|--id-token-alg/,
    says: /stores secrets hashed/,
  },
];

async function assertNothingStored(t: { is(a: unknown, b: unknown, m?: string): void }, services: Services) {
  const clients = await services.clients.list();
  t.is(clients.length, 0, `clients were stored: ${clients.map((c) => c.name).join(', ')}`);
}

for (const { title, args, field, says, json } of badInput) {
  test(`creating a client ${title} is refused with a clear error, and nothing is stored`, async (t) => {
    const { rejected } = t.context;
    const res = await runCli(['clients', 'create', ...args], rejected.env);
    t.not(res.code, 0);
    t.is(res.stdout, '');
    const lines = errorLines(res.stderr);
    t.is(lines.length, 1, `not one line:\n${res.stderr}`);
    let message = lines[0]!;
    if (json) {
      // --json: the error comes back as {"error", "error_description"} on stderr.
      const body = JSON.parse(message);
      t.is(body.error, 'invalid_client_metadata');
      message = body.error_description;
    } else {
      t.regex(message, /^error: /);
    }
    t.regex(message, field);
    if (says) t.regex(message, says);
    await assertNothingStored(t, rejected.services);
  });
}

test('an unknown option is refused, naming the option, and nothing is stored', async (t) => {
  const { rejected } = t.context;
  const res = await runCli(['clients', 'create', '--name', 'X', ...confidential, '--grant', 'client_credentials', '--colour', 'blue'], rejected.env);
  t.is(res.code, 2);
  t.is(res.stdout, '');
  const [first] = errorLines(res.stderr);
  t.regex(first!, /^error: .*--colour/);
  await assertNothingStored(t, rejected.services);
});

test('an unknown command is refused, naming the command', async (t) => {
  const { rejected } = t.context;
  // "client" for "clients": the typo an operator makes.
  const res = await runCli(['client', 'list'], rejected.env);
  t.is(res.code, 2);
  t.is(res.stdout, '');
  t.regex(errorLines(res.stderr)[0]!, /^error: unknown command client \(did you mean clients\?\)$/);
});
