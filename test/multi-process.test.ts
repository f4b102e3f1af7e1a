import { randomBytes } from 'node:crypto';
import anyTest, { type TestFn } from 'ava';
import { runCli } from './support/cli.ts';
import { createTestDatabase, freePort, REDIS_TEST_URL, type TestDatabase } from './support/gatehouse.ts';
import { spawnGatehouse, type GatehouseProcess } from './support/processes.ts';
import { REDIRECT_URI } from './support/relying-party.ts';
import { UserAgent } from './support/user-agent.ts';
import * as oidc from 'openid-client';
import { CLIENT_CACHE_MS } from '../src/clients/service.ts';
import { basicAuth } from './support/http.ts';
import { waitFor } from './support/wait.ts';

/**
 * Two Gatehouse processes on two ports over one PostgreSQL and one Redis, as behind a load
 * balancer. Both carry the same issuer, as they would behind one public hostname.
 */
const test = anyTest as TestFn<{
  db: TestDatabase;
  env: Record<string, string>;
  a: GatehouseProcess;
  b: GatehouseProcess;
  client: { id: string; secret: string };
}>;

const PASSWORD = 'two-processes-one-truth';

test.before(async (t) => {
  const db = await createTestDatabase('pg');
  const [portA, portB] = [await freePort(), await freePort()];
  const env = {
    DATABASE_URL: db.url,
    REDIS_URL: REDIS_TEST_URL,
    GATEHOUSE_REDIS_PREFIX: `gh-test-${randomBytes(4).toString('hex')}:`,
    GATEHOUSE_ISSUER: `http://localhost:${portA}`,
    GATEHOUSE_KEYS_RELOAD_SECONDS: '1',
  };
  t.is((await runCli(['migrate'], env)).code, 0);
  const [a, b] = await Promise.all([spawnGatehouse({ ...env, PORT: String(portA) }), spawnGatehouse({ ...env, PORT: String(portB) })]);
  t.is((await runCli(['users', 'create', '--username', 'mallory', '--email', 'm@example.com', '--password-stdin'], env, PASSWORD)).code, 0);
  const created = await runCli(['clients', 'create', '--json', '--name', 'Balanced app', '--type', 'confidential', '--grant', 'authorization_code', '--grant', 'refresh_token', '--grant', 'client_credentials', '--redirect-uri', REDIRECT_URI, '--scope', 'openid profile read write'], env);
  t.is(created.code, 0, created.stderr);
  t.context = { db, env, a, b, client: { id: created.json().client_id, secret: created.json().client_secret } };
});

test.after.always(async (t) => {
  await Promise.all([t.context.a?.stop(), t.context.b?.stop()]);
  await t.context.db?.drop();
});

/** Signs mallory in on `on` and returns the authorization code and the PKCE verifier. */
async function signIn(on: GatehouseProcess, clientId: string, agent = new UserAgent([REDIRECT_URI])) {
  const verifier = oidc.randomPKCECodeVerifier();
  const url = new URL(`${on.url}/authorize`);
  url.search = new URLSearchParams({
    client_id: clientId,
    response_type: 'code',
    redirect_uri: REDIRECT_URI,
    scope: 'openid profile',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  }).toString();
  let page = await agent.open(url.href);
  if (/name="password"/.test(page.html)) page = await agent.submit(page, /\/login$/, { username: 'mallory', password: PASSWORD });
  if (/name="decision"/.test(page.html)) page = await agent.submit(page, /\/consent$/, { decision: 'allow' });
  const code = new URL(page.url).searchParams.get('code');
  if (!code) throw new Error(`no code: ${page.url} ${page.html.slice(0, 300)}`);
  return { code, verifier };
}

async function post(on: GatehouseProcess, path: string, client: { id: string; secret: string }, body: Record<string, string>) {
  const res = await fetch(`${on.url}${path}`, { method: 'POST', headers: { authorization: basicAuth(client.id, client.secret) }, body: new URLSearchParams(body) });
  return { status: res.status, body: (await res.json().catch(() => ({}))) as Record<string, any> };
}

const redeem = (on: GatehouseProcess, client: { id: string; secret: string }, code: string, verifier: string) =>
  post(on, '/token', client, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier });

test.serial('a user signs in on one process and the code is redeemed on the other', async (t) => {
  const { a, b, client } = t.context;
  const { code, verifier } = await signIn(a, client.id);
  const res = await redeem(b, client, code, verifier);
  t.is(res.status, 200, JSON.stringify(res.body));
  t.truthy(res.body.id_token);
  t.truthy(res.body.refresh_token);
});

test.serial('a refresh token rotated on one process is refused as reused on the other', async (t) => {
  const { a, b, client } = t.context;
  const { code, verifier } = await signIn(a, client.id);
  const first = await redeem(a, client, code, verifier);
  const rotated = await post(a, '/token', client, { grant_type: 'refresh_token', refresh_token: first.body.refresh_token });
  t.is(rotated.status, 200);
  const reused = await post(b, '/token', client, { grant_type: 'refresh_token', refresh_token: first.body.refresh_token });
  t.is(reused.status, 400);
  t.is(reused.body.error, 'invalid_grant');
  // Reuse revoked the whole grant, for both processes.
  const after = await post(a, '/token', client, { grant_type: 'refresh_token', refresh_token: rotated.body.refresh_token });
  t.is(after.body.error, 'invalid_grant');
});

test.serial('a revocation on one process is seen by the other', async (t) => {
  const { a, b, client } = t.context;
  const issued = await post(a, '/token', client, { grant_type: 'client_credentials' });
  t.true((await post(b, '/introspect', client, { token: issued.body.access_token })).body.active);
  t.is((await post(a, '/revoke', client, { token: issued.body.access_token })).status, 200);
  t.deepEqual((await post(b, '/introspect', client, { token: issued.body.access_token })).body, { active: false });
});

test.serial('a client edited with the CLI is seen by both processes, by message, well within the half-second cache', async (t) => {
  const { a, b, client, env } = t.context;
  // Both processes have just read the client (and may keep it for CLIENT_CACHE_MS).
  for (const on of [a, b]) t.is((await post(on, '/token', client, { grant_type: 'client_credentials' })).body.scope, 'read write');
  t.is((await runCli(['clients', 'update', client.id, '--scope', 'openid profile read'], env)).code, 0);
  const edited = Date.now();
  const scopeOn = async (on: GatehouseProcess) => (await post(on, '/token', client, { grant_type: 'client_credentials' })).body.scope;
  for (const on of [a, b]) {
    while ((await scopeOn(on)) !== 'read' && Date.now() - edited < 5000) await new Promise((r) => setTimeout(r, 50));
    t.is(await scopeOn(on), 'read');
  }
  t.true(Date.now() - edited < CLIENT_CACHE_MS + 1000, `seen after ${Date.now() - edited} ms`);
  t.is((await runCli(['clients', 'update', client.id, '--scope', 'openid profile read write'], env)).code, 0);
  // Seen within the cache's lifetime at the latest: waited for, not slept.
  const editedBack = Date.now();
  for (const on of [a, b]) await waitFor(async () => (await scopeOn(on)) === 'read write', Math.max(0, editedBack + CLIENT_CACHE_MS - Date.now()));
  for (const on of [a, b]) t.is(await scopeOn(on), 'read write');
});

test.serial('both processes publish the same JWKS, and a key rotated by the CLI reaches both within seconds', async (t) => {
  const { a, b, env } = t.context;
  const kids = async (on: GatehouseProcess) => ((await (await fetch(`${on.url}/jwks`)).json()) as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid).sort();
  const before = await kids(a);
  t.deepEqual(await kids(b), before);
  const rotated = await runCli(['keys', 'rotate', '--json'], env);
  t.is(rotated.code, 0);
  const expected = (rotated.json() as Array<{ kid: string }>).map((k) => k.kid).sort();
  t.is(expected.length, before.length + 2);
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && ((await kids(a)).join() !== expected.join() || (await kids(b)).join() !== expected.join())) {
    await new Promise((r) => setTimeout(r, 200));
  }
  t.deepEqual(await kids(a), expected);
  t.deepEqual(await kids(b), expected);
});

test.serial('one code redeemed on both processes at once: exactly one succeeds, every time', async (t) => {
  const { a, b, client } = t.context;
  const agent = new UserAgent([REDIRECT_URI]);
  for (let round = 0; round < 15; round++) {
    const { code, verifier } = await signIn(a, client.id, agent);
    const results = await Promise.all([redeem(a, client, code, verifier), redeem(b, client, code, verifier), redeem(a, client, code, verifier), redeem(b, client, code, verifier)]);
    const successes = results.filter((r) => r.status === 200);
    t.is(successes.length, 1, `round ${round}: ${JSON.stringify(results.map((r) => r.status))}`);
    for (const r of results.filter((x) => x.status !== 200)) t.is(r.body.error, 'invalid_grant');
  }
});
