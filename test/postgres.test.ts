import anyTest, { type TestFn } from 'ava';
import knex, { type Knex } from 'knex';
import { storedId } from '../adapters/payload-row.ts';
import { runCli } from './support/cli.ts';
import { startTestGatehouse, type TestGatehouse } from './support/gatehouse.ts';
import { basicAuth } from './support/http.ts';

/** The client credentials story end to end with PostgreSQL as the database. */

const test = anyTest as TestFn<{ gh: TestGatehouse; pg: Knex; clientId: string; clientSecret: string }>;

test.before(async (t) => {
  const gh = await startTestGatehouse({ database: 'pg' });
  // A connection of our own, to see what Gatehouse stored where.
  const pg = knex({ client: 'pg', connection: gh.env.DATABASE_URL, pool: { min: 0, max: 2 } });
  t.context = { gh, pg, clientId: '', clientSecret: '' };
  t.true(gh.env.DATABASE_URL!.startsWith('postgres'), gh.env.DATABASE_URL);
  const created = await runCli(['clients', 'create', '--name', 'Payments', '--type', 'confidential', '--grant', 'client_credentials', '--json'], gh.env);
  t.is(created.code, 0, created.stderr);
  const { client_id, client_secret } = created.json();
  t.context.clientId = client_id;
  t.context.clientSecret = client_secret;
});

test.after.always(async (t) => {
  await t.context.pg?.destroy();
  await t.context.gh?.close();
});

async function post(gh: TestGatehouse, path: string, body: Record<string, string>, headers: Record<string, string> = {}) {
  const res = await fetch(`${gh.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(body),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as Record<string, any> };
}

test('the client the CLI created lives in PostgreSQL, its secret hashed', async (t) => {
  const { pg, clientId, clientSecret } = t.context;
  const row = await pg('clients').where({ client_id: clientId }).first();
  t.truthy(row, 'the client is not in the PostgreSQL database');
  t.true(String(row.secret_hash).startsWith('hmac-sha256$'));
  t.false(JSON.stringify(row).includes(clientSecret));
});

test('a service gets a token with HTTP Basic on PostgreSQL', async (t) => {
  const { gh, pg, clientId, clientSecret } = t.context;
  const res = await post(gh, '/token', { grant_type: 'client_credentials' }, { authorization: basicAuth(clientId, clientSecret) });
  t.is(res.status, 200, JSON.stringify(res.body));
  t.is(res.body.token_type, 'Bearer');
  t.is(res.body.scope, 'read write');
  t.is(typeof res.body.access_token, 'string');
  // The token is stored in PostgreSQL, as oidc-provider's ClientCredentials model.
  const stored = await pg('oidc_payloads').where({ model: 'ClientCredentials' }).select('payload');
  t.true(stored.some((r) => JSON.parse(r.payload).clientId === clientId));
});

test('a service gets a token with the secret in the POST body on PostgreSQL', async (t) => {
  const { gh, clientId, clientSecret } = t.context;
  const res = await post(gh, '/token', { grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret, scope: 'write' });
  t.is(res.status, 200, JSON.stringify(res.body));
  t.is(res.body.scope, 'write');
});

test('a wrong secret is refused on PostgreSQL', async (t) => {
  const { gh, clientId } = t.context;
  const res = await post(gh, '/token', { grant_type: 'client_credentials' }, { authorization: basicAuth(clientId, 'wrong') });
  t.is(res.status, 401);
  t.is(res.body.error, 'invalid_client');
});

test('a token introspects as active, and as inactive once revoked, on PostgreSQL', async (t) => {
  const { gh, pg, clientId, clientSecret } = t.context;
  const auth = { authorization: basicAuth(clientId, clientSecret) };
  const issued = await post(gh, '/token', { grant_type: 'client_credentials', scope: 'read' }, auth);
  t.is(issued.status, 200);
  const token = issued.body.access_token as string;

  const storedRow = () => pg('oidc_payloads').where({ model: 'ClientCredentials', id: storedId('ClientCredentials', token) }).first('id');
  t.truthy(await storedRow(), 'the opaque token is not stored under the hash of its value');
  t.falsy(await pg('oidc_payloads').where({ model: 'ClientCredentials', id: token }).first('id'), 'the token is stored under its own value');

  const before = await post(gh, '/introspect', { token }, auth);
  t.is(before.status, 200);
  t.like(before.body, { active: true, client_id: clientId, scope: 'read', token_type: 'Bearer' });

  const revoked = await post(gh, '/revoke', { token, token_type_hint: 'access_token' }, auth);
  t.is(revoked.status, 200);

  const after = await post(gh, '/introspect', { token }, auth);
  t.deepEqual(after.body, { active: false });
  // Revocation removed it from the database, not only from a cache.
  t.is(await storedRow(), undefined, 'the revoked token is still stored');
});
