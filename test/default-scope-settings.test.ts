/**
 * An operator sets a client's default scope (what an authorization request without scope asks
 * for) with the CLI, the admin API and the admin pages; each refuses a default outside the
 * client's registered scope, through the one rule set in src/clients/rules.ts.
 */
import anyTest, { type TestFn } from 'ava';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { CLI_ACTOR } from '../src/admin/audit.ts';
import { adminApi, type AdminApi } from './support/admin-api.ts';
import { chromiumAvailable, launchBrowser } from './support/browser.ts';
import { runCli } from './support/cli.ts';
import type { TestGatehouse } from './support/gatehouse.ts';
import { REDIRECT_URI, startLoopbackGatehouse } from './support/relying-party.ts';

const test = anyTest as TestFn<{ gh: TestGatehouse; api: AdminApi; browser: Browser; operator: BrowserContext }>;

const OPERATOR = { username: 'root', password: 'default-scope-operator-2026' };

test.before(async (t) => {
  if (!chromiumAvailable()) throw new Error('Debian chromium is required for the browser tests (apt-get install -y chromium)');
  const gh = await startLoopbackGatehouse();
  await gh.services.accounts.create({ ...OPERATOR, email: 'root@example.com', isAdmin: true });
  const { token } = await gh.services.admin.createAdminToken(CLI_ACTOR, 'default-scope tests');
  const browser = await launchBrowser();
  const operator = await browser.newContext();
  const page = await operator.newPage();
  await page.goto(`${gh.url}/admin/login`);
  await page.fill('input[name="username"]', OPERATOR.username);
  await page.fill('input[name="password"]', OPERATOR.password);
  await page.click('button[type="submit"]');
  await page.waitForURL(`${gh.url}/admin/clients`);
  await page.close();
  t.context = { gh, api: adminApi(gh, token), browser, operator };
});

test.after.always(async (t) => {
  await t.context.operator?.close();
  await t.context.browser?.close();
  await t.context.gh?.close();
});

const SIGN_IN = ['--type', 'confidential', '--grant', 'authorization_code', '--grant', 'refresh_token', '--redirect-uri', REDIRECT_URI];

test('clients create --default-scope sets it, show prints it, and update --no-default-scope goes back to the registered scope', async (t) => {
  const { gh } = t.context;
  const created = await runCli(['clients', 'create', '--name', 'CLI default', ...SIGN_IN, '--scope', 'openid profile email offline_access', '--default-scope', 'openid profile', '--json'], gh.env);
  t.is(created.code, 0, created.stderr);
  const id: string = created.json().client_id;
  t.is(created.json().default_scope, 'openid profile');

  const shown = await runCli(['clients', 'show', id], gh.env);
  t.regex(shown.stdout, /^default scope: openid profile$/m);

  const none = await runCli(['clients', 'update', id, '--default-scope', '', '--json'], gh.env);
  t.is(none.code, 0, none.stderr);
  t.is(none.json().default_scope, '', '"" is no default: a request without scope is refused');
  t.regex((await runCli(['clients', 'show', id], gh.env)).stdout, /^default scope: none: a request must name its scope$/m);

  const reset = await runCli(['clients', 'update', id, '--no-default-scope', '--json'], gh.env);
  t.is(reset.code, 0, reset.stderr);
  t.is(reset.json().default_scope, null);
  t.regex((await runCli(['clients', 'show', id], gh.env)).stdout, /^default scope: openid profile email offline_access \(the scope\)$/m);
  t.deepEqual((await gh.services.clients.get(id)).defaultScope, null);
});

test('the CLI refuses a default scope outside the registered scope, naming --default-scope, and stores nothing', async (t) => {
  const { gh } = t.context;
  const refused = await runCli(['clients', 'create', '--name', 'Too wide', ...SIGN_IN, '--scope', 'openid profile', '--default-scope', 'openid email'], gh.env);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /--default-scope: email is not in the client's scope \(openid profile\)/);
  t.false((await gh.services.clients.list()).some((c) => c.name === 'Too wide'), 'nothing was stored');

  const { client } = await gh.services.admin.createClient(CLI_ACTOR, { name: 'Narrow later', type: 'confidential', grantTypes: ['authorization_code'], redirectUris: [REDIRECT_URI], scope: ['openid', 'profile'], defaultScope: ['profile'] });
  const narrowed = await runCli(['clients', 'update', client.clientId, '--scope', 'openid'], gh.env);
  t.is(narrowed.code, 1, 'narrowing the scope below the default is refused too');
  t.regex(narrowed.stderr, /--default-scope: profile is not in the client's scope \(openid\)/);
  t.deepEqual((await gh.services.clients.get(client.clientId)).scope, ['openid', 'profile']);

  const unknown = await runCli(['clients', 'create', '--name', 'Unknown', ...SIGN_IN, '--default-scope', 'openid everything'], gh.env);
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /--default-scope: unknown scope everything/);
});

test('the admin API sets, shows and resets default_scope, and refuses one outside scope with 400', async (t) => {
  const { api } = t.context;
  const created = await api('POST', '/clients', {
    body: { client_name: 'API default', grant_types: ['authorization_code'], redirect_uris: [REDIRECT_URI], scope: 'openid profile email', default_scope: 'openid' },
  });
  t.is(created.status, 201, created.text);
  t.is(created.body.default_scope, 'openid');
  const id = created.body.client_id;

  const wider = await api('PATCH', `/clients/${id}`, { body: { default_scope: 'openid userdata' } });
  t.is(wider.status, 400, wider.text);
  t.is(wider.body.error, 'invalid_client_metadata');
  t.regex(wider.body.error_description, /default_scope: userdata is not in the client's scope/);
  t.is((await api('GET', `/clients/${id}`)).body.default_scope, 'openid', 'unchanged');

  const notText = await api('PATCH', `/clients/${id}`, { body: { default_scope: 42 } });
  t.is(notText.status, 400, notText.text);

  const none = await api('PATCH', `/clients/${id}`, { body: { default_scope: '' } });
  t.is(none.status, 200, none.text);
  t.is(none.body.default_scope, '');
  const reset = await api('PATCH', `/clients/${id}`, { body: { default_scope: null } });
  t.is(reset.body.default_scope, null);
  t.is((await api('GET', `/clients/${id}`)).body.default_scope, null);

  const openapi = await api('GET', '/openapi.json');
  t.truthy(openapi.body.components.schemas.ClientMetadata.properties.default_scope);
});

async function save(page: Page): Promise<number> {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && r.request().isNavigationRequest()),
    page.waitForNavigation(),
    page.click('button:has-text("Save changes")'),
  ]);
  return response.status();
}

test.serial('an operator sets a default scope in the client form; one outside the scope is shown next to the field and nothing is saved', async (t) => {
  const { gh, operator } = t.context;
  const { client } = await gh.services.admin.createClient(CLI_ACTOR, { name: 'Pages default', type: 'confidential', grantTypes: ['authorization_code', 'refresh_token'], redirectUris: [REDIRECT_URI] });
  const page = await operator.newPage();
  try {
    await page.goto(`${gh.url}/admin/clients/${client.clientId}`);
    t.is(await page.inputValue('#defaultScope'), '', 'unset: the registered scope');

    await page.fill('#defaultScope', 'openid userdata');
    t.is(await save(page), 400);
    const error = page.locator('.field:has(#defaultScope) .field-error[data-field="defaultScope"]');
    t.regex((await error.textContent())!, /userdata is not in the client's scope/);
    t.is(await page.inputValue('#defaultScope'), 'openid userdata', 'what was typed stays');
    t.is((await gh.services.clients.get(client.clientId)).defaultScope, null);

    await page.fill('#defaultScope', 'openid profile');
    t.is(await save(page), 303);
    t.deepEqual((await gh.services.clients.get(client.clientId)).defaultScope, ['openid', 'profile']);
    t.is(await page.inputValue('#defaultScope'), 'openid profile');

    await page.check('input[name="noDefaultScope"]');
    t.is(await save(page), 303);
    t.deepEqual((await gh.services.clients.get(client.clientId)).defaultScope, []);
    t.true(await page.isChecked('input[name="noDefaultScope"]'));

    await page.uncheck('input[name="noDefaultScope"]');
    await page.fill('#defaultScope', '');
    t.is(await save(page), 303);
    t.is((await gh.services.clients.get(client.clientId)).defaultScope, null);
  } finally {
    await page.close();
  }
});
