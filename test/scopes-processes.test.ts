import { randomBytes } from 'node:crypto';
import anyTest, { type TestFn } from 'ava';
import { basicAuth } from './support/http.ts';
import { runCli } from './support/cli.ts';
import { createTestDatabase, freePort, REDIS_TEST_URL, type TestDatabase } from './support/gatehouse.ts';
import { spawnGatehouse, type GatehouseProcess } from './support/processes.ts';

/**
 * A scope change reaches every Gatehouse process at once: two processes on two ports over one
 * PostgreSQL and one Redis (as behind a load balancer), and the CLI beside them. No test waits
 * for a cache to expire: each uses the new state in the very next request.
 */

const test = anyTest as TestFn<{ db: TestDatabase; env: Record<string, string>; a: GatehouseProcess; b: GatehouseProcess; adminToken: string }>;

const tag = () => randomBytes(4).toString('hex');
/** Requests made right after each change, alternating between the processes. */
const RIGHT_AFTER = 20;

test.before(async (t) => {
  const db = await createTestDatabase('pg');
  const [portA, portB] = [await freePort(), await freePort()];
  const env = {
    DATABASE_URL: db.url,
    REDIS_URL: REDIS_TEST_URL,
    GATEHOUSE_REDIS_PREFIX: `gh-scopes-${tag()}:`,
    GATEHOUSE_ISSUER: `http://localhost:${portA}`,
    GATEHOUSE_API_SCOPES: 'read',
  };
  t.is((await runCli(['migrate'], env)).code, 0);
  const [a, b] = await Promise.all([spawnGatehouse({ ...env, PORT: String(portA) }), spawnGatehouse({ ...env, PORT: String(portB) })]);
  const token = await runCli(['admin-tokens', 'create', '--name', 'scopes', '--json'], env);
  t.is(token.code, 0, token.stderr);
  t.context = { db, env, a, b, adminToken: token.json().token };
});

test.after.always(async (t) => {
  await Promise.all([t.context.a?.stop(), t.context.b?.stop()]);
  await t.context.db?.drop();
});

async function scopesSupported(on: GatehouseProcess): Promise<string[]> {
  const res = await fetch(`${on.url}/.well-known/openid-configuration`);
  return ((await res.json()) as { scopes_supported: string[] }).scopes_supported;
}

async function token(on: GatehouseProcess, client: { id: string; secret: string }, scope: string) {
  const res = await fetch(`${on.url}/token`, {
    method: 'POST',
    headers: { authorization: basicAuth(client.id, client.secret), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function admin(on: GatehouseProcess, adminToken: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${on.url}/admin/api${path}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, text };
}

test.serial('a scope created with the CLI is served at once by both processes: discovery lists it and a client holding it gets tokens from each', async (t) => {
  const { env, a, b, adminToken } = t.context;
  const name = `invoices-${tag()}:read`;
  // Both processes have just read the list, so only a message can tell them of the new scope.
  t.false((await scopesSupported(a)).includes(name));
  t.false((await scopesSupported(b)).includes(name));
  const created = await runCli(['scopes', 'create', '--name', name, '--description', 'Read your invoices', '--json'], env);
  t.is(created.code, 0, created.stderr);
  t.true((await scopesSupported(a)).includes(name), 'a');
  t.true((await scopesSupported(b)).includes(name), 'b');

  const client = await admin(a, adminToken, 'POST', '/clients', { client_name: 'Billing', grant_types: ['client_credentials'], scope: name });
  t.is(client.status, 201, client.text);
  const billing = { id: client.body.client_id, secret: client.body.client_secret };
  for (let i = 0; i < RIGHT_AFTER; i++) {
    const on = i % 2 ? b : a;
    const res = await token(on, billing, name);
    t.is(res.status, 200, `request ${i} to ${on.url}: ${JSON.stringify(res.body)}`);
    t.is(res.body.scope, name);
  }
});

test.serial('a scope created through one process\'s admin API can be given to a client through the other right away', async (t) => {
  const { a, b, adminToken } = t.context;
  const name = `ledger-${tag()}`;
  t.is((await admin(a, adminToken, 'POST', '/scopes', { name, description: 'Read the ledger' })).status, 201);
  const created = await admin(b, adminToken, 'POST', '/clients', { client_name: 'Ledger robot', grant_types: ['client_credentials'], scope: name });
  t.is(created.status, 201, created.text);
  const robot = { id: created.body.client_id, secret: created.body.client_secret };
  for (let i = 0; i < RIGHT_AFTER; i++) {
    const res = await token(i % 2 ? a : b, robot, name);
    t.is(res.status, 200, `request ${i}: ${JSON.stringify(res.body)}`);
  }
});

test.serial('a scope deleted through one process is gone from the other\'s discovery and can no longer be given to a client there', async (t) => {
  const { a, b, adminToken } = t.context;
  const name = `short-lived-${tag()}`;
  t.is((await admin(b, adminToken, 'POST', '/scopes', { name, description: 'Briefly' })).status, 201);
  t.true((await scopesSupported(a)).includes(name), 'a heard of it');
  t.is((await admin(b, adminToken, 'DELETE', `/scopes/${name}`)).status, 204);
  for (let i = 0; i < RIGHT_AFTER; i++) {
    const on = i % 2 ? b : a;
    t.false((await scopesSupported(on)).includes(name), `request ${i} to ${on.url}`);
  }
  const refused = await admin(a, adminToken, 'POST', '/clients', { client_name: 'Too late', grant_types: ['client_credentials'], scope: name });
  t.is(refused.status, 400, refused.text);
  t.regex(refused.body.error_description, new RegExp(`unknown scope ${name}`));
});
