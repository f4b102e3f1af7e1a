/**
 * The admin refuses everyone who is not a signed-in operator, on every route: each page and
 * form of /admin and each /admin/api route, enumerated from the routers themselves (a route
 * added later is checked without touching this file), is hit with no credentials, a forged
 * cookie, the session of an operator who lost the admin flag or was disabled, garbage and
 * revoked admin tokens, a person's access token and an admin's session cookie on the API. Each
 * is refused and changes nothing. The tests run one at a time: each compares a snapshot of
 * everything an operator can change before and after.
 */
import { randomBytes } from 'node:crypto';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { createViews } from '../src/web/views.ts';
import { adminApiRoutes } from '../src/admin/api-routes.ts';
import { CLI_ACTOR } from '../src/admin/audit.ts';
import { adminPageRoutes } from '../src/admin/pages/index.ts';
import type { TestGatehouse } from './support/gatehouse.ts';
import { createUserDirectly, REDIRECT_URI, startLoopbackGatehouse } from './support/relying-party.ts';
import { UserAgent } from './support/user-agent.ts';
import { operatorAgent, routesOf, snapshot } from './support/attacks.ts';
import { signInToApp } from './support/userdata.ts';
import { rawBasicAuth } from './support/http.ts';

const PASSWORD = 'correct horse battery staple';
const ROOT = { username: 'root', password: 'operator-at-the-gate-2026' };

interface Ids {
  clientId: string;
  userId: string;
  keyId: string;
  grantId: string;
  /** A scope no client holds: a forged delete would succeed, and show. */
  scope: string;
  /** A resource server no client has by default: a forged delete would succeed, and show. */
  resource: string;
  /** An identity provider: a forged change or delete would show. */
  idp: string;
}

interface Context {
  gh: TestGatehouse;
  ids: Ids;
  adminToken: string;
  /** A person's access token (scope openid): a valid credential, but not an admin's. */
  personToken: string;
  pages: Array<{ method: string; path: string }>;
  api: Array<{ method: string; path: string }>;
}

const test = anyTest as TestFn<Context>;

test.before(async (t) => {
  // Behind a trusted proxy, so each refused API call can come from an address of its own: the
  // per-address lock on wrong admin tokens (attacks-brute-force) is not what this file tests.
  const gh = await startLoopbackGatehouse({ env: { GATEHOUSE_TRUST_PROXY: 'true' } });
  await gh.services.accounts.create({ username: ROOT.username, email: 'ops@example.com', password: ROOT.password, isAdmin: true });
  const app = await gh.services.admin.createClient(CLI_ACTOR, { name: 'Web app', type: 'confidential', grantTypes: ['authorization_code'], redirectUris: [REDIRECT_URI], scope: ['openid'] });
  const userId = await createUserDirectly(gh, 'alice', PASSWORD);
  const { accessToken } = await signInToApp(gh, { clientId: app.client.clientId, clientSecret: app.clientSecret! }, 'alice', PASSWORD, 'openid');
  const [grant] = await gh.services.grants.listForUser(userId);
  // The app's /userdata document of alice, which the admin shows and clears.
  await gh.services.userdata.write(userId, app.client.clientId, undefined, () => ({ theme: 'dark' }));
  const { apiKey } = await gh.services.admin.createApiKey(CLI_ACTOR, app.client.clientId, ['userdata:read'], 'a key');
  const { token } = await gh.services.admin.createAdminToken(CLI_ACTOR, 'deploy-bot');
  const scope = await gh.services.admin.createScope(CLI_ACTOR, { name: 'victim:read', description: 'A scope nobody holds' });
  const resource = await gh.services.admin.createResource(CLI_ACTOR, { audience: 'https://victim-api.example.com', scopes: ['victim:read'] });
  const idp = await gh.services.admin.createIdp(CLI_ACTOR, { name: 'victim-idp', issuer: 'https://idp.victim.example', clientId: 'c', clientSecret: 's' });
  const views = createViews();
  t.context = {
    gh,
    ids: { clientId: app.client.clientId, userId, keyId: apiKey.id, grantId: grant!.grantId, scope: scope.name, resource: resource.audience, idp: idp.name },
    adminToken: token,
    personToken: accessToken,
    pages: routesOf(adminPageRoutes(gh.services, views)),
    api: routesOf(adminApiRoutes(gh.services)),
  };
});

test.after.always(async (t) => t.context.gh?.close());

/** The pages anyone may see: the sign-in form, its code and setup steps (after a right password only) and its assets. */
const PUBLIC_PAGES = new Set(['GET /admin/login', 'POST /admin/login', 'POST /admin/login/code', 'POST /admin/login/enrol', 'GET /admin/assets/:file']);
/** The API's description is public (it names no data). */
const PUBLIC_API = new Set(['GET /admin/api/openapi.json']);

/** A route's path with real ids in place of its parameters. */
function concrete(path: string, ids: Ids): string {
  return path
    .replace(/\/clients\/:id/, `/clients/${encodeURIComponent(ids.clientId)}`)
    .replace(/\/users\/:id/, `/users/${encodeURIComponent(ids.userId)}`)
    .replace(/\/api-keys\/:id/, `/api-keys/${ids.keyId}`)
    .replace(':keyId', ids.keyId)
    .replace(':grantId', encodeURIComponent(ids.grantId))
    .replace(':clientId', encodeURIComponent(ids.clientId))
    .replace(/\/scopes\/:name/, `/scopes/${encodeURIComponent(ids.scope)}`)
    .replace(/\/resources\/:audience/, `/resources/${encodeURIComponent(ids.resource)}`)
    .replace(/\/idps\/:name/, `/idps/${ids.idp}`)
    .replace(':file', 'admin.js');
}

const FORM = { name: 'pwned', description: 'pwned', type: 'confidential', grantTypes: 'client_credentials', username: 'pwned', email: 'pwned@example.com', password: 'pwned-password-1', admin: 'yes', scopes: 'userdata:write' };
const JSON_BODY = {
  client_name: 'pwned',
  grant_types: ['client_credentials'],
  scopes: ['userdata:write'],
  username: 'pwned',
  email: 'pwned@example.com',
  password: 'pwned-password-1',
  admin: true,
  disabled: true,
};

async function page(gh: TestGatehouse, agent: UserAgent, method: string, path: string, extra: Record<string, string> = {}, headers: Record<string, string> = {}) {
  const init: RequestInit = { method, headers: { ...headers } };
  if (method === 'POST') {
    (init.headers as Record<string, string>)['content-type'] = 'application/x-www-form-urlencoded';
    init.body = new URLSearchParams({ ...FORM, ...extra });
  }
  const res = await agent.request(`${gh.url}${path}`, init);
  await res.arrayBuffer();
  return { status: res.status, location: res.headers.get('location') };
}

let calls = 0;
/** A fresh address (10.0.0.0/8) for each API call. */
const nextAddress = () => {
  calls++;
  return `10.${(calls >> 16) & 255}.${(calls >> 8) & 255}.${calls & 255}`;
};

async function api(gh: TestGatehouse, method: string, path: string, headers: Record<string, string>) {
  const init: RequestInit = { method, headers: { accept: 'application/json', 'x-forwarded-for': nextAddress(), ...headers } };
  if (method === 'POST' || method === 'PATCH') {
    (init.headers as Record<string, string>)['content-type'] = 'application/json';
    init.body = JSON.stringify(JSON_BODY);
  }
  const res = await fetch(`${gh.url}${path}`, init);
  const text = await res.text();
  return { status: res.status, text, challenge: res.headers.get('www-authenticate') };
}

const protectedPages = (t: ExecutionContext<Context>) => t.context.pages.filter((r) => !PUBLIC_PAGES.has(`${r.method} ${r.path}`));
const protectedApi = (t: ExecutionContext<Context>) => t.context.api.filter((r) => !PUBLIC_API.has(`${r.method} ${r.path}`));

/** Every page route refuses `agent`: a redirect to the sign-in page, and nothing changed. */
async function pagesRefuse(t: ExecutionContext<Context>, agent: () => UserAgent, extra: () => Record<string, string> = () => ({}), headers: Record<string, string> = {}) {
  const { gh, ids } = t.context;
  const before = await snapshot(gh);
  for (const { method, path } of protectedPages(t)) {
    const res = await page(gh, agent(), method, concrete(path, ids), extra(), headers);
    t.is(res.status, 303, `${method} ${path}: ${res.status}`);
    t.is(res.location, '/admin/login', `${method} ${path}`);
  }
  t.is(await snapshot(gh), before, 'a refused request changed something');
}

/** Every admin API route refuses these headers with 401 invalid_token and a Bearer challenge, and nothing changed. */
async function apiRefuses(t: ExecutionContext<Context>, headers: Record<string, string>) {
  const { gh, ids } = t.context;
  const before = await snapshot(gh);
  for (const { method, path } of protectedApi(t)) {
    const res = await api(gh, method, concrete(path, ids), headers);
    t.is(res.status, 401, `${method} ${path}: ${res.status} ${res.text.slice(0, 200)}`);
    t.is(JSON.parse(res.text).error, 'invalid_token', `${method} ${path}`);
    t.regex(res.challenge ?? '', /^Bearer/, `${method} ${path}`);
  }
  t.is(await snapshot(gh), before, 'a refused request changed something');
}

test.serial('the routers were enumerated: every admin page, form and API route is checked below', (t) => {
  const pages = t.context.pages.map((r) => `${r.method} ${r.path}`);
  const api = t.context.api.map((r) => `${r.method} ${r.path}`);
  for (const expected of ['GET /admin/clients', 'POST /admin/clients/:id/delete', 'POST /admin/users/:id/grant-admin', 'GET /admin/audit']) t.true(pages.includes(expected), expected);
  for (const expected of ['GET /admin/api/clients', 'DELETE /admin/api/clients/:id', 'POST /admin/api/users/:id/password', 'GET /admin/api/audit']) t.true(api.includes(expected), expected);
  t.true(protectedPages(t).length >= 25, `${protectedPages(t).length} page routes`);
  t.true(protectedApi(t).length >= 17, `${protectedApi(t).length} API routes`);
  // Every parameter is filled in with a real id.
  for (const { path } of [...t.context.pages, ...t.context.api]) t.notRegex(concrete(path, t.context.ids), /:/, path);
});

test.serial('with a real operator session every admin page answers, and with a real admin token every API read does (the refusals below are about who asks)', async (t) => {
  const { gh, ids, adminToken } = t.context;
  const { agent } = await operatorAgent(gh, ROOT.username, ROOT.password);
  for (const { method, path } of t.context.pages.filter((r) => r.method === 'GET')) {
    const res = await page(gh, agent, method, concrete(path, ids));
    t.true(res.status === 200 || (path === '/admin' && res.status === 303) || (path === '/admin/login' && res.status === 303), `${method} ${path}: ${res.status}`);
  }
  for (const { method, path } of t.context.api.filter((r) => r.method === 'GET')) {
    const res = await api(gh, method, concrete(path, ids), { authorization: `Bearer ${adminToken}` });
    t.is(res.status, 200, `${method} ${path}: ${res.text.slice(0, 200)}`);
  }
});

test.serial('someone without a session is sent to the admin sign-in from every page and form, and nothing changes', async (t) => {
  await pagesRefuse(t, () => new UserAgent());
});

test.serial('a made-up admin session cookie opens no page or form', async (t) => {
  await pagesRefuse(t, () => {
    const agent = new UserAgent();
    agent.setCookie('gatehouse.admin', randomBytes(32).toString('base64url'));
    agent.setCookie('gatehouse.admin.sig', randomBytes(20).toString('base64url'));
    return agent;
  });
});

test.serial('an admin API token is no key to the admin pages', async (t) => {
  await pagesRefuse(t, () => new UserAgent(), () => ({}), { authorization: `Bearer ${t.context.adminToken}` });
});

for (const [what, demote] of [
  ['whose admin flag was removed', (gh: TestGatehouse, id: string) => gh.services.admin.setUserAdmin(CLI_ACTOR, id, false)],
  ['who was disabled', (gh: TestGatehouse, id: string) => gh.services.admin.setUserDisabled(CLI_ACTOR, id, true)],
] as const) {
  test.serial(`an operator ${what} is refused by every page and form at once, even with the session's CSRF token`, async (t) => {
    const { gh } = t.context;
    const who = { username: `op${randomBytes(4).toString('hex')}`, password: 'second-operator-pass-1' };
    const user = await gh.services.accounts.create({ username: who.username, email: `${who.username}@example.com`, password: who.password, isAdmin: true });
    const session = await operatorAgent(gh, who.username, who.password);
    await demote(gh, user.id);
    // Every request carries the session's cookie and its CSRF token: only the admin check can refuse it.
    const cookies = new Map(session.agent.cookieEntries());
    await pagesRefuse(
      t,
      () => {
        const agent = new UserAgent();
        for (const [k, v] of cookies) agent.setCookie(k, v);
        return agent;
      },
      () => ({ csrf: session.csrf }),
    );
  });
}

test.serial('the admin API refuses every route without a token', async (t) => {
  await apiRefuses(t, {});
});

test.serial('the admin API refuses every route with a made-up token, a malformed header or a token of the right shape but wrong secret', async (t) => {
  const [, id] = /^gha_([^_]+)_/.exec(t.context.adminToken)!;
  for (const authorization of [
    `Bearer ${randomBytes(32).toString('base64url')}`,
    `Bearer gha_${'A'.repeat(16)}_${'B'.repeat(43)}`,
    `Bearer gha_${id}_${randomBytes(32).toString('base64url')}`,
    rawBasicAuth('root', ROOT.password),
    t.context.adminToken,
  ]) {
    await apiRefuses(t, { authorization });
  }
});

test.serial('the admin API refuses every route with a revoked admin token', async (t) => {
  const { gh } = t.context;
  const { token, adminToken } = await gh.services.admin.createAdminToken(CLI_ACTOR, 'short-lived');
  t.is((await api(gh, 'GET', '/admin/api/clients', { authorization: `Bearer ${token}` })).status, 200);
  await gh.services.admin.revokeAdminToken(CLI_ACTOR, adminToken.id);
  await apiRefuses(t, { authorization: `Bearer ${token}` });
});

test.serial("the admin API refuses every route with a person's access token", async (t) => {
  await apiRefuses(t, { authorization: `Bearer ${t.context.personToken}` });
});

test.serial("the admin API refuses every route with an operator's session cookie alone (so a forged cross-site request carries nothing it accepts)", async (t) => {
  const { gh } = t.context;
  const { agent } = await operatorAgent(gh, ROOT.username, ROOT.password);
  const cookie = agent.cookieHeader();
  await apiRefuses(t, { cookie });
});
