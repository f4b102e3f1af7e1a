import anyTest, { type TestFn } from 'ava';
import { runCli } from './support/cli.ts';
import { startTestGatehouse, type TestGatehouse } from './support/gatehouse.ts';
import { basicAuth } from './support/http.ts';

const test = anyTest as TestFn<{ gh: TestGatehouse; clientId: string; clientSecret: string }>;

test.before(async (t) => {
  const gh = await startTestGatehouse();
  const created = await runCli(['clients', 'create', '--name', 'Billing service', '--type', 'confidential', '--grant', 'client_credentials', '--json'], gh.env);
  t.is(created.code, 0, created.stderr);
  const { client_id, client_secret } = created.json();
  t.context = { gh, clientId: client_id, clientSecret: client_secret };
});

test.after.always(async (t) => {
  await t.context.gh?.close();
});

async function token(gh: TestGatehouse, body: Record<string, string>, headers: Record<string, string> = {}) {
  const res = await fetch(`${gh.url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

test('a confidential service gets a token with HTTP Basic, carrying its API scopes', async (t) => {
  const { gh, clientId, clientSecret } = t.context;
  const res = await token(gh, { grant_type: 'client_credentials' }, { authorization: basicAuth(clientId, clientSecret) });
  t.is(res.status, 200);
  t.is(res.body.token_type, 'Bearer');
  t.is(res.body.scope, 'read write');
  t.is(typeof res.body.access_token, 'string');
  t.true(res.body.access_token.length >= 43);
  t.is(res.body.expires_in, 3600);
});

test('a confidential service gets a token with the secret in the POST body', async (t) => {
  const { gh, clientId, clientSecret } = t.context;
  const res = await token(gh, { grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret, scope: 'read' });
  t.is(res.status, 200);
  t.is(res.body.scope, 'read');
});

test('a wrong secret is refused with 401 invalid_client', async (t) => {
  const { gh, clientId } = t.context;
  const res = await token(gh, { grant_type: 'client_credentials' }, { authorization: basicAuth(clientId, 'not-the-secret') });
  t.is(res.status, 401);
  t.is(res.body.error, 'invalid_client');
});

test('an unknown client is refused with 401 invalid_client', async (t) => {
  const { gh } = t.context;
  const res = await token(gh, { grant_type: 'client_credentials' }, { authorization: basicAuth('no-such-client', 'whatever') });
  t.is(res.status, 401);
  t.is(res.body.error, 'invalid_client');
});

test('an unknown scope is refused with invalid_scope', async (t) => {
  const { gh, clientId, clientSecret } = t.context;
  const res = await token(gh, { grant_type: 'client_credentials', scope: 'read admin' }, { authorization: basicAuth(clientId, clientSecret) });
  t.is(res.status, 400);
  t.is(res.body.error, 'invalid_scope');
  t.regex(res.body.error_description, /admin/);
});

test('an OpenID scope is not handed out by the client credentials grant', async (t) => {
  const { gh, clientId, clientSecret } = t.context;
  const res = await token(gh, { grant_type: 'client_credentials', scope: 'openid' }, { authorization: basicAuth(clientId, clientSecret) });
  t.is(res.status, 400);
  t.is(res.body.error, 'invalid_scope');
});

test('the implicit and password grants are not served', async (t) => {
  const { gh, clientId, clientSecret } = t.context;
  const res = await token(gh, { grant_type: 'password', username: 'a', password: 'b' }, { authorization: basicAuth(clientId, clientSecret) });
  t.is(res.status, 400);
  t.is(res.body.error, 'unsupported_grant_type');
  const discovery = await (await fetch(`${gh.url}/.well-known/openid-configuration`)).json();
  t.deepEqual(discovery.response_types_supported, ['code']);
  t.false(discovery.grant_types_supported.includes('password'));
  t.false(discovery.grant_types_supported.includes('implicit'));
});

test('a token introspects as active until it is revoked, then as inactive', async (t) => {
  const { gh, clientId, clientSecret } = t.context;
  const auth = { authorization: basicAuth(clientId, clientSecret) };
  const { body } = await token(gh, { grant_type: 'client_credentials' }, auth);
  const introspect = async () => {
    const res = await fetch(`${gh.url}/introspect`, { method: 'POST', headers: auth, body: new URLSearchParams({ token: body.access_token }) });
    t.is(res.status, 200);
    return (await res.json()) as Record<string, any>;
  };
  const before = await introspect();
  t.true(before.active);
  t.is(before.client_id, clientId);
  t.is(before.scope, 'read write');
  t.is(before.token_type, 'Bearer');

  const revoked = await fetch(`${gh.url}/revoke`, { method: 'POST', headers: auth, body: new URLSearchParams({ token: body.access_token }) });
  t.is(revoked.status, 200);
  t.deepEqual(await introspect(), { active: false });
});

test('a disabled client can no longer get tokens, and can again once enabled', async (t) => {
  const { gh } = t.context;
  const created = (await runCli(['clients', 'create', '--name', 'Paused', '--type', 'confidential', '--grant', 'client_credentials', '--json'], gh.env)).json();
  const auth = { authorization: basicAuth(created.client_id, created.client_secret) };
  t.is((await runCli(['clients', 'update', created.client_id, '--disable', '--json'], gh.env)).code, 0);
  t.is((await token(gh, { grant_type: 'client_credentials' }, auth)).status, 401);
  t.is((await runCli(['clients', 'update', created.client_id, '--enable', '--json'], gh.env)).code, 0);
  t.is((await token(gh, { grant_type: 'client_credentials' }, auth)).status, 200);
});
