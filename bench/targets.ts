/**
 * The two servers under test, behind one interface: Gatehouse (spawned as `npm start` runs it,
 * compiled: `node dist/src/server.js`, over a fresh database) and the bare oidc-provider (bench/bare-provider.ts).
 * Each knows its paths, its clients, how its sign-in pages are filled in, and how to obtain the
 * tokens the workloads present.
 */
import { randomBytes } from 'node:crypto';
import { createDatabase, dropRedisPrefix, PASSWORD, prepareGatehouse, REDIRECT_URI, REDIS_URL, seedGrowth, type BenchDatabase, type GatehouseFixture, type GrowthSize } from './gatehouse-setup.ts';
import { freePort, sleep, spawnServer, totalRss, type ServerProcess } from './processes.ts';
import type { SignInTarget } from './load.ts';
import { basicAuth } from '../test/support/http.ts';
import { signIn } from './user-agent.ts';

export interface Target {
  label: string;
  kind: 'gatehouse' | 'bare';
  server: ServerProcess;
  paths: { token: string; introspect: string; userinfo: string; discovery: string; authorize: string };
  cc: { clientId: string; clientSecret: string };
  signIns: SignInTarget;
  mainUser: { username: string; password: string };
  userdata?: { sub: string; apiKey: string };
  /** Notes for the report (seeding time, database size …). */
  notes: string[];
  /** RSS of the server process(es) once ready and settled, before any workload request. */
  idleRssBytes: number;
  idleProcesses: number;
  introspectToken?: string;
  userToken?: string;
  stop(): Promise<void>;
}

const form = { 'content-type': 'application/x-www-form-urlencoded' };

/** How long a freshly started server is left alone before its idle RSS is read. */
const SETTLE_MS = 2000;

export async function idleRss(server: ServerProcess): Promise<{ bytes: number; processes: number }> {
  await sleep(SETTLE_MS);
  const pids = server.pids();
  return { bytes: totalRss(pids), processes: pids.length };
}

/** A fresh client-credentials access token. */
export async function clientCredentialsToken(t: Target): Promise<string> {
  const res = await fetch(new URL(t.paths.token, t.server.url), {
    method: 'POST',
    headers: { authorization: basicAuth(t.cc.clientId, t.cc.clientSecret), ...form },
    body: 'grant_type=client_credentials&scope=read+write',
  });
  const body = (await res.json()) as { access_token?: string };
  if (res.status !== 200 || !body.access_token) throw new Error(`${t.label}: client credentials failed: ${res.status} ${JSON.stringify(body)}`);
  return body.access_token;
}

export async function introspect(t: Target, token: string): Promise<{ status: number; active: boolean }> {
  const res = await fetch(new URL(t.paths.introspect, t.server.url), {
    method: 'POST',
    headers: { authorization: basicAuth(t.cc.clientId, t.cc.clientSecret), ...form },
    body: new URLSearchParams({ token }),
  });
  const body = (await res.json()) as { active?: boolean };
  return { status: res.status, active: body.active === true };
}

export async function userinfo(t: Target, token: string): Promise<{ status: number; sub?: string }> {
  const res = await fetch(new URL(t.paths.userinfo, t.server.url), { headers: { authorization: `Bearer ${token}` } });
  const text = await res.text();
  let sub: string | undefined;
  try {
    sub = (JSON.parse(text) as { sub?: string }).sub;
  } catch {
    // not JSON
  }
  return { status: res.status, sub };
}

/** A token to introspect that is still active (the bare provider's memory store is an LRU of 1000 entries). */
export async function ensureIntrospectToken(t: Target): Promise<string> {
  if (t.introspectToken && (await introspect(t, t.introspectToken)).active) return t.introspectToken;
  t.introspectToken = await clientCredentialsToken(t);
  return t.introspectToken;
}

/** A user's access token that /userinfo accepts, by signing the main user in through the pages. */
export async function ensureUserToken(t: Target): Promise<string> {
  if (t.userToken && (await userinfo(t, t.userToken)).status === 200) return t.userToken;
  const outcome = await signIn(t.server.url, t.signIns.forms, t.signIns.client, t.mainUser.username, t.mainUser.password);
  t.userToken = outcome.accessToken;
  return t.userToken;
}

export async function startBare(label = 'bare'): Promise<Target> {
  const port = await freePort();
  const cc = { clientId: 'bench-cc', clientSecret: randomBytes(32).toString('base64url') };
  const web = { clientId: 'bench-web', clientSecret: randomBytes(32).toString('base64url') };
  const server = await spawnServer({
    name: label,
    script: 'bench/bare-provider.ts',
    port,
    env: {
      BARE_ISSUER: `http://127.0.0.1:${port}`,
      BARE_CC_ID: cc.clientId,
      BARE_CC_SECRET: cc.clientSecret,
      BARE_WEB_ID: web.clientId,
      BARE_WEB_SECRET: web.clientSecret,
      BARE_REDIRECT_URI: REDIRECT_URI,
      NODE_ENV: 'production',
    },
    readyPath: '/.well-known/openid-configuration',
  });
  const idle = await idleRss(server);
  let n = 0;
  return {
    label,
    kind: 'bare',
    server,
    paths: { token: '/token', introspect: '/token/introspection', userinfo: '/me', discovery: '/.well-known/openid-configuration', authorize: '/auth' },
    cc,
    signIns: {
      issuer: server.url,
      forms: {
        authorizePath: '/auth',
        tokenPath: '/token',
        // devInteractions: one form per page, posting to /interaction/:uid with a hidden prompt.
        login: { action: /\/interaction\/[^/]+$/, fields: (username, password) => ({ login: username, password }) },
        consent: { action: /\/interaction\/[^/]+$/, fields: {} },
      },
      client: { ...web, redirectUri: REDIRECT_URI, scope: 'openid profile email' },
      nextUser: () => ({ username: `user-${n++}`, password: 'anything' }),
    },
    mainUser: { username: 'bench-alice', password: 'anything' },
    notes: ['single process, in-memory adapter (LRU of 1000 entries), devInteractions (any login, no password check)'],
    idleRssBytes: idle.bytes,
    idleProcesses: idle.processes,
    stop: () => server.stop(),
  };
}

export interface GatehouseOptions {
  label: string;
  database: 'sqlite' | 'pg';
  workers: number;
  redis: boolean;
  signInUsers: number;
  growth?: GrowthSize;
  nodeArgs?: string[];
  /** Registers cleanup (database drop, Redis keys) to run however the bench ends. */
  onCleanup(fn: () => Promise<unknown>): void;
}

export async function startGatehouseTarget(opts: GatehouseOptions): Promise<Target> {
  const db: BenchDatabase = await createDatabase(opts.database);
  opts.onCleanup(() => db.drop());
  const port = await freePort();
  const redisPrefix = `gh-bench-${randomBytes(6).toString('hex')}:`;
  if (opts.redis) opts.onCleanup(() => dropRedisPrefix(redisPrefix));
  const env: Record<string, string> = {
    ...db.env,
    PORT: String(port),
    GATEHOUSE_ISSUER: `http://127.0.0.1:${port}`,
    GATEHOUSE_WORKERS: String(opts.workers),
    REDIS_URL: opts.redis ? REDIS_URL : '',
    GATEHOUSE_REDIS_PREFIX: redisPrefix,
    NODE_ENV: 'production',
  };
  const notes: string[] = [];
  const fixture: GatehouseFixture = await prepareGatehouse(env, opts.signInUsers);
  if (opts.growth) {
    if (!db.sqliteFile) throw new Error('growth seeding is for the SQLite database');
    const seeded = seedGrowth(db.sqliteFile, opts.growth, fixture.passwordHash);
    notes.push(
      `seeded ${opts.growth.tokens.toLocaleString('en')} tokens, ${opts.growth.users.toLocaleString('en')} users, ${opts.growth.clients.toLocaleString('en')} clients in ${seeded.seconds.toFixed(1)} s; database file ${(seeded.fileBytes / 2 ** 20).toFixed(0)} MiB`,
    );
  }
  const server = await spawnServer({
    name: opts.label,
    script: 'src/server.ts',
    port,
    env,
    readyPath: '/readyz',
    workers: opts.workers,
    ...(opts.nodeArgs ? { nodeArgs: opts.nodeArgs } : {}),
  });
  const idle = await idleRss(server);
  let n = 0;
  const target: Target = {
    label: opts.label,
    kind: 'gatehouse',
    server,
    paths: { token: '/token', introspect: '/introspect', userinfo: '/userinfo', discovery: '/.well-known/openid-configuration', authorize: '/authorize' },
    cc: fixture.cc,
    signIns: {
      issuer: server.url,
      forms: {
        authorizePath: '/authorize',
        tokenPath: '/token',
        login: { action: /\/login$/, fields: (username, password) => ({ username, password }) },
        consent: { action: /\/consent$/, fields: { decision: 'allow' } },
      },
      client: { ...fixture.web, redirectUri: REDIRECT_URI, scope: 'openid profile email userdata' },
      nextUser: () => ({ username: `${fixture.signInPrefix}${n++ % fixture.signInUsers}`, password: PASSWORD }),
    },
    mainUser: { username: fixture.user.username, password: fixture.user.password },
    userdata: { sub: fixture.user.id, apiKey: fixture.apiKey },
    notes,
    idleRssBytes: idle.bytes,
    idleProcesses: idle.processes,
    stop: () => server.stop(),
  };
  // The main user's first sign-in: its grant lets the web app's API key reach /userdata/<sub>.
  await ensureUserToken(target);
  const res = await fetch(new URL(`/userdata/${fixture.user.id}`, server.url), {
    method: 'PUT',
    headers: { 'x-api-key': fixture.apiKey, 'content-type': 'application/json' },
    body: JSON.stringify({ theme: 'dark', language: 'en', notifications: { email: true, sms: false }, recent: ['a', 'b', 'c'] }),
  });
  const text = await res.text();
  if (res.status !== 200 && res.status !== 201) throw new Error(`${opts.label}: PUT /userdata failed: ${res.status} ${text}`);
  return target;
}
