import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { testClock } from './support/clock.ts';
import anyTest, { type TestFn } from 'ava';
import type { Knex } from 'knex';
import { errors, type Adapter, type AdapterPayload } from 'oidc-provider';
import { KnexAdapter } from '../adapters/knex.ts';
import { storedId } from '../adapters/payload-row.ts';
import { sweepExpiredPayloads } from '../src/oidc/artifacts.ts';
import { RedisAdapter } from '../adapters/redis.ts';
import { SqliteAdapter, SqliteStatements } from '../adapters/sqlite.ts';
import { loadConfig } from '../src/config.ts';
import { migrateToLatest, openDatabase } from '../src/db.ts';
import { connectRedis } from '../src/stores/redis.ts';
import { createTestDatabase, REDIS_TEST_URL, type DatabaseKind } from './support/gatehouse.ts';
import { waitFor } from './support/wait.ts';

/**
 * The oidc-provider adapter contract, written once and run against every store Gatehouse can
 * put artifacts in: Knex over SQLite, Knex over PostgreSQL, and Redis. A store is described by
 * a factory (see knexStore, redisStore); another store is one more factory and one more
 * `adapterContract` call.
 */

const test = anyTest as TestFn;

/** A store under test, as one Gatehouse process sees it. */
interface ContractStore {
  adapter(model: string): Adapter;
  /** A second, independent connection to the same store: what another Gatehouse process would hold. */
  connectAgain(): Promise<{ adapter(model: string): Adapter; close(): Promise<void> }>;
  /** Whether the store still physically holds the artifact, expired or not (bypasses the adapter). */
  holds(model: string, id: string): Promise<boolean>;
  /** Everything the store holds, as one string (bypasses the adapter): what a copy of it gives away. */
  dump(): Promise<string>;
  /**
   * For stores that do not expire artifacts by themselves: removes expired ones and says how
   * many. Stores with native TTL (Redis) leave this out.
   */
  sweepExpired?(): Promise<number>;
  close(): Promise<void>;
}

type StoreFactory = () => Promise<ContractStore>;

const clock = testClock();
const uniqueId = (prefix = 'id') => `${prefix}-${randomBytes(9).toString('base64url')}`;
const now = () => Math.floor(Date.now() / 1000);

function accessToken(grantId: string, extra: Partial<AdapterPayload> = {}): AdapterPayload {
  return {
    iat: now(),
    exp: now() + 600,
    accountId: 'alice',
    clientId: 'client-1',
    grantId,
    kind: 'AccessToken',
    scope: 'openid profile',
    ...extra,
  };
}

/** What find(id) answers for a payload stored under id: oidc-provider's payload, whose jti is the id. */
const found = (id: string, payload: AdapterPayload): AdapterPayload => ({ ...payload, jti: id });

function isInvalidGrant(err: unknown): boolean {
  return err instanceof errors.InvalidGrant || (err as { error?: string })?.error === 'invalid_grant';
}

/** Registers the whole adapter contract for one store. `label` prefixes every test title. */
function adapterContract(label: string, factory: StoreFactory): void {
  let store: ContractStore;
  test.before(async () => {
    store = await factory();
  });
  test.after.always(async () => {
    await store?.close();
  });

  test(`${label}: what I upsert is what I find`, async (t) => {
    const at = store.adapter('AccessToken');
    const id = uniqueId();
    const payload = accessToken(uniqueId('grant'), { extra: { tenant: 'eu', nested: { list: [1, 2] } } });
    await at.upsert(id, { ...payload, jti: id }, 600);
    t.deepEqual(await at.find(id), found(id, payload));
  });

  test(`${label}: the store keeps no id, user code or session cookie a client or browser presents`, async (t) => {
    const [token, session, device, interaction] = [uniqueId('token'), uniqueId('session'), uniqueId('device'), uniqueId('interaction')];
    const userCode = randomBytes(4).toString('hex').toUpperCase();
    await store.adapter('RefreshToken').upsert(token, { ...accessToken('g'), kind: 'RefreshToken', jti: token }, 600);
    await store.adapter('Session').upsert(session, { iat: now(), exp: now() + 600, uid: uniqueId('uid'), kind: 'Session', jti: session }, 600);
    await store.adapter('DeviceCode').upsert(device, { iat: now(), exp: now() + 600, userCode, kind: 'DeviceCode', jti: device }, 600);
    await store.adapter('Interaction').upsert(interaction, { iat: now(), exp: now() + 600, kind: 'Interaction', jti: interaction, session: { uid: 'u', accountId: 'alice', cookie: session } }, 600);
    const everything = await store.dump();
    for (const secret of [token, session, device, userCode, interaction]) t.false(everything.includes(secret), `${secret} is in the store`);
    // Each is still found by what its holder presents.
    t.is((await store.adapter('RefreshToken').find(token))?.jti, token);
    t.is((await store.adapter('Session').find(session))?.jti, session);
    t.is((await store.adapter('DeviceCode').findByUserCode(userCode))?.userCode, userCode);
    t.is((await store.adapter('Interaction').find(interaction))?.jti, interaction);
  });

  test(`${label}: a device code found by its user code comes back with its id, so saving it again updates the row the device polls`, async (t) => {
    const device = uniqueId('device');
    const userCode = randomBytes(4).toString('hex').toUpperCase();
    const codes = store.adapter('DeviceCode');
    await codes.upsert(device, { iat: now(), exp: now() + 600, userCode, kind: 'DeviceCode', jti: device, clientId: 'tv' }, 600);
    const typed = await codes.findByUserCode(userCode);
    t.is(typed?.jti, device);
    await codes.upsert(typed!.jti!, { ...typed!, accountId: 'alice' }, 600);
    t.is((await codes.find(device))?.accountId, 'alice', 'the device sees the person who signed in');
    t.is((await codes.findByUserCode('WRONGCODE'))?.jti, undefined);
  });

  test(`${label}: upserting the same id again replaces the payload`, async (t) => {
    const at = store.adapter('AccessToken');
    const [id, grantA, grantB] = [uniqueId(), uniqueId('grant'), uniqueId('grant')];
    await at.upsert(id, accessToken(grantA, { scope: 'openid' }), 600);
    const replacement = accessToken(grantB, { scope: 'openid email' });
    await at.upsert(id, replacement, 600);
    t.deepEqual(await at.find(id), found(id, replacement));
    // The lookups follow the replacement: its new grant owns it. (oidc-provider never moves an
    // artifact to another grant, so whether the old grant still reaches it is left open: the
    // Redis adapter's grant index keeps stale members.)
    await at.revokeByGrantId(grantB);
    t.is(await at.find(id), undefined);
  });

  test(`${label}: an id that was never stored is not found`, async (t) => {
    t.is(await store.adapter('AccessToken').find(uniqueId('never')), undefined);
    t.is(await store.adapter('Session').findByUid(uniqueId('never')), undefined);
    t.is(await store.adapter('DeviceCode').findByUserCode('NEVR-NEVR'), undefined);
  });

  test(`${label}: a session is found by its uid`, async (t) => {
    const sessions = store.adapter('Session');
    const id = uniqueId('session');
    const uid = uniqueId('uid');
    const payload: AdapterPayload = { iat: now(), exp: now() + 600, uid, kind: 'Session', accountId: 'alice', loginTs: now() };
    await sessions.upsert(id, payload, 600);
    t.deepEqual(await sessions.findByUid(uid), payload);
    t.is(await sessions.findByUid(uniqueId('uid')), undefined);
    // The uid belongs to the Session model only.
    t.is(await store.adapter('Interaction').findByUid(uid), undefined);
  });

  test(`${label}: a device code is found by its user code`, async (t) => {
    const codes = store.adapter('DeviceCode');
    const id = uniqueId('device');
    const userCode = randomBytes(4).toString('hex').toUpperCase();
    const payload: AdapterPayload = { iat: now(), exp: now() + 600, userCode, kind: 'DeviceCode', clientId: 'tv', params: { scope: 'openid' } };
    await codes.upsert(id, payload, 600);
    t.deepEqual(await codes.findByUserCode(userCode), payload);
    t.is(await codes.findByUserCode(`${userCode}X`), undefined);
  });

  test(`${label}: a destroyed artifact is gone and others stay`, async (t) => {
    const at = store.adapter('AccessToken');
    const [gone, kept] = [uniqueId(), uniqueId()];
    await at.upsert(gone, accessToken('g'), 600);
    await at.upsert(kept, accessToken('g'), 600);
    await at.destroy(gone);
    t.is(await at.find(gone), undefined);
    t.false(await store.holds('AccessToken', gone));
    t.truthy(await at.find(kept));
    // Destroying what is not there is not an error.
    await t.notThrowsAsync(at.destroy(uniqueId('never')));
  });

  test(`${label}: revoking a grant removes every artifact of that grant in that model, and nothing else`, async (t) => {
    const grant = uniqueId('grant');
    const otherGrant = uniqueId('grant');
    const at = store.adapter('AccessToken');
    const rt = store.adapter('RefreshToken');
    const ids = { a: uniqueId(), b: uniqueId(), c: uniqueId(), other: uniqueId(), refresh: uniqueId() };
    await at.upsert(ids.a, accessToken(grant), 600);
    await at.upsert(ids.b, accessToken(grant), 600);
    await at.upsert(ids.c, accessToken(grant), 0);
    await at.upsert(ids.other, accessToken(otherGrant), 600);
    await rt.upsert(ids.refresh, { ...accessToken(grant), kind: 'RefreshToken' }, 600);

    await at.revokeByGrantId(grant);

    for (const id of [ids.a, ids.b, ids.c]) {
      t.is(await at.find(id), undefined, `access token ${id} of the revoked grant survived`);
      t.false(await store.holds('AccessToken', id));
    }
    t.truthy(await at.find(ids.other), 'an access token of another grant was removed');
    // oidc-provider calls revokeByGrantId once per model when it revokes a grant. Whether a
    // store also drops other models' artifacts on the first call is its own business (the
    // reference Redis adapter does); after the call for that model they must be gone.
    await rt.revokeByGrantId(grant);
    t.is(await rt.find(ids.refresh), undefined);
    t.truthy(await at.find(ids.other));
  });

  test(`${label}: an artifact is not found once it has expired, and is found for the whole of its lifetime`, async (t) => {
    // Expiry has whole-second resolution, as oidc-provider's own exp checks do: an artifact
    // stored for N seconds lives until the start of second floor(now) + N, so at least N - 1 s.
    const at = store.adapter('AccessToken');
    const [shortLived, fiveSeconds, longLived, forever] = [uniqueId('short'), uniqueId('five'), uniqueId('long'), uniqueId('forever')];
    const stored = Date.now();
    await at.upsert(fiveSeconds, accessToken('g'), 5);
    await at.upsert(shortLived, accessToken('g'), 1);
    await at.upsert(longLived, accessToken('g'), 600);
    await at.upsert(forever, accessToken('g'), 0);
    // The 1 s artifact is gone within 1.1 s: waited for, so the 5 s one is checked as soon as it is.
    await waitFor(async () => (await at.find(shortLived)) === undefined, 1100);
    t.is(await at.find(shortLived), undefined);
    const found = await at.find(fiveSeconds);
    const elapsed = Date.now() - stored;
    // A find that ended less than 4 s after the store fell inside the 5 s lifetime.
    t.true(elapsed < 4000, `the 5 s artifact was looked up ${elapsed} ms after it was stored, too late to tell`);
    t.truthy(found, `an artifact stored for 5 s was gone after ${elapsed} ms`);
    t.truthy(await at.find(longLived));
    t.truthy(await at.find(forever), 'an artifact stored without expiry (expiresIn 0) expired');
  });

  test(`${label}: the same id in two models are two different artifacts`, async (t) => {
    const id = uniqueId('shared');
    const at = store.adapter('AccessToken');
    const code = store.adapter('AuthorizationCode');
    const token = accessToken('g1');
    const authCode: AdapterPayload = { iat: now(), exp: now() + 60, kind: 'AuthorizationCode', grantId: 'g1', redirectUri: 'https://app.example.com/cb' };
    await at.upsert(id, token, 600);
    await code.upsert(id, authCode, 60);
    t.deepEqual(await at.find(id), found(id, token));
    t.deepEqual(await code.find(id), found(id, authCode));
    await code.consume(id);
    t.is((await at.find(id))?.consumed, undefined, 'consuming the code consumed the access token with the same id');
    await code.destroy(id);
    t.deepEqual(await at.find(id), found(id, token));
    t.is(await code.find(id), undefined);
  });

  test(`${label}: a consumed artifact is found with the time it was consumed`, async (t) => {
    const codes = store.adapter('AuthorizationCode');
    const id = uniqueId('code');
    await codes.upsert(id, { iat: now(), exp: now() + 60, kind: 'AuthorizationCode', grantId: 'g' }, 60);
    t.is((await codes.find(id))?.consumed, undefined);
    const before = now();
    await codes.consume(id);
    const found = await codes.find(id);
    t.is(typeof found?.consumed, 'number');
    t.true(found!.consumed >= before && found!.consumed <= now(), `consumed is ${found!.consumed}`);
    t.is(found?.grantId, 'g');
  });

  test(`${label}: consuming an authorization code twice fails the second time with invalid_grant`, async (t) => {
    const codes = store.adapter('AuthorizationCode');
    const id = uniqueId('code');
    await codes.upsert(id, { iat: now(), exp: now() + 60, kind: 'AuthorizationCode', grantId: 'g' }, 60);
    await codes.consume(id);
    const err = await t.throwsAsync(codes.consume(id));
    t.true(isInvalidGrant(err), `expected invalid_grant, got ${String(err)}`);
  });

  test(`${label}: fifty requests racing to redeem one code, from two processes: exactly one wins`, async (t) => {
    const id = uniqueId('code');
    await store.adapter('AuthorizationCode').upsert(id, { iat: now(), exp: now() + 60, kind: 'AuthorizationCode', grantId: 'g' }, 60);
    const other = await store.connectAgain();
    try {
      const sides = [store.adapter('AuthorizationCode'), other.adapter('AuthorizationCode')];
      const results = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => sides[i % 2]!.consume(id)));
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      t.is(won.length, 1, `${won.length} consume() calls succeeded`);
      t.is(lost.length, 49);
      for (const r of lost) t.true(isInvalidGrant(r.reason), `a loser failed with ${String(r.reason)}, not invalid_grant`);
    } finally {
      await other.close();
    }
  });

  test(`${label}: fifty requests racing to redeem one code in one process: exactly one wins`, async (t) => {
    const codes = store.adapter('AuthorizationCode');
    const id = uniqueId('code');
    await codes.upsert(id, { iat: now(), exp: now() + 60, kind: 'AuthorizationCode', grantId: 'g' }, 60);
    const results = await Promise.allSettled(Array.from({ length: 50 }, () => codes.consume(id)));
    t.is(results.filter((r) => r.status === 'fulfilled').length, 1);
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    t.is(lost.length, 49);
    t.true(lost.every((r) => isInvalidGrant(r.reason)));
  });

  test(`${label}: another process sees what this one wrote`, async (t) => {
    const other = await store.connectAgain();
    try {
      const id = uniqueId();
      const payload = accessToken('g');
      await store.adapter('AccessToken').upsert(id, payload, 600);
      t.deepEqual(await other.adapter('AccessToken').find(id), found(id, payload));
      await other.adapter('AccessToken').destroy(id);
      t.is(await store.adapter('AccessToken').find(id), undefined);
    } finally {
      await other.close();
    }
  });

  // Serial (ava runs serial tests before the concurrent ones), so this sweep cannot remove the
  // expired rows the find-after-expiry test relies on the adapter itself to hide.
  test.serial(`${label}: expired artifacts are cleaned away while live ones stay`, async (t) => {
    const at = store.adapter('AccessToken');
    const [expiring, live, forever] = [uniqueId('expiring'), uniqueId('live'), uniqueId('forever')];
    await at.upsert(expiring, accessToken('g'), 1);
    await at.upsert(live, accessToken('g'), 600);
    await at.upsert(forever, accessToken('g'), 0);
    t.true(await store.holds('AccessToken', expiring));
    // The database stores expiry as a time Gatehouse compares with its own clock, which the test
    // moves; Redis expires keys on its own clock, which only waiting moves.
    if (store.sweepExpired) clock.advance(1100);
    else await sleep(1100);
    if (store.sweepExpired) {
      t.true((await store.sweepExpired()) >= 1);
    }
    t.false(await store.holds('AccessToken', expiring), 'the expired artifact is still stored');
    t.true(await store.holds('AccessToken', live));
    t.true(await store.holds('AccessToken', forever));
  });
}

/** Knex over a fresh SQLite file or PostgreSQL database, migrated as Gatehouse migrates it. */
function knexStore(kind: DatabaseKind): StoreFactory {
  return async () => {
    const database = await createTestDatabase(kind);
    const { database: dbConfig } = loadConfig({ DATABASE_URL: database.url });
    const open = () => openDatabase(dbConfig);
    const db = open();
    await migrateToLatest(db);
    const extra: Knex[] = [];
    return {
      adapter: (model) => new KnexAdapter(db, model),
      async connectAgain() {
        const other = open();
        extra.push(other);
        return { adapter: (model: string) => new KnexAdapter(other, model), close: () => other.destroy() };
      },
      async holds(model, id) {
        return Boolean(await db('oidc_payloads').where({ model, id: storedId(model, id) }).first('id'));
      },
      dump: async () => JSON.stringify(await db('oidc_payloads').select('*')),
      sweepExpired: () => sweepExpiredPayloads(db),
      async close() {
        await Promise.allSettled(extra.map((e) => e.destroy()));
        await db.destroy();
        await database.drop();
      },
    };
  };
}

/** The embedded default's hot path: better-sqlite3 statements beside Knex, on the same file. */
function sqliteStatementsStore(): StoreFactory {
  return async () => {
    const database = await createTestDatabase('sqlite');
    const filename = database.url.slice('sqlite:'.length);
    const db = openDatabase({ client: 'sqlite', filename, synchronous: 'normal' });
    await migrateToLatest(db);
    const statements = new SqliteStatements(filename, 'normal');
    const others: SqliteStatements[] = [];
    return {
      adapter: (model) => new SqliteAdapter(statements, model),
      async connectAgain() {
        const other = new SqliteStatements(filename, 'normal');
        others.push(other);
        return { adapter: (model: string) => new SqliteAdapter(other, model), close: async () => other.close() };
      },
      async holds(model, id) {
        return Boolean(await db('oidc_payloads').first('id').where({ model, id: storedId(model, id) }));
      },
      dump: async () => JSON.stringify(await db('oidc_payloads').select('*')),
      sweepExpired: () => sweepExpiredPayloads(db),
      async close() {
        for (const other of others) other.close();
        statements.close();
        await db.destroy();
        await database.drop();
      },
    };
  };
}

/** Redis under a key prefix of its own; artifacts expire by Redis TTL, so there is no sweep. */
function redisStore(): StoreFactory {
  return async () => {
    const prefix = `gh-contract-${randomBytes(6).toString('hex')}:`;
    const redis = await connectRedis(REDIS_TEST_URL);
    const others: Awaited<ReturnType<typeof connectRedis>>[] = [];
    return {
      adapter: (model) => new RedisAdapter(redis, model, prefix),
      async connectAgain() {
        const other = await connectRedis(REDIS_TEST_URL);
        others.push(other);
        return { adapter: (model: string) => new RedisAdapter(other, model, prefix), close: async () => other.disconnect() };
      },
      async holds(model, id) {
        return (await redis.exists(`${prefix}${model}:${storedId(model, id)}`)) === 1;
      },
      async dump() {
        const keys = await redis.keys(`${prefix}*`);
        const values = await Promise.all(keys.map(async (key) => ((await redis.type(key)) === 'hash' ? JSON.stringify(await redis.hgetall(key)) : (await redis.type(key)) === 'set' ? (await redis.smembers(key)).join(' ') : await redis.get(key))));
        return JSON.stringify({ keys, values });
      },
      async close() {
        for (const other of others) other.disconnect();
        const keys = await redis.keys(`${prefix}*`);
        if (keys.length) await redis.del(...keys);
        redis.disconnect();
      },
    };
  };
}

adapterContract('Knex/SQLite', knexStore('sqlite'));
adapterContract('SQLite prepared statements', sqliteStatementsStore());
adapterContract('Knex/PostgreSQL', knexStore('pg'));
adapterContract('Redis', redisStore());

// ---------------------------------------------------------------------------------------------
// Knex only: the sweep and the indexes behind every lookup the contract makes.

async function knexFixture(kind: DatabaseKind) {
  const database = await createTestDatabase(kind);
  const db = openDatabase(loadConfig({ DATABASE_URL: database.url }).database);
  await migrateToLatest(db);
  return {
    db,
    close: async () => {
      await db.destroy();
      await database.drop();
    },
  };
}

/** Runs `work` and returns the SQL (with bindings) it sent to the database. */
async function capturedQueries(db: Knex, work: () => Promise<unknown>): Promise<{ sql: string; bindings: readonly unknown[] }[]> {
  const seen: { sql: string; bindings: readonly unknown[] }[] = [];
  const listener = (q: { sql: string; bindings?: readonly unknown[] }) => seen.push({ sql: q.sql, bindings: q.bindings ?? [] });
  db.on('query', listener);
  try {
    await work();
  } finally {
    db.off('query', listener);
  }
  return seen;
}

// Serial: it moves the clock, which the concurrent expiry tests read.
test.serial('Knex/SQLite: the sweep deletes exactly the expired rows', async (t) => {
  const { db, close } = await knexFixture('sqlite');
  try {
    const at = new KnexAdapter(db, 'AccessToken');
    const session = new KnexAdapter(db, 'Session');
    await at.upsert('expiring-1', accessToken('g'), 1);
    await session.upsert('expiring-2', { uid: 'u', kind: 'Session' }, 1);
    await at.upsert('live', accessToken('g'), 600);
    await at.upsert('forever', accessToken('g'), 0);
    clock.advance(1100);
    t.is(await sweepExpiredPayloads(db), 2);
    const left = (await db('oidc_payloads').select('model', 'id')).map((r) => `${r.model}/${r.id}`).sort();
    t.deepEqual(left, ['AccessToken/forever', 'AccessToken/live'].map((k) => `AccessToken/${storedId('AccessToken', k.split('/')[1]!)}`).sort());
    t.is(await sweepExpiredPayloads(db), 0);
  } finally {
    await close();
  }
});

test('Knex/SQLite: a sweep larger than one batch removes every expired row', async (t) => {
  const { db, close } = await knexFixture('sqlite');
  try {
    const past = now() - 10;
    const rows = Array.from({ length: 25 }, (_, i) => ({ model: 'AccessToken', id: `old-${i}`, payload: '{}', expires_at: past }));
    await db('oidc_payloads').insert(rows);
    await db('oidc_payloads').insert({ model: 'AccessToken', id: 'young', payload: '{}', expires_at: now() + 600 });
    t.is(await sweepExpiredPayloads(db, 10), 25);
    t.deepEqual((await db('oidc_payloads').select('id')).map((r) => r.id), ['young']);
  } finally {
    await close();
  }
});

test('Knex/SQLite: looking up by grant, by uid and by user code uses an index, not a table scan', async (t) => {
  const { db, close } = await knexFixture('sqlite');
  try {
    // Some rows, and fresh statistics, so the planner has something to choose between.
    const rows = Array.from({ length: 200 }, (_, i) => ({
      model: i % 2 ? 'AccessToken' : 'Session',
      id: `id-${i}`,
      payload: '{}',
      grant_id: `grant-${i % 20}`,
      uid: `uid-${i}`,
      user_code: `code-${i}`,
    }));
    await db.batchInsert('oidc_payloads', rows, 50);
    await db.raw('analyze');

    const lookups: [string, () => Promise<unknown>][] = [
      ['revokeByGrantId', () => new KnexAdapter(db, 'AccessToken').revokeByGrantId('grant-3')],
      ['findByUid', () => new KnexAdapter(db, 'Session').findByUid('uid-4')],
      ['findByUserCode', () => new KnexAdapter(db, 'DeviceCode').findByUserCode('code-5')],
    ];
    for (const [name, lookup] of lookups) {
      const queries = await capturedQueries(db, lookup);
      t.is(queries.length, 1, `${name} sent ${queries.length} queries`);
      const { sql, bindings } = queries[0]!;
      const plan: { detail: string }[] = await db.raw(`explain query plan ${sql}`, bindings as Knex.RawBinding[]);
      const details = plan.map((p) => p.detail);
      t.true(details.some((d) => /USING (COVERING )?INDEX/.test(d)), `${name}: ${details.join(' | ')}`);
      t.false(details.some((d) => /^SCAN oidc_payloads\b/.test(d)), `${name} scans the table: ${details.join(' | ')}`);
    }
  } finally {
    await close();
  }
});

test('Knex/PostgreSQL: the sweep deletes exactly the expired rows', async (t) => {
  const { db, close } = await knexFixture('pg');
  try {
    const past = now() - 10;
    await db('oidc_payloads').insert(Array.from({ length: 12 }, (_, i) => ({ model: 'Grant', id: `old-${i}`, payload: '{}', expires_at: past })));
    await db('oidc_payloads').insert({ model: 'Grant', id: 'young', payload: '{}', expires_at: now() + 600 });
    await db('oidc_payloads').insert({ model: 'Grant', id: 'forever', payload: '{}', expires_at: null });
    t.is(await sweepExpiredPayloads(db, 5), 12);
    t.deepEqual((await db('oidc_payloads').select('id').orderBy('id')).map((r) => r.id), ['forever', 'young']);
  } finally {
    await close();
  }
});

test('Knex/PostgreSQL: there are indexes on grant_id, (model, uid) and (model, user_code)', async (t) => {
  const { db, close } = await knexFixture('pg');
  try {
    const { rows } = await db.raw<{ rows: { indexdef: string }[] }>(
      "select indexdef from pg_indexes where schemaname = current_schema() and tablename = 'oidc_payloads'",
    );
    // The column list of each index, e.g. "model, uid" (partial indexes end with a WHERE clause).
    const columnLists = rows.map((r) => /USING btree \(([^)]*)\)/.exec(r.indexdef)?.[1]?.replace(/\s+/g, ' ').trim());
    t.true(columnLists.includes('grant_id'), columnLists.join(' | '));
    t.true(columnLists.includes('model, uid'), columnLists.join(' | '));
    t.true(columnLists.includes('model, user_code'), columnLists.join(' | '));
    t.true(columnLists.includes('model, id'), 'the primary key (model, id) serves find()');
  } finally {
    await close();
  }
});
