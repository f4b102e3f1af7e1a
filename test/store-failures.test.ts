import Database from 'better-sqlite3';
import test from 'ava';
import { runCli } from './support/cli.ts';
import { createTestDatabase, freePort, POSTGRES_ADMIN_URL, startTestGatehouse } from './support/gatehouse.ts';
import { exitCode, spawnGatehouse } from './support/processes.ts';
import { startTcpProxy } from './support/tcp-proxy.ts';
import { basicAuth } from './support/http.ts';


async function eventually(check: () => Promise<boolean>, ms = 15_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return true;
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}

test('Gatehouse refuses to start when Redis is unreachable, saying so in one line', async (t) => {
  const db = await createTestDatabase('sqlite');
  const deadPort = await freePort();
  const proc = await spawnGatehouse({ PORT: String(await freePort()), DATABASE_URL: db.url, REDIS_URL: `redis://:s3cret@127.0.0.1:${deadPort}` }, { waitReady: false });
  t.not(await exitCode(proc), 0);
  const out = proc.output();
  t.regex(out, new RegExp(`gatehouse: could not start: Redis at redis://:\\*\\*\\*@127\\.0\\.0\\.1:${deadPort}/? is unreachable`));
  t.notRegex(out, /s3cret/);
  t.notRegex(out, /\n\s+at /, 'no stack trace');
  await db.drop();
});

test('Gatehouse refuses to start when PostgreSQL is unreachable, saying so in one line', async (t) => {
  const deadPort = await freePort();
  const proc = await spawnGatehouse({ PORT: String(await freePort()), DATABASE_URL: `postgres://gh:pw-secret@127.0.0.1:${deadPort}/nowhere` }, { waitReady: false });
  t.not(await exitCode(proc), 0);
  t.regex(proc.output(), /gatehouse: could not start: the database at postgres:\/\/gh:\*\*\*@127\.0\.0\.1:\d+\/nowhere is unreachable/);
  t.notRegex(proc.output(), /pw-secret/);
});

test('when Redis goes away, readiness and requests answer 503, and service resumes by itself', async (t) => {
  const proxy = await startTcpProxy('127.0.0.1', 6379);
  const gh = await startTestGatehouse({ env: { REDIS_URL: `redis://127.0.0.1:${proxy.port}`, GATEHOUSE_REDIS_PREFIX: `gh-test-fail-${Date.now()}:` } });
  try {
    const created = (await runCli(['clients', 'create', '--json', '--name', 'svc', '--type', 'confidential', '--grant', 'client_credentials'], gh.env)).json();
    const token = () =>
      fetch(`${gh.url}/token`, { method: 'POST', headers: { authorization: basicAuth(created.client_id, created.client_secret) }, body: new URLSearchParams({ grant_type: 'client_credentials' }) });
    t.is((await token()).status, 200);

    await proxy.cut();
    const ready = await fetch(`${gh.url}/readyz`);
    t.is(ready.status, 503);
    t.deepEqual(await ready.json(), { status: 'unavailable', checks: { database: 'ok', redis: 'unreachable' } });
    const refused = await token();
    t.is(refused.status, 503);
    const body = (await refused.json()) as Record<string, string>;
    t.is(body.error, 'temporarily_unavailable');
    t.regex(body.error_description!, /redis is unreachable/);

    // A person's browser gets our error page, not JSON and not a redirect.
    const page = await fetch(`${gh.url}/authorize?client_id=${created.client_id}&response_type=code&scope=openid`, { headers: { accept: 'text/html' }, redirect: 'manual' });
    t.true([400, 503].includes(page.status), `status ${page.status}`);
    t.regex(page.headers.get('content-type') ?? '', /html/);

    await proxy.restore();
    t.true(await eventually(async () => (await fetch(`${gh.url}/readyz`)).status === 200), 'ready again without a restart');
    t.true(await eventually(async () => (await token()).status === 200), 'tokens again without a restart');
  } finally {
    await gh.close();
    await proxy.close();
  }
});

test('when PostgreSQL goes away, readiness and requests answer 503, and service resumes by itself', async (t) => {
  const pg = new URL(POSTGRES_ADMIN_URL);
  const proxy = await startTcpProxy(pg.hostname, Number(pg.port || 5432));
  const db = await createTestDatabase('pg');
  const viaProxy = new URL(db.url);
  viaProxy.port = String(proxy.port);
  const gh = await startTestGatehouse({ env: { DATABASE_URL: viaProxy.toString() } });
  try {
    const created = (await runCli(['clients', 'create', '--json', '--name', 'svc', '--type', 'confidential', '--grant', 'client_credentials'], gh.env)).json();
    const token = () =>
      fetch(`${gh.url}/token`, { method: 'POST', headers: { authorization: basicAuth(created.client_id, created.client_secret) }, body: new URLSearchParams({ grant_type: 'client_credentials' }) });
    t.is((await token()).status, 200);

    await proxy.cut();
    const ready = await fetch(`${gh.url}/readyz`);
    t.is(ready.status, 503);
    t.deepEqual(((await ready.json()) as { checks: unknown }).checks, { database: 'unreachable' });
    const refused = await token();
    t.is(refused.status, 503);
    t.is(((await refused.json()) as Record<string, string>).error, 'temporarily_unavailable');
    const logout = await fetch(`${gh.url}/logout`, { method: 'POST', headers: { authorization: 'Bearer whatever-token' } });
    t.is(logout.status, 503);

    await proxy.restore();
    t.true(await eventually(async () => (await fetch(`${gh.url}/readyz`)).status === 200), 'ready again without a restart');
    t.true(await eventually(async () => (await token()).status === 200), 'tokens again without a restart');
  } finally {
    await gh.close();
    await proxy.close();
    await db.drop();
  }
});

test('while another program holds the SQLite file locked past the busy timeout, tokens answer 503, then work again', async (t) => {
  const gh = await startTestGatehouse();
  t.teardown(() => gh.close());
  const { client, clientSecret } = await gh.services.admin.createClient({ label: 'test' }, { name: 'Busy', type: 'confidential', grantTypes: ['client_credentials'] });
  const token = () =>
    fetch(`${gh.url}/token`, {
      method: 'POST',
      headers: { authorization: basicAuth(client.clientId, clientSecret!), 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    });
  t.is((await token()).status, 200);

  // Another program (a long import, say) holds the write lock until the request has given up.
  const other = new Database(gh.config.database.client === 'sqlite' ? gh.config.database.filename : '');
  t.teardown(() => other.close());
  other.exec('begin immediate');
  const refused = await token();
  t.is(refused.status, 503);
  t.is(((await refused.json()) as Record<string, string>).error, 'temporarily_unavailable');
  t.truthy(refused.headers.get('retry-after'));
  other.exec('commit');
  t.is((await token()).status, 200);
});
