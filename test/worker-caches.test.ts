import { randomBytes } from 'node:crypto';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { CREDENTIAL_THROTTLE } from '../src/accounts/throttle.ts';
import { basicAuth } from './support/http.ts';
import { runCli } from './support/cli.ts';
import { call, type Answer } from './support/faults.ts';
import { createTestDatabase, freePort, REDIS_TEST_URL, type DatabaseKind, type TestDatabase } from './support/gatehouse.ts';
import { spawnGatehouse, type GatehouseProcess } from './support/processes.ts';

/**
 * Every process caches clients (half a second), signing keys (reloaded every
 * GATEHOUSE_KEYS_RELOAD_SECONDS). A change must reach all of them at once, by message: the next
 * request after the operator's change, whichever process takes it, sees it. Failure counters are
 * never cached: each attempt is counted in the shared database before it is checked.
 *
 * Requests go on connections of their own, so node:cluster hands them to the workers in turn,
 * and the request log (one line per request, with the worker's pid) shows that every worker
 * answered. The key poll is set to an hour, so only a message can explain a new key.
 */

interface Deployment {
  name: string;
  env: Record<string, string>;
  /** The URLs that take requests: one per host; the workers of a host share its URL. */
  urls: string[];
  processes: GatehouseProcess[];
  adminToken: string;
  database: TestDatabase;
}

const test = anyTest as TestFn<{ cluster: Deployment; hostsWithRedis: Deployment; hostsOverPostgres: Deployment }>;

async function deploy(name: string, kind: DatabaseKind, { hosts, workers, redis }: { hosts: number; workers: number; redis: boolean }): Promise<Deployment> {
  const database = await createTestDatabase(kind);
  const ports = await Promise.all(Array.from({ length: hosts }, () => freePort()));
  const env: Record<string, string> = {
    DATABASE_URL: database.url,
    GATEHOUSE_ISSUER: `http://localhost:${ports[0]}`,
    GATEHOUSE_KEYS_RELOAD_SECONDS: '3600',
    // Each request says where it comes from, so the address throttle never steps in.
    GATEHOUSE_TRUST_PROXY: 'true',
    GATEHOUSE_LOG_LEVEL: 'info',
    GATEHOUSE_WORKERS: String(workers),
    ...(redis ? { REDIS_URL: REDIS_TEST_URL, GATEHOUSE_REDIS_PREFIX: `gh-test-${randomBytes(4).toString('hex')}:` } : {}),
  };
  const migrated = await runCli(['migrate'], env);
  if (migrated.code !== 0) throw new Error(migrated.stderr);
  const processes = await Promise.all(ports.map((port) => spawnGatehouse({ ...env, PORT: String(port) })));
  // /readyz answers once one worker listens; the primary announces when all of them do.
  for (const p of processes) {
    while (workers > 1 && !p.output().includes(`${workers} workers)`)) await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const token = await runCli(['admin-tokens', 'create', '--name', 'ops', '--json'], env);
  return { name, env, urls: processes.map((p) => p.url), processes, adminToken: token.json().token, database };
}

test.before(async (t) => {
  // One after the other: seven processes starting at once on two shared cores can take longer
  // than a process is given to become ready.
  // Kept as they start, so that the after hook stops them even if a later one fails to.
  const started: Partial<typeof t.context> = {};
  t.context = started as typeof t.context;
  started.cluster = await deploy('two workers over SQLite', 'sqlite', { hosts: 1, workers: 2, redis: false });
  started.hostsWithRedis = await deploy('two hosts over PostgreSQL and Redis', 'pg', { hosts: 2, workers: 1, redis: true });
  started.hostsOverPostgres = await deploy('two hosts over PostgreSQL alone', 'pg', { hosts: 2, workers: 1, redis: false });
});

test.after.always(async (t) => {
  await Promise.all(
    Object.values(t.context ?? {}).map(async (d: Deployment | undefined) => {
      if (!d) return;
      await Promise.all(d.processes.map((p) => p.stop()));
      await d.database.drop();
    }),
  );
});

interface Client {
  id: string;
  secret: string;
}


/** A distinct made-up address per request, so no address is ever locked for the failures below. */
let addresses = 0;
const nextAddress = () => {
  const n = ++addresses;
  return `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
};

function tokenRequest(url: string, client: Client, secret = client.secret, from = nextAddress()): Promise<Answer> {
  return call(url, 'POST', '/token', {
    headers: { authorization: basicAuth(client.id, secret), 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': from },
    body: 'grant_type=client_credentials',
  });
}

const adminCall = (d: Deployment, method: string, path: string, body?: unknown) =>
  call(d.urls[0]!, method, `/admin/api${path}`, {
    headers: { authorization: `Bearer ${d.adminToken}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });

async function createClient(d: Deployment): Promise<Client> {
  const created = await adminCall(d, 'POST', '/clients', { client_name: 'Service', grant_types: ['client_credentials'], scope: 'read' });
  if (created.status !== 201) throw new Error(created.text);
  return { id: created.json.client_id, secret: created.json.client_secret };
}

/**
 * Runs `change` while every process keeps reading the client (one request at a time, spread
 * over them), so each holds a fresh copy in its cache when the change lands: without a message
 * some would still serve that copy for up to half a second. Stops at the first request that the
 * change refused (`refused`), so it adds at most one wrong secret to the client's count.
 */
async function whileEveryProcessServes<T>(d: Deployment, client: Client, change: () => Promise<T>, request = (url: string) => tokenRequest(url, client)): Promise<T> {
  let done = false;
  const warm = (async () => {
    for (let i = 0; !done; i++) {
      const answer = await request(d.urls[i % d.urls.length]!);
      if (answer.status !== 200) return;
    }
  })();
  // Every process has it cached before the change starts.
  for (const url of d.urls) for (let i = 0; i < 4; i++) await request(url);
  try {
    return await change();
  } finally {
    done = true;
    await warm;
  }
}

/** Request i goes to host i mod hosts (on a host of workers, to the next worker). */
function rightAway(d: Deployment, count: number, send: (url: string, i: number) => Promise<Answer>): Promise<Answer[]> {
  return Promise.all(Array.from({ length: count }, (_, i) => send(d.urls[i % d.urls.length]!, i)));
}

/**
 * The pids that logged the `count` requests to `path` sent since each process's output was
 * `since` long. Log lines are written asynchronously: they are waited for (a few milliseconds).
 */
async function pidsThatAnswered(d: Deployment, since: number[], path: string, count: number): Promise<Set<number>> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const pids: number[] = [];
    d.processes.forEach((p, i) => {
      for (const line of p.output().slice(since[i]).split('\n')) {
        if (!line.startsWith('{')) continue;
        const entry = JSON.parse(line);
        if (entry.msg === 'request' && entry.path === path) pids.push(entry.pid);
      }
    });
    if (pids.length >= count || Date.now() > deadline) return new Set(pids);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const outputLengths = (d: Deployment) => d.processes.map((p) => p.output().length);
const expectedPids = (d: Deployment) => (d.processes.length > 1 ? d.processes.length : Number(d.env.GATEHOUSE_WORKERS));

/**
 * Each try with the old secret comes from an address of its own, so no (client, address) counter
 * backs off and every try is judged on the secret itself.
 */
const OLD_SECRET_TRIES = 15;

async function oldSecretRefusedEverywhere(t: ExecutionContext, d: Deployment, client: Client, newSecret: string) {
  const since = outputLengths(d);
  // Sent at once, the first with the old secret, every one after the answer to the change.
  const answers = await rightAway(d, 100, (url, i) => tokenRequest(url, client, i < OLD_SECRET_TRIES ? client.secret : newSecret));
  const old = answers.slice(0, OLD_SECRET_TRIES);
  const fresh = answers.slice(OLD_SECRET_TRIES);
  t.deepEqual(
    old.map((a) => [a.status, a.json?.error]),
    old.map(() => [401, 'invalid_client']),
    'the old secret is refused by every process',
  );
  t.deepEqual(
    fresh.map((a) => a.status),
    fresh.map(() => 200),
    `the new secret works on every process: ${JSON.stringify(fresh.find((a) => a.status !== 200)?.json)}`,
  );
  t.is((await pidsThatAnswered(d, since, '/token', answers.length)).size, expectedPids(d), 'every process answered some of them');
}

async function disabledClientRefusedEverywhere(t: ExecutionContext, d: Deployment, client: Client) {
  const since = outputLengths(d);
  const answers = await rightAway(d, 100, (url) => tokenRequest(url, client));
  t.deepEqual(
    answers.map((a) => [a.status, a.json?.error]),
    answers.map(() => [401, 'invalid_client']),
  );
  t.is((await pidsThatAnswered(d, since, '/token', answers.length)).size, expectedPids(d));
}

async function rotateSecretInAdminApi(t: ExecutionContext, d: Deployment) {
  const client = await createClient(d);
  const rotated = await whileEveryProcessServes(d, client, () => adminCall(d, 'POST', `/clients/${client.id}/rotate-secret`));
  t.is(rotated.status, 200, rotated.text);
  await oldSecretRefusedEverywhere(t, d, client, rotated.json.client_secret);
}

async function rotateSecretWithCli(t: ExecutionContext, d: Deployment) {
  const client = await createClient(d);
  const rotated = await whileEveryProcessServes(d, client, () => runCli(['clients', 'rotate-secret', client.id, '--json'], d.env));
  t.is(rotated.code, 0, rotated.stderr);
  await oldSecretRefusedEverywhere(t, d, client, rotated.json().client_secret);
}

async function disableInAdminApi(t: ExecutionContext, d: Deployment) {
  const client = await createClient(d);
  const disabled = await whileEveryProcessServes(d, client, () => adminCall(d, 'PATCH', `/clients/${client.id}`, { disabled: true }));
  t.is(disabled.status, 200, disabled.text);
  await disabledClientRefusedEverywhere(t, d, client);
}

async function disableWithCli(t: ExecutionContext, d: Deployment) {
  const client = await createClient(d);
  const disabled = await whileEveryProcessServes(d, client, () => runCli(['clients', 'update', client.id, '--disable', '--json'], d.env));
  t.is(disabled.code, 0, disabled.stderr);
  await disabledClientRefusedEverywhere(t, d, client);
}

/**
 * Wrong secrets are counted per (client, address) in the shared database before any secret is
 * checked: a burst sent to one process uses up the address's tries for every process, and the
 * right secret from that address is refused everywhere at once (no process remembers an older
 * answer), while the client itself keeps working from its own address on every process.
 */
async function refusalReachesEveryProcess(t: ExecutionContext, d: Deployment) {
  const client = await createClient(d);
  const service = nextAddress();
  const attacker = nextAddress();
  const fromService = (url: string) => tokenRequest(url, client, client.secret, service);
  const guesses = await whileEveryProcessServes(d, client, () => Promise.all(Array.from({ length: 20 }, () => tokenRequest(d.urls[0]!, client, 'a wrong guess', attacker))), fromService);
  t.true(guesses.every((a) => a.status === 401 || a.status === 429));
  t.true(guesses.filter((a) => a.status === 401).length <= CREDENTIAL_THROTTLE.lockClientAddressPairAfter, 'no more secrets checked than the lock allows');
  const since = outputLengths(d);
  const answers = await rightAway(d, 100, (url) => tokenRequest(url, client, client.secret, attacker));
  t.deepEqual(
    answers.map((a) => [a.status, a.json?.error]),
    answers.map(() => [429, 'invalid_client']),
    'the right secret from the guessing address is refused everywhere',
  );
  t.is((await pidsThatAnswered(d, since, '/token', answers.length)).size, expectedPids(d));
  const own = await rightAway(d, 20, fromService);
  t.deepEqual(
    own.map((a) => a.status),
    own.map(() => 200),
    'the client is not locked out: its own address gets tokens from every process',
  );
}

async function kidsServed(d: Deployment, requests: number): Promise<{ kids: string[][]; pids: number }> {
  const since = outputLengths(d);
  const answers = await rightAway(d, requests, (url) => call(url, 'GET', '/jwks'));
  const kids = answers.map((a) => (a.json.keys as Array<{ kid: string }>).map((k) => k.kid).sort());
  return { kids, pids: (await pidsThatAnswered(d, since, '/jwks', requests)).size };
}

async function keyRotationServedEverywhere(t: ExecutionContext, d: Deployment) {
  const before = await kidsServed(d, 10);
  const rotated = await runCli(['keys', 'rotate', '--json'], d.env);
  t.is(rotated.code, 0, rotated.stderr);
  const all = (rotated.json() as Array<{ kid: string; status: string }>).map((k) => k.kid).sort();
  t.notDeepEqual(before.kids[0], all);
  const after = await kidsServed(d, 20);
  t.deepEqual(after.kids, after.kids.map(() => all), 'every process serves the new keys beside the old ones');
  t.is(after.pids, expectedPids(d));

  const retiring = (rotated.json() as Array<{ kid: string; status: string }>).find((k) => k.status === 'rotated')!.kid;
  t.is((await runCli(['keys', 'retire', retiring], d.env)).code, 0);
  const retired = await kidsServed(d, 20);
  t.deepEqual(retired.kids, retired.kids.map(() => all.filter((kid) => kid !== retiring)), 'no process serves the retired key');
}

for (const deployment of ['cluster', 'hostsWithRedis', 'hostsOverPostgres'] as const) {
  const on = (t: ExecutionContext<any>) => t.context[deployment] as Deployment;
  const where = { cluster: 'two workers over SQLite', hostsWithRedis: 'two hosts over PostgreSQL and Redis', hostsOverPostgres: 'two hosts over PostgreSQL without Redis' }[deployment];
  test.serial(`${where}: an operator rotates a secret in the admin API and no process takes the old one after the answer`, (t) => rotateSecretInAdminApi(t, on(t)));
  test.serial(`${where}: an operator rotates a secret with the CLI and no process takes the old one once the CLI is done`, (t) => rotateSecretWithCli(t, on(t)));
  test.serial(`${where}: an operator disables a client in the admin API and no process gives it a token after the answer`, (t) => disableInAdminApi(t, on(t)));
  test.serial(`${where}: an operator disables a client with the CLI and no process gives it a token once the CLI is done`, (t) => disableWithCli(t, on(t)));
  test.serial(`${where}: a key rotation and a retirement with the CLI are served by every process at once`, (t) => keyRotationServedEverywhere(t, on(t)));
  test.serial(`${where}: 20 wrong secrets at once from one address are refused for that address on every process at once, never for the client`, (t) => refusalReachesEveryProcess(t, on(t)));
}
