import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import fc from 'fast-check';
import { runCli } from './support/cli.ts';
import { changedTables, formEncode, fuzz, headerValue, mustBeHtmlError, mustBeJsonError, mustBeSafe, pct, send, snapshot, stillUp, summary, violation, type Answer, type HostileRequest } from './support/fuzz.ts';
import { startTestGatehouse, type TestGatehouse } from './support/gatehouse.ts';
import { CONTENT_TYPES, hostileJsonText, hugeString, nastyString } from './support/nasty-inputs.ts';
import { REDIRECT_URI } from './support/relying-party.ts';
import { findForm } from './support/http.ts';
import { UserAgent } from './support/user-agent.ts';

/**
 * Hostile input on the operators' side: the admin API with a real admin token, and the admin
 * pages with a real operator session and its CSRF token, so input reaches the validation of
 * every form and field. A refused request changes nothing (compared row by row before and
 * after each one); an accepted one is a legitimate change, and its values come back escaped.
 * Serial: each request is judged by comparing every stored row before and after it.
 */

interface Context {
  gh: TestGatehouse;
  token: string;
  clientId: string;
  userId: string;
  adminId: string;
  session: { cookie: string; csrf: string };
  login: { cookie: string; csrf: string };
}

const test = anyTest as TestFn<Context>;

const RUNS = { apiAuth: 200, apiClients: 300, apiUsers: 300, apiUserdata: 100, apiOther: 200, apiScopes: 150, pageReads: 250, pageForms: 300, adminLogin: 150 };
const PASSWORD = 'correct horse battery staple';


test.before(async (t) => {
  const gh = await startTestGatehouse({ env: { GATEHOUSE_TRUST_PROXY: 'true' } });
  t.context = { gh } as Context;
  const created = await runCli(['admin-tokens', 'create', '--name', 'fuzzer', '--json'], gh.env);
  if (created.code !== 0) throw new Error(created.stderr);
  const { client } = await gh.services.clients.create({ name: 'Wiki', type: 'confidential', grantTypes: ['authorization_code'], redirectUris: [REDIRECT_URI] });
  const victim = await gh.services.accounts.create({ username: 'victim', email: 'victim@example.com' });
  const admin = await gh.services.accounts.create({ username: 'root', email: 'root@example.com', password: PASSWORD, isAdmin: true });

  // An operator signs in to the pages; another browser sits at the sign-in form.
  const operator = new UserAgent();
  const loginPage = await operator.open(`${gh.url}/admin/login`);
  const signedIn = await operator.submit(loginPage, /\/admin\/login$/, { username: 'root', password: PASSWORD });
  const csrf = findForm(signedIn, { action: /\/admin\/logout$/ }).fields.get('csrf');
  if (!csrf) throw new Error(`not signed in: ${signedIn.url} ${signedIn.status}`);
  const stranger = new UserAgent();
  const strangerPage = await stranger.open(`${gh.url}/admin/login`);
  t.context = {
    gh,
    token: created.json().token,
    clientId: client.clientId,
    userId: victim.id,
    adminId: admin.id,
    session: { cookie: operator.cookieHeader(), csrf },
    login: { cookie: stranger.cookieHeader(), csrf: findForm(strangerPage, { action: /\/admin\/login$/ }).fields.get('csrf')! },
  };
});

test.after.always(async (t) => {
  if (t.context.gh) {
    console.log(`hostile-input-admin: ${summary()}`);
    await t.context.gh.close();
  }
});

/**
 * Sends `req`: a refusal (4xx) must leave every stored row as it was; an acceptance is a
 * legitimate change. Returns the answer for route-specific checks.
 */
async function sendAndCompare(gh: TestGatehouse, req: HostileRequest, echoes: string[]): Promise<Answer> {
  const before = await snapshot(gh.services.db);
  const a = await send(gh, req);
  mustBeSafe(a, req, echoes);
  if (a.status >= 400) {
    const changed = changedTables(before, await snapshot(gh.services.db));
    if (changed.length) throw violation(`refused, yet ${changed.join(', ')} changed`, req, a);
  }
  return a;
}

/** A JSON body as scripts get it wrong: broken, odd, the wrong type, unknown fields, nasty values, too big. */
function hostileJsonBody(fields: Record<string, fc.Arbitrary<unknown>>) {
  const nastyValue = fc.oneof(nastyString(), fc.jsonValue({ maxDepth: 2 }), fc.array(nastyString(), { maxLength: 3 }), fc.constantFrom(null, true, 0, -1, 1e308, [], {}));
  const object = fc
    .record(
      Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, fc.oneof({ weight: 2, arbitrary: v }, { weight: 1, arbitrary: nastyValue })])),
      { requiredKeys: [] },
    )
    .chain((o) => fc.dictionary(nastyString({ maxLength: 20 }), nastyValue, { maxKeys: 1 }).map((extra) => JSON.stringify({ ...o, ...(Math.abs(JSON.stringify(extra).length % 3) === 0 ? extra : {}) })));
  return fc.record({
    text: fc.oneof({ weight: 5, arbitrary: object }, { weight: 2, arbitrary: hostileJsonText() }, { weight: 1, arbitrary: fc.constantFrom(70 * 1024, 1024 * 1024).map((n) => `{"client_name":"${hugeString(n)}"}`) }),
    contentType: fc.oneof({ weight: 5, arbitrary: fc.constant<string | undefined>('application/json') }, { weight: 1, arbitrary: fc.constantFrom(...CONTENT_TYPES) }),
  });
}

function apiRequest(t: ExecutionContext<Context>, method: string, path: string, body?: { text: string; contentType: string | undefined }): HostileRequest {
  const headers: Record<string, string> = { authorization: `Bearer ${t.context.token}`, accept: 'application/json' };
  if (body?.contentType !== undefined) headers['content-type'] = body.contentType;
  return { method, path: `/admin/api${path}`, headers, body: body?.text };
}

// ── The admin API ───────────────────────────────────────────────────────────────────────────

let wrongTokens = 0;

test.serial(`admin API: ${RUNS.apiAuth} requests with nasty or broken admin tokens get 401 invalid_token and change nothing`, async (t) => {
  const { gh, token } = t.context;
  await fuzz(
    t,
    'any /admin/api/… without a valid token',
    fc.record({
      method: fc.constantFrom('GET', 'POST', 'PATCH', 'DELETE'),
      path: fc.constantFrom('/clients', `/clients/${t.context.clientId}`, '/users', `/users/${t.context.userId}/password`, '/audit', '/api-keys/x'),
      authorization: fc.oneof(nastyString().map((s) => `Bearer ${s}`), nastyString(), fc.constantFrom(`Bearer ${token}x`, `Bearer ${token.slice(0, -1)}`, `Basic ${token}`, `Bearer ${token.replace('gha_', 'ghk_')}`, `Bearer ${token.toUpperCase()}`, `Bearer  ${token}`, '')),
    }),
    async (input) => {
      // Each wrong token from an address of its own: wrong admin tokens lock their address after
      // 50 (attacks-brute-force), which would turn every later answer into a 429.
      const from = `10.1.${(++wrongTokens >> 8) & 255}.${wrongTokens & 255}`;
      const req: HostileRequest = { method: input.method, path: `/admin/api${input.path}`, headers: { authorization: headerValue(input.authorization), 'content-type': 'application/json', 'x-forwarded-for': from }, body: '{"client_name":"x","grant_types":["client_credentials"]}' };
      if (req.headers!.authorization === `Bearer ${token}`) return 0;
      const a = await sendAndCompare(gh, req, [input.authorization]);
      mustBeJsonError(a, req, [401]);
      return a.status;
    },
    { numRuns: RUNS.apiAuth, seed: 0xad01 },
  );
  await stillUp(t, gh);
});

const uri = fc.oneof(nastyString(), fc.constantFrom(REDIRECT_URI, 'https://app.example.com/cb', 'http://example.com/cb', 'https://app.example.com/cb#x', 'https://*.example.com/cb', 'javascript:alert(1)', 'https://app.example.com/cb?x=1'));
const clientFields = {
  client_name: nastyString(),
  grant_types: fc.array(fc.oneof(fc.constantFrom('authorization_code', 'refresh_token', 'client_credentials', 'implicit', 'password'), nastyString()), { maxLength: 3 }),
  redirect_uris: fc.array(uri, { maxLength: 3 }),
  post_logout_redirect_uris: fc.array(uri, { maxLength: 2 }),
  allowed_origins: fc.array(uri, { maxLength: 2 }),
  scope: fc.oneof(nastyString(), fc.constantFrom('openid profile', 'openid userdata', 'read write')),
  token_endpoint_auth_method: fc.oneof(fc.constantFrom('client_secret_basic', 'client_secret_post', 'none', 'private_key_jwt', 'client_secret_jwt'), nastyString()),
  logo_uri: uri,
  client_uri: uri,
  require_pkce: fc.oneof(fc.boolean(), nastyString()),
  skip_consent: fc.oneof(fc.boolean(), nastyString()),
  disabled: fc.oneof(fc.boolean(), nastyString()),
  client_id: nastyString(),
  client_secret: nastyString(),
};

test.serial(`admin API clients: ${RUNS.apiClients} hostile creates, edits and lookups are refused with a JSON error naming the field and save nothing`, async (t) => {
  const { gh, clientId } = t.context;
  await fuzz(
    t,
    'POST|PATCH|GET|DELETE /admin/api/clients[/:id]',
    fc.record({
      op: fc.constantFrom('create', 'create', 'edit', 'edit', 'lookup', 'delete-unknown', 'rotate-unknown', 'search'),
      body: hostileJsonBody(clientFields),
      id: nastyString().map((s) => pct(s) || 'x'),
    }),
    async ({ op, body, id }) => {
      const req =
        op === 'create' ? apiRequest(t, 'POST', '/clients', body)
        : op === 'edit' ? apiRequest(t, 'PATCH', `/clients/${clientId}`, body)
        : op === 'lookup' ? apiRequest(t, 'GET', `/clients/${id}`)
        : op === 'delete-unknown' ? apiRequest(t, 'DELETE', `/clients/${id}`)
        : op === 'rotate-unknown' ? apiRequest(t, 'POST', `/clients/${id}/rotate-secret`)
        : apiRequest(t, 'GET', `/clients?search=${id}`);
      const a = await sendAndCompare(t.context.gh, req, [body.text, decodeURIComponentSafe(id)]);
      if (a.status < 300) {
        if (op === 'lookup' || op === 'delete-unknown' || op === 'rotate-unknown') throw violation('a made-up client id was found', req, a);
        if (op === 'search' && !Array.isArray(a.json)) throw violation('search did not answer a list', req, a);
        if ((op === 'create' || op === 'edit') && typeof a.json?.client_id !== 'string') throw violation('no client in the answer', req, a);
        if (op === 'create') await send(gh, apiRequest(t, 'DELETE', `/clients/${a.json.client_id}`)); // keep the list small
      } else mustBeJsonError(a, req);
      return a.status;
    },
    { numRuns: RUNS.apiClients, seed: 0xc11e },
  );
  await stillUp(t, gh);
});

const decodeURIComponentSafe = (s: string) => {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
};

test.serial(`admin API users: ${RUNS.apiUsers} hostile creates, edits, passwords and lookups are refused with a JSON error and save nothing`, async (t) => {
  const { gh, userId, adminId } = t.context;
  const userFields = {
    username: nastyString(),
    email: fc.oneof(nastyString(), fc.emailAddress(), fc.constantFrom('a@b', '@example.com', 'a@example.com\r\nBcc: x@evil.example', 'ａ@example.com')),
    name: nastyString(),
    admin: fc.oneof(fc.boolean(), nastyString()),
    disabled: fc.oneof(fc.boolean(), nastyString()),
    email_verified: fc.oneof(fc.boolean(), nastyString()),
    is_admin: fc.boolean(),
    id: nastyString(),
  };
  await fuzz(
    t,
    'POST|PATCH|GET /admin/api/users[/:id[/password|/grants]]',
    fc.record({
      op: fc.constantFrom('create', 'create', 'edit', 'edit', 'password', 'lookup', 'grants', 'revoke-grant', 'search', 'edit-self'),
      body: hostileJsonBody(userFields),
      password: hostileJsonBody({ password: nastyString({ maxLength: 2000 }).filter((p) => p.length < 8 || p.length > 1024) }),
      id: nastyString().map((s) => pct(s) || 'x'),
    }),
    async ({ op, body, password, id }) => {
      const req =
        op === 'create' ? apiRequest(t, 'POST', '/users', body)
        : op === 'edit' ? apiRequest(t, 'PATCH', `/users/${userId}`, body)
        : op === 'edit-self' ? apiRequest(t, 'PATCH', `/users/${adminId}`, { text: JSON.stringify({ ...safeJson(body.text), admin: true, disabled: false }), contentType: body.contentType })
        : op === 'password' ? apiRequest(t, 'POST', `/users/${userId}/password`, password)
        : op === 'lookup' ? apiRequest(t, 'GET', `/users/${id}`)
        : op === 'grants' ? apiRequest(t, 'GET', `/users/${id}/grants`)
        : op === 'revoke-grant' ? apiRequest(t, 'DELETE', `/users/${userId}/grants/${id}`)
        : apiRequest(t, 'GET', `/users?search=${id}`);
      const a = await sendAndCompare(gh, req, [body.text, password.text, decodeURIComponentSafe(id)]);
      if (a.status < 300) {
        if (op === 'lookup' || op === 'grants' || op === 'revoke-grant') throw violation('a made-up id was found', req, a);
        if (op === 'password') throw violation('a password outside the rules was set', req, a);
      } else mustBeJsonError(a, req);
      return a.status;
    },
    { numRuns: RUNS.apiUsers, seed: 0x05e5 },
  );
  // A user's /userdata documents: made-up users and apps are not found, and nothing is cleared.
  await fuzz(
    t,
    'GET /admin/api/users/:id/userdata[/:client_id], DELETE …/userdata/:client_id',
    fc.record({ op: fc.constantFrom('documents', 'document', 'clear-document'), id: nastyString().map((s) => pct(s) || 'x') }),
    async ({ op, id }) => {
      const req =
        op === 'documents' ? apiRequest(t, 'GET', `/users/${id}/userdata`)
        : op === 'document' ? apiRequest(t, 'GET', `/users/${userId}/userdata/${id}`)
        : apiRequest(t, 'DELETE', `/users/${userId}/userdata/${id}`);
      const a = await sendAndCompare(gh, req, [decodeURIComponentSafe(id)]);
      if (a.status < 300) throw violation('a made-up id was found', req, a);
      mustBeJsonError(a, req);
      return a.status;
    },
    { numRuns: RUNS.apiUserdata, seed: 0xda7a },
  );
  // The operator is still an enabled admin: nothing above locked them out.
  const me = await gh.services.accounts.get(adminId);
  t.true(me.isAdmin && !me.disabled);
  await stillUp(t, gh);
});

const safeJson = (text: string): Record<string, unknown> => {
  try {
    const v: unknown = JSON.parse(text);
    JSON.stringify(v); // too deep to send again: send nothing of it
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
};

test.serial(`admin API keys and audit: ${RUNS.apiOther} hostile API-key requests and audit queries are refused with a JSON error`, async (t) => {
  const { gh, clientId } = t.context;
  await fuzz(
    t,
    'POST|GET /admin/api/clients/:id/api-keys, DELETE /admin/api/api-keys/:id, GET /admin/api/audit',
    fc.record({
      op: fc.constantFrom('create-key', 'create-key', 'list-keys-unknown', 'revoke-unknown', 'audit'),
      body: hostileJsonBody({ scopes: fc.array(fc.oneof(fc.constantFrom('userdata:read', 'userdata:write', 'admin', 'userdata:*'), nastyString()), { maxLength: 3 }), name: nastyString() }),
      id: nastyString().map((s) => pct(s) || 'x'),
      limit: nastyString({ maxLength: 30 }),
    }),
    async ({ op, body, id, limit }) => {
      const req =
        op === 'create-key' ? apiRequest(t, 'POST', `/clients/${clientId}/api-keys`, body)
        : op === 'list-keys-unknown' ? apiRequest(t, 'GET', `/clients/${id}/api-keys`)
        : op === 'revoke-unknown' ? apiRequest(t, 'DELETE', `/api-keys/${id}`)
        : apiRequest(t, 'GET', `/audit?limit=${pct(limit)}&before=${id}`);
      const a = await sendAndCompare(gh, req, [body.text, decodeURIComponentSafe(id), limit]);
      if (a.status < 300) {
        if (op === 'list-keys-unknown' || op === 'revoke-unknown') throw violation('a made-up id was found', req, a);
        if (op === 'create-key' && !/^ghk_/.test(String(a.json?.key))) throw violation('no key in the answer', req, a);
      } else mustBeJsonError(a, req);
      return a.status;
    },
    { numRuns: RUNS.apiOther, seed: 0xa9e },
  );
  await stillUp(t, gh);
});

test.serial(`admin API scopes: ${RUNS.apiScopes} hostile scope creates and deletes are refused with a JSON error naming the field and save nothing`, async (t) => {
  const { gh } = t.context;
  await fuzz(
    t,
    'POST|GET /admin/api/scopes, DELETE /admin/api/scopes/:name',
    fc.record({
      op: fc.constantFrom('create', 'create', 'create', 'delete-unknown', 'delete-built-in', 'list'),
      body: hostileJsonBody({ name: fc.oneof(nastyString(), fc.constantFrom('openid', 'read', 'orders:read', 'a b', 'x'.repeat(101))), description: nastyString() }),
      id: nastyString().map((s) => pct(s) || 'x'),
      builtIn: fc.constantFrom('openid', 'profile', 'email', 'offline_access', 'userdata'),
    }),
    async ({ op, body, id, builtIn }) => {
      const req =
        op === 'create' ? apiRequest(t, 'POST', '/scopes', body)
        : op === 'delete-unknown' ? apiRequest(t, 'DELETE', `/scopes/${id}`)
        : op === 'delete-built-in' ? apiRequest(t, 'DELETE', `/scopes/${builtIn}`)
        : apiRequest(t, 'GET', '/scopes');
      const a = await sendAndCompare(gh, req, [body.text, decodeURIComponentSafe(id)]);
      if (a.status < 300) {
        if (op === 'delete-unknown' || op === 'delete-built-in') throw violation('a made-up or built-in scope was deleted', req, a);
        if (op === 'list' && !Array.isArray(a.json)) throw violation('the list is not a list', req, a);
        if (op === 'create') {
          if (typeof a.json?.name !== 'string') throw violation('no scope in the answer', req, a);
          await send(gh, apiRequest(t, 'DELETE', `/scopes/${encodeURIComponent(a.json.name)}`)); // keep the list small
        }
      } else mustBeJsonError(a, req);
      return a.status;
    },
    { numRuns: RUNS.apiScopes, seed: 0x5c0e },
  );
  await stillUp(t, gh);
});

// ── The admin pages ─────────────────────────────────────────────────────────────────────────

test.serial(`admin pages: ${RUNS.pageReads} nasty searches, ids and page numbers get a page or an HTML error page, with nothing unescaped`, async (t) => {
  const { gh, session, userId } = t.context;
  await fuzz(
    t,
    'GET /admin/… (signed in)',
    fc.record({
      page: fc.constantFrom('/admin/clients?q=', '/admin/users?q=', '/admin/audit?before=', '/admin/clients/', '/admin/users/', '/admin/clients/@/delete', `/admin/users/${userId}/userdata/@`, '/admin/assets/', '/admin/clients?notice=', '/admin/scopes?notice=', '/admin/'),
      value: nastyString(),
      method: fc.oneof({ weight: 8, arbitrary: fc.constant('GET') }, { weight: 1, arbitrary: fc.constantFrom('PUT', 'DELETE', 'PATCH', 'HEAD') }),
    }),
    async ({ page, value, method }) => {
      const path = page.includes('@') ? page.replace('@', pct(value) || 'x') : `${page}${pct(value)}`;
      const req: HostileRequest = { method, path, headers: { cookie: session.cookie, accept: 'text/html' } };
      const a = await sendAndCompare(gh, req, [value]);
      if (method !== 'GET' && method !== 'HEAD') {
        if (a.status < 400) throw violation('another method was served', req, a);
      } else if (a.status === 200 || a.status === 303) {
        if (a.status === 303 && /\/admin\/login/.test(String(a.headers.location))) throw violation('signed out by a page view', req, a);
      } else mustBeHtmlError(a, req);
      return a.status;
    },
    { numRuns: RUNS.pageReads, seed: 0x9a6e },
  );
  await stillUp(t, gh);
});

test.serial(`admin forms: ${RUNS.pageForms} hostile form posts with the operator's session and CSRF token are shown again with the errors, and a refused one saves nothing`, async (t) => {
  const { gh, session, clientId, userId } = t.context;
  const field = (names: string[]) => fc.tuple(fc.constantFrom(...names), fc.oneof(nastyString(), fc.constantFrom('yes', 'confidential', 'public', 'authorization_code', 'client_credentials', REDIRECT_URI, 'userdata:read')));
  const forms: Record<string, { path: string; names: string[] }> = {
    'new client': { path: '/admin/clients', names: ['name', 'type', 'grantTypes', 'redirectUris', 'postLogoutRedirectUris', 'allowedOrigins', 'scope', 'authMethod', 'requirePkce', 'skipConsent', 'logoUri', 'clientUri'] },
    'edit client': { path: `/admin/clients/${clientId}`, names: ['name', 'type', 'grantTypes', 'redirectUris', 'scope', 'authMethod', 'logoUri', 'clientUri'] },
    'new API key': { path: `/admin/clients/${clientId}/api-keys`, names: ['name', 'scopes'] },
    'new user': { path: '/admin/users', names: ['username', 'email', 'name', 'admin'] },
    'set password': { path: `/admin/users/${userId}/password`, names: ['password'] },
    'revoke unknown grant': { path: `/admin/users/${userId}/grants/@/revoke`, names: ['x'] },
    'clear unknown userdata document': { path: `/admin/users/${userId}/userdata/@/clear`, names: ['x'] },
    'revoke unknown key': { path: `/admin/clients/${clientId}/api-keys/@/revoke`, names: ['x'] },
    'delete unknown client': { path: '/admin/clients/@/delete', names: ['x'] },
    'new scope': { path: '/admin/scopes', names: ['name', 'description'] },
    'delete unknown scope': { path: '/admin/scopes/@/delete', names: ['x'] },
  };
  await fuzz(
    t,
    'POST /admin/… forms (signed in)',
    fc.record({
      form: fc.constantFrom(...Object.keys(forms)),
      fields: fc.array(field([...new Set(Object.values(forms).flatMap((f) => f.names))]), { maxLength: 8 }),
      csrf: fc.oneof({ weight: 6, arbitrary: fc.constant(session.csrf) }, { weight: 1, arbitrary: nastyString() }),
      id: nastyString().map((s) => pct(s) || 'x'),
      contentType: fc.oneof({ weight: 6, arbitrary: fc.constant<string | undefined>('application/x-www-form-urlencoded') }, { weight: 1, arbitrary: fc.constantFrom(...CONTENT_TYPES) }),
      pad: fc.oneof({ weight: 12, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constantFrom(40 * 1024, 2 * 1024 * 1024) }),
    }),
    async (input) => {
      const form = forms[input.form]!;
      // A password the rules would take costs a scrypt hash and is a legitimate change: keep them out.
      const fields = input.fields.filter(([k, v]) => !(input.form === 'set password' && k === 'password' && v.length >= 8));
      const headers: Record<string, string> = { cookie: session.cookie, accept: 'text/html' };
      if (input.contentType !== undefined) headers['content-type'] = input.contentType;
      const req: HostileRequest = { method: 'POST', path: form.path.replace('@', input.id), headers, body: formEncode([['csrf', input.csrf], ...fields]) + (input.pad ? `&pad=${hugeString(input.pad)}` : '') };
      const a = await sendAndCompare(gh, req, fields.flat());
      if (a.status < 400) {
        if (input.csrf !== session.csrf) throw violation('accepted without the CSRF token', req, a);
        if (/unknown/.test(input.form)) throw violation('a made-up id was found', req, a);
      } else mustBeHtmlError(a, req);
      return a.status;
    },
    { numRuns: RUNS.pageForms, seed: 0xf0f },
  );
  await stillUp(t, gh);
});

test.serial(`admin sign-in: ${RUNS.adminLogin} hostile sign-in posts get the sign-in page again with a 4xx and no session`, async (t) => {
  const { gh, login } = t.context;
  await fuzz(
    t,
    'POST /admin/login',
    fc.record({
      csrf: fc.oneof({ weight: 2, arbitrary: fc.constant(login.csrf) }, { weight: 1, arbitrary: nastyString() }),
      fields: fc.array(fc.tuple(fc.constantFrom('username', 'password', 'username', 'password', 'csrf'), fc.oneof(nastyString(), fc.constant('root'), fc.constant(`${PASSWORD}!`))), { maxLength: 4 }),
      forwardedFor: fc.ipV4(),
      contentType: fc.oneof({ weight: 6, arbitrary: fc.constant<string | undefined>('application/x-www-form-urlencoded') }, { weight: 1, arbitrary: fc.constantFrom(...CONTENT_TYPES) }),
    }),
    async (input) => {
      const headers: Record<string, string> = { cookie: login.cookie, accept: 'text/html', 'x-forwarded-for': input.forwardedFor };
      if (input.contentType !== undefined) headers['content-type'] = input.contentType;
      const pairs: Array<[string, string]> = [['csrf', input.csrf], ...input.fields];
      const req: HostileRequest = { method: 'POST', path: '/admin/login', headers, body: formEncode(pairs) };
      const a = await sendAndCompare(gh, req, pairs.flat());
      if (a.headers['set-cookie']?.some((c) => c.startsWith('gatehouse.admin=') && !/gatehouse\.admin=;/.test(c))) throw violation('a session for a failed sign-in', req, a);
      mustBeHtmlError(a, req);
      return a.status;
    },
    { numRuns: RUNS.adminLogin, seed: 0x1091 },
  );
  await stillUp(t, gh);
});
