import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import Database from 'better-sqlite3';
import type { Knex } from 'knex';
import { loadCookieKeys } from '../src/settings/store.ts';
import { connectRedis } from '../src/stores/redis.ts';
import { operatorAgent } from './support/attacks.ts';
import { runCli } from './support/cli.ts';
import { REDIS_TEST_URL, type DatabaseKind, type TestGatehouse } from './support/gatehouse.ts';
import { basicAuth } from './support/http.ts';
import {
  authorizationRequest,
  callbackParams,
  createClient,
  createUser,
  REDIRECT_URI,
  redeem,
  relyingParty,
  signInAndAllow,
  startLoopbackGatehouse,
  type RegisteredClient,
} from './support/relying-party.ts';
import { UserAgent } from './support/user-agent.ts';
import { createApiKeyWithCli } from './support/userdata.ts';

/**
 * Test class (c), a copy of the database: someone walks away with gatehouse.sqlite3 (or a
 * PostgreSQL dump, or a Redis dump) of a Gatehouse people are signed in to. Every value in every
 * column of every table is tried as everything a client, browser or operator presents: refresh
 * token, access token, authorization code, session cookie (signed with the real cookie keys, the
 * strongest case, and with every value found in the copy), admin session cookie, admin token and
 * API key. None opens anything; the real ones, held by the people and apps, still do.
 */

const test = anyTest as TestFn;
const PASSWORD = 'copy-tests-correct-horse';

/** What the people, apps and operators of the scene hold (never in the database). */
interface Held {
  sub: string;
  publicApp: RegisteredClient;
  confidentialApp: RegisteredClient;
  refreshTokens: { public: string; confidential: string };
  accessToken: string;
  clientCredentialsToken: string;
  /** An authorization code issued and not redeemed yet, with its PKCE verifier. */
  code: { value: string; verifier: string };
  browser: UserAgent;
  operator: UserAgent;
  adminToken: string;
  apiKey: string;
  /** The cookie keys the server signs with: the strongest attacker has them too. */
  cookieKeys: string[];
}

/**
 * A person signs in to a public app (refresh token, and a second code left unredeemed) and to a
 * confidential one (SSO, refresh token); a service gets a client-credentials token; an operator
 * signs in to the admin pages and makes an admin token and an API key.
 */
async function playScene(gh: TestGatehouse): Promise<Held> {
  const [sub, publicApp, confidentialApp, service] = await Promise.all([
    createUser(gh, 'alice', PASSWORD, ['--admin']),
    createClient(gh, ['--name', 'Phone app', '--type', 'public', '--grant', 'authorization_code', '--grant', 'refresh_token', '--redirect-uri', REDIRECT_URI]),
    createClient(gh, [
      '--name',
      'Web app',
      '--type',
      'confidential',
      '--grant',
      'authorization_code',
      '--grant',
      'refresh_token',
      '--scope',
      'openid profile email offline_access userdata',
      '--redirect-uri',
      REDIRECT_URI,
    ]),
    createClient(gh, ['--name', 'Billing', '--type', 'confidential', '--grant', 'client_credentials']),
  ]);
  const browser = new UserAgent([REDIRECT_URI]);
  const phone = await relyingParty(gh, publicApp, 'none');
  const pendingPhone = await authorizationRequest(phone, { scope: 'openid offline_access', prompt: 'consent' });
  const phoneTokens = await redeem(phone, await signInAndAllow(browser, pendingPhone.url, 'alice', PASSWORD), pendingPhone);
  const web = await relyingParty(gh, confidentialApp, 'basic');
  const pendingWeb = await authorizationRequest(web, { scope: 'openid offline_access userdata', prompt: 'consent' });
  const webTokens = await redeem(web, await signInAndAllow(browser, pendingWeb.url, 'alice', PASSWORD), pendingWeb);
  // One more code for the phone, left for the scan to try to redeem.
  const pendingCode = await authorizationRequest(phone, { scope: 'openid' });
  const codeLanding = await browser.open(pendingCode.url);
  const code = callbackParams(codeLanding)?.get('code');
  const cc = await post(gh, '/token', { grant_type: 'client_credentials' }, { authorization: basicAuth(service.clientId, service.clientSecret!) });
  const { agent: operator } = await operatorAgent(gh, 'alice', PASSWORD);
  const adminToken = await runCli(['admin-tokens', 'create', '--name', 'ci', '--json'], gh.env);
  const apiKey = await createApiKeyWithCli(gh, confidentialApp.clientId, ['userdata:read']);
  if (!phoneTokens.refresh_token || !webTokens.refresh_token || !code || cc.status !== 200 || adminToken.code !== 0) {
    throw new Error(`the scene did not play: ${JSON.stringify({ code, cc: cc.status, admin: adminToken.stderr })}`);
  }
  return {
    sub,
    publicApp,
    confidentialApp,
    refreshTokens: { public: phoneTokens.refresh_token, confidential: webTokens.refresh_token },
    accessToken: webTokens.access_token,
    clientCredentialsToken: String(cc.body.access_token),
    code: { value: code, verifier: pendingCode.verifier! },
    browser,
    operator,
    adminToken: String(adminToken.json().token),
    apiKey: apiKey.key,
    cookieKeys: await loadCookieKeys(gh.services.settings, undefined),
  };
}

// ---- what a copy holds ----------------------------------------------------------------------

type Dump = Record<string, Array<Record<string, unknown>>>;

/** Every table of a SQLite file, as a copy made with the server running (VACUUM INTO) holds it. */
function copySqlite(gh: TestGatehouse): { dump: Dump; file: string } {
  const source = gh.config.database.client === 'sqlite' ? gh.config.database.filename : '';
  const file = path.join(path.dirname(source), 'stolen-copy.sqlite3');
  const live = new Database(source, { readonly: true });
  live.exec(`vacuum into '${file}'`);
  live.close();
  const copy = new Database(file, { readonly: true });
  const tables = copy.prepare("select name from sqlite_master where type = 'table'").all() as Array<{ name: string }>;
  const dump: Dump = {};
  for (const { name } of tables) dump[name] = copy.prepare(`select * from "${name}"`).all() as Array<Record<string, unknown>>;
  copy.close();
  return { dump, file };
}

/** Every table of the PostgreSQL schema, read by queries as pg_dump would. */
async function dumpPostgres(db: Knex): Promise<Dump> {
  const tables = await db.raw("select table_name from information_schema.tables where table_schema = current_schema() and table_type = 'BASE TABLE'");
  const dump: Dump = {};
  for (const { table_name: name } of tables.rows as Array<{ table_name: string }>) dump[name] = await db(name).select('*');
  return dump;
}

/** Every key under the deployment's prefix, with its value (strings, hashes, sets). */
async function dumpRedis(prefix: string): Promise<Dump> {
  const redis = await connectRedis(REDIS_TEST_URL);
  try {
    const rows: Array<Record<string, unknown>> = [];
    for (const key of await redis.keys(`${prefix}*`)) {
      const type = await redis.type(key);
      const value = type === 'hash' ? await redis.hgetall(key) : type === 'set' ? await redis.smembers(key) : type === 'string' ? await redis.get(key) : null;
      rows.push({ key, value });
    }
    return { redis: rows };
  } finally {
    redis.disconnect();
  }
}

/**
 * Every string a copy holds, whole and, where a string is JSON, every string inside it (a
 * payload's fields, a key set's members), and each part of a key-like string split on ':'.
 */
function stringsIn(dump: Dump): string[] {
  const found = new Set<string>();
  const visit = (value: unknown): void => {
    if (typeof value === 'string') {
      if (found.has(value)) return;
      found.add(value);
      for (const part of value.split(/[:\s]/)) if (part !== value) visit(part);
      if (/^[[{"]/.test(value)) {
        try {
          visit(JSON.parse(value));
        } catch {
          // not JSON: the string itself was tried
        }
      }
    } else if (Buffer.isBuffer(value)) visit(value.toString('utf8'));
    else if (Array.isArray(value)) for (const v of value) visit(v);
    else if (value && typeof value === 'object') for (const v of Object.values(value)) visit(v);
  };
  visit(dump);
  // Shorter values are names, dates and numbers: no id Gatehouse hands out is that short.
  return [...found].filter((s) => s.length >= 16 && s.length <= 4096);
}

// ---- what each value is tried as ------------------------------------------------------------

async function post(gh: TestGatehouse, route: string, form: Record<string, string>, headers: Record<string, string> = {}) {
  const res = await fetch(`${gh.url}${route}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form),
  });
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // not JSON
  }
  return { status: res.status, body };
}

/** How koa's signed cookies are signed (keygrip's default, HMAC-SHA1 in URL-safe base64). */
const cookieSignature = (key: string, name: string, value: string) =>
  createHmac('sha1', key).update(`${name}=${value}`).digest('base64').replace(/\//g, '_').replace(/\+/g, '-').replace(/=+$/, '');

/** A browser holding a session cookie `value` signed with `key`: the forgery the review made. */
function forgedBrowser(name: string, value: string, key: string): UserAgent {
  const agent = new UserAgent([REDIRECT_URI]);
  agent.setCookie(name, value);
  agent.setCookie(`${name}.sig`, cookieSignature(key, name, value));
  return agent;
}

/** The admin's clients page itself, not the sign-in page a browser without a session is sent to. */
const adminPageOpened = (page: { status: number; url: string }) => page.status === 200 && new URL(page.url).pathname === '/admin/clients';

/** What `value` opens, tried as everything that is presented to Gatehouse; [] when nothing. */
async function whatOpens(gh: TestGatehouse, held: Held, value: string): Promise<string[]> {
  const opened: string[] = [];
  const { publicApp, confidentialApp } = held;
  const asConfidential = { authorization: basicAuth(confidentialApp.clientId, confidentialApp.clientSecret!) };
  const key = held.cookieKeys[0]!;
  const checks: Array<[string, () => Promise<boolean>]> = [
    [
      'a public refresh token',
      async () => (await post(gh, '/token', { grant_type: 'refresh_token', refresh_token: value, client_id: publicApp.clientId })).status === 200,
    ],
    [
      'a confidential refresh token',
      async () => (await post(gh, '/token', { grant_type: 'refresh_token', refresh_token: value }, asConfidential)).status === 200,
    ],
    [
      'an authorization code',
      async () =>
        (
          await post(gh, '/token', {
            grant_type: 'authorization_code',
            code: value,
            redirect_uri: REDIRECT_URI,
            client_id: publicApp.clientId,
            code_verifier: held.code.verifier,
          })
        ).status === 200,
    ],
    ['an access token (introspection)', async () => (await post(gh, '/introspect', { token: value }, asConfidential)).body.active === true],
    ['an access token (userinfo)', async () => (await fetch(`${gh.url}/userinfo`, { headers: { authorization: `Bearer ${value}` } })).status === 200],
    [
      'a session cookie (prompt=none)',
      async () => {
        const pending = await authorizationRequest(await relyingParty(gh, publicApp, 'none'), { scope: 'openid', prompt: 'none' });
        return callbackParams(await forgedBrowser('_session', value, key).open(pending.url))?.has('code') === true;
      },
    ],
    ['an admin session cookie', async () => adminPageOpened(await forgedBrowser('gatehouse.admin', value, key).open(`${gh.url}/admin/clients`))],
    ['an admin token', async () => (await fetch(`${gh.url}/admin/api/clients`, { headers: { authorization: `Bearer ${value}` } })).status === 200],
    ['an API key', async () => (await fetch(`${gh.url}/userdata/${held.sub}`, { headers: { 'x-api-key': value } })).status === 200],
  ];
  for (const [what, check] of checks) if (await check()) opened.push(what);
  return opened;
}

/** Runs `work` over `items`, `n` at a time. */
async function inBatches<T>(items: T[], n: number, work: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += n) await Promise.all(items.slice(i, i + n).map(work));
}

/**
 * The scan: every string of the copy tried as everything (nothing opens), cookies signed with
 * every value of the copy compared with the real signature (none matches), then the real
 * credentials still work (the probes are sound, and nothing was locked by the scan).
 */
async function scanCopy(t: ExecutionContext, gh: TestGatehouse, held: Held, dump: Dump): Promise<void> {
  const candidates = stringsIn(dump);
  t.true(candidates.length > 20, `the copy holds only ${candidates.length} strings to try`);

  // What a copy must not hold at all: the cookie keys and the private signing keys.
  const jwks = await gh.services.keys.privateJwks();
  for (const jwk of jwks.keys)
    t.false(
      candidates.some((c) => c.includes(String((jwk as { d?: string }).d))),
      `the private key ${jwk.kid} is in the copy`,
    );
  for (const cookieKey of held.cookieKeys)
    t.false(
      candidates.some((c) => c.includes(cookieKey)),
      'a cookie key is in the copy',
    );
  const sessionId = held.browser.cookie('_session')!;
  const realSignature = held.browser.cookie('_session.sig');
  t.truthy(realSignature);
  t.false(
    candidates.some((c) => cookieSignature(c, '_session', sessionId) === realSignature),
    'a value in the copy signs session cookies as the server does',
  );

  // Positive controls that do not consume anything, before the scan (wrong admin tokens and API
  // keys count against this address, so the scan may end with it locked out of those).
  const pending = await authorizationRequest(await relyingParty(gh, held.publicApp, 'none'), { scope: 'openid', prompt: 'none' });
  t.true(callbackParams(await held.browser.open(pending.url))?.has('code'), 'the real session cookie opens prompt=none');
  t.true(adminPageOpened(await held.operator.open(`${gh.url}/admin/clients`)), 'the real admin cookie opens the admin');
  // The forgery itself is sound: the real ids, signed here with the real key, open both.
  const key = held.cookieKeys[0]!;
  const silent = await authorizationRequest(await relyingParty(gh, held.publicApp, 'none'), { scope: 'openid', prompt: 'none' });
  t.true(callbackParams(await forgedBrowser('_session', sessionId, key).open(silent.url))?.has('code'), 'a cookie signed here is not what the server signs');
  t.true(adminPageOpened(await forgedBrowser('gatehouse.admin', held.operator.cookie('gatehouse.admin')!, key).open(`${gh.url}/admin/clients`)));
  t.is((await fetch(`${gh.url}/admin/api/clients`, { headers: { authorization: `Bearer ${held.adminToken}` } })).status, 200);
  t.is((await fetch(`${gh.url}/userdata/${held.sub}`, { headers: { 'x-api-key': held.apiKey } })).status, 200);
  t.is((await fetch(`${gh.url}/userinfo`, { headers: { authorization: `Bearer ${held.accessToken}` } })).status, 200);
  const asConfidential = { authorization: basicAuth(held.confidentialApp.clientId, held.confidentialApp.clientSecret!) };
  t.true((await post(gh, '/introspect', { token: held.clientCredentialsToken }, asConfidential)).body.active === true);

  const opened: string[] = [];
  await inBatches(candidates, 4, async (candidate) => {
    for (const what of await whatOpens(gh, held, candidate)) opened.push(`${candidate.slice(0, 60)} worked as ${what}`);
  });
  t.deepEqual(opened, [], `${candidates.length} values of the copy tried`);
  t.log(`${candidates.length} values of the copy tried as 9 kinds of credential each; none opened anything`);

  // Consuming controls, after: the real ones redeem.
  t.is((await post(gh, '/token', { grant_type: 'refresh_token', refresh_token: held.refreshTokens.public, client_id: held.publicApp.clientId })).status, 200);
  t.is((await post(gh, '/token', { grant_type: 'refresh_token', refresh_token: held.refreshTokens.confidential }, asConfidential)).status, 200);
  const redeemed = await post(gh, '/token', {
    grant_type: 'authorization_code',
    code: held.code.value,
    redirect_uri: REDIRECT_URI,
    client_id: held.publicApp.clientId,
    code_verifier: held.code.verifier,
  });
  t.is(redeemed.status, 200, JSON.stringify(redeemed.body));
}

// ---- the stories -----------------------------------------------------------------------------

test.serial('a copy of gatehouse.sqlite3 taken while people are signed in opens nothing, and the files are Gatehouse’s alone', async (t) => {
  const gh = await startLoopbackGatehouse();
  try {
    const held = await playScene(gh);
    const { dump, file } = copySqlite(gh);
    await scanCopy(t, gh, held, dump);
    fs.rmSync(file);

    const database = gh.config.database.client === 'sqlite' ? gh.config.database.filename : '';
    const mode = (p: string) => (fs.statSync(p).mode & 0o777).toString(8);
    t.is(mode(path.dirname(database)), '700', 'the data directory');
    for (const f of [database, `${database}-wal`, `${database}-shm`, gh.config.secretKeyFile]) {
      if (fs.existsSync(f)) t.is(mode(f), '600', path.basename(f));
    }
    t.true(fs.existsSync(gh.config.secretKeyFile), 'the key file is beside the database, not in it');
  } finally {
    await gh.close();
  }
});

test.serial('a PostgreSQL dump and a Redis dump of a Gatehouse people are signed in to open nothing', async (t) => {
  const prefix = `gh-copy-${Date.now().toString(36)}:`;
  const kind: DatabaseKind = 'pg';
  const gh = await startLoopbackGatehouse({
    database: kind,
    env: { REDIS_URL: REDIS_TEST_URL, GATEHOUSE_REDIS_PREFIX: prefix, GATEHOUSE_SECRET_KEY: 'a-secret-key-kept-in-the-deployment-not-the-db' },
  });
  try {
    const held = await playScene(gh);
    const dump = { ...(await dumpPostgres(gh.services.db)), ...(await dumpRedis(prefix)) };
    t.true(dump.redis!.length > 0, 'Redis holds artifacts');
    await scanCopy(t, gh, held, dump);
  } finally {
    await gh.close();
    const redis = await connectRedis(REDIS_TEST_URL);
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  }
});
