/**
 * Cross-site request forgery on every state-changing form: each admin form (enumerated from the
 * admin router, so a new one without a case here fails the suite), the admin sign-in and
 * sign-out, and the sign-out confirmation of RP-initiated logout. Each is refused without its
 * token, with a wrong one, and with the token of another session, and changes nothing; with its
 * own token the same request goes through (so the refusal is the token's doing).
 * The interaction login and consent forms are in sign-in-attacks.test.ts.
 */
import { randomBytes } from 'node:crypto';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { createViews } from '../src/web/views.ts';
import { adminPageRoutes } from '../src/admin/pages/index.ts';
import { CLI_ACTOR } from '../src/admin/audit.ts';
import type { TestGatehouse } from './support/gatehouse.ts';
import {
  authorizationRequest,
  callbackParams,
  createUserDirectly,
  oidc,
  POST_LOGOUT_URI,
  redeem,
  REDIRECT_URI,
  relyingParty,
  signInAndAllow,
  startLoopbackGatehouse,
} from './support/relying-party.ts';
import { findForm, postForm } from './support/http.ts';
import { UserAgent } from './support/user-agent.ts';
import { operatorAgent, routesOf, snapshot } from './support/attacks.ts';
import { signInToApp } from './support/userdata.ts';

const OPERATOR = { username: 'root', password: 'operator-at-the-gate-2026' };
const PASSWORD = 'correct horse battery staple';

interface Context {
  gh: TestGatehouse;
  operator: { agent: UserAgent; csrf: string };
  /** The same operator in another browser: a valid token, of another session. */
  elsewhere: { agent: UserAgent; csrf: string };
  rp: oidc.Configuration;
  web: { clientId: string; clientSecret: string };
}

const test = anyTest as TestFn<Context>;

test.before(async (t) => {
  const gh = await startLoopbackGatehouse();
  await gh.services.accounts.create({ username: OPERATOR.username, email: 'ops@example.com', password: OPERATOR.password, isAdmin: true });
  const { client, clientSecret } = await gh.services.admin.createClient(CLI_ACTOR, {
    name: 'Web app',
    type: 'confidential',
    grantTypes: ['authorization_code'],
    redirectUris: [REDIRECT_URI],
    postLogoutRedirectUris: [POST_LOGOUT_URI],
    scope: ['openid', 'profile', 'email'],
  });
  const web = { clientId: client.clientId, clientSecret: clientSecret! };
  const operator = await operatorAgent(gh, OPERATOR.username, OPERATOR.password);
  const elsewhere = await operatorAgent(gh, OPERATOR.username, OPERATOR.password);
  t.context = { gh, operator, elsewhere, rp: await relyingParty(gh, web, 'basic'), web };
});

test.after.always(async (t) => t.context.gh?.close());

const name = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;

async function newIdp(gh: TestGatehouse): Promise<string> {
  const idp = await gh.services.admin.createIdp(CLI_ACTOR, { name: name('victim'), issuer: 'https://idp.victim.example', clientId: 'victim', clientSecret: 'victim-secret' });
  return idp.name;
}

async function newClient(gh: TestGatehouse, settings: Record<string, unknown> = {}) {
  const { client } = await gh.services.admin.createClient(CLI_ACTOR, { name: name('target'), type: 'confidential', grantTypes: ['client_credentials'], ...settings });
  return client.clientId;
}

async function newUser(gh: TestGatehouse, extra: { isAdmin?: boolean } = {}) {
  const user = await gh.services.accounts.create({ username: name('user'), email: `${name('u')}@example.com`, ...extra });
  return user.id;
}

interface AdminForm {
  /** The request a forger would send: where, and the fields (without the CSRF token). */
  prepare(gh: TestGatehouse): Promise<{ url: string; fields: Record<string, string> }>;
}

/** Every POST route of the admin pages, with a request that would change something. */
const ADMIN_FORMS: Record<string, AdminForm> = {
  '/admin/logout': { prepare: async () => ({ url: '/admin/logout', fields: {} }) },
  '/admin/clients': {
    prepare: async () => ({ url: '/admin/clients', fields: { name: name('forged client'), type: 'confidential', grantTypes: 'client_credentials' } }),
  },
  '/admin/clients/:id': {
    prepare: async (gh) => {
      const id = await newClient(gh);
      return { url: `/admin/clients/${id}`, fields: { name: 'Renamed by a forger', type: 'confidential', grantTypes: 'client_credentials', scope: 'read' } };
    },
  },
  '/admin/clients/:id/rotate-secret': { prepare: async (gh) => ({ url: `/admin/clients/${await newClient(gh)}/rotate-secret`, fields: {} }) },
  '/admin/clients/:id/disable': { prepare: async (gh) => ({ url: `/admin/clients/${await newClient(gh)}/disable`, fields: {} }) },
  '/admin/clients/:id/enable': {
    prepare: async (gh) => {
      const id = await newClient(gh);
      await gh.services.admin.updateClient(CLI_ACTOR, id, { disabled: true });
      return { url: `/admin/clients/${id}/enable`, fields: {} };
    },
  },
  '/admin/clients/:id/delete': { prepare: async (gh) => ({ url: `/admin/clients/${await newClient(gh)}/delete`, fields: {} }) },
  '/admin/clients/:id/api-keys': {
    prepare: async (gh) => ({ url: `/admin/clients/${await newClient(gh)}/api-keys`, fields: { name: 'forged key', scopes: 'userdata:read' } }),
  },
  '/admin/clients/:id/api-keys/:keyId/revoke': {
    prepare: async (gh) => {
      const id = await newClient(gh);
      const { apiKey } = await gh.services.admin.createApiKey(CLI_ACTOR, id, ['userdata:read'], 'victim key');
      return { url: `/admin/clients/${id}/api-keys/${apiKey.id}/revoke`, fields: {} };
    },
  },
  '/admin/users': { prepare: async () => ({ url: '/admin/users', fields: { username: name('mallory'), email: 'mallory@example.com', password: 'mallory-password-1', admin: 'yes' } }) },
  '/admin/users/:id/disable': { prepare: async (gh) => ({ url: `/admin/users/${await newUser(gh)}/disable`, fields: {} }) },
  '/admin/users/:id/enable': {
    prepare: async (gh) => {
      const id = await newUser(gh);
      await gh.services.admin.setUserDisabled(CLI_ACTOR, id, true);
      return { url: `/admin/users/${id}/enable`, fields: {} };
    },
  },
  // An accepted unlock is audited, so a forged one shows in the snapshot.
  '/admin/users/:id/unlock': { prepare: async (gh) => ({ url: `/admin/users/${await newUser(gh)}/unlock`, fields: {} }) },
  // An accepted reset link is audited (and replaces the user's older links), so a forged one shows in the snapshot.
  '/admin/users/:id/reset-link': { prepare: async (gh) => ({ url: `/admin/users/${await newUser(gh)}/reset-link`, fields: {} }) },
  // An accepted reset of two-factor sign-in is audited (with or without an app to remove), so a forged one shows in the snapshot.
  '/admin/users/:id/mfa/reset': { prepare: async (gh) => ({ url: `/admin/users/${await newUser(gh)}/mfa/reset`, fields: {} }) },
  '/admin/users/:id/grant-admin': { prepare: async (gh) => ({ url: `/admin/users/${await newUser(gh)}/grant-admin`, fields: {} }) },
  '/admin/users/:id/remove-admin': { prepare: async (gh) => ({ url: `/admin/users/${await newUser(gh, { isAdmin: true })}/remove-admin`, fields: {} }) },
  '/admin/users/:id/password': { prepare: async (gh) => ({ url: `/admin/users/${await newUser(gh)}/password`, fields: { password: 'set-by-a-forger-1' } }) },
  '/admin/users/:id/grants/:grantId/revoke': {
    prepare: async (gh) => {
      const username = name('grantee');
      const sub = await createUserDirectly(gh, username, PASSWORD);
      const app = await gh.services.admin.createClient(CLI_ACTOR, { name: name('app'), type: 'confidential', grantTypes: ['authorization_code'], redirectUris: [REDIRECT_URI], scope: ['openid'] });
      await signInToApp(gh, { clientId: app.client.clientId, clientSecret: app.clientSecret! }, username, PASSWORD, 'openid');
      const [grant] = await gh.services.grants.listForUser(sub);
      return { url: `/admin/users/${sub}/grants/${grant!.grantId}/revoke`, fields: {} };
    },
  },
  '/admin/users/:id/userdata/:clientId/clear': {
    prepare: async (gh) => {
      const [sub, clientId] = [await newUser(gh), await newClient(gh)];
      await gh.services.userdata.write(sub, clientId, undefined, () => ({ kept: 'by the app' }));
      return { url: `/admin/users/${sub}/userdata/${clientId}/clear`, fields: {} };
    },
  },
  '/admin/scopes': { prepare: async () => ({ url: '/admin/scopes', fields: { name: name('forged:scope'), description: 'Made by a forger' } }) },
  '/admin/scopes/:name/delete': {
    prepare: async (gh) => {
      const scope = await gh.services.admin.createScope(CLI_ACTOR, { name: name('victim:scope'), description: 'Nobody holds it' });
      return { url: `/admin/scopes/${encodeURIComponent(scope.name)}/delete`, fields: {} };
    },
  },
  '/admin/resources': {
    prepare: async (gh) => {
      const scope = await gh.services.admin.createScope(CLI_ACTOR, { name: name('forged:api'), description: 'For a forged resource' });
      return { url: '/admin/resources', fields: { audience: `https://${name('forged')}.example.com`, scopes: scope.name, tokenFormat: 'jwt', signingAlg: 'ES256' } };
    },
  },
  '/admin/resources/:audience': {
    prepare: async (gh) => {
      const scope = await gh.services.admin.createScope(CLI_ACTOR, { name: name('edited:api'), description: 'Accepted by a resource' });
      const resource = await gh.services.admin.createResource(CLI_ACTOR, { audience: `https://${name('edited')}.example.com`, scopes: [scope.name] });
      return { url: `/admin/resources/${encodeURIComponent(resource.audience)}`, fields: { name: 'Renamed by a forger', scopes: scope.name, tokenFormat: 'opaque', signingAlg: 'ES256' } };
    },
  },
  '/admin/resources/:audience/delete': {
    prepare: async (gh) => {
      const scope = await gh.services.admin.createScope(CLI_ACTOR, { name: name('victim:api'), description: 'Accepted by a resource' });
      const resource = await gh.services.admin.createResource(CLI_ACTOR, { audience: `https://${name('victim')}.example.com`, scopes: [scope.name] });
      return { url: `/admin/resources/${encodeURIComponent(resource.audience)}/delete`, fields: {} };
    },
  },
  '/admin/idps': {
    prepare: async () => ({ url: '/admin/idps', fields: { name: name('forged'), issuer: 'https://idp.forger.example', clientId: 'forged', clientSecret: 'forged-secret' } }),
  },
  '/admin/idps/:name': {
    prepare: async (gh) => ({ url: `/admin/idps/${await newIdp(gh)}`, fields: { clientId: 'taken-over', button: 'Sign in with the forger' } }),
  },
  '/admin/idps/:name/enable': {
    prepare: async (gh) => {
      const idp = await newIdp(gh);
      await gh.services.admin.updateIdp(CLI_ACTOR, idp, { enabled: false });
      return { url: `/admin/idps/${idp}/enable`, fields: {} };
    },
  },
  '/admin/idps/:name/disable': { prepare: async (gh) => ({ url: `/admin/idps/${await newIdp(gh)}/disable`, fields: {} }) },
  '/admin/idps/:name/delete': { prepare: async (gh) => ({ url: `/admin/idps/${await newIdp(gh)}/delete`, fields: {} }) },
};

/**
 * The admin sign-in form and its code and setup steps are public and have their own double-submit
 * token (the gatehouse.csrf cookie); the code step's forged post is tested in totp.test.ts, the
 * setup steps' in mfa-policy.test.ts.
 */
const PUBLIC_FORMS = new Set(['/admin/login', '/admin/login/code', '/admin/login/enrol']);

test.serial('every POST route of the admin pages has a CSRF case in this file', (t) => {
  const { gh } = t.context;
  const posts = routesOf(adminPageRoutes(gh.services, createViews())).filter((r) => r.method === 'POST').map((r) => r.path);
  t.true(posts.length >= 17, `only ${posts.length} POST routes found: ${posts.join(', ')}`);
  const uncovered = posts.filter((p) => !Object.hasOwn(ADMIN_FORMS, p) && !PUBLIC_FORMS.has(p));
  t.deepEqual(uncovered, [], 'admin forms without a CSRF test');
  const stale = Object.keys(ADMIN_FORMS).filter((p) => !posts.includes(p));
  t.deepEqual(stale, [], 'cases for routes that no longer exist');
});

async function stillSignedIn(gh: TestGatehouse, agent: UserAgent): Promise<boolean> {
  const res = await agent.request(`${gh.url}/admin/clients`);
  await res.arrayBuffer();
  return res.status === 200;
}

for (const [route, form] of Object.entries(ADMIN_FORMS)) {
  test.serial(`a forged POST ${route} is refused without, with a wrong and with another session's CSRF token, and changes nothing`, async (t: ExecutionContext<Context>) => {
    const { gh, operator, elsewhere } = t.context;
    const { url, fields } = await form.prepare(gh);
    const before = await snapshot(gh);
    for (const [how, csrf] of [
      ['no token', undefined],
      ['an empty token', ''],
      ['a made-up token', randomBytes(32).toString('base64url')],
      ['a token of the right length in non-ASCII characters', 'é'.repeat(elsewhere.csrf.length)],
      ["another session's token", elsewhere.csrf],
    ] as const) {
      const res = await postForm(operator.agent, `${gh.url}${url}`, csrf === undefined ? fields : { ...fields, csrf });
      t.is(res.status, 403, `${how}: ${res.status} ${res.location ?? ''}`);
      t.regex(res.html, /did not come from your admin session/, how);
      t.is(await snapshot(gh), before, `${how}: something changed`);
    }
    t.true(await stillSignedIn(gh, operator.agent), 'the refused request signed the operator out');

    // The same request with the session's own token goes through: the token was all that was missing.
    if (route === '/admin/logout') {
      const session = await operatorAgent(gh, OPERATOR.username, OPERATOR.password);
      const ok = await postForm(session.agent, `${gh.url}${url}`, { ...fields, csrf: session.csrf });
      t.is(ok.status, 303);
      t.false(await stillSignedIn(gh, session.agent));
    } else {
      const ok = await postForm(operator.agent, `${gh.url}${url}`, { ...fields, csrf: operator.csrf });
      t.not(ok.status, 403);
      t.true(ok.status < 400, `with the right token: ${ok.status} ${ok.html.slice(0, 300)}`);
      t.not(await snapshot(gh), before, 'the accepted request changed nothing: the case does not test a change');
    }
  });
}

test.serial('a forged admin sign-in is refused without or with a wrong token, and opens no session', async (t) => {
  const { gh } = t.context;
  const agent = new UserAgent();
  const login = await agent.open(`${gh.url}/admin/login`);
  const token = findForm(login, { action: /\/admin\/login$/ }).fields.get('csrf')!;
  for (const [how, fields] of [
    ['no token', { ...OPERATOR }],
    ['a made-up token', { ...OPERATOR, csrf: randomBytes(32).toString('base64url') }],
  ] as const) {
    const res = await postForm(agent, `${gh.url}/admin/login`, fields);
    t.is(res.status, 403, how);
    t.false(agent.cookie('gatehouse.admin') !== undefined, `${how}: a session was opened`);
  }
  // A page's token without its cookie (a forger's own page, posted from the victim's browser) is refused too.
  const cookieless = await postForm(new UserAgent(), `${gh.url}/admin/login`, { ...OPERATOR, csrf: token });
  t.is(cookieless.status, 403);
  const ok = await postForm(agent, `${gh.url}/admin/login`, { ...OPERATOR, csrf: token });
  t.is(ok.status, 303);
  t.true(agent.cookie('gatehouse.admin') !== undefined);
});

test.serial('a forged sign-out confirmation (RP-initiated logout) is refused and the person stays signed in', async (t) => {
  const { gh, rp } = t.context;
  const username = name('p');
  await createUserDirectly(gh, username, PASSWORD);
  const agent = new UserAgent([REDIRECT_URI, POST_LOGOUT_URI]);
  const pending = await authorizationRequest(rp);
  const tokens = await redeem(rp, await signInAndAllow(agent, pending.url, username, PASSWORD), pending);
  const endSession = oidc.buildEndSessionUrl(rp, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: POST_LOGOUT_URI });
  const confirm = await agent.open(endSession.href);
  const form = findForm(confirm, { id: 'op.logoutForm' });
  t.truthy(form.fields.get('xsrf'), 'the form carries a token');

  for (const [how, xsrf] of [
    ['no token', undefined],
    ['a made-up token', randomBytes(24).toString('hex')],
  ] as const) {
    const body: Record<string, string> = { logout: 'yes', ...(xsrf === undefined ? {} : { xsrf }) };
    const res = await postForm(agent, form.target, body);
    t.is(res.status, 400, how);
    t.is(res.location, null, how);
    // Still signed in: a silent request gets a code.
    const silent = await agent.open((await authorizationRequest(rp, { prompt: 'none' })).url);
    t.truthy(callbackParams(silent)?.get('code'), `${how}: signed out by a forged request (${silent.url})`);
  }
  const ok = await postForm(agent, form.target, { logout: 'yes', xsrf: form.fields.get('xsrf')! });
  t.is(ok.status, 303);
  const after = await agent.open((await authorizationRequest(rp, { prompt: 'none' })).url);
  t.is(callbackParams(after)?.get('error'), 'login_required');
});
