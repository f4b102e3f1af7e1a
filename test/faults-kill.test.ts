import { randomBytes } from 'node:crypto';
import test, { type ExecutionContext } from 'ava';
import Database from 'better-sqlite3';
import knex from 'knex';
import { loadConfig } from '../src/config.ts';
import { createTestDatabase, freePort, REDIS_TEST_URL, type DatabaseKind } from './support/gatehouse.ts';
import { spawnGatehouse, type GatehouseProcess } from './support/processes.ts';
import { browserSignIn, etagVersion, inParallel, mergePatch, oauthPost, redeemCode, sameJson, seed, userdataCall, waitFor } from './support/faults.ts';

/**
 * kill -9 in the middle of a load of token issuance, sign-ins and userdata writes, then a
 * restart: every write Gatehouse acknowledged is there, and the store is not corrupted.
 *
 * "Acknowledged" means the client read a complete success answer: a 200 with an access token,
 * a code exchange that returned a refresh token, a userdata write answered with its new
 * version. Requests cut off by the kill were not acknowledged and may or may not have landed;
 * for a userdata write in flight, the document may be either the last acknowledged one or what
 * that write would have made, nothing else.
 */

interface Doc {
  sub: string;
  version: number;
  document: Record<string, unknown>;
  /** The write in flight (sent, not yet answered) and what it makes if it lands. */
  pending?: { version: number; document: Record<string, unknown> };
}

const TOKEN_WORKERS = 4;
const SIGN_IN_WORKERS = 2;

async function killUnderLoad(t: ExecutionContext, kind: DatabaseKind) {
  const database = await createTestDatabase(kind);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const env: Record<string, string> = {
    PORT: String(port),
    DATABASE_URL: database.url,
    GATEHOUSE_ISSUER: base,
    ...(kind === 'pg' ? { REDIS_URL: REDIS_TEST_URL, GATEHOUSE_REDIS_PREFIX: `gh-test-kill-${randomBytes(4).toString('hex')}:` } : {}),
  };
  const { database: store } = loadConfig(env);
  if (store.client === 'sqlite') t.is(store.synchronous, 'normal', 'the default, GATEHOUSE_SQLITE_SYNCHRONOUS=normal');
  const seeded = await seed(env, 3);
  const { client, apiKey } = seeded;
  let proc: GatehouseProcess | undefined = await spawnGatehouse(env);
  try {
    // Each person allows the app their userdata once (the grant the API key needs).
    for (const user of seeded.users) t.truthy(await browserSignIn(base, client.id, user.username, 'openid userdata'), `${user.username} signed in`);

    const acked = { tokens: [] as string[], signIns: [] as Array<{ refresh: string; access: string }>, writes: 0 };
    const docs: Doc[] = seeded.users.map((u) => ({ sub: u.sub, version: 0, document: {} }));
    const unexpected: string[] = [];
    let killed = false;
    let inFlight = 0;
    // Before the kill every request must succeed; after it, failures are the point.
    const note = (what: string) => {
      if (!killed) unexpected.push(what);
    };
    const tracked = async <T>(work: () => Promise<T>): Promise<T> => {
      inFlight++;
      try {
        return await work();
      } finally {
        inFlight--;
      }
    };

    const tokenWorker = async () => {
      while (!killed) {
        try {
          const res = await tracked(() => oauthPost(base, '/token', client, { grant_type: 'client_credentials' }));
          if (res.status === 200 && typeof res.json?.access_token === 'string') acked.tokens.push(res.json.access_token);
          else note(`token: ${res.status} ${res.text.slice(0, 200)}`);
        } catch (err) {
          return note(`token: ${(err as Error).message}`);
        }
      }
    };

    const signInWorker = async (username: string) => {
      while (!killed) {
        try {
          const got = await tracked(() => browserSignIn(base, client.id, username, 'openid userdata'));
          if (!got) {
            note(`sign-in of ${username} did not reach the app`);
            continue;
          }
          const res = await tracked(() => redeemCode(base, client, got.code, got.verifier));
          if (res.status === 200 && typeof res.json?.refresh_token === 'string') acked.signIns.push({ refresh: res.json.refresh_token, access: res.json.access_token });
          else note(`code exchange: ${res.status} ${res.text.slice(0, 200)}`);
        } catch (err) {
          return note(`sign-in: ${(err as Error).message}`);
        }
      }
    };

    const userdataWorker = async (doc: Doc) => {
      for (let n = 1; !killed; n++) {
        const put = n % 2 === 1;
        const body: Record<string, unknown> = put
          ? { n, by: 'put', blob: randomBytes(48).toString('hex'), kept: doc.document.kept ?? n }
          : { n, by: 'patch', [`k${n % 4}`]: n, blob: null, nested: { n } };
        const expected = put ? body : mergePatch(doc.document, body);
        doc.pending = { version: doc.version + 1, document: expected };
        try {
          const res = await tracked(() => userdataCall(base, apiKey, doc.sub, put ? 'PUT' : 'PATCH', body, doc.version));
          if (res.status === 200 && etagVersion(res) === doc.pending.version && sameJson(res.json, expected)) {
            doc.version = doc.pending.version;
            doc.document = expected;
            doc.pending = undefined;
            acked.writes++;
          } else {
            doc.pending = undefined;
            return note(`userdata ${put ? 'PUT' : 'PATCH'}: ${res.status} ETag ${res.headers.etag} ${res.text.slice(0, 200)}`);
          }
        } catch (err) {
          return note(`userdata: ${(err as Error).message}`);
        }
      }
    };

    const workers = [
      ...Array.from({ length: TOKEN_WORKERS }, () => tokenWorker()),
      ...seeded.users.slice(0, SIGN_IN_WORKERS).map((u) => signInWorker(u.username)),
      ...docs.map((d) => userdataWorker(d)),
    ];
    const loaded = await waitFor(() => unexpected.length > 0 || (acked.tokens.length >= 60 && acked.signIns.length >= 4 && acked.writes >= 45), 60_000);
    t.deepEqual(unexpected, [], 'every request before the kill succeeded');
    t.true(loaded, `load reached: ${acked.tokens.length} tokens, ${acked.signIns.length} sign-ins, ${acked.writes} userdata writes`);
    // Somewhere inside the next requests, not right after an answer.
    await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 200)));
    const inFlightAtKill = inFlight;
    killed = true;
    await proc.stop('SIGKILL');
    t.is(proc.child.signalCode, 'SIGKILL');
    proc = undefined;
    await Promise.all(workers);
    t.deepEqual(unexpected, [], 'every request before the kill succeeded');

    // Nothing is corrupted, before Gatehouse touches the store again.
    if (kind === 'sqlite') {
      const file = new Database(database.url.slice('sqlite:'.length));
      try {
        t.is(file.pragma('integrity_check', { simple: true }), 'ok', 'SQLite integrity_check');
        t.true((file.prepare('select count(*) as n from oidc_payloads').get() as { n: number }).n > 0);
      } finally {
        file.close();
      }
    } else {
      const pg = knex({ client: 'pg', connection: database.url, pool: { min: 0, max: 1 } });
      try {
        const rows: Array<{ payload: string }> = await pg('oidc_payloads').select('payload');
        t.true(rows.length > 0);
        t.notThrows(() => rows.forEach((r) => void JSON.parse(r.payload)), 'every payload row reads back as JSON');
        const userdata: Array<{ document: string }> = await pg('userdata').select('document');
        t.is(userdata.length, docs.length);
        t.notThrows(() => userdata.forEach((r) => void JSON.parse(r.document)));
        t.is(Number((await pg('users').count({ n: '*' }))[0]!.n), seeded.users.length);
        t.is(Number((await pg('clients').count({ n: '*' }))[0]!.n), 1);
      } finally {
        await pg.destroy();
      }
    }

    proc = await spawnGatehouse(env);
    const lost: string[] = [];
    let checked = 0;

    await inParallel([...acked.tokens, ...acked.signIns.map((s) => s.access)], 6, async (token) => {
      const res = await oauthPost(base, '/introspect', client, { token });
      checked++;
      if (res.status !== 200 || res.json?.active !== true) lost.push(`access token …${token.slice(-6)}: ${res.status} ${res.text.slice(0, 100)}`);
    });
    await inParallel(acked.signIns, 4, async ({ refresh }) => {
      const res = await oauthPost(base, '/token', client, { grant_type: 'refresh_token', refresh_token: refresh });
      checked++;
      if (res.status !== 200 || typeof res.json?.refresh_token !== 'string') lost.push(`refresh token …${refresh.slice(-6)}: ${res.status} ${res.text.slice(0, 100)}`);
    });
    let inFlightWritesLanded = 0;
    for (const doc of docs) {
      const res = await userdataCall(base, apiKey, doc.sub, 'GET');
      checked++;
      const version = etagVersion(res);
      if (res.status === 200 && version === doc.version && sameJson(res.json, doc.document)) continue;
      if (res.status === 200 && doc.pending && version === doc.pending.version && sameJson(res.json, doc.pending.document)) {
        inFlightWritesLanded++;
        continue;
      }
      lost.push(`userdata of ${doc.sub}: ${res.status} version ${version}, acknowledged ${doc.version}${doc.pending ? ` (+1 in flight)` : ''}: ${res.text.slice(0, 200)}`);
    }

    t.log(
      `${kind === 'pg' ? 'PostgreSQL + Redis' : 'SQLite (synchronous=normal)'}: killed with ${inFlightAtKill} requests in flight; ` +
        `acknowledged writes checked: ${checked} (${acked.tokens.length} client credentials tokens, ${acked.signIns.length} sign-ins (access + refresh token), ` +
        `${acked.writes} userdata writes over ${docs.length} documents); lost: ${lost.length}; userdata writes in flight that landed: ${inFlightWritesLanded}`,
    );
    t.deepEqual(lost, [], 'no acknowledged write is lost');
    t.true(inFlightAtKill > 0, 'the kill hit requests in flight');
    t.true(checked >= 60 + 4 * 3 + docs.length);
  } finally {
    await proc?.stop('SIGKILL');
    await database.drop();
  }
}

test.serial('kill -9 under load on SQLite: every acknowledged token, sign-in and userdata write survives, and the file is intact', (t) => killUnderLoad(t, 'sqlite'));

test.serial('kill -9 under load on PostgreSQL + Redis: every acknowledged token, sign-in and userdata write survives', (t) => killUnderLoad(t, 'pg'));
