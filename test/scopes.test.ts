import { randomBytes } from 'node:crypto';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import type { Knex } from 'knex';
import type { Browser, BrowserContext, Page as BrowserPage } from 'playwright-core';
import { loadConfig } from '../src/config.ts';
import { openDatabase } from '../src/db.ts';
import { adminApi, clientCredentialsToken, type AdminApi, type ApiResponse } from './support/admin-api.ts';
import { chromiumAvailable, launchBrowser } from './support/browser.ts';
import { runCli } from './support/cli.ts';
import { createTestDatabase, restartTestGatehouse, startTestGatehouse, type DatabaseKind, type TestGatehouse } from './support/gatehouse.ts';
import { createUserDirectly, REDIRECT_URI, startLoopbackGatehouse } from './support/relying-party.ts';
import { isConsentPage, UserAgent } from './support/user-agent.ts';

/**
 * Scopes are data: API scopes are rows, created, listed and deleted by the CLI, the admin API
 * and the admin pages; a client may hold one the moment it exists; one a client holds cannot be
 * deleted; the consent page shows each one's own description. Over a listening Gatehouse on a
 * fresh SQLite database (GATEHOUSE_API_SCOPES unset: read and write are seeded).
 */

interface Context {
  gh: TestGatehouse;
  api: AdminApi;
  browser: Browser;
  operator: BrowserContext;
}

const test = anyTest as TestFn<Context>;

const OPERATOR = { username: 'scopekeeper', password: 'scopes-are-rows-2026' };
const tag = () => randomBytes(4).toString('hex');

test.before(async (t) => {
  if (!chromiumAvailable()) throw new Error('Debian chromium is required for the browser tests (apt-get install -y chromium)');
  const gh = await startLoopbackGatehouse();
  const created = await runCli(['admin-tokens', 'create', '--name', 'scopes-test', '--json'], gh.env);
  if (created.code !== 0) throw new Error(created.stderr);
  await gh.services.accounts.create({ username: OPERATOR.username, email: 'keeper@example.com', password: OPERATOR.password, isAdmin: true });
  const browser = await launchBrowser();
  const operator = await browser.newContext();
  const page = await operator.newPage();
  await page.goto(`${gh.url}/admin/login`);
  await page.fill('input[name="username"]', OPERATOR.username);
  await page.fill('input[name="password"]', OPERATOR.password);
  await Promise.all([page.waitForURL(`${gh.url}/admin/clients`), page.click('button[type="submit"]')]);
  await page.close();
  t.context = { gh, api: adminApi(gh, created.json().token), browser, operator };
});

test.after.always(async (t) => {
  await t.context.operator?.close();
  await t.context.browser?.close();
  await t.context.gh?.close();
});

function isApiError(t: ExecutionContext, res: ApiResponse, status: number, error: string) {
  t.is(res.status, status, res.text);
  t.is(res.body?.error, error, res.text);
  t.is(typeof res.body?.error_description, 'string', res.text);
}

/** A confidential service with the client credentials grant and `scope`, made through the admin API. */
async function createService(api: AdminApi, scope: string, name = `Service ${tag()}`) {
  const res = await api('POST', '/clients', { body: { client_name: name, grant_types: ['client_credentials'], scope } });
  if (res.status !== 201) throw new Error(`POST /clients: ${res.status} ${res.text}`);
  return { id: res.body.client_id as string, secret: res.body.client_secret as string, name };
}

async function scopesSupported(gh: TestGatehouse): Promise<string[]> {
  const res = await fetch(`${gh.url}/.well-known/openid-configuration`);
  return ((await res.json()) as { scopes_supported: string[] }).scopes_supported;
}

// ---- the CLI ---------------------------------------------------------------------------------

test('an operator creates, lists and deletes a scope with the CLI, each with --json', async (t) => {
  const { gh } = t.context;
  const name = `reports-${tag()}:read`;
  const created = await runCli(['scopes', 'create', '--name', name, '--description', 'Read your reports', '--json'], gh.env);
  t.is(created.code, 0, created.stderr);
  t.like(created.json(), { name, description: 'Read your reports', built_in: false });
  t.regex(created.json().created_at, /^\d{4}-\d\d-\d\dT/);
  t.true((await scopesSupported(gh)).includes(name), 'the running server serves what the CLI created, at once');

  const listed = await runCli(['scopes', 'list', '--json'], gh.env);
  t.is(listed.code, 0, listed.stderr);
  const names = listed.json().map((s: { name: string }) => s.name);
  t.deepEqual(names.slice(0, 5), ['openid', 'profile', 'email', 'offline_access', 'userdata'], 'the built-in scopes first');
  t.true(listed.json().slice(0, 5).every((s: { built_in: boolean }) => s.built_in));
  t.true(names.includes('read') && names.includes('write'), 'GATEHOUSE_API_SCOPES (unset: read write) seeded at start-up');
  t.true(names.includes(name));
  const human = await runCli(['scopes', 'list'], gh.env);
  t.regex(human.stdout, new RegExp(`^${name.replace(/[.:]/g, '\\$&')}\\s+Read your reports$`, 'm'));

  const deleted = await runCli(['scopes', 'delete', name, '--json'], gh.env);
  t.is(deleted.code, 0, deleted.stderr);
  t.deepEqual(deleted.json(), { name, deleted: true });
  t.false((await gh.services.scopes.list()).some((s) => s.name === name));
});

test('the CLI says what is wrong: a missing --description is a usage error, a built-in, taken or malformed name is refused naming the option', async (t) => {
  const { gh } = t.context;
  const missing = await runCli(['scopes', 'create', '--name', 'orders:read'], gh.env);
  t.is(missing.code, 2);
  t.regex(missing.stderr, /missing --description/);

  const builtIn = await runCli(['scopes', 'create', '--name', 'openid', '--description', 'Who you are'], gh.env);
  t.is(builtIn.code, 1);
  t.regex(builtIn.stderr, /--name: openid is a built-in scope/);

  const taken = await runCli(['scopes', 'create', '--name', 'read', '--description', 'Again', '--json'], gh.env);
  t.is(taken.code, 1);
  t.deepEqual(JSON.parse(taken.stderr.trim().split('\n').at(-1)!), { error: 'invalid_request', error_description: '--name: scope read already exists' });

  const spaced = await runCli(['scopes', 'create', '--name', 'a"b', '--description', ''], gh.env);
  t.is(spaced.code, 1);
  t.regex(spaced.stderr, /--name: must be printable ASCII without spaces, quotes or backslashes; --description: is required/);

  const builtInDelete = await runCli(['scopes', 'delete', 'email'], gh.env);
  t.is(builtInDelete.code, 1);
  t.regex(builtInDelete.stderr, /email is a built-in scope and cannot be deleted/);
});

// ---- the admin API ---------------------------------------------------------------------------

test('a script creates, lists and deletes a scope through the admin API, and the audit log records both changes', async (t) => {
  const { api } = t.context;
  const name = `invoices-${tag()}:write`;
  const created = await api('POST', '/scopes', { body: { name, description: 'Send invoices for you' } });
  t.is(created.status, 201, created.text);
  t.like(created.body, { name, description: 'Send invoices for you', built_in: false });

  const listed = await api('GET', '/scopes');
  t.is(listed.status, 200);
  t.like(listed.body.find((s: { name: string }) => s.name === name), { description: 'Send invoices for you', built_in: false });
  t.like(listed.body.find((s: { name: string }) => s.name === 'openid'), { built_in: true, created_at: null });

  const deleted = await api('DELETE', `/scopes/${encodeURIComponent(name)}`);
  t.is(deleted.status, 204, deleted.text);
  t.false((await api('GET', '/scopes')).body.some((s: { name: string }) => s.name === name));

  const audit = (await api('GET', '/audit?limit=20')).body as Array<{ action: string; target: string; details: Record<string, unknown> }>;
  const entries = audit.filter((e) => e.target === `scope:${name}`).map((e) => e.action);
  t.deepEqual(entries, ['scope.delete', 'scope.create'], 'newest first');
});

test('the admin API refuses bad scope input with a 4xx naming what is wrong', async (t) => {
  const { api } = t.context;
  isApiError(t, await api('POST', '/scopes', { body: { name: 'has space', description: 'x' } }), 400, 'invalid_request');
  t.regex((await api('POST', '/scopes', { body: { name: 'has space', description: 'x' } })).body.error_description, /^name: must be printable ASCII/);
  t.regex((await api('POST', '/scopes', { body: { name: 'ok:name' } })).body.error_description, /^description: is required/);
  t.regex((await api('POST', '/scopes', { body: { name: 42, description: 'x' } })).body.error_description, /^name: must be a string/);
  t.regex((await api('POST', '/scopes', { body: { name: 'x'.repeat(101), description: 'x' } })).body.error_description, /^name: must be at most 100 characters/);
  t.regex((await api('POST', '/scopes', { body: { name: 'ok:name', description: 'line\nbreak' } })).body.error_description, /^description: must be one line/);
  t.regex((await api('POST', '/scopes', { body: { name: 'ok:name', description: 'x', built_in: true } })).body.error_description, /^built_in: is not a scope field/);
  t.regex((await api('POST', '/scopes', { body: { name: 'userdata', description: 'x' } })).body.error_description, /userdata is a built-in scope/);
  isApiError(t, await api('POST', '/scopes', { raw: '[]' }), 400, 'invalid_request');
  isApiError(t, await api('POST', '/scopes', { raw: 'name=x', contentType: 'application/x-www-form-urlencoded' }), 415, 'unsupported_media_type');
  isApiError(t, await api('DELETE', '/scopes/no-such-scope'), 404, 'not_found');
  isApiError(t, await api('DELETE', '/scopes/openid'), 400, 'invalid_request');
  isApiError(t, await api('GET', '/scopes', { token: null }), 401, 'invalid_token');
  t.false((await api('GET', '/scopes')).body.some((s: { name: string }) => s.name === 'ok:name'), 'nothing was created');
});

test('the OpenAPI document describes the scopes paths', async (t) => {
  const doc = await (await fetch(`${t.context.gh.url}/admin/api/openapi.json`)).json();
  t.truthy(doc.paths['/scopes'].get);
  t.truthy(doc.paths['/scopes'].post);
  t.truthy(doc.paths['/scopes/{name}'].delete);
  t.deepEqual(doc.components.schemas.Scope.required, ['name', 'description']);
});

// ---- using a scope ---------------------------------------------------------------------------

test('a client registered with a scope created a moment before gets a client-credentials token with it, and discovery lists it', async (t) => {
  const { gh, api } = t.context;
  const name = `ledger-${tag()}:read`;
  t.is((await api('POST', '/scopes', { body: { name, description: 'Read the ledger' } })).status, 201);
  const service = await createService(api, name);
  const token = await clientCredentialsToken(gh, service.id, service.secret);
  t.is(token.status, 200, JSON.stringify(token.body));
  t.is(token.body.scope, name);
  t.true((await scopesSupported(gh)).includes(name));
});

test('a client cannot be registered with a scope that does not exist, and the answer says which', async (t) => {
  const res = await t.context.api('POST', '/clients', { body: { client_name: 'Too early', grant_types: ['client_credentials'], scope: 'not-yet:read' } });
  isApiError(t, res, 400, 'invalid_client_metadata');
  t.regex(res.body.error_description, /scope: unknown scope not-yet:read/);
});

test('deleting a scope a client holds is refused naming the client, in the admin API and the CLI; once the client lets go it is deleted and discovery drops it', async (t) => {
  const { gh, api } = t.context;
  const name = `payroll-${tag()}`;
  t.is((await api('POST', '/scopes', { body: { name, description: 'See payroll' } })).status, 201);
  const service = await createService(api, `read ${name}`, 'Payroll robot');

  const refused = await api('DELETE', `/scopes/${name}`);
  isApiError(t, refused, 409, 'scope_in_use');
  t.is(refused.body.error_description, `scope ${name} is used by client Payroll robot (${service.id}): remove it from its scope first`);
  const cli = await runCli(['scopes', 'delete', name], gh.env);
  t.is(cli.code, 1);
  t.true(cli.stderr.includes(`Payroll robot (${service.id})`), cli.stderr);
  t.is((await clientCredentialsToken(gh, service.id, service.secret)).body.scope, `read ${name}`, 'the client still works');

  t.is((await api('PATCH', `/clients/${service.id}`, { body: { scope: 'read' } })).status, 200);
  t.is((await api('DELETE', `/scopes/${name}`)).status, 204);
  t.false((await scopesSupported(gh)).includes(name));
});

test('a client left holding a scope the server does not know is refused naming the client and the scope', async (t) => {
  const { gh, api } = t.context;
  const name = `ghost-${tag()}`;
  t.is((await api('POST', '/scopes', { body: { name, description: 'Vanishes' } })).status, 201);
  const service = await createService(api, name, 'Haunted service');
  t.is((await clientCredentialsToken(gh, service.id, service.secret)).status, 200);

  // The row removed behind Gatehouse's back (by hand in the database), then heard of.
  await gh.services.db('scopes').where({ name }).delete();
  await gh.services.invalidations.publish('scopes');

  const refused = await clientCredentialsToken(gh, service.id, service.secret);
  t.is(refused.status, 400);
  t.is(refused.body.error, 'invalid_client_metadata');
  t.true(String(refused.body.error_description).includes(`client "Haunted service" (${service.id}) has scope ${name}, which this server does not know`), refused.body.error_description);
  t.regex(refused.body.error_description, new RegExp(`scopes create --name ${name}`));
});

test('the consent page shows the stored description of an API scope', async (t) => {
  const { gh, api } = t.context;
  const name = `calendar-${tag()}:read`;
  t.is((await api('POST', '/scopes', { body: { name, description: 'See the meetings in your calendar' } })).status, 201);
  const app = await api('POST', '/clients', {
    body: { client_name: 'Calendar app', grant_types: ['authorization_code'], redirect_uris: [REDIRECT_URI], scope: `openid ${name}` },
  });
  t.is(app.status, 201, app.text);
  const username = `reader${tag()}`;
  await createUserDirectly(gh, username, 'calendar-reader-pw-1');

  const agent = new UserAgent([REDIRECT_URI]);
  const url = new URL(`${gh.url}/authorize`);
  url.search = new URLSearchParams({ client_id: app.body.client_id, response_type: 'code', redirect_uri: REDIRECT_URI, scope: `openid ${name}`, state: 's' }).toString();
  let page = await agent.open(url.href);
  page = await agent.submit(page, /\/login$/, { username, password: 'calendar-reader-pw-1' });
  t.true(isConsentPage(page), page.html.slice(0, 500));
  t.true(page.html.includes('See the meetings in your calendar'), 'the stored description');
  t.true(page.html.includes(name));
});

// ---- the admin pages -------------------------------------------------------------------------

async function scopesPage(t: ExecutionContext<Context>): Promise<BrowserPage> {
  const page = await t.context.operator.newPage();
  await page.goto(`${t.context.gh.url}/admin/scopes`);
  return page;
}

test.serial('an operator creates a scope on the Scopes page, sees it listed with its description, and deletes it', async (t) => {
  const name = `exports-${tag()}`;
  const page = await scopesPage(t);
  try {
    t.is(await page.locator('nav a[aria-current="page"]').textContent(), 'Scopes');
    t.is(await page.locator('tr[data-scope="openid"] button').count(), 0, 'a built-in scope has no Delete button');
    await page.fill('#scope-name', name);
    await page.fill('#scope-description', 'Download your exports');
    await Promise.all([page.waitForURL(/notice=scope-created/), page.click('#scope-form button[type="submit"]')]);
    t.regex((await page.locator('.notice').textContent()) ?? '', /The scope is created/);
    t.is(await page.locator(`tr[data-scope="${name}"] td:nth-child(2)`).textContent(), 'Download your exports');

    await Promise.all([page.waitForURL(/notice=scope-deleted/), page.click(`tr[data-scope="${name}"] button`)]);
    t.is(await page.locator(`tr[data-scope="${name}"]`).count(), 0);
    t.false((await t.context.gh.services.scopes.list()).some((s) => s.name === name));
  } finally {
    await page.close();
  }
});

test.serial('the Scopes page shows what is wrong with a new scope in place, and keeps what was typed', async (t) => {
  const page = await scopesPage(t);
  try {
    await page.fill('#scope-name', 'read');
    await page.fill('#scope-description', 'Twice');
    const [response] = await Promise.all([page.waitForResponse((r) => r.request().method() === 'POST'), page.click('#scope-form button[type="submit"]')]);
    t.is(response.status(), 400);
    await page.waitForLoadState();
    t.is(await page.locator('.field-error[data-field="name"]').textContent(), 'scope read already exists');
    t.is(await page.inputValue('#scope-description'), 'Twice');
  } finally {
    await page.close();
  }
});

test.serial('deleting a scope a client holds from the Scopes page is refused, and the page names the client with a link to it', async (t) => {
  const { api } = t.context;
  const name = `archive-${tag()}`;
  t.is((await api('POST', '/scopes', { body: { name, description: 'Read the archive' } })).status, 201);
  const service = await createService(api, name, 'Archivist');
  const page = await scopesPage(t);
  try {
    const [response] = await Promise.all([page.waitForResponse((r) => r.request().method() === 'POST'), page.click(`tr[data-scope="${name}"] button`)]);
    t.is(response.status(), 409);
    await page.waitForLoadState();
    const alert = page.locator('#scope-in-use');
    t.regex((await alert.textContent()) ?? '', new RegExp(`${name}[\\s\\S]*Archivist`));
    t.is(await alert.locator('a').getAttribute('href'), `/admin/clients/${service.id}`);
    t.is(await page.locator(`tr[data-scope="${name}"]`).count(), 1, 'still listed');
  } finally {
    await page.close();
  }
});

// ---- seeding and upgrading -------------------------------------------------------------------

test('GATEHOUSE_API_SCOPES seeds each name once: a seeded scope an operator deleted stays deleted after a restart, and a name added later is seeded', async (t) => {
  let gh = await startTestGatehouse({ env: { GATEHOUSE_API_SCOPES: 'orders:read' } });
  try {
    const names = async () => (await gh.services.scopes.list()).map((s) => s.name);
    t.deepEqual(await names(), ['orders:read']);
    await gh.services.scopes.delete('orders:read');

    gh.env.GATEHOUSE_API_SCOPES = 'orders:read orders:write';
    gh = await restartTestGatehouse(gh);
    t.deepEqual(await names(), ['orders:write'], 'orders:read stays deleted; orders:write is new to the variable');
    t.true((await scopesSupported(gh)).includes('orders:write'));
    t.false((await scopesSupported(gh)).includes('orders:read'));
  } finally {
    await gh.close();
  }
});

/** Runs the migrations that come before `name`, one at a time, and none after. */
async function migrateUpTo(db: Knex, name: string): Promise<void> {
  for (;;) {
    const [, pending] = (await db.migrate.list()) as [unknown[], string[]];
    if (!pending.length || pending[0]! >= name) return;
    await db.migrate.up();
  }
}

async function upgradeKeepsClientsScopes(t: ExecutionContext, kind: DatabaseKind) {
  const database = await createTestDatabase(kind);
  const db = openDatabase(loadConfig({ DATABASE_URL: database.url }).database);
  try {
    await migrateUpTo(db, '20261203010000_scopes');
    t.false(await db.schema.hasTable('scopes'), 'before the migration');
    const settings = (scope: string[]) => JSON.stringify({ grantTypes: ['client_credentials'], redirectUris: [], postLogoutRedirectUris: [], allowedOrigins: [], scope, authMethod: 'client_secret_basic', requirePkce: false, idTokenSignedResponseAlg: 'RS256', logoUri: null, clientUri: null });
    await db('clients').insert([
      { client_id: 'billing', name: 'Billing', type: 'confidential', settings: settings(['invoices:read', 'read']), disabled: false, created_at: 1, updated_at: 1 },
      { client_id: 'portal', name: 'Portal', type: 'confidential', settings: settings(['openid', 'profile', 'write']), disabled: false, created_at: 1, updated_at: 1 },
    ]);
    await db.migrate.latest();
    const rows = await db('scopes').select('name', 'description').orderBy('name');
    t.deepEqual(rows, [
      { name: 'invoices:read', description: 'Use the "invoices:read" permission on your behalf' },
      { name: 'read', description: 'Read data on your behalf' },
      { name: 'write', description: 'Change data on your behalf' },
    ]);
  } finally {
    await db.destroy();
    await database.drop();
  }
}

test('upgrading a SQLite database makes every API scope its clients hold a scope, so none stops working without GATEHOUSE_API_SCOPES', upgradeKeepsClientsScopes, 'sqlite');
test('upgrading a PostgreSQL database makes every API scope its clients hold a scope', upgradeKeepsClientsScopes, 'pg');
