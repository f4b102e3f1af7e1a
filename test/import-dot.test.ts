import { createHash, pbkdf2Sync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { argon2id, bcrypt } from 'hash-wasm';
import knex, { type Knex } from 'knex';
import { storedId } from '../adapters/payload-row.ts';
import { CLI_ACTOR } from '../src/admin/audit.ts';
import { isDjangoHash, isUnusableDjangoPassword, verifyDjangoHash } from '../src/accounts/django-hashers.ts';
import { verifyPassword } from '../src/accounts/passwords.ts';
import { importFromDot, type ImportReport } from '../src/importers/dot/import.ts';
import { runCli, type CliResult } from './support/cli.ts';
import {
  copyFixture,
  DAVE_UNUSABLE_HASH,
  decodeJwt,
  DOT_APPS,
  DOT_REFRESH_TOKENS,
  DOT_USERS,
  hs256Verifies,
  loadDotIntoPostgres,
  postAsClient,
  type ClientAuth,
  type DotFixtureApp,
} from './support/dot.ts';
import { createTestDatabase, startTestGatehouse, type TestDatabase, type TestGatehouse } from './support/gatehouse.ts';
import { signInAndAllow } from './support/relying-party.ts';
import { isConsentPage, isLoginPage, UserAgent } from './support/user-agent.ts';

/**
 * `import dot`: a django-oauth-toolkit 1.7 site (../shared/fixtures/dot, see its README) moves
 * to Gatehouse. Each source is imported once, before the tests, by the CLI as an operator runs
 * it; the tests then check what people and apps see.
 */

const ENV = { GATEHOUSE_API_SCOPES: 'read write invoices:read' };

/** Every table's rows (but the audit log, which records each run), to tell whether a run wrote anything. */
type TableContents = Record<string, string[]>;

interface ImportedDatabase {
  report: ImportReport;
  users: Record<string, unknown>[];
  clients: Record<string, unknown>[];
  refreshTokenIds: string[];
}

interface Context {
  /** Imported from dot17.sqlite3 (twice), with GATEHOUSE_COMPAT_PATHS=dot. */
  gh: TestGatehouse;
  sqliteSource: string;
  first: ImportedDatabase;
  second: ImportReport;
  contentsAfterFirst: TableContents;
  contentsAfterSecond: TableContents;
  /** Dry runs from dot17.sqlite3: where no database exists yet, then on a migrated, empty one. */
  dryRun: { report: ImportReport; createdBeside: string[]; onExisting: ImportReport; counts: Record<string, number> };
  dumpdata: ImportedDatabase;
  postgres: ImportedDatabase | { error: string };
  /** Imported from dot-hashed.dumpdata.json (DOT ≥ 2.4 hashed secrets); no compat paths. */
  hashed: TestGatehouse;
  hashedReport: ImportReport;
  /**
   * Imported from dot17.sqlite3, then changed in Gatehouse (bob signed in, billing-service's
   * secret rotated, bob's Legacy Intranet refresh token revoked, alice disabled), then imported again.
   */
  again: { gh: TestGatehouse; rotatedSecret: string; revokeStatus: number; beforeReimport: Record<string, number>; report: ImportReport };
}

const test = anyTest as TestFn<Context>;

/** Everything the setup made (servers, databases, fixture copies), undone after the tests even when the setup fails half-way. */
const cleanups: Array<() => Promise<unknown> | unknown> = [];

// ---- helpers --------------------------------------------------------------------------------

async function importDot(env: Record<string, string>, source: string, ...flags: string[]): Promise<ImportReport> {
  const res = await runCli(['import', 'dot', '--from', source, '--json', ...flags], env);
  if (res.code !== 0) throw new Error(`import dot --from ${source} ${flags.join(' ')} exited ${res.code}: ${res.stderr}`);
  return res.json<ImportReport>();
}

function sqliteKnex(databaseUrl: string): Knex {
  if (!databaseUrl.startsWith('sqlite:')) throw new Error(`not a SQLite URL: ${databaseUrl}`);
  return knex({ client: 'better-sqlite3', connection: { filename: databaseUrl.slice('sqlite:'.length) }, useNullAsDefault: true });
}

async function tableContents(db: Knex): Promise<TableContents> {
  const tables: Array<{ name: string }> = await db.raw("select name from sqlite_master where type = 'table' and name not like 'sqlite_%' and name not like 'knex_%' and name <> 'audit_log' order by name");
  const out: TableContents = {};
  for (const { name } of tables) out[name] = (await db(name).select('*')).map((r) => JSON.stringify(r)).sort();
  return out;
}

/** What an import leaves in Gatehouse's tables, minus what differs between two databases by design (the HMAC key, timestamps). */
async function importedRows(db: Knex, report: ImportReport): Promise<ImportedDatabase> {
  const users = await db('users').select('id', 'username', 'username_key', 'email', 'email_verified', 'name', 'password_hash', 'must_reset_password', 'is_admin', 'disabled').orderBy('id');
  const clients = (await db('clients').select('client_id', 'name', 'type', 'settings', 'secret_hash', 'disabled').orderBy('client_id')).map((c) => ({
    ...c,
    secret_hash:
      typeof c.secret_hash === 'string' && c.secret_hash.startsWith('hmac-sha256$')
        ? 'hmac-sha256$(keyed)'
        : typeof c.secret_hash === 'string' && c.secret_hash.startsWith('plain$')
          ? 'plain$(encrypted)'
          : c.secret_hash,
  }));
  const refreshTokenIds = (await db('oidc_payloads').where({ model: 'RefreshToken' }).select('id').orderBy('id')).map((r) => String(r.id));
  return { report, users, clients, refreshTokenIds };
}

/** Imports `source` into a fresh SQLite database with the CLI (no server), and reads back what it wrote. */
async function freshDatabase(kind: 'sqlite' | 'pg'): Promise<TestDatabase> {
  const database = await createTestDatabase(kind);
  cleanups.push(() => database.drop());
  return database;
}

async function importIntoFreshDatabase(source: string, template: Record<string, string>): Promise<ImportedDatabase> {
  const database = await freshDatabase('sqlite');
  const report = await importDot({ ...template, DATABASE_URL: database.url }, source);
  const db = sqliteKnex(database.url);
  try {
    return await importedRows(db, report);
  } finally {
    await db.destroy();
  }
}

/** The scopes an import creates depend on the target (a running server has seeded read and write), not on the source. */
const createdScopesNote = /^scopes? .+ (would be|was|were) created \(imported from django-oauth-toolkit/;

const withoutSource = (r: ImportReport) => {
  const { source: _source, dry_run: _dryRun, ...rest } = r;
  return { ...rest, notes: rest.notes.filter((n) => !createdScopesNote.test(n)) };
};

const userReport = (r: ImportReport, username: string) => r.users.find((u) => u.username === username);
const clientReport = (r: ImportReport, app: DotFixtureApp) => r.clients.find((c) => c.client_id === app.clientId);

function authorizeUrl(base: string, endpoint: string, app: DotFixtureApp, params: Record<string, string> = {}): { url: string; state: string; nonce: string; redirectUri: string } {
  const redirectUri = app.redirectUris[0]!;
  const state = randomBytes(12).toString('base64url');
  const nonce = randomBytes(12).toString('base64url');
  const url = new URL(`${base}${endpoint}`);
  url.search = new URLSearchParams({ client_id: app.clientId, response_type: 'code', redirect_uri: redirectUri, scope: 'openid profile email', state, nonce, ...params }).toString();
  return { url: url.href, state, nonce, redirectUri };
}

/** A person signs in at an imported app through the real login (and consent) pages; the browser stops at the app's redirect URI. */
async function signIn(gh: TestGatehouse, app: DotFixtureApp, username: string, password: string, { endpoint = '/authorize', params = {} as Record<string, string> } = {}) {
  const request = authorizeUrl(gh.url, endpoint, app, params);
  const agent = new UserAgent([request.redirectUri]);
  const landed = await signInAndAllow(agent, request.url, username, password);
  const callback = landed.url.startsWith(request.redirectUri) ? new URL(landed.url).searchParams : undefined;
  return { ...request, landed, code: callback?.get('code') ?? undefined, returnedState: callback?.get('state') ?? undefined };
}

async function redeemCode(gh: TestGatehouse, app: DotFixtureApp, code: string, redirectUri: string, auth: ClientAuth, endpoint = '/token') {
  return postAsClient(gh.url, endpoint, { grant_type: 'authorization_code', code, redirect_uri: redirectUri }, app, auth);
}

async function refresh(gh: TestGatehouse, app: DotFixtureApp, refreshToken: string, auth: ClientAuth) {
  return postAsClient(gh.url, '/token', { grant_type: 'refresh_token', refresh_token: refreshToken }, app, auth);
}

const storedPasswordHash = async (gh: TestGatehouse, sub: string): Promise<string | null> => (await gh.services.db('users').where({ id: sub }).first('password_hash'))?.password_hash ?? null;
const storedSecret = async (gh: TestGatehouse, clientId: string): Promise<string | null> => (await gh.services.db('clients').where({ client_id: clientId }).first('secret_hash'))?.secret_hash ?? null;

/** stderr without the runtime warning oidc-provider prints on Node.js 20 (not Gatehouse's output). */
const errorLines = (res: CliResult) =>
  res.stderr
    .split('\n')
    .filter((l) => l.trim() && !l.startsWith('oidc-provider WARNING'));

/**
 * A Gatehouse for these tests. Its server and the tests share one busy event loop, so a
 * keep-alive connection can hit the server's 5 s idle timeout just as fetch reuses it
 * (ECONNRESET): idle connections are kept longer here.
 */
async function gatehouse(env: Record<string, string>): Promise<TestGatehouse> {
  const gh = await startTestGatehouse({ env });
  cleanups.push(() => gh.close());
  gh.server.keepAliveTimeout = 10 * 60_000;
  return gh;
}

// ---- setup: one import per source -----------------------------------------------------------

test.before(async (t) => {
  const fixture = (file: string) => {
    const copy = copyFixture(file);
    cleanups.push(() => fs.rmSync(path.dirname(copy), { recursive: true, force: true }));
    return copy;
  };
  const sqliteSource = fixture('dot17.sqlite3');
  const dumpdataSource = fixture('dot17.dumpdata.json');
  const hashedSource = fixture('dot-hashed.dumpdata.json');

  const main = async () => {
    const gh = await gatehouse({ ...ENV, GATEHOUSE_COMPAT_PATHS: 'dot' });
    const report = await importDot(gh.env, sqliteSource);
    const contentsAfterFirst = await tableContents(gh.services.db);
    const first = await importedRows(gh.services.db, report);
    const second = await importDot(gh.env, sqliteSource);
    const contentsAfterSecond = await tableContents(gh.services.db);
    return { gh, first, second, contentsAfterFirst, contentsAfterSecond };
  };
  const dryRun = async () => {
    const database = await freshDatabase('sqlite');
    const env = { ...ENV, DATABASE_URL: database.url, GATEHOUSE_ISSUER: 'http://localhost:3999' };
    const report = await importDot(env, sqliteSource, '--dry-run');
    const createdBeside = fs.readdirSync(path.dirname(database.url.slice('sqlite:'.length)));
    const migrated = await runCli(['migrate'], env);
    if (migrated.code !== 0) throw new Error(migrated.stderr);
    const onExisting = await importDot(env, sqliteSource, '--dry-run');
    const db = sqliteKnex(database.url);
    try {
      const counts: Record<string, number> = {};
      for (const table of ['users', 'clients', 'oidc_payloads']) counts[table] = Number((await db(table).count({ n: '*' }))[0]!.n);
      return { report, createdBeside, onExisting, counts };
    } finally {
      await db.destroy();
    }
  };
  const template = { ...ENV, GATEHOUSE_ISSUER: 'http://localhost:3999' };
  const postgres = async (): Promise<ImportedDatabase | { error: string }> => {
    try {
      const pg = await freshDatabase('pg');
      const loaded = await loadDotIntoPostgres(sqliteSource, pg.url);
      if (loaded.auth_user !== 5 || loaded.oauth2_provider_application !== 9 || loaded.oauth2_provider_refreshtoken !== 12) {
        throw new Error(`the DOT rows did not all reach PostgreSQL: ${JSON.stringify(loaded)}`);
      }
      return await importIntoFreshDatabase(pg.url, template);
    } catch (err) {
      return { error: (err as Error).stack ?? String(err) };
    }
  };
  const hashed = async () => {
    const gh = await gatehouse(ENV);
    return { gh, report: await importDot(gh.env, hashedSource) };
  };
  const again = async () => {
    const gh = await gatehouse(ENV);
    // In-process, as the CLI does it: the CLI itself is exercised by the other runs.
    await importFromDot(gh.services, sqliteSource, { dryRun: false });
    // What happens in Gatehouse between two runs: a sign-in, a secret rotation, a revocation, a disabled user.
    const bob = await signIn(gh, DOT_APPS.accounts, 'bob', DOT_USERS.bob.password);
    if (!bob.code) throw new Error(`bob could not sign in: ${bob.landed.url} ${bob.landed.status}`);
    const { clientSecret } = await gh.services.admin.rotateClientSecret(CLI_ACTOR, DOT_APPS.billing.clientId);
    const revoked = await postAsClient(gh.url, '/revoke', { token: DOT_REFRESH_TOKENS.bobIntranet, token_type_hint: 'refresh_token' }, DOT_APPS.intranet, 'basic');
    await gh.services.admin.setUserDisabled(CLI_ACTOR, DOT_USERS.alice.sub, true);
    const beforeReimport = {
      bobIntranet: (await refresh(gh, DOT_APPS.intranet, DOT_REFRESH_TOKENS.bobIntranet, 'basic')).status,
      aliceWeb: (await refresh(gh, DOT_APPS.portal, DOT_REFRESH_TOKENS.aliceWeb, 'basic')).status,
    };
    const report = await importFromDot(gh.services, sqliteSource, { dryRun: false });
    return { gh, rotatedSecret: clientSecret!, revokeStatus: revoked.status, beforeReimport, report };
  };

  const [m, dry, dumpdata, pg, h, a] = await Promise.all([main(), dryRun(), importIntoFreshDatabase(dumpdataSource, template), postgres(), hashed(), again()]);
  t.context = {
    gh: m.gh,
    sqliteSource,
    first: m.first,
    second: m.second,
    contentsAfterFirst: m.contentsAfterFirst,
    contentsAfterSecond: m.contentsAfterSecond,
    dryRun: dry,
    dumpdata,
    postgres: pg,
    hashed: h.gh,
    hashedReport: h.report,
    again: a,
  };
});

test.after.always(async () => {
  // Servers first: a database is dropped only once nothing uses it.
  for (const undo of cleanups.reverse()) await Promise.resolve(undo()).catch(() => undefined);
});

// ---- what the import carries over (from dot17.sqlite3) --------------------------------------

test('every DOT application is a client with its client_id, name, type, grant types, redirect URIs and consent setting', async (t) => {
  const { gh } = t.context;
  const clients = new Map((await gh.services.clients.list()).map((c) => [c.clientId, c]));
  t.is(clients.size, 7, 'seven applications can be served; implicit and password ones are refused');
  const expected = [
    [DOT_APPS.portal, ['authorization_code', 'refresh_token']],
    [DOT_APPS.mobile, ['authorization_code', 'refresh_token']],
    [DOT_APPS.billing, ['client_credentials']],
    [DOT_APPS.intranet, ['authorization_code', 'refresh_token']],
    [DOT_APPS.dashboard, ['authorization_code', 'refresh_token']],
    [DOT_APPS.accounts, ['authorization_code', 'refresh_token']],
  ] as const;
  for (const [app, grants] of expected) {
    const c = clients.get(app.clientId);
    if (!c) {
      t.fail(`${app.name} (${app.clientId}) was not imported`);
      continue;
    }
    t.is(c.name, app.name);
    t.is(c.type, app.type, `${app.name}: type`);
    t.deepEqual(c.grantTypes, [...grants], `${app.name}: grant types`);
    t.deepEqual(c.redirectUris, app.redirectUris, `${app.name}: redirect URIs`);
    t.is(c.skipConsent, app.skipAuthorization, `${app.name}: skip_authorization → skip consent`);
    t.is(c.authMethod, app.type === 'public' ? 'none' : 'client_secret_basic', `${app.name}: auth method`);
    t.is(c.idTokenSignedResponseAlg, app.algorithm === 'HS256' ? 'HS256' : 'RS256', `${app.name}: ID token alg`);
    t.false(c.disabled);
  }
  t.true(clients.get(DOT_APPS.dashboard.clientId)!.skipConsent, 'Internal Dashboard had skip_authorization');
  t.true(clients.get(DOT_APPS.billing.clientId)!.scope.includes('invoices:read'), 'the site-wide API scopes are given to the service');
});

test('the application without a name is named after its client_id', async (t) => {
  const { gh } = t.context;
  const res = await runCli(['clients', 'show', DOT_APPS.hybrid.clientId, '--json'], gh.env);
  t.is(res.code, 0, res.stderr);
  const shown = res.json();
  t.is(shown.client_name, DOT_APPS.hybrid.clientId);
  t.is(shown.client_type, 'confidential');
  t.deepEqual(shown.redirect_uris, DOT_APPS.hybrid.redirectUris);
  t.true(clientReport(t.context.first.report, DOT_APPS.hybrid)!.notes.some((n) => /no name.*client_id/.test(n)), 'the report says why it got that name');
});

test('the openid-hybrid application becomes an authorization_code client and the report says hybrid response types are not served', async (t) => {
  const { gh, first } = t.context;
  const c = await gh.services.clients.get(DOT_APPS.hybrid.clientId);
  t.true(c.grantTypes.includes('authorization_code'));
  t.false(c.grantTypes.includes('client_credentials'));
  const entry = clientReport(first.report, DOT_APPS.hybrid)!;
  t.is(entry.outcome, 'imported');
  t.true(entry.notes.some((n) => /hybrid/.test(n) && /not served/.test(n) && /response_type=code/.test(n)), entry.notes.join('\n'));

  // And indeed: asking for "code id_token" gets no code.
  const request = authorizeUrl(gh.url, '/authorize', DOT_APPS.hybrid, { response_type: 'code id_token' });
  const page = await new UserAgent([request.redirectUri]).open(request.url);
  t.false(/[?#&]code=/.test(page.url), page.url);
  t.regex(`${page.url} ${page.html}`, /unsupported_response_type/);
});

test('implicit and password applications are refused, with the reason and what to move the app to', async (t) => {
  const { gh, first } = t.context;
  const spa = clientReport(first.report, DOT_APPS.spa)!;
  t.is(spa.outcome, 'refused');
  const spaNotes = spa.notes.join(' ');
  t.regex(spaNotes, /implicit/);
  t.regex(spaNotes, /OAuth 2\.1/);
  t.regex(spaNotes, /authorization code flow with PKCE/, 'advice: where to move the app');

  const cli = clientReport(first.report, DOT_APPS.cli)!;
  t.is(cli.outcome, 'refused');
  const cliNotes = cli.notes.join(' ');
  t.regex(cliNotes, /password/);
  t.regex(cliNotes, /OAuth 2\.1/);
  t.regex(cliNotes, /authorization code flow|client_credentials/, 'advice: where to move the app');

  for (const app of [DOT_APPS.spa, DOT_APPS.cli]) {
    t.falsy(await gh.services.db('clients').where({ client_id: app.clientId }).first(), `${app.name} must not be a client`);
  }
  t.deepEqual(first.report.summary.clients, { imported: 7, updated: 0, unchanged: 0, refused: 2 });
});

test('every DOT user is imported with sub = Django pk, username, email, name, and admin for staff/superusers', async (t) => {
  const { gh, first } = t.context;
  t.is(first.users.length, 5);
  for (const fixture of Object.values(DOT_USERS)) {
    const user = await gh.services.accounts.get(fixture.sub);
    t.is(user.id, fixture.sub, `${fixture.username}: sub is the Django primary key, as a string`);
    t.is(user.username, fixture.username);
    t.is(user.email, fixture.email, `${fixture.username}: email`);
    t.is(user.name, fixture.name, `${fixture.username}: first + last name`);
    t.is(user.isAdmin, fixture.admin, `${fixture.username}: admin`);
    t.is(user.disabled, !fixture.active, `${fixture.username}: disabled`);
  }
  t.deepEqual(first.report.summary.users, { imported: 5, updated: 0, unchanged: 0, refused: 0 });
});

test('carol (inactive in DOT) is imported disabled; dave (unusable password) must reset and has no password', async (t) => {
  const { gh, first } = t.context;
  const carol = await gh.services.accounts.get('4');
  t.true(carol.disabled);
  t.true(userReport(first.report, 'carol')!.notes.some((n) => /inactive/.test(n)));

  const res = await runCli(['users', 'show', '5', '--json'], gh.env);
  t.is(res.code, 0, res.stderr);
  t.like(res.json(), { id: '5', username: 'dave', email: 'dave@partner.example', disabled: false, must_reset_password: true });
  const dave = first.users.find((u) => u.id === '5')!;
  t.is(dave.password_hash, null, 'Django\'s "!…" unusable password is not carried over as a hash');
  t.true(userReport(first.report, 'dave')!.notes.some((n) => /no usable password/.test(n)));
});

test('the report carries over the 7 live refresh tokens and says why carol\'s and the password app\'s are left behind', async (t) => {
  const { first } = t.context;
  const rt = first.report.refresh_tokens;
  t.is(rt.imported, 7);
  t.is(rt.already_present, 0);
  t.deepEqual(rt.not_imported.map((n) => n.id).sort((a, b) => a - b), [5, 11]);
  t.regex(rt.not_imported.find((n) => n.id === 5)!.reason, /carol.*inactive/);
  t.regex(rt.not_imported.find((n) => n.id === 11)!.reason, /Alice's CLI.*refused/);
  t.deepEqual(first.refreshTokenIds, [
    DOT_REFRESH_TOKENS.adminAccounts,
    DOT_REFRESH_TOKENS.bobMobile,
    DOT_REFRESH_TOKENS.aliceWeb,
    DOT_REFRESH_TOKENS.adminDashboard,
    DOT_REFRESH_TOKENS.aliceMobile,
    DOT_REFRESH_TOKENS.bobIntranet,
    DOT_REFRESH_TOKENS.aliceAccounts,
  ].map((token) => storedId('RefreshToken', token)).sort());
});

// ---- people sign in with their DOT passwords ------------------------------------------------

const signsInWithDotPassword = test.macro({
  async exec(t, who: 'alice' | 'bob' | 'admin') {
    const { gh, first } = t.context;
    const person = DOT_USERS[who];
    const app = DOT_APPS.accounts;
    t.regex(first.users.find((u) => u.id === person.sub)!.password_hash as string, /^pbkdf2_sha256\$260000\$/, 'imported with the Django hash');

    const flow = await signIn(gh, app, person.username, person.password);
    t.truthy(flow.code, `no code: ended at ${flow.landed.url} (${flow.landed.status}) ${flow.landed.html.slice(0, 300)}`);
    t.is(flow.returnedState, flow.state);
    const res = await redeemCode(gh, app, flow.code!, flow.redirectUri, 'basic');
    t.is(res.status, 200, JSON.stringify(res.body));
    const idToken = decodeJwt(res.body.id_token);
    t.is(idToken.header.alg, 'RS256');
    t.is(idToken.payload.sub, person.sub, 'the ID token names the person by their Django pk');
    t.is(idToken.payload.aud, app.clientId);
    t.is(idToken.payload.nonce, flow.nonce);

    const stored = await storedPasswordHash(gh, person.sub);
    t.true(stored?.startsWith('scrypt$'), `after the first sign-in the hash is ours: ${stored?.slice(0, 20)}`);
  },
  title: (_provided, who: string) => `${who} signs in with their DOT password through the login page; the ID token's sub is the Django pk and the hash is upgraded to scrypt`,
});

test(signsInWithDotPassword, 'alice');
test(signsInWithDotPassword, 'bob');
test(signsInWithDotPassword, 'admin');

test('carol, inactive in DOT, cannot sign in with her correct password', async (t) => {
  const { gh } = t.context;
  const flow = await signIn(gh, DOT_APPS.accounts, 'carol', DOT_USERS.carol.password);
  t.is(flow.code, undefined);
  t.is(flow.landed.status, 401);
  t.regex(flow.landed.html, /not correct/);
  t.regex((await storedPasswordHash(gh, '4')) ?? '', /^pbkdf2_sha256\$/, 'a refused sign-in does not touch the hash');
});

test('at Internal Dashboard (skip_authorization in DOT) bob signs in without a consent page', async (t) => {
  const { gh } = t.context;
  const app = DOT_APPS.dashboard;
  const request = authorizeUrl(gh.url, '/authorize', app, { scope: 'openid read' });
  const agent = new UserAgent([request.redirectUri]);
  const login = await agent.open(request.url);
  t.true(isLoginPage(login), `not the login page: ${login.url} (${login.status})`);
  const landed = await agent.submit(login, /\/login$/, { username: 'bob', password: DOT_USERS.bob.password });
  t.false(isConsentPage(landed), 'first-party: no consent page');
  t.true(landed.url.startsWith(request.redirectUri), `not back at the app: ${landed.url} (${landed.status})`);
  const code = new URL(landed.url).searchParams.get('code');
  t.truthy(code);
  const res = await redeemCode(gh, app, code!, request.redirectUri, 'post');
  t.is(res.status, 200, JSON.stringify(res.body));
  t.is(decodeJwt(res.body.id_token).payload.sub, '3');
});

test('dave, who had no usable password in DOT, cannot sign in', async (t) => {
  const { gh } = t.context;
  // Not even with the stored "!…" string itself.
  const flow = await signIn(gh, DOT_APPS.accounts, 'dave', DAVE_UNUSABLE_HASH);
  t.is(flow.code, undefined);
  t.is(flow.landed.status, 401);
  t.is(await storedPasswordHash(gh, '5'), null);
});

// ---- apps keep their secrets ----------------------------------------------------------------

test('billing-service gets an invoices:read token with its DOT secret by HTTP Basic and by client_secret_post', async (t) => {
  const { gh } = t.context;
  const app = DOT_APPS.billing;
  for (const auth of ['basic', 'post'] as const) {
    const res = await postAsClient(gh.url, '/token', { grant_type: 'client_credentials', scope: 'invoices:read' }, app, auth);
    t.is(res.status, 200, `${auth}: ${JSON.stringify(res.body)}`);
    t.is(res.body.scope, 'invoices:read');
    t.is(res.body.token_type, 'Bearer');
    t.is(typeof res.body.access_token, 'string');
  }
  const wrong = await postAsClient(gh.url, '/token', { grant_type: 'client_credentials', scope: 'invoices:read' }, { clientId: app.clientId, secret: `${app.secret}x` }, 'basic');
  t.is(wrong.status, 401);
  t.is(wrong.body.error, 'invalid_client');
  t.regex((await storedSecret(gh, app.clientId)) ?? '', /^hmac-sha256\$/, 'a DOT 1.7 plain secret is stored as our HMAC');
  t.false(((await storedSecret(gh, app.clientId)) ?? '').includes(app.secret));
});

/** An imported live refresh token, redeemed with HTTP Basic, then its successor with client_secret_post. */
const refreshesWithBothAuthMethods = test.macro({
  async exec(t, appKey: 'accounts' | 'dashboard', token: string, sub: string) {
    const { gh } = t.context;
    const app = DOT_APPS[appKey];
    const wrong = await refresh(gh, { ...app, secret: DOT_APPS.portal.secret }, token, 'basic');
    t.is(wrong.status, 401, 'another app\'s secret is refused');
    t.is(wrong.body.error, 'invalid_client');

    const basic = await refresh(gh, app, token, 'basic');
    t.is(basic.status, 200, `Basic: ${JSON.stringify(basic.body)}`);
    t.truthy(basic.body.access_token);
    t.truthy(basic.body.refresh_token);
    t.not(basic.body.refresh_token, token, 'rotated');
    const post = await refresh(gh, app, basic.body.refresh_token, 'post');
    t.is(post.status, 200, `client_secret_post: ${JSON.stringify(post.body)}`);
    t.truthy(post.body.access_token);

    const info = await fetch(`${gh.url}/userinfo`, { headers: { authorization: `Bearer ${post.body.access_token}` } });
    if (basic.body.scope?.split(' ').includes('openid')) {
      t.is(info.status, 200);
      t.is((await info.json()).sub, sub);
    } else {
      const introspected = await postAsClient(gh.url, '/introspect', { token: post.body.access_token }, app, 'basic');
      t.is(introspected.body.active, true, JSON.stringify(introspected.body));
      t.is(introspected.body.sub, sub);
    }
  },
  title: (_provided, appKey: 'accounts' | 'dashboard') => `${DOT_APPS[appKey].name} refreshes an imported token with its DOT secret by HTTP Basic and by client_secret_post`,
});

test(refreshesWithBothAuthMethods, 'accounts', DOT_REFRESH_TOKENS.adminAccounts, '1');
test(refreshesWithBothAuthMethods, 'dashboard', DOT_REFRESH_TOKENS.adminDashboard, '1');

test('the hybrid application signs a person in with response_type=code and gets tokens by HTTP Basic and by client_secret_post', async (t) => {
  const { gh } = t.context;
  const app = DOT_APPS.hybrid;
  const flow = await signIn(gh, app, 'alice', DOT_USERS.alice.password);
  t.truthy(flow.code, `no code: ended at ${flow.landed.url} (${flow.landed.status}) ${flow.landed.html.slice(0, 300)}`);
  const basic = await redeemCode(gh, app, flow.code!, flow.redirectUri, 'basic');
  t.is(basic.status, 200, JSON.stringify(basic.body));
  t.is(decodeJwt(basic.body.id_token).payload.sub, '2');
  t.truthy(basic.body.refresh_token);
  const post = await refresh(gh, app, basic.body.refresh_token, 'post');
  t.is(post.status, 200, JSON.stringify(post.body));
});

test('the public app Acme Mobile refreshes an imported token with its client_id alone', async (t) => {
  const { gh } = t.context;
  const res = await refresh(gh, DOT_APPS.mobile, DOT_REFRESH_TOKENS.bobMobile, 'none');
  t.is(res.status, 200, JSON.stringify(res.body));
  t.is(res.body.scope, 'read');
});

test('Legacy Intranet\'s ID tokens are HS256, signed with its plain client secret', async (t) => {
  const { gh } = t.context;
  const app = DOT_APPS.intranet;
  // The HMAC key has to be kept, so it is stored encrypted (the key is not in the database).
  t.regex((await storedSecret(gh, app.clientId)) ?? '', /^plain\$gh-enc:v1:/, 'the HMAC key has to be kept, encrypted');
  t.false(((await storedSecret(gh, app.clientId)) ?? '').includes(app.secret));

  const basic = await refresh(gh, app, DOT_REFRESH_TOKENS.bobIntranet, 'basic');
  t.is(basic.status, 200, JSON.stringify(basic.body));
  t.truthy(basic.body.id_token, 'an openid refresh token gets an ID token');
  const idToken = decodeJwt(basic.body.id_token);
  t.is(idToken.header.alg, 'HS256');
  t.true(hs256Verifies(idToken, app.secret), 'the relying party verifies it with its client secret');
  t.false(hs256Verifies(idToken, DOT_APPS.accounts.secret));
  t.is(idToken.payload.sub, '3');
  t.is(idToken.payload.aud, app.clientId);

  const post = await refresh(gh, app, basic.body.refresh_token, 'post');
  t.is(post.status, 200, JSON.stringify(post.body));
  t.true(hs256Verifies(decodeJwt(post.body.id_token), app.secret));
});

// ---- imported refresh tokens ----------------------------------------------------------------

test('alice\'s live DOT refresh token for Acme Web Portal works once and rotates; presenting it again is refused', async (t) => {
  const { gh } = t.context;
  const app = DOT_APPS.portal;
  const first = await refresh(gh, app, DOT_REFRESH_TOKENS.aliceWeb, 'basic');
  t.is(first.status, 200, JSON.stringify(first.body));
  t.is(first.body.scope, 'read write', 'the scope of the DOT access token it came with');
  t.truthy(first.body.refresh_token);
  t.not(first.body.refresh_token, DOT_REFRESH_TOKENS.aliceWeb);
  const introspected = await postAsClient(gh.url, '/introspect', { token: first.body.access_token }, app, 'post');
  t.like(introspected.body, { active: true, sub: '2', client_id: app.clientId });

  const next = await refresh(gh, app, first.body.refresh_token, 'post');
  t.is(next.status, 200, JSON.stringify(next.body));

  const replay = await refresh(gh, app, DOT_REFRESH_TOKENS.aliceWeb, 'basic');
  t.is(replay.status, 400);
  t.is(replay.body.error, 'invalid_grant');
});

test('carol\'s DOT refresh token does not work in Gatehouse', async (t) => {
  const { gh } = t.context;
  const res = await refresh(gh, DOT_APPS.dashboard, DOT_REFRESH_TOKENS.carolDashboard, 'basic');
  t.is(res.status, 400, JSON.stringify(res.body));
  t.is(res.body.error, 'invalid_grant');
});

test('refresh tokens DOT had revoked do not work, nor those of refused applications', async (t) => {
  const { gh } = t.context;
  for (const [app, token] of [
    [DOT_APPS.portal, DOT_REFRESH_TOKENS.aliceWebRevoked],
    [DOT_APPS.accounts, DOT_REFRESH_TOKENS.aliceAccountsRevoked],
  ] as const) {
    const res = await refresh(gh, app, token, 'basic');
    t.is(res.status, 400, `${token}: ${JSON.stringify(res.body)}`);
    t.is(res.body.error, 'invalid_grant');
  }
  const cli = await refresh(gh, DOT_APPS.cli, DOT_REFRESH_TOKENS.aliceCli, 'basic');
  t.is(cli.status, 401, 'Alice\'s CLI is not a client');
  t.is(cli.body.error, 'invalid_client');
});

// ---- running it again, and dry runs ---------------------------------------------------------

test('a second import of the same database changes nothing', async (t) => {
  const { second, contentsAfterFirst, contentsAfterSecond } = t.context;
  t.deepEqual(second.users.map((u) => u.outcome), ['unchanged', 'unchanged', 'unchanged', 'unchanged', 'unchanged']);
  t.deepEqual(second.summary.users, { imported: 0, updated: 0, unchanged: 5, refused: 0 });
  t.deepEqual(second.summary.clients, { imported: 0, updated: 0, unchanged: 7, refused: 2 });
  t.is(second.refresh_tokens.imported, 0);
  t.is(second.refresh_tokens.already_present, 7);
  t.deepEqual(second.refresh_tokens.not_imported.map((n) => n.id).sort((a, b) => a - b), [5, 11]);
  t.deepEqual(Object.keys(contentsAfterSecond), Object.keys(contentsAfterFirst));
  for (const table of Object.keys(contentsAfterFirst)) {
    t.is(contentsAfterSecond[table]!.length, contentsAfterFirst[table]!.length, `${table}: row count`);
    t.deepEqual(contentsAfterSecond[table], contentsAfterFirst[table], `${table}: contents`);
  }
});

test('a dry run where no database exists yet creates no database file, and reports the plan of the real run, saying it planned against an empty one', async (t) => {
  const { dryRun, first } = t.context;
  t.true(dryRun.report.dry_run);
  t.deepEqual(dryRun.createdBeside, [], 'nothing was created where the database would be');
  const planned = dryRun.report.notes.filter((n) => /does not exist yet: planned against an empty one, and it was not created$/.test(n));
  t.is(planned.length, 1, dryRun.report.notes.join('\n'));
  t.deepEqual(withoutSource({ ...dryRun.report, notes: dryRun.report.notes.filter((n) => !planned.includes(n)) }), withoutSource(first.report));
});

test('a dry run on an existing, empty database writes nothing and reports the same plan as the real run', async (t) => {
  const { dryRun, first } = t.context;
  t.true(dryRun.onExisting.dry_run);
  t.deepEqual(dryRun.counts, { users: 0, clients: 0, oidc_payloads: 0 });
  t.deepEqual(withoutSource(dryRun.onExisting), withoutSource(first.report));
});

test('importing again keeps what changed in Gatehouse since: upgraded password hashes and rotated secrets', async (t) => {
  const { gh, report, rotatedSecret } = t.context.again;
  t.regex((await storedPasswordHash(gh, DOT_USERS.bob.sub)) ?? '', /^scrypt\$/, 'bob\'s upgraded hash is not put back to the Django one');
  t.is(userReport(report, 'bob')!.outcome, 'unchanged');
  t.is(clientReport(report, DOT_APPS.billing)!.outcome, 'unchanged');
  const rotated = await postAsClient(gh.url, '/token', { grant_type: 'client_credentials', scope: 'invoices:read' }, { clientId: DOT_APPS.billing.clientId, secret: rotatedSecret }, 'basic');
  t.is(rotated.status, 200, `the rotated secret still works: ${JSON.stringify(rotated.body)}`);
  const old = await postAsClient(gh.url, '/token', { grant_type: 'client_credentials', scope: 'invoices:read' }, DOT_APPS.billing, 'basic');
  t.is(old.status, 401, 'the DOT secret does not come back');
});

// Bug: the importer decides "already present" by looking the refresh token up, and Gatehouse deletes revoked tokens.
test('importing again does not bring back a refresh token that was revoked in Gatehouse', async (t) => {
  const { gh, revokeStatus, beforeReimport, report } = t.context.again;
  t.is(revokeStatus, 200);
  t.is(beforeReimport.bobIntranet, 400, 'revoked before the second run');
  const res = await refresh(gh, DOT_APPS.intranet, DOT_REFRESH_TOKENS.bobIntranet, 'basic');
  t.is(res.status, 400, `the revoked token works again (${report.refresh_tokens.imported} carried over again): ${JSON.stringify(res.body)}`);
  t.is(res.body.error, 'invalid_grant');
});

// Bug: the importer compares users with DOT's row and "updates" them back, disabled flag included.
test('importing again does not re-enable a user an operator disabled in Gatehouse, nor bring back her tokens', async (t) => {
  const { gh, beforeReimport, report } = t.context.again;
  t.is(beforeReimport.aliceWeb, 400, 'disabling alice revoked her tokens');
  t.true((await gh.services.accounts.get(DOT_USERS.alice.sub)).disabled, `alice is ${userReport(report, 'alice')!.outcome} and enabled again`);
  const res = await refresh(gh, DOT_APPS.portal, DOT_REFRESH_TOKENS.aliceWeb, 'basic');
  t.is(res.status, 400, `her DOT refresh token works again: ${JSON.stringify(res.body)}`);
});

// ---- the other sources ----------------------------------------------------------------------

test('importing the dumpdata JSON gives the same users, clients and refresh tokens as the SQLite file', async (t) => {
  const { dumpdata, first } = t.context;
  t.deepEqual(dumpdata.users, first.users);
  t.deepEqual(dumpdata.clients, first.clients);
  t.deepEqual(dumpdata.refreshTokenIds, first.refreshTokenIds);
  t.deepEqual(withoutSource(dumpdata.report), withoutSource(first.report));
});

test('importing DOT\'s PostgreSQL database gives the same users, clients and refresh tokens as the SQLite file', async (t) => {
  const { postgres, first } = t.context;
  if ('error' in postgres) return t.fail(`PostgreSQL source: ${postgres.error}`);
  t.true(postgres.report.source.startsWith('postgres://'));
  t.deepEqual(postgres.users, first.users);
  t.deepEqual(postgres.clients, first.clients);
  t.deepEqual(postgres.refreshTokenIds, first.refreshTokenIds);
  t.deepEqual(withoutSource(postgres.report), withoutSource(first.report));
});

// ---- DOT ≥ 2 hashed secrets (dot-hashed.dumpdata.json) -------------------------------------

test('with DOT 2.x hashed secrets, billing-service gets a token with its plain secret and the stored hash becomes ours', async (t) => {
  const { hashed: gh, hashedReport } = t.context;
  const app = DOT_APPS.billing;
  t.deepEqual(hashedReport.summary.clients, { imported: 7, updated: 0, unchanged: 0, refused: 2 });
  t.regex((await storedSecret(gh, app.clientId)) ?? '', /^pbkdf2_sha256\$260000\$Ty5uKe2WqP9nRb4xLm7cZs\$/, 'kept as DOT hashed it');

  const basic = await postAsClient(gh.url, '/token', { grant_type: 'client_credentials', scope: 'invoices:read' }, app, 'basic');
  t.is(basic.status, 200, JSON.stringify(basic.body));
  t.is(basic.body.scope, 'invoices:read');
  t.regex((await storedSecret(gh, app.clientId)) ?? '', /^hmac-sha256\$/, 're-hashed our way after the first success');

  const post = await postAsClient(gh.url, '/token', { grant_type: 'client_credentials', scope: 'invoices:read' }, app, 'post');
  t.is(post.status, 200, `the re-hashed secret still works: ${JSON.stringify(post.body)}`);
  const wrong = await postAsClient(gh.url, '/token', { grant_type: 'client_credentials' }, { clientId: app.clientId, secret: 'bs-2025-06-Vh3Jr8kQ-rotate-mE' }, 'post');
  t.is(wrong.status, 401);
  t.is(wrong.body.error, 'invalid_client');
});

test('with DOT 2.x hashed secrets, a wrong secret is refused and the Django hash stays as it was', async (t) => {
  const { hashed: gh } = t.context;
  const app = DOT_APPS.dashboard;
  const before = await storedSecret(gh, app.clientId);
  t.regex(before ?? '', /^pbkdf2_sha256\$/);
  for (const auth of ['basic', 'post'] as const) {
    const res = await postAsClient(gh.url, '/token', { grant_type: 'refresh_token', refresh_token: 'whatever' }, { clientId: app.clientId, secret: DOT_APPS.accounts.secret }, auth);
    t.is(res.status, 401, `${auth}: ${JSON.stringify(res.body)}`);
    t.is(res.body.error, 'invalid_client');
  }
  t.is(await storedSecret(gh, app.clientId), before);
});

test('with DOT 2.x hashed secrets, Acme Accounts redeems a code with its plain secret; its logout URIs and origins carry over', async (t) => {
  const { hashed: gh } = t.context;
  const app = DOT_APPS.accounts;
  const client = await gh.services.clients.get(app.clientId);
  t.deepEqual(client.postLogoutRedirectUris, ['https://app.acme.example/logged-out', 'https://app.acme.example/']);
  t.deepEqual(client.allowedOrigins, ['https://app.acme.example']);

  const flow = await signIn(gh, app, 'alice', DOT_USERS.alice.password);
  t.truthy(flow.code, `no code: ended at ${flow.landed.url} (${flow.landed.status})`);
  const res = await redeemCode(gh, app, flow.code!, flow.redirectUri, 'post');
  t.is(res.status, 200, JSON.stringify(res.body));
  t.is(decodeJwt(res.body.id_token).payload.sub, '2');
  t.regex((await storedSecret(gh, app.clientId)) ?? '', /^hmac-sha256\$/);
  const again = await refresh(gh, app, res.body.refresh_token, 'basic');
  t.is(again.status, 200, JSON.stringify(again.body));
});

test('with DOT 2.x hashed secrets, the HS256 application keeps its plain secret and signs bob\'s ID token with it', async (t) => {
  const { hashed: gh, hashedReport } = t.context;
  const app = DOT_APPS.intranet;
  t.regex((await storedSecret(gh, app.clientId)) ?? '', /^plain\$gh-enc:v1:/);
  t.false(((await storedSecret(gh, app.clientId)) ?? '').includes(app.secret));
  t.true(clientReport(hashedReport, app)!.notes.some((n) => /HS256/.test(n)));
  const flow = await signIn(gh, app, 'bob', DOT_USERS.bob.password);
  t.truthy(flow.code, `no code: ended at ${flow.landed.url} (${flow.landed.status})`);
  const res = await redeemCode(gh, app, flow.code!, flow.redirectUri, 'basic');
  t.is(res.status, 200, JSON.stringify(res.body));
  const idToken = decodeJwt(res.body.id_token);
  t.is(idToken.header.alg, 'HS256');
  t.true(hs256Verifies(idToken, app.secret));
  t.is(idToken.payload.sub, '3');
  t.is(idToken.payload.nonce, flow.nonce);
});

// ---- DOT's URLs -----------------------------------------------------------------------------

test('with GATEHOUSE_COMPAT_PATHS=dot, an app configured with DOT\'s URLs signs a person in, gets tokens and reads userinfo', async (t) => {
  const { gh } = t.context;
  const app = DOT_APPS.portal;
  const request = authorizeUrl(gh.url, '/o/authorize/', app);
  t.true(request.url.startsWith(`${gh.url}/o/authorize/?`));
  const agent = new UserAgent([request.redirectUri]);
  const login = await agent.open(request.url);
  t.true(isLoginPage(login), `not the login page: ${login.url} (${login.status})`);
  const consent = await agent.submit(login, /\/login$/, { username: 'admin', password: DOT_USERS.admin.password });
  t.true(isConsentPage(consent), `not the consent page: ${consent.url} (${consent.status}) ${consent.html.slice(0, 300)}`);
  const landed = await agent.submit(consent, /\/consent$/, { decision: 'allow' });
  t.true(landed.url.startsWith(request.redirectUri), `not back at the app: ${landed.url} (${landed.status})`);
  const callback = new URL(landed.url).searchParams;
  t.is(callback.get('state'), request.state);
  const flow = { ...request, code: callback.get('code') ?? undefined };
  t.truthy(flow.code);

  const tokens = await redeemCode(gh, app, flow.code!, flow.redirectUri, 'basic', '/o/token/');
  t.is(tokens.status, 200, JSON.stringify(tokens.body));
  t.is(decodeJwt(tokens.body.id_token).payload.sub, '1');

  const info = await fetch(`${gh.url}/o/userinfo/`, { headers: { authorization: `Bearer ${tokens.body.access_token}` } });
  t.is(info.status, 200);
  t.like(await info.json(), { sub: '1', email: 'admin@acme.example', preferred_username: 'admin' });

  const introspected = await postAsClient(gh.url, '/o/introspect/', { token: tokens.body.access_token }, app, 'basic');
  t.is(introspected.status, 200, JSON.stringify(introspected.body));
  t.like(introspected.body, { active: true, sub: '1', client_id: app.clientId });

  const revoked = await postAsClient(gh.url, '/o/revoke_token/', { token: tokens.body.access_token, token_type_hint: 'access_token' }, app, 'post');
  t.is(revoked.status, 200, JSON.stringify(revoked.body));
  const after = await postAsClient(gh.url, '/o/introspect/', { token: tokens.body.access_token }, app, 'basic');
  t.is(after.body.active, false, 'revoked through /o/revoke_token/');
  const refused = await fetch(`${gh.url}/o/userinfo/`, { headers: { authorization: `Bearer ${tokens.body.access_token}` } });
  t.is(refused.status, 401);
});

test('DOT\'s discovery and JWKS URLs answer like the standard ones', async (t) => {
  const { gh } = t.context;
  for (const [dot, standard] of [
    ['/o/.well-known/openid-configuration/', '/.well-known/openid-configuration'],
    ['/o/.well-known/openid-configuration', '/.well-known/openid-configuration'],
    ['/o/.well-known/jwks.json', '/jwks'],
  ]) {
    const [a, b] = await Promise.all([fetch(`${gh.url}${dot}`), fetch(`${gh.url}${standard}`)]);
    t.is(a.status, 200, dot);
    t.regex(a.headers.get('content-type') ?? '', /json/);
    t.deepEqual(await a.json(), await b.json(), `${dot} = ${standard}`);
  }
});

test('without GATEHOUSE_COMPAT_PATHS, DOT\'s /o/token/ is not there', async (t) => {
  const { hashed: gh } = t.context;
  const res = await postAsClient(gh.url, '/o/token/', { grant_type: 'client_credentials' }, DOT_APPS.billing, 'basic');
  t.is(res.status, 404);
  const discovery = await fetch(`${gh.url}/o/.well-known/openid-configuration/`);
  t.is(discovery.status, 404);
});

// ---- bad sources ----------------------------------------------------------------------------

const refusesSource = test.macro({
  async exec(t, _what: string, makeSource: (dir: string) => string, expected: RegExp) {
    const database = await createTestDatabase('sqlite');
    try {
      const dir = path.dirname(database.url.slice('sqlite:'.length));
      fs.mkdirSync(dir, { recursive: true });
      const source = makeSource(dir);
      const res = await runCli(['import', 'dot', '--from', source], { ...ENV, DATABASE_URL: database.url, GATEHOUSE_ISSUER: 'http://localhost:3999' });
      t.not(res.code, 0);
      const lines = errorLines(res);
      t.is(lines.length, 1, `one line of error, got:\n${res.stderr}`);
      t.regex(lines[0] ?? '', /^error: /);
      t.regex(lines[0] ?? '', expected);
      t.notRegex(res.stderr, /\n\s+at /, 'no stack trace');
      t.is(res.stdout, '');
    } finally {
      await database.drop();
    }
  },
  title: (_provided, what: string) => `importing from ${what} fails with a clear one-line error`,
});

test(refusesSource, 'a path that does not exist', (dir) => path.join(dir, 'no-such-dot.sqlite3'), /no-such-dot\.sqlite3 does not exist/);
test(refusesSource, 'a random text file', (dir) => {
  const file = path.join(dir, 'notes.txt');
  fs.writeFileSync(file, 'These are not the tokens you are looking for.\n');
  return file;
}, /notes\.txt is neither a SQLite database nor a dumpdata JSON file/);
test(refusesSource, 'a JSON file that is not a list', (dir) => {
  const file = path.join(dir, 'dot.json');
  fs.writeFileSync(file, JSON.stringify({ model: 'auth.user', pk: 1, fields: {} }));
  return file;
}, /dumpdata file is a JSON list/);

// ---- Django's password hashers --------------------------------------------------------------

test('Django pbkdf2_sha256: the README\'s worked examples (alice, bob\'s non-ASCII password) verify; wrong passwords do not', async (t) => {
  const alice = 'pbkdf2_sha256$260000$VoerkiAbCKap02EIrY6w6u$olxuP0xWIPDE1VxXkfZPbjS/c9u1A9p2+xx1bkK2geM=';
  const bob = 'pbkdf2_sha256$260000$rChVUu9s9MHMW9vmQFLHxw$SQ7qYsdlhidYDEJAQF0jGIBUW/ctoFWD/m0lV0t0s0g=';
  t.true(isDjangoHash(alice));
  t.true(await verifyDjangoHash(alice, 'alice-Passw0rd!'));
  t.false(await verifyDjangoHash(alice, 'alice-Passw0rd'));
  t.false(await verifyDjangoHash(alice, 'Alice-Passw0rd!'));
  t.true(await verifyDjangoHash(bob, 'bøb-Pässwörd-3'));
  t.false(await verifyDjangoHash(bob, 'bob-Passwort-3'));
  t.false(await verifyDjangoHash(bob, 'bøb-Pässwörd-3'.normalize('NFD')), 'Django hashes the exact UTF-8 bytes');
  // The hashed client secret of dot-hashed.dumpdata.json, and through the password checker sign-in uses.
  t.true(await verifyPassword('pbkdf2_sha256$260000$Ty5uKe2WqP9nRb4xLm7cZs$caRTq6ok8tqLbttXYy5xQ2Y1ct6OZRwTMmkGS9O97pc=', 'bs-2025-06-Vh3Jr8kQ-rotate-me'));
  t.false(await verifyDjangoHash(alice.replace('260000', '259999'), 'alice-Passw0rd!'), 'the iteration count is read from the string');
});

test('Django pbkdf2_sha1 hashes verify the right password and refuse a wrong one', async (t) => {
  const salt = 'Qz9xKp2LmN4r';
  const digest = pbkdf2Sync('s3cret-sha1', salt, 10000, 20, 'sha1').toString('base64');
  const stored = `pbkdf2_sha1$10000$${salt}$${digest}`;
  t.true(isDjangoHash(stored));
  t.true(await verifyDjangoHash(stored, 's3cret-sha1'));
  t.false(await verifyDjangoHash(stored, 's3cret-sha2'));
});

test('Django argon2 hashes verify the right password and refuse a wrong one', async (t) => {
  const phc = await argon2id({ password: 'argon-Passw0rd!', salt: randomBytes(16), iterations: 2, parallelism: 1, memorySize: 1024, hashLength: 32, outputType: 'encoded' });
  t.true(phc.startsWith('$argon2id$'));
  const stored = `argon2${phc}`; // Django: "argon2" + "$argon2id$v=19$m=…,t=…,p=…$salt$hash"
  t.true(stored.startsWith('argon2$argon2id$v=19$'));
  t.true(isDjangoHash(stored));
  t.true(await verifyDjangoHash(stored, 'argon-Passw0rd!'));
  t.false(await verifyDjangoHash(stored, 'argon-Passw0rd?'));
});

test('Django bcrypt_sha256 hashes verify the right password and refuse a wrong one', async (t) => {
  const password = 'bcrypt-Pässwörd-with-more-than-seventy-two-bytes-……………………………………………………';
  const prehashed = createHash('sha256').update(password, 'utf8').digest('hex');
  const stored = `bcrypt_sha256$${await bcrypt({ password: prehashed, salt: randomBytes(16), costFactor: 4, outputType: 'encoded' })}`;
  t.true(isDjangoHash(stored));
  t.true(await verifyDjangoHash(stored, password));
  t.false(await verifyDjangoHash(stored, `${password.slice(0, -1)}x`), 'the whole password counts, past bcrypt\'s 72 bytes');
  t.false(await verifyDjangoHash(stored, 'bcrypt'));
});

test('Django\'s unusable "!" password never matches anything', async (t) => {
  t.true(isUnusableDjangoPassword(DAVE_UNUSABLE_HASH));
  t.false(isDjangoHash(DAVE_UNUSABLE_HASH));
  for (const guess of ['', DAVE_UNUSABLE_HASH, DAVE_UNUSABLE_HASH.slice(1), '!']) {
    t.false(await verifyDjangoHash(DAVE_UNUSABLE_HASH, guess), JSON.stringify(guess));
    t.false(await verifyPassword(DAVE_UNUSABLE_HASH, guess), JSON.stringify(guess));
  }
  t.false(await verifyDjangoHash('!', ''));
});
