/**
 * The shared failure counters themselves, on both databases, with the clock injected: a burst of
 * reservations at once gets exactly as many as the limit allows (one statement checks and
 * reserves), backoffs and locks end when their time does, and the sweep removes what is over.
 * Serial: the sweep, on its moved clock, would remove the counters of the tests beside it.
 */
import anyTest, { type TestFn } from 'ava';
import type { Knex } from 'knex';
import { CounterBatches } from '../src/accounts/counter-batches.ts';
import { CredentialThrottle, LOGIN_THROTTLE, type Limit, type Reservation } from '../src/accounts/throttle.ts';
import { preparedQueries, type PreparedQuery } from '../src/stores/prepared.ts';
import { loadConfig } from '../src/config.ts';
import { migrateToLatest, openDatabase } from '../src/db.ts';
import { createTestDatabase, type DatabaseKind, type TestDatabase } from './support/gatehouse.ts';

const test = anyTest as TestFn<Record<DatabaseKind, { db: Knex; database: TestDatabase }>>;

test.before(async (t) => {
  const open = async (kind: DatabaseKind) => {
    const database = await createTestDatabase(kind);
    const db = openDatabase(loadConfig({ DATABASE_URL: database.url }).database);
    await migrateToLatest(db);
    return { db, database };
  };
  t.context = { sqlite: await open('sqlite'), pg: await open('pg') };
});

test.after.always(async (t) => {
  for (const { db, database } of Object.values(t.context ?? {})) {
    await db?.destroy();
    await database?.drop();
  }
});

/** A clock the test moves by hand. */
function clock(start = Date.now()) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

for (const kind of ['sqlite', 'pg'] as const) {
  test.serial(`${kind}: fifty reservations at once on a counter that locks after five get exactly five`, async (t) => {
    const throttle = new CredentialThrottle(t.context[kind].db);
    const limit: Limit = { subject: `test:burst-${kind}-${Date.now()}`, lockAfter: 5, onSuccess: 'clear' };
    const answers = await Promise.all(Array.from({ length: 50 }, () => throttle.reserve([limit])));
    const granted = answers.filter((a): a is Reservation => a.ok);
    t.is(granted.length, 5);
    // All five wrong: the counter locks, and nothing more is granted.
    await Promise.all(granted.map((r) => r.failed()));
    const after = await throttle.reserve([limit]);
    t.false(after.ok);
    t.true(!after.ok && after.locked && after.retryAfterSeconds > 800);
  });

  test.serial(`${kind}: right answers give their reservation back, so a service's parallel requests never trip its own limit`, async (t) => {
    const throttle = new CredentialThrottle(t.context[kind].db);
    const limit: Limit = { subject: `test:service-${kind}-${Date.now()}`, lockAfter: 5, onSuccess: 'refund' };
    for (let round = 0; round < 10; round++) {
      const answers = await Promise.all(Array.from({ length: 5 }, () => throttle.reserve([limit])));
      t.true(
        answers.every((a) => a.ok),
        `round ${round}`,
      );
      await Promise.all(answers.map((a) => (a.ok ? a.succeeded() : undefined)));
    }
  });

  test.serial(`${kind}: a refusing backoff ends when its time does, and grows with each failure`, async (t) => {
    const time = clock();
    const throttle = new CredentialThrottle(t.context[kind].db, LOGIN_THROTTLE, time.now);
    const limit: Limit = {
      subject: `test:backoff-${kind}-${Date.now()}`,
      lockAfter: 20,
      backoff: { after: 2, stepMs: 2000, maxMs: 60_000, mode: 'refuse' },
      onSuccess: 'clear',
    };
    for (let i = 0; i < 2; i++) await ((await throttle.reserve([limit])) as Reservation).failed();
    const waiting = await throttle.reserve([limit]);
    t.deepEqual(waiting, { ok: false, locked: false, retryAfterSeconds: 2 });
    time.advance(2001);
    await ((await throttle.reserve([limit])) as Reservation).failed();
    const longer = await throttle.reserve([limit]);
    t.deepEqual(longer, { ok: false, locked: false, retryAfterSeconds: 4 });
    time.advance(4001);
    const right = await throttle.reserve([limit]);
    t.true(right.ok);
    await (right as Reservation).succeeded();
    t.true((await throttle.reserve([limit])).ok, 'the right credential cleared the backoff');
  });

  test.serial(
    `${kind}: thirty attempts at once on one counter share one statement; the first ten asked get its room, and their release is one statement more`,
    async (t) => {
      const { db } = t.context[kind];
      const statements: string[] = [];
      const prepared = preparedQueries(db);
      const counted: PreparedQuery = (text, params) => {
        statements.push(text.trim().split(/\s+/)[0]!);
        return prepared(text, params);
      };
      const counters = new CounterBatches(counted, kind, Date.now, LOGIN_THROTTLE.windowMs);
      const subject = `test:batch-${kind}-${Date.now()}`;
      const answers = await Promise.all(Array.from({ length: 30 }, () => counters.reserve({ subject, lockAfter: 10 })));
      t.deepEqual(
        answers.map((failures) => failures !== undefined),
        Array.from({ length: 30 }, (_, i) => i < 10),
      );
      t.deepEqual(statements, ['insert']);
      const row = () => db('login_failures').where({ subject }).first('pending', 'failures');
      t.like(await row(), { pending: 10, failures: 0 });
      await Promise.all(Array.from({ length: 10 }, () => counters.release(subject, false)));
      t.deepEqual(statements, ['insert', 'update']);
      t.like(await row(), { pending: 0, failures: 0 });
    },
  );

  test.serial(`${kind}: two processes reserving one counter at once are granted no more than its room between them`, async (t) => {
    const { db } = t.context[kind];
    // Two throttles, as two processes: their statements batch apart and meet in the database.
    const first = new CredentialThrottle(db);
    const second = new CredentialThrottle(db);
    const limit: Limit = { subject: `test:processes-${kind}-${Date.now()}`, lockAfter: 7, onSuccess: 'clear' };
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? first : second).reserve([limit])));
    t.is(answers.filter((a) => a.ok).length, 7);
  });

  test.serial(`${kind}: the sweep removes counters once their window and lock are over, and only those`, async (t) => {
    const { db } = t.context[kind];
    const time = clock();
    const throttle = new CredentialThrottle(db, LOGIN_THROTTLE, time.now);
    const prefix = `test:sweep-${kind}-${Date.now()}`;
    const locked: Limit = { subject: `${prefix}-locked`, lockAfter: 1, onSuccess: 'clear' };
    const counted: Limit = { subject: `${prefix}-counted`, lockAfter: 10, onSuccess: 'clear' };
    await ((await throttle.reserve([locked])) as Reservation).failed();
    await ((await throttle.reserve([counted])) as Reservation).failed();
    const rows = () => db('login_failures').where('subject', 'like', `${prefix}%`).orderBy('subject').pluck('subject');
    time.advance(LOGIN_THROTTLE.windowMs - 1000);
    await throttle.sweepExpired();
    t.deepEqual(await rows(), [counted.subject, locked.subject], 'both still hold');
    time.advance(LOGIN_THROTTLE.lockMs);
    await throttle.sweepExpired();
    t.deepEqual(await rows(), [], 'both are over');
  });
}
