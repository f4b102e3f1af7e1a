import { randomBytes } from 'node:crypto';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { adminApi, clientCredentialsToken, type AdminApi, type ApiResponse } from './support/admin-api.ts';
import { runCli } from './support/cli.ts';
import { startTestGatehouse, type TestGatehouse } from './support/gatehouse.ts';
import { authorizationRequest, oauthError, oidc, POST_LOGOUT_URI, redeem, REDIRECT_URI, relyingParty, signInAndAllow } from './support/relying-party.ts';
import { UserAgent } from './support/user-agent.ts';
import { rawBasicAuth } from './support/http.ts';

/**
 * The admin API as a script uses it: an admin token made with the CLI, then JSON over real HTTP
 * to a listening Gatehouse on a fresh SQLite database.
 *
 * Every test here is serial: the audit-log tests read "the changes above, newest first", and the
 * bad-input tests check that the number of clients did not move, which concurrent tests in this
 * file would disturb.
 */

interface Context {
  gh: TestGatehouse;
  api: AdminApi;
  /** The "ci" admin token, as `admin-tokens create --name ci --json` printed it. */
  token: string;
  tokenId: string;
  createStdout: string;
  listStdout: string;
  /** A token that worked, then was revoked with `admin-tokens revoke ID`. */
  revoked: { token: string; id: string; statusBeforeRevoke: number };
  /** A client the CLI created (audited as "cli"). */
  cliClientId: string;
  /** Every secret value these tests handled, with what it is: none may reach the audit log. */
  secrets: Map<string, string>;
}

const test = anyTest as TestFn<Context>;

const TOKEN_SHAPE = /^gha_([A-Za-z0-9]{16})_([A-Za-z0-9_-]{43})$/;
const LOOPBACK = /^(::1|(::ffff:)?127\.0\.0\.1)$/;

const tag = () => randomBytes(4).toString('hex');
const secretPart = (token: string) => TOKEN_SHAPE.exec(token)?.[2] ?? token.split('_').slice(2).join('_');

async function cli(t: ExecutionContext<Context>, gh: TestGatehouse, args: string[]) {
  const res = await runCli(args, gh.env);
  if (res.code !== 0) t.fail(`cli ${args.join(' ')} exited ${res.code}: ${res.stderr}`);
  return res;
}

test.before(async (t) => {
  const gh = await startTestGatehouse();
  const secrets = new Map<string, string>();
  // An enabled admin who stays one: Gatehouse never disables or demotes its last enabled admin
  // (test/admin-last-admin.test.ts), and the tests here disable and demote the users they make.
  await gh.services.accounts.create({ username: 'standing-operator', email: 'standing-operator@example.com', isAdmin: true });

  const created = await cli(t, gh, ['admin-tokens', 'create', '--name', 'ci', '--json']);
  const { token, id: tokenId } = created.json();
  secrets.set(token, 'the ci admin token').set(secretPart(token), "the ci admin token's secret part");

  const doomed = (await cli(t, gh, ['admin-tokens', 'create', '--name', 'doomed', '--json'])).json();
  secrets.set(doomed.token, 'the revoked admin token').set(secretPart(doomed.token), "the revoked admin token's secret part");
  const before = await fetch(`${gh.url}/admin/api/clients`, { headers: { authorization: `Bearer ${doomed.token}` } });
  await before.arrayBuffer();
  await cli(t, gh, ['admin-tokens', 'revoke', doomed.id, '--json']);

  const listed = await cli(t, gh, ['admin-tokens', 'list', '--json']);
  const cliClient = (await cli(t, gh, ['clients', 'create', '--name', 'Made by the CLI', '--type', 'confidential', '--grant', 'client_credentials', '--json'])).json();
  secrets.set(cliClient.client_secret, "the CLI-made client's secret");

  t.context = {
    gh,
    api: adminApi(gh, token),
    token,
    tokenId,
    createStdout: created.stdout,
    listStdout: listed.stdout,
    revoked: { token: doomed.token, id: doomed.id, statusBeforeRevoke: before.status },
    cliClientId: cliClient.client_id,
    secrets,
  };
});

test.after.always(async (t) => {
  await t.context.gh?.close();
});

// ---------------------------------------------------------------------------------------------
// Helpers

function isApiError(t: ExecutionContext<Context>, res: ApiResponse, status: number, error?: string, message = '') {
  t.is(res.status, status, `${message} ${res.text}`);
  t.is(typeof res.body?.error, 'string', `${message}: no "error" in ${res.text}`);
  t.is(typeof res.body?.error_description, 'string', `${message}: no "error_description" in ${res.text}`);
  t.true((res.body?.error_description ?? '').length > 0, message);
  if (error) t.is(res.body?.error, error, message);
}

async function clientCount(api: AdminApi): Promise<number> {
  const res = await api('GET', '/clients');
  if (res.status !== 200) throw new Error(`GET /clients: ${res.status} ${res.text}`);
  return res.body.length;
}

async function newestAuditId(api: AdminApi): Promise<number> {
  const res = await api('GET', '/audit?limit=1');
  if (res.status !== 200) throw new Error(`GET /audit: ${res.status} ${res.text}`);
  return res.body[0]?.id ?? 0;
}

/** A confidential service using the client credentials grant, created through the API. */
async function createService(t: ExecutionContext<Context>, name = `Service ${tag()}`) {
  const res = await t.context.api('POST', '/clients', { body: { client_name: name, grant_types: ['client_credentials'], token_endpoint_auth_method: 'client_secret_basic' } });
  t.is(res.status, 201, res.text);
  t.context.secrets.set(res.body.client_secret, `the secret of ${name}`);
  return res.body as { client_id: string; client_secret: string } & Record<string, any>;
}

/** A user created through the API, with a password of their own. */
async function createUser(t: ExecutionContext<Context>, extra: Record<string, unknown> = {}) {
  const username = `u${tag()}`;
  const password = `pw-${randomBytes(12).toString('base64url')}`;
  const res = await t.context.api('POST', '/users', { body: { username, email: `${username}@example.com`, password, ...extra } });
  t.is(res.status, 201, res.text);
  t.context.secrets.set(password, `the password of ${username}`);
  return { id: res.body.id as string, username, password, res };
}

/** A web app (created through the API) that a user (also created through the API) signs in to. */
async function signedInToWebApp(t: ExecutionContext<Context>) {
  const { gh, api, secrets } = t.context;
  const name = `Web app ${tag()}`;
  const app = await api('POST', '/clients', {
    body: {
      client_name: name,
      grant_types: ['authorization_code', 'refresh_token'],
      redirect_uris: [REDIRECT_URI],
      post_logout_redirect_uris: [POST_LOGOUT_URI],
      scope: 'openid profile email offline_access',
      token_endpoint_auth_method: 'client_secret_post',
      require_pkce: true,
    },
  });
  t.is(app.status, 201, app.text);
  secrets.set(app.body.client_secret, `the secret of ${name}`);
  const user = await createUser(t);
  const rp = await relyingParty(gh, { clientId: app.body.client_id, clientSecret: app.body.client_secret }, 'post');
  const pending = await authorizationRequest(rp);
  const tokens = await redeem(rp, await signInAndAllow(new UserAgent([REDIRECT_URI]), pending.url, user.username, user.password), pending);
  return { app: app.body as { client_id: string; client_name: string }, user, rp, tokens };
}

async function userinfoStatus(gh: TestGatehouse, accessToken: string): Promise<number> {
  const res = await fetch(`${gh.url}/userinfo`, { headers: { authorization: `Bearer ${accessToken}` } });
  await res.arrayBuffer();
  return res.status;
}

async function wholeAuditLog(api: AdminApi): Promise<any[]> {
  const entries: any[] = [];
  for (;;) {
    const before = entries.length ? `&before=${entries.at(-1).id}` : '';
    const page = await api('GET', `/audit?limit=500${before}`);
    if (page.status !== 200) throw new Error(`GET /audit: ${page.status} ${page.text}`);
    if (page.body.length === 0) return entries;
    entries.push(...page.body);
  }
}

// ---------------------------------------------------------------------------------------------
// Admin tokens

test.serial('admin-tokens create --name ci --json prints the token once, as {"token": "gha_…"}', (t) => {
  const { createStdout, token, tokenId } = t.context;
  const printed = JSON.parse(createStdout);
  t.regex(printed.token, TOKEN_SHAPE);
  t.is(printed.token, token);
  t.is(printed.name, 'ci');
  t.is(TOKEN_SHAPE.exec(token)![1], tokenId, 'the id is the token\'s middle part');
  t.is(createStdout.split(token).length - 1, 1, 'the token appears exactly once in the output');
});

test.serial('admin-tokens list --json never shows a token', (t) => {
  const { listStdout, token, tokenId, revoked } = t.context;
  const listed = JSON.parse(listStdout) as Array<Record<string, unknown>>;
  t.deepEqual(listed.map((x) => x.name).sort(), ['ci', 'doomed']);
  t.is(listed.find((x) => x.id === tokenId)?.revoked_at, null);
  t.truthy(listed.find((x) => x.id === revoked.id)?.revoked_at, 'the revoked token is listed as revoked');
  for (const item of listed) t.false('token' in item, `list item ${item.id} has a "token" field`);
  for (const value of [token, secretPart(token), revoked.token, secretPart(revoked.token)]) {
    t.false(listStdout.includes(value), 'a token or its secret part is in the list output');
  }
});

test.serial("the admin_tokens table never holds a token's secret part", async (t) => {
  const { gh, token, tokenId, revoked } = t.context;
  const rows = await gh.services.db('admin_tokens').select('*');
  t.is(rows.length, 2);
  const row = rows.find((r) => r.id === tokenId);
  t.truthy(row?.secret_hash);
  t.false(String(row.secret_hash).includes(secretPart(token)));
  const everything = JSON.stringify(rows);
  for (const value of [token, secretPart(token), revoked.token, secretPart(revoked.token)]) {
    t.false(everything.includes(value), 'a token or its secret part is stored in the clear');
  }
});

test.serial('a request without a token is refused with 401 invalid_token and a Bearer challenge', async (t) => {
  const { api } = t.context;
  const count = await clientCount(api);
  for (const [method, path] of [['GET', '/clients'], ['GET', '/users'], ['GET', '/audit'], ['DELETE', `/clients/${t.context.cliClientId}`]] as const) {
    const res = await api(method, path, { token: null });
    isApiError(t, res, 401, 'invalid_token', `${method} ${path}`);
    t.regex(res.headers.get('www-authenticate') ?? '', /^Bearer\b/, `${method} ${path}`);
  }
  const post = await api('POST', '/clients', { token: null, body: { client_name: 'Sneaky', grant_types: ['client_credentials'] } });
  isApiError(t, post, 401, 'invalid_token');
  t.is(await clientCount(api), count, 'nothing was created');
  t.is((await api('GET', `/clients/${t.context.cliClientId}`)).status, 200, 'nothing was deleted');
});

test.serial('a garbage token is refused with 401 invalid_token', async (t) => {
  const { api, token, tokenId } = t.context;
  const wrongSecret = `gha_${tokenId}_${randomBytes(32).toString('base64url')}`;
  const attempts: Record<string, string> = {
    'a random word': 'Bearer garbage',
    'a token with our prefix and nothing else': 'Bearer gha_',
    'the right id with a wrong secret': `Bearer ${wrongSecret}`,
    'the token cut short': `Bearer ${token.slice(0, -1)}`,
    'the token in Basic': rawBasicAuth('ci', token),
    'an API-key-shaped token': `Bearer ghk_${tokenId}_${secretPart(token)}`,
  };
  for (const [what, authorization] of Object.entries(attempts)) {
    const res = await api('GET', '/clients', { authorization });
    isApiError(t, res, 401, 'invalid_token', what);
    t.regex(res.headers.get('www-authenticate') ?? '', /^Bearer\b/, what);
  }
  t.is((await api('GET', '/clients')).status, 200, 'while the real token works');
});

test.serial('a revoked token (admin-tokens revoke ID) is refused with 401 invalid_token', async (t) => {
  const { api, revoked } = t.context;
  t.is(revoked.statusBeforeRevoke, 200, 'the token worked before it was revoked');
  const res = await api('GET', '/clients', { token: revoked.token });
  isApiError(t, res, 401, 'invalid_token');
  t.regex(res.headers.get('www-authenticate') ?? '', /^Bearer\b/);
});

test.serial('the OpenAPI 3.1 document is served at /admin/api/openapi.json', async (t) => {
  const { api } = t.context;
  const res = await api('GET', '/openapi.json', { token: null });
  t.is(res.status, 200);
  t.regex(res.headers.get('content-type') ?? '', /^application\/json/);
  t.truthy(res.body, 'the body is JSON');
  t.is(res.body.openapi, '3.1.0');
  for (const path of ['/clients', '/clients/{client_id}', '/clients/{client_id}/rotate-secret', '/users', '/audit']) {
    t.truthy(res.body.paths?.[path], `paths has ${path}`);
  }
});

// ---------------------------------------------------------------------------------------------
// Clients

test.serial('creating a client from RFC 7591 metadata answers 201 with its client_id and client_secret', async (t) => {
  const { api, secrets } = t.context;
  const metadata = {
    client_name: `Flask app ${tag()}`,
    grant_types: ['authorization_code', 'refresh_token'],
    redirect_uris: ['https://app.example.com/callback', 'http://localhost:5000/callback'],
    scope: 'openid profile email offline_access',
    token_endpoint_auth_method: 'client_secret_post',
    post_logout_redirect_uris: ['https://app.example.com/signed-out'],
    allowed_origins: ['https://app.example.com'],
    require_pkce: true,
  };
  const res = await api('POST', '/clients', { body: metadata });
  t.is(res.status, 201, res.text);
  secrets.set(res.body.client_secret, 'the Flask app secret');
  t.is(typeof res.body.client_id, 'string');
  t.true(res.body.client_id.length > 0);
  t.is(typeof res.body.client_secret, 'string');
  t.true(res.body.client_secret.length >= 32, 'a long random secret');
  t.like(res.body, { ...metadata, client_type: 'confidential', response_types: ['code'], disabled: false });

  const shown = await api('GET', `/clients/${res.body.client_id}`);
  t.is(shown.status, 200);
  t.false('client_secret' in shown.body, 'the secret is shown once, at creation');
  const { client_secret: _secret, ...rest } = res.body;
  t.deepEqual(shown.body, rest);
});

test.serial('token_endpoint_auth_method "none" alone makes a public client, without a secret', async (t) => {
  const { api } = t.context;
  const res = await api('POST', '/clients', {
    body: { client_name: `SPA ${tag()}`, grant_types: ['authorization_code'], redirect_uris: ['http://127.0.0.1:5173/callback'], token_endpoint_auth_method: 'none' },
  });
  t.is(res.status, 201, res.text);
  t.is(res.body.client_type, 'public');
  t.is(res.body.token_endpoint_auth_method, 'none');
  t.false('client_secret' in res.body);
  t.is((await api('GET', `/clients/${res.body.client_id}`)).body.client_type, 'public');
});

// BUG (src/clients/metadata.ts fromClientMetadata): RFC 7591 §2 says an omitted
// token_endpoint_auth_method means client_secret_basic, so such metadata is a confidential
// client. Gatehouse only derives client_type from an explicit token_endpoint_auth_method and
// answers 400 "type: must be confidential or public" (naming a field the API does not have).
test.serial('metadata without token_endpoint_auth_method makes a confidential client_secret_basic client, as RFC 7591 says', async (t) => {
  const { gh, api, secrets } = t.context;
  const res = await api('POST', '/clients', { body: { client_name: `Defaults ${tag()}`, grant_types: ['client_credentials'] } });
  t.is(res.status, 201, res.text);
  if (res.body?.client_secret) secrets.set(res.body.client_secret, 'the defaults client secret');
  t.like(res.body, { client_type: 'confidential', token_endpoint_auth_method: 'client_secret_basic' });
  t.is(typeof res.body.client_secret, 'string');
  t.is((await clientCredentialsToken(gh, res.body.client_id, res.body.client_secret)).status, 200);
});

test.serial('listing clients never shows a secret, and ?search= finds them by name or client_id', async (t) => {
  const { api, cliClientId } = t.context;
  const family = `Ledger-${tag()}`;
  const a = await createService(t, `${family} reports`);
  const b = await createService(t, `${family} exports`);

  const all = await api('GET', '/clients');
  t.is(all.status, 200);
  t.true(all.body.length >= 3);
  t.true(all.body.some((c: any) => c.client_id === cliClientId), 'clients made with the CLI are listed too');
  for (const c of all.body) t.false('client_secret' in c, `client ${c.client_id} is listed with its secret`);
  for (const secret of [a.client_secret, b.client_secret]) t.false(all.text.includes(secret));

  const byFamily = await api('GET', `/clients?search=${encodeURIComponent(family.toUpperCase())}`);
  t.deepEqual(byFamily.body.map((c: any) => c.client_id).sort(), [a.client_id, b.client_id].sort(), 'search ignores case');
  for (const c of byFamily.body) t.false('client_secret' in c);
  t.deepEqual((await api('GET', `/clients?search=${encodeURIComponent(`${family} exp`)}`)).body.map((c: any) => c.client_id), [b.client_id]);
  t.deepEqual((await api('GET', `/clients?search=${a.client_id}`)).body.map((c: any) => c.client_id), [a.client_id]);
  t.deepEqual((await api('GET', '/clients?search=nothing-is-called-this')).body, []);
});

test.serial('a client can be read, changed with PATCH and deleted; afterwards GET answers 404 not_found', async (t) => {
  const { api } = t.context;
  const created = await api('POST', '/clients', {
    body: { client_name: `Intranet ${tag()}`, grant_types: ['authorization_code'], redirect_uris: ['https://intranet.example.com/cb'], scope: 'openid profile', token_endpoint_auth_method: 'client_secret_basic' },
  });
  t.is(created.status, 201, created.text);
  t.context.secrets.set(created.body.client_secret, 'the intranet secret');
  const id = created.body.client_id;

  const shown = await api('GET', `/clients/${id}`);
  t.is(shown.status, 200);
  t.is(shown.body.client_name, created.body.client_name);

  const patched = await api('PATCH', `/clients/${id}`, { body: { client_name: 'Intranet (renamed)', redirect_uris: ['https://intranet.example.com/cb', 'https://intranet.example.com/cb2'] } });
  t.is(patched.status, 200, patched.text);
  t.is(patched.body.client_name, 'Intranet (renamed)');
  t.deepEqual(patched.body.redirect_uris, ['https://intranet.example.com/cb', 'https://intranet.example.com/cb2']);
  t.is(patched.body.scope, 'openid profile', 'fields not in the PATCH keep their values');
  t.is(patched.body.client_type, 'confidential');
  t.false('client_secret' in patched.body, 'a PATCH does not hand out the secret');
  t.like((await api('GET', `/clients/${id}`)).body, { client_name: 'Intranet (renamed)', scope: 'openid profile' });

  const deleted = await api('DELETE', `/clients/${id}`);
  t.is(deleted.status, 204);
  t.is(deleted.text, '');
  const gone = await api('GET', `/clients/${id}`);
  isApiError(t, gone, 404, 'not_found');
  isApiError(t, await api('DELETE', `/clients/${id}`), 404, 'not_found', 'deleting twice');
  isApiError(t, await api('PATCH', `/clients/${id}`, { body: { client_name: 'Back' } }), 404, 'not_found', 'patching a deleted client');
  isApiError(t, await api('POST', `/clients/${id}/rotate-secret`), 404, 'not_found', 'rotating a deleted client');
  t.false((await api('GET', '/clients')).body.some((c: any) => c.client_id === id));
});

test.serial('rotate-secret returns a new secret: the old one stops working at /token at once, the new one works', async (t) => {
  const { gh, api, secrets } = t.context;
  const service = await createService(t);
  t.is((await clientCredentialsToken(gh, service.client_id, service.client_secret)).status, 200, 'the first secret works');

  const rotated = await api('POST', `/clients/${service.client_id}/rotate-secret`);
  t.is(rotated.status, 200, rotated.text);
  secrets.set(rotated.body.client_secret, 'a rotated service secret');
  t.is(rotated.body.client_id, service.client_id);
  t.is(typeof rotated.body.client_secret, 'string');
  t.not(rotated.body.client_secret, service.client_secret);

  const old = await clientCredentialsToken(gh, service.client_id, service.client_secret);
  t.is(old.status, 401);
  t.is(old.body.error, 'invalid_client');
  const fresh = await clientCredentialsToken(gh, service.client_id, rotated.body.client_secret);
  t.is(fresh.status, 200, JSON.stringify(fresh.body));
  t.is(typeof fresh.body.access_token, 'string');
  t.false('client_secret' in (await api('GET', `/clients/${service.client_id}`)).body);
});

test.serial('a public client has no secret to rotate: rotate-secret answers 400', async (t) => {
  const { api } = t.context;
  const spa = await api('POST', '/clients', { body: { client_name: `SPA ${tag()}`, grant_types: ['authorization_code'], redirect_uris: ['http://localhost:5173/cb'], token_endpoint_auth_method: 'none' } });
  t.is(spa.status, 201, spa.text);
  const res = await api('POST', `/clients/${spa.body.client_id}/rotate-secret`);
  isApiError(t, res, 400);
  t.false('client_secret' in (res.body ?? {}));
});

test.serial('PATCH disabled: true makes /token answer 401 invalid_client; disabled: false lets the client back in', async (t) => {
  const { gh, api } = t.context;
  const service = await createService(t);
  t.is((await clientCredentialsToken(gh, service.client_id, service.client_secret)).status, 200);

  const disabled = await api('PATCH', `/clients/${service.client_id}`, { body: { disabled: true } });
  t.is(disabled.status, 200, disabled.text);
  t.true(disabled.body.disabled);
  t.false('client_secret' in disabled.body);
  const refused = await clientCredentialsToken(gh, service.client_id, service.client_secret);
  t.is(refused.status, 401);
  t.is(refused.body.error, 'invalid_client');

  t.is((await api('PATCH', `/clients/${service.client_id}`, { body: { disabled: false } })).status, 200);
  t.is((await clientCredentialsToken(gh, service.client_id, service.client_secret)).status, 200, 'the same secret works again');
});

interface BadInput {
  what: string;
  body?: (name: string) => unknown;
  raw?: (name: string) => string;
  contentType?: string;
  status?: number;
  error?: string;
  /** What the error_description must mention. */
  mentions?: RegExp;
}

// A valid confidential client; each bad input below breaks one thing in it.
const valid = (name: string) => ({
  client_name: name,
  grant_types: ['authorization_code'],
  redirect_uris: ['https://app.example.com/callback'],
  token_endpoint_auth_method: 'client_secret_basic',
});

const BAD_CLIENTS: BadInput[] = [
  { what: 'an unknown field', body: (n) => ({ ...valid(n), colour: 'blue' }), error: 'invalid_client_metadata', mentions: /colour/ },
  { what: 'a relative redirect URI', body: (n) => ({ ...valid(n), redirect_uris: ['/callback'] }), error: 'invalid_client_metadata', mentions: /\/callback/ },
  { what: 'an http redirect URI on a host other than loopback', body: (n) => ({ ...valid(n), redirect_uris: ['http://app.example.com/callback'] }), error: 'invalid_client_metadata', mentions: /https/ },
  { what: 'a redirect URI with a fragment', body: (n) => ({ ...valid(n), redirect_uris: ['https://app.example.com/callback#done'] }), error: 'invalid_client_metadata', mentions: /fragment/ },
  { what: 'an http post-logout redirect URI on a host other than loopback', body: (n) => ({ ...valid(n), post_logout_redirect_uris: ['http://app.example.com/bye'] }), error: 'invalid_client_metadata', mentions: /https/ },
  { what: 'client_credentials on a public client', body: (n) => ({ client_name: n, grant_types: ['client_credentials'], token_endpoint_auth_method: 'none' }), error: 'invalid_client_metadata', mentions: /client_credentials/ },
  { what: 'an unknown grant type', body: (n) => ({ ...valid(n), grant_types: ['authorization_code', 'password'] }), error: 'invalid_client_metadata', mentions: /grant/i },
  { what: 'an unknown scope', body: (n) => ({ ...valid(n), scope: 'openid launch_missiles' }), error: 'invalid_client_metadata', mentions: /launch_missiles/ },
  { what: 'token_endpoint_auth_method client_secret_jwt', body: (n) => ({ ...valid(n), token_endpoint_auth_method: 'client_secret_jwt' }), error: 'invalid_client_metadata', mentions: /hashed/ },
  { what: 'id_token_signed_response_alg HS256', body: (n) => ({ ...valid(n), id_token_signed_response_alg: 'HS256' }), error: 'invalid_client_metadata', mentions: /hashed/ },
  { what: 'no client_name', body: () => ({ grant_types: ['client_credentials'], token_endpoint_auth_method: 'client_secret_basic' }), error: 'invalid_client_metadata', mentions: /required/ },
  { what: 'malformed JSON', raw: (n) => `{"client_name": "${n}", "grant_types": [`, error: 'invalid_request' },
  { what: 'a JSON array instead of an object', raw: (n) => JSON.stringify([valid(n)]), error: 'invalid_request', mentions: /object/ },
  { what: 'a JSON string instead of an object', raw: (n) => JSON.stringify(n), error: 'invalid_request' },
  { what: 'JSON sent as text/plain', raw: (n) => JSON.stringify(valid(n)), contentType: 'text/plain', status: 415 },
  { what: 'a form instead of JSON', raw: (n) => new URLSearchParams({ client_name: n, grant_types: 'client_credentials' }).toString(), contentType: 'application/x-www-form-urlencoded', status: 415 },
];

for (const bad of BAD_CLIENTS) {
  test.serial(`creating a client with ${bad.what} is refused with ${bad.status ?? 400}, and nothing is stored`, async (t) => {
    const { api } = t.context;
    const name = `Refused ${tag()}`;
    const count = await clientCount(api);
    const lastAudit = await newestAuditId(api);

    const res = await api('POST', '/clients', bad.raw ? { raw: bad.raw(name), contentType: bad.contentType ?? 'application/json' } : { body: bad.body!(name) });
    isApiError(t, res, bad.status ?? 400, bad.error);
    if (bad.mentions) t.regex(res.body?.error_description ?? '', bad.mentions);
    t.false('client_id' in (res.body ?? {}));

    t.is(await clientCount(api), count, 'no client was stored');
    t.deepEqual((await api('GET', `/clients?search=${encodeURIComponent(name)}`)).body, []);
    t.is(await newestAuditId(api), lastAudit, 'nothing was audited');
  });
}

test.serial('a PATCH with bad input is refused with 400 and leaves the client as it was', async (t) => {
  const { api } = t.context;
  const created = await api('POST', '/clients', {
    body: { client_name: `Steady ${tag()}`, grant_types: ['authorization_code'], redirect_uris: ['https://steady.example.com/cb'], allowed_origins: ['https://steady.example.com'], token_endpoint_auth_method: 'client_secret_basic' },
  });
  t.is(created.status, 201, created.text);
  t.context.secrets.set(created.body.client_secret, 'the steady client secret');
  const id = created.body.client_id;
  const before = (await api('GET', `/clients/${id}`)).body;
  const lastAudit = await newestAuditId(api);

  const attempts: Array<[string, { body?: unknown; raw?: string; contentType?: string }, number]> = [
    ['a relative redirect URI with a valid new name', { body: { client_name: 'Changed?', redirect_uris: ['/cb'] } }, 400],
    ['an http origin on another host', { body: { allowed_origins: ['http://steady.example.com'] } }, 400],
    ['an unknown field', { body: { client_name: 'Changed?', colour: 'red' } }, 400],
    ['client_secret_jwt', { body: { token_endpoint_auth_method: 'client_secret_jwt' } }, 400],
    ['HS256', { body: { id_token_signed_response_alg: 'HS256' } }, 400],
    ['an unknown scope', { body: { scope: 'openid everything' } }, 400],
    ['an unknown grant type', { body: { grant_types: ['implicit'] } }, 400],
    ['an empty name', { body: { client_name: '  ' } }, 400],
    ['malformed JSON', { raw: '{"client_name": ' }, 400],
    ['a JSON array', { raw: '[{"client_name": "Changed?"}]' }, 400],
    ['a form', { raw: 'client_name=Changed%3F', contentType: 'application/x-www-form-urlencoded' }, 415],
  ];
  for (const [what, req, status] of attempts) {
    const res = await api('PATCH', `/clients/${id}`, req);
    isApiError(t, res, status, undefined, what);
  }
  t.deepEqual((await api('GET', `/clients/${id}`)).body, before, 'the client is unchanged');
  t.is(await newestAuditId(api), lastAudit, 'nothing was audited');
});

// BUG (src/admin/api-routes.ts clientInput / src/clients/service.ts update): `disabled` is never
// checked to be a boolean. ClientsService.update writes whatever came ("yes") into the clients
// row; every later read of that row fails its zod row schema, so GET /clients/{id}, GET /clients,
// GET /users/{id}/grants and /token for that client answer 500 from then on. POST /clients with
// disabled "yes" stores the client (create, then the same update) and answers 500.
// Fix: refuse a non-boolean `disabled` in clientInput (api-routes.ts) before anything is
// written, and in ClientsService.update as the one source of truth.
// Both tests put the row right again afterwards so the rest of this file can run.
async function repairDisabledColumn(gh: TestGatehouse, name: string) {
  await gh.services.db('clients').where('name', 'like', `${name}%`).update({ disabled: false });
}

test.serial('PATCH with disabled as a string is refused with 400, and the client stays readable', async (t) => {
  const { gh, api } = t.context;
  const name = `Flagged ${tag()}`;
  const service = await createService(t, name);
  try {
    const res = await api('PATCH', `/clients/${service.client_id}`, { body: { disabled: 'yes' } });
    isApiError(t, res, 400, undefined, 'disabled: "yes"');
    t.is((await api('GET', `/clients/${service.client_id}`)).status, 200, 'the client can still be read');
    t.is((await api('GET', '/clients')).status, 200, 'the client list still works');
  } finally {
    await repairDisabledColumn(gh, name);
  }
});

test.serial('creating a client with disabled as a string is refused with 400, and nothing is stored', async (t) => {
  const { gh, api } = t.context;
  const name = `Flagged ${tag()}`;
  const count = await clientCount(api);
  try {
    const res = await api('POST', '/clients', { body: { ...valid(name), disabled: 'yes' } });
    if (res.body?.client_secret) t.context.secrets.set(res.body.client_secret, 'a wrongly stored client secret');
    isApiError(t, res, 400, undefined, 'disabled: "yes"');
  } finally {
    await repairDisabledColumn(gh, name);
  }
  t.is(await clientCount(api), count, 'no client was stored');
});

// ---------------------------------------------------------------------------------------------
// Users

test.serial('creating a user answers 201 and never echoes the password', async (t) => {
  const { gh } = t.context;
  const { id, username, password, res } = await createUser(t, { name: 'Ada Lovelace', admin: false });
  t.is(typeof id, 'string');
  t.like(res.body, { username, email: `${username}@example.com`, name: 'Ada Lovelace', admin: false, disabled: false });
  t.false('password' in res.body);
  t.false('password_hash' in res.body);
  t.false(res.text.includes(password), 'the password is in the response');
  t.is((await gh.services.accounts.verifyCredentials(username, password))?.id, id, 'the password works at sign-in');
  const shown = await t.context.api('GET', `/users/${id}`);
  t.is(shown.status, 200);
  t.false(shown.text.includes(password));
});

test.serial('a second user with the same username is refused with 400, and not stored', async (t) => {
  const { api } = t.context;
  const { username } = await createUser(t);
  const res = await api('POST', '/users', { body: { username: username.toUpperCase(), email: `other-${username}@example.com`, password: 'another long password' } });
  isApiError(t, res, 400);
  t.regex(res.body.error_description, /taken/);
  t.is((await api('GET', `/users?search=${username}`)).body.length, 1);
});

test.serial('users are found with ?search= by part of their username or email', async (t) => {
  const { api } = t.context;
  const family = tag();
  const a = (await api('POST', '/users', { body: { username: `grace-${family}`, email: `grace@${family}.example.org` } })).body;
  const b = (await api('POST', '/users', { body: { username: `alan-${family}`, email: `turing@${family}.example.org` } })).body;
  t.truthy(a.id);
  t.truthy(b.id);
  const ids = async (search: string) => (await api('GET', `/users?search=${encodeURIComponent(search)}`)).body.map((u: any) => u.id).sort();
  t.deepEqual(await ids(family), [a.id, b.id].sort());
  t.deepEqual(await ids(`GRACE-${family}`), [a.id], 'search ignores case');
  t.deepEqual(await ids('turing@'), [b.id], 'search looks at emails');
  t.deepEqual(await ids('nobody-has-this-name'), []);
  const all = await api('GET', '/users');
  t.true(all.body.length >= 2);
});

test.serial('PATCH changes a user\'s admin flag, disabled flag and email', async (t) => {
  const { gh, api } = t.context;
  const { id, username, password } = await createUser(t);

  const admin = await api('PATCH', `/users/${id}`, { body: { admin: true } });
  t.is(admin.status, 200, admin.text);
  t.true(admin.body.admin);

  const email = await api('PATCH', `/users/${id}`, { body: { email: `new-${username}@example.net` } });
  t.is(email.status, 200, email.text);
  t.is(email.body.email, `new-${username}@example.net`);
  t.true(email.body.admin, 'other fields keep their values');

  const disabled = await api('PATCH', `/users/${id}`, { body: { disabled: true } });
  t.is(disabled.status, 200, disabled.text);
  t.true(disabled.body.disabled);
  t.is(await gh.services.accounts.verifyCredentials(username, password), undefined, 'a disabled user cannot sign in');

  const enabled = await api('PATCH', `/users/${id}`, { body: { disabled: false } });
  t.false(enabled.body.disabled);
  t.truthy(await gh.services.accounts.verifyCredentials(username, password));

  t.like((await api('GET', `/users/${id}`)).body, { admin: true, disabled: false, email: `new-${username}@example.net` });

  isApiError(t, await api('PATCH', `/users/${id}`, { body: { email: 'not an email' } }), 400, undefined, 'a bad email');
  isApiError(t, await api('PATCH', `/users/${id}`, { body: { admin: 'yes' } }), 400, undefined, 'admin as a string');
  isApiError(t, await api('PATCH', `/users/${id}`, { body: { shoe_size: 42 } }), 400, undefined, 'an unknown field');
  t.is((await api('GET', `/users/${id}`)).body.email, `new-${username}@example.net`);
});

// BUG (src/admin/api-routes.ts PATCH /users/:id → src/accounts/service.ts update): the route
// passes { email: body.email, name: body.name, emailVerified } with undefined for fields not
// sent, and AccountsService.update spreads them over the current values, so an absent email
// becomes undefined (400 "email: must be an email address") and an absent name becomes ''.
test.serial("PATCH can change just a user's name", async (t) => {
  const { api } = t.context;
  const { id, username } = await createUser(t, { name: 'Old Name' });
  const res = await api('PATCH', `/users/${id}`, { body: { name: 'New Name' } });
  t.is(res.status, 200, res.text);
  t.like((await api('GET', `/users/${id}`)).body, { name: 'New Name', email: `${username}@example.com` });
});

test.serial("PATCH of a user's email keeps their name", async (t) => {
  const { api } = t.context;
  const { id, username } = await createUser(t, { name: 'Kept Name' });
  const res = await api('PATCH', `/users/${id}`, { body: { email: `moved-${username}@example.net` } });
  t.is(res.status, 200, res.text);
  t.like((await api('GET', `/users/${id}`)).body, { name: 'Kept Name', email: `moved-${username}@example.net` });
});

test.serial("PATCH can mark just a user's email as verified", async (t) => {
  const { api } = t.context;
  const { id, username } = await createUser(t, { name: 'Verified Name' });
  const res = await api('PATCH', `/users/${id}`, { body: { email_verified: true } });
  t.is(res.status, 200, res.text);
  t.like((await api('GET', `/users/${id}`)).body, { email_verified: true, name: 'Verified Name', email: `${username}@example.com` });
});

test.serial('PATCH with a password is refused with 400, pointing at POST /users/{id}/password', async (t) => {
  const { gh, api } = t.context;
  const { id, username, password } = await createUser(t);
  const attempted = `never-set-${tag()}-password`;
  t.context.secrets.set(attempted, 'a password sent with PATCH');
  const res = await api('PATCH', `/users/${id}`, { body: { password: attempted } });
  isApiError(t, res, 400);
  t.regex(res.body.error_description, /POST \/admin\/api\/users\/\{id\}\/password/);
  t.truthy(await gh.services.accounts.verifyCredentials(username, password), 'the old password still works');
  t.is(await gh.services.accounts.verifyCredentials(username, attempted), undefined);
});

test.serial('POST /users/{id}/password answers 204, and the new password works at sign-in', async (t) => {
  const { gh, api, secrets } = t.context;
  const { id, username, password } = await createUser(t);
  const next = `new-${randomBytes(12).toString('base64url')}`;
  secrets.set(next, `the new password of ${username}`);
  const res = await api('POST', `/users/${id}/password`, { body: { password: next } });
  t.is(res.status, 204, res.text);
  t.is(res.text, '');
  t.is((await gh.services.accounts.verifyCredentials(username, next))?.id, id);
  t.is(await gh.services.accounts.verifyCredentials(username, password), undefined, 'the old password no longer works');

  isApiError(t, await api('POST', `/users/${id}/password`, { body: { password: 'short' } }), 400, undefined, 'a short password');
  isApiError(t, await api('POST', `/users/${id}/password`, { body: {} }), 400, undefined, 'no password');
  isApiError(t, await api('POST', `/users/no-such-user/password`, { body: { password: 'long enough password' } }), 404, 'not_found');
  t.truthy(await gh.services.accounts.verifyCredentials(username, next), 'still the password set above');
});

test.serial("a user's grants are listed after they sign in to an app; revoking one kills its tokens", async (t) => {
  const { gh, api } = t.context;
  const { app, user, rp, tokens } = await signedInToWebApp(t);
  t.truthy(tokens.refresh_token, 'the app got a refresh token');
  t.is(await userinfoStatus(gh, tokens.access_token), 200);

  const listed = await api('GET', `/users/${user.id}/grants`);
  t.is(listed.status, 200, listed.text);
  t.is(listed.body.length, 1);
  const [grant] = listed.body;
  t.like(grant, { client_id: app.client_id, client_name: app.client_name });
  t.is(typeof grant.grant_id, 'string');
  t.true(grant.scope.split(' ').includes('openid'));

  const other = await createUser(t);
  isApiError(t, await api('DELETE', `/users/${other.id}/grants/${grant.grant_id}`), 404, 'not_found', "through another user's path");
  t.is(await userinfoStatus(gh, tokens.access_token), 200, 'the grant survived');

  const revoked = await api('DELETE', `/users/${user.id}/grants/${grant.grant_id}`);
  t.is(revoked.status, 204, revoked.text);
  t.is(await userinfoStatus(gh, tokens.access_token), 401, 'the access token is dead');
  t.is(await oauthError(oidc.refreshTokenGrant(rp, tokens.refresh_token!)), 'invalid_grant', 'so is the refresh token');
  t.deepEqual((await api('GET', `/users/${user.id}/grants`)).body, []);
  isApiError(t, await api('DELETE', `/users/${user.id}/grants/${grant.grant_id}`), 404, 'not_found', 'revoking twice');
});

// ---------------------------------------------------------------------------------------------
// API keys

test.serial('an API key is created with 201 and shown once; listing never shows it; DELETE revokes it', async (t) => {
  const { gh, api, secrets } = t.context;
  const service = await createService(t);
  const created = await api('POST', `/clients/${service.client_id}/api-keys`, { body: { scopes: ['userdata:read'], name: 'nightly export' } });
  t.is(created.status, 201, created.text);
  secrets.set(created.body.key, 'an API key');
  t.regex(created.body.key, /^ghk_[A-Za-z0-9]{16}_[A-Za-z0-9_-]{43}$/);
  t.like(created.body, { client_id: service.client_id, name: 'nightly export', scopes: ['userdata:read'], revoked_at: null });
  const key: string = created.body.key;
  const keyId: string = created.body.id;

  const listed = await api('GET', `/clients/${service.client_id}/api-keys`);
  t.is(listed.status, 200);
  t.deepEqual(listed.body.map((k: any) => k.id), [keyId]);
  t.false('key' in listed.body[0]);
  t.false(listed.text.includes(key));
  t.false(listed.text.includes(key.split('_').slice(2).join('_')), "the key's secret part is not listed");

  const userdata = (k: string) => fetch(`${gh.url}/userdata/${randomBytes(8).toString('hex')}`, { headers: { 'x-api-key': k } }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));
  t.not((await userdata(key)).status, 401, 'the key is recognised at /userdata');

  const deleted = await api('DELETE', `/api-keys/${keyId}`);
  t.is(deleted.status, 200, deleted.text);
  t.is(deleted.body.id, keyId);
  t.truthy(deleted.body.revoked_at);
  t.false('key' in deleted.body);
  t.truthy((await api('GET', `/clients/${service.client_id}/api-keys`)).body[0].revoked_at);
  const refused = await userdata(key);
  t.is(refused.status, 401, 'the revoked key no longer works');
  t.is(refused.body.error, 'invalid_api_key');
  isApiError(t, await api('DELETE', '/api-keys/no-such-key'), 404, 'not_found');
});

test.serial('API keys with bad scopes are refused with 400, and none is stored', async (t) => {
  const { api } = t.context;
  const service = await createService(t);
  const attempts: Array<[string, unknown]> = [
    ['an unknown scope', { scopes: ['userdata:admin'] }],
    ['an OpenID scope', { scopes: ['openid'] }],
    ['no scopes', { scopes: [] }],
    ['scopes as a string', { scopes: 'userdata:read' }],
    ['no scopes field', { name: 'x' }],
    ['a name that is not a string', { scopes: ['userdata:read'], name: 42 }],
  ];
  for (const [what, body] of attempts) {
    const res = await api('POST', `/clients/${service.client_id}/api-keys`, { body });
    isApiError(t, res, 400, undefined, what);
    t.false('key' in (res.body ?? {}), what);
  }
  t.deepEqual((await api('GET', `/clients/${service.client_id}/api-keys`)).body, []);
  isApiError(t, await api('POST', '/clients/no-such-client/api-keys', { body: { scopes: ['userdata:read'] } }), 404, 'not_found', 'an unknown client');
});

// ---------------------------------------------------------------------------------------------
// Audit log

test.serial('the audit log lists admin API changes newest first, with the token, action, target and address', async (t) => {
  const { api, tokenId } = t.context;
  const service = await createService(t, `Audited ${tag()}`);
  const client = `client:${service.client_id}`;
  t.is((await api('PATCH', `/clients/${service.client_id}`, { body: { client_name: 'Audited (renamed)' } })).status, 200);
  const rotated = await api('POST', `/clients/${service.client_id}/rotate-secret`);
  t.context.secrets.set(rotated.body.client_secret, 'the audited client rotated secret');
  const user = await createUser(t);
  const newPassword = `audited-${randomBytes(9).toString('base64url')}`;
  t.context.secrets.set(newPassword, 'the audited user new password');
  t.is((await api('POST', `/users/${user.id}/password`, { body: { password: newPassword } })).status, 204);
  const key = await api('POST', `/clients/${service.client_id}/api-keys`, { body: { scopes: ['userdata:read', 'userdata:write'] } });
  t.context.secrets.set(key.body.key, 'the audited API key');
  t.is((await api('DELETE', `/api-keys/${key.body.id}`)).status, 200);
  const signedIn = await signedInToWebApp(t);
  const [grant] = (await api('GET', `/users/${signedIn.user.id}/grants`)).body;
  t.is((await api('DELETE', `/users/${signedIn.user.id}/grants/${grant.grant_id}`)).status, 204);
  t.is((await api('DELETE', `/clients/${service.client_id}`)).status, 204);

  const expected: Array<[string, string]> = [
    ['client.delete', client],
    ['grant.revoke', `grant:${grant.grant_id}`],
    ['user.create', `user:${signedIn.user.id}`],
    ['client.create', `client:${signedIn.app.client_id}`],
    ['api_key.revoke', `api_key:${key.body.id}`],
    ['api_key.create', `api_key:${key.body.id}`],
    ['user.set_password', `user:${user.id}`],
    ['user.create', `user:${user.id}`],
    ['client.rotate_secret', client],
    ['client.update', client],
    ['client.create', client],
  ];
  const log = await api('GET', `/audit?limit=${expected.length}`);
  t.is(log.status, 200, log.text);
  t.deepEqual(log.body.map((e: any) => [e.action, e.target]), expected);
  for (const entry of log.body) {
    t.is(entry.actor, `admin-token:${tokenId} (ci)`);
    t.regex(entry.address ?? '', LOOPBACK);
    t.true(Number.isInteger(entry.id));
    t.false(Number.isNaN(Date.parse(entry.at)));
  }
  const ids = log.body.map((e: any) => e.id);
  t.deepEqual(ids, [...ids].sort((a: number, b: number) => b - a), 'newest first');
  t.like(log.body.find((e: any) => e.action === 'api_key.create').details, { client: service.client_id, scopes: ['userdata:read', 'userdata:write'] });
  t.like(log.body.find((e: any) => e.action === 'grant.revoke').details, { user: signedIn.user.id });
});

test.serial('CLI changes are audited too, with actor "cli"', async (t) => {
  const { api, tokenId, revoked, cliClientId } = t.context;
  const log = await wholeAuditLog(api);
  const byCli = log.filter((e) => e.actor === 'cli');
  const find = (action: string, target: string) => byCli.find((e) => e.action === action && e.target === target);
  t.like(find('admin_token.create', `admin_token:${tokenId}`), { details: { name: 'ci' }, address: null });
  t.truthy(find('admin_token.create', `admin_token:${revoked.id}`));
  t.truthy(find('admin_token.revoke', `admin_token:${revoked.id}`));
  t.like(find('client.create', `client:${cliClientId}`), { details: { name: 'Made by the CLI', type: 'confidential' }, address: null });
  const revokeAt = byCli.indexOf(find('admin_token.revoke', `admin_token:${revoked.id}`));
  const createAt = byCli.indexOf(find('admin_token.create', `admin_token:${revoked.id}`));
  t.true(revokeAt < createAt, 'newest first');
  t.false(log.some((e) => e.actor.includes(revoked.id)), 'nothing is attributed to the revoked token');
  t.true(log.every((e) => typeof e.actor === 'string' && e.actor.length > 0), 'every entry names who acted');
  t.true(log.some((e) => e.actor === `admin-token:${tokenId} (ci)`), 'API changes are not attributed to the CLI');
});

test.serial('the audit log pages with ?limit= and ?before=, and a bad limit is refused with 400', async (t) => {
  const { api } = t.context;
  const full = (await api('GET', '/audit?limit=500')).body as any[];
  t.true(full.length >= 6, `only ${full.length} entries`);
  t.deepEqual((await api('GET', '/audit')).body, full.slice(0, 100), 'the default page');

  const first = await api('GET', '/audit?limit=2');
  t.is(first.status, 200);
  t.deepEqual(first.body, full.slice(0, 2));
  const second = await api('GET', `/audit?limit=2&before=${first.body[1].id}`);
  t.deepEqual(second.body, full.slice(2, 4));
  const third = await api('GET', `/audit?limit=2&before=${second.body[1].id}`);
  t.deepEqual(third.body, full.slice(4, 6));
  t.deepEqual((await api('GET', `/audit?before=${full.at(-1).id}`)).body, [], 'nothing before the oldest entry');

  for (const limit of ['0', '-1', '501', 'ten', '2.5', '']) {
    const res = await api('GET', `/audit?limit=${encodeURIComponent(limit)}`);
    isApiError(t, res, 400, 'invalid_request', `limit=${limit}`);
    t.regex(res.body?.error_description ?? '', /limit/, `limit=${limit}`);
  }
  for (const before of ['abc', '0', '-3']) {
    const res = await api('GET', `/audit?before=${before}`);
    isApiError(t, res, 400, 'invalid_request', `before=${before}`);
    t.regex(res.body?.error_description ?? '', /before/, `before=${before}`);
  }
});

test.serial('no audit entry contains a client secret, password, API key or admin token used in these tests', async (t) => {
  const { gh, api, secrets } = t.context;
  // Changes of this test's own, so that the scan covers every kind of secret even when run alone.
  const service = await createService(t, `Scanned ${tag()}`);
  const rotated = await api('POST', `/clients/${service.client_id}/rotate-secret`);
  secrets.set(rotated.body.client_secret, 'the scanned client rotated secret');
  const user = await createUser(t);
  const next = `scan-${randomBytes(9).toString('base64url')}`;
  secrets.set(next, 'the scanned user new password');
  t.is((await api('POST', `/users/${user.id}/password`, { body: { password: next } })).status, 204);
  const key = await api('POST', `/clients/${service.client_id}/api-keys`, { body: { scopes: ['userdata:read'] } });
  secrets.set(key.body.key, 'the scanned API key').set(key.body.key.split('_').slice(2).join('_'), "the scanned API key's secret part");

  const log = await wholeAuditLog(api);
  const rows = await gh.services.db('audit_log').select('*');
  t.is(rows.length, log.length, 'the API pages through the whole log');
  t.true(log.length >= 20, `only ${log.length} entries`);
  const kinds = ['client.create', 'client.rotate_secret', 'user.create', 'user.set_password', 'api_key.create', 'admin_token.create'];
  for (const action of kinds) t.true(log.some((e) => e.action === action), `the log has ${action}`);

  const json = JSON.stringify(log);
  const stored = JSON.stringify(rows);
  t.true(secrets.size >= 12, `only ${secrets.size} secrets collected`);
  for (const [secret, what] of secrets) {
    t.true(secret.length >= 12, `${what} is too short to scan for`);
    t.false(json.includes(secret), `${what} is in the audit log (API)`);
    t.false(stored.includes(secret), `${what} is in the audit_log table`);
  }
});
