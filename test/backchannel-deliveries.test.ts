import anyTest, { type TestFn } from 'ava';
import type { Knex } from 'knex';
import { loadConfig } from '../src/config.ts';
import { migrateToLatest, openDatabase } from '../src/db.ts';
import { BackchannelDeliveries, type BackchannelDeliveriesOptions, type DeliveryTimers, type PendingLogout } from '../src/logout/backchannel-deliveries.ts';
import { createLogger } from '../src/observability/logger.ts';
import { createTestDatabase, type DatabaseKind, type TestDatabase } from './support/gatehouse.ts';
import { waitFor } from './support/wait.ts';

/**
 * The queue that carries back-channel logout tokens to apps: a logout never waits for an app,
 * a failing app is retried with growing pauses and then given up on, and each attempt is
 * logged and counted. Deliveries are rows, so they outlive the process, and processes sharing
 * the table never send one twice. Time is a hand-driven timer list and clock, not waited for;
 * the table is a real SQLite file and a real PostgreSQL database.
 */

interface Context {
  databases: Array<{ kind: DatabaseKind; database: TestDatabase; db: Knex }>;
}

const test = anyTest as TestFn<Context>;

test.before(async (t) => {
  const databases: Context['databases'] = [];
  for (const kind of ['sqlite', 'pg'] as const) {
    const database = await createTestDatabase(kind);
    const db = openDatabase(loadConfig({ DATABASE_URL: database.url }).database);
    await migrateToLatest(db);
    databases.push({ kind, database, db });
  }
  t.context = { databases };
});

test.after.always(async (t) => {
  for (const { db, database } of t.context.databases ?? []) {
    await db.destroy();
    await database.drop();
  }
});

test.beforeEach(async (t) => {
  for (const { db } of t.context.databases) await db('backchannel_deliveries').delete();
});

const sqlite = (t: { context: Context }) => t.context.databases[0]!.db;

/** Timers that fire only when the test says so, and the clock they move. */
function handTimers() {
  const pending = new Map<number, { callback: () => void; ms: number }>();
  let next = 0;
  let now = Date.now();
  const timers: DeliveryTimers = {
    setTimeout: (callback, ms) => {
      pending.set(++next, { callback, ms });
      return next;
    },
    clearTimeout: (handle) => pending.delete(handle as number),
  };
  return {
    timers,
    now: () => now,
    /** The pauses now waiting, in ms. */
    waiting: () => [...pending.values()].map((p) => p.ms),
    /** Moves the clock on by `ms` and fires every timer of `ms` milliseconds. */
    fire(ms: number) {
      now += ms;
      for (const [id, p] of [...pending]) {
        if (p.ms !== ms) continue;
        pending.delete(id);
        p.callback();
      }
    },
  };
}

function recordingLog() {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger('info', { write: (line: string) => lines.push(JSON.parse(line)) });
  return { log, lines };
}

/** Until the queue has done what it can without a timer firing: its database calls are real. */
const settle = async (clock: ReturnType<typeof handTimers>, pauses: number) => {
  await waitFor(() => clock.waiting().length === pauses, 5000, 5);
};

const logout = (clientId: string, sub = 'person-1', sid = 'session-1'): PendingLogout => ({ clientId, sub, sid });

function queue(db: Knex, send: BackchannelDeliveriesOptions['send'], options: Partial<BackchannelDeliveriesOptions> = {}) {
  return new BackchannelDeliveries({ db, send, log: recordingLog().log, ...options });
}

test.serial('enqueue stores the logout and returns before the app has answered; a delivery is logged, counted and removed', async (t) => {
  const { log, lines } = recordingLog();
  const clock = handTimers();
  const counted: string[] = [];
  let answer: (() => void) | undefined;
  const sent: PendingLogout[] = [];
  const deliveries = queue(
    sqlite(t),
    (l) => {
      sent.push(l);
      return new Promise<void>((resolve) => (answer = resolve));
    },
    { log, count: (o) => counted.push(o), timers: clock.timers, now: clock.now },
  );
  await deliveries.enqueue([logout('app-1')]);
  t.deepEqual(counted, [], 'nothing is delivered yet: the caller did not wait');
  t.deepEqual(await sqlite(t)('backchannel_deliveries').pluck('client_id'), ['app-1'], 'stored before the caller goes on');
  await waitFor(() => answer !== undefined, 5000, 5);
  answer!();
  await deliveries.idle();
  t.deepEqual(counted, ['delivered']);
  t.deepEqual(sent, [logout('app-1')], 'the sender gets what the token is made from');
  t.like(lines.at(-1), { event: 'backchannel_logout.delivered', client_id: 'app-1', attempt: 1, level: 'info' });
  t.deepEqual(await sqlite(t)('backchannel_deliveries').pluck('id'), [], 'a delivered logout is removed');
});

test.serial('the table holds what a logout token is made from, never a token', async (t) => {
  const deliveries = queue(sqlite(t), () => new Promise<void>(() => undefined), { timers: handTimers().timers });
  await deliveries.enqueue([logout('app-1', 'sub-1', 'sid-1')]);
  const [row] = await sqlite(t)('backchannel_deliveries').select();
  t.like(row, { client_id: 'app-1', sub: 'sub-1', sid: 'sid-1' });
  t.false(
    Object.values(row as object).some((v) => typeof v === 'string' && /^ey/.test(v)),
    'no JWT in the row',
  );
  deliveries.close();
});

test.serial('a failing app is retried after 2, 4, 8 and 16 seconds, then given up on with an error, and removed', async (t) => {
  const { log, lines } = recordingLog();
  const clock = handTimers();
  const counted: string[] = [];
  let sent = 0;
  const deliveries = queue(
    sqlite(t),
    async () => {
      sent++;
      throw new Error('expected 200 OK from https://rp.example/logout, got: 503 Service Unavailable');
    },
    { log, count: (o) => counted.push(o), timers: clock.timers, now: clock.now, timeoutMs: 5000 },
  );
  await deliveries.enqueue([logout('down-app')]);
  for (const pause of [2000, 4000, 8000, 16000]) {
    await settle(clock, 1);
    t.deepEqual(clock.waiting(), [pause], `waits ${pause} ms before the next attempt`);
    clock.fire(pause);
  }
  await deliveries.idle();
  t.is(sent, 5);
  t.deepEqual(counted, ['retrying', 'retrying', 'retrying', 'retrying', 'failed']);
  t.like(lines.at(-1), { event: 'backchannel_logout.failed', client_id: 'down-app', attempt: 5, level: 'error' });
  t.regex(String(lines.at(-1)!.reason), /503/);
  t.like(lines[0], { event: 'backchannel_logout.retrying', retry_in_ms: 2000, level: 'warn' });
  t.deepEqual(await sqlite(t)('backchannel_deliveries').pluck('id'), [], 'given up on: removed');
});

test.serial('an app that answers after a retry is delivered to once', async (t) => {
  const clock = handTimers();
  const counted: string[] = [];
  let sent = 0;
  const deliveries = queue(
    sqlite(t),
    async () => {
      if (++sent === 1) throw new Error('connection refused');
    },
    { count: (o) => counted.push(o), timers: clock.timers, now: clock.now },
  );
  await deliveries.enqueue([logout('flaky')]);
  await settle(clock, 1);
  clock.fire(2000);
  await deliveries.idle();
  t.is(sent, 2);
  t.deepEqual(counted, ['retrying', 'delivered']);
});

test.serial('an app that never answers counts as failed after the timeout, and is retried', async (t) => {
  const clock = handTimers();
  const counted: string[] = [];
  const deliveries = queue(sqlite(t), () => new Promise<void>(() => undefined), {
    count: (o) => counted.push(o),
    timers: clock.timers,
    now: clock.now,
    timeoutMs: 5000,
    attempts: 2,
  });
  await deliveries.enqueue([logout('silent')]);
  await settle(clock, 1);
  clock.fire(5000);
  await settle(clock, 1);
  t.deepEqual(counted, ['retrying']);
  clock.fire(2000);
  await settle(clock, 1);
  clock.fire(5000);
  await deliveries.idle();
  t.deepEqual(counted, ['retrying', 'failed']);
});

test.serial('close stops the retries in this process but keeps them stored; the next queue over the table sends them', async (t) => {
  const clock = handTimers();
  let up = false;
  const received: PendingLogout[] = [];
  const send = async (l: PendingLogout) => {
    if (!up) throw new Error('down');
    received.push(l);
  };
  const first = queue(sqlite(t), send, { timers: clock.timers, now: clock.now });
  await first.enqueue([logout('down', 'sub-9', 'sid-9')]);
  await settle(clock, 1);
  t.deepEqual(clock.waiting(), [2000]);
  first.close();
  t.deepEqual(clock.waiting(), []);
  await first.idle();
  await first.enqueue([logout('after-close')]);
  t.deepEqual(await sqlite(t)('backchannel_deliveries').pluck('client_id'), ['down'], 'nothing is stored after close; the retry is kept');

  up = true;
  const next = handTimers();
  const second = queue(sqlite(t), send, { timers: next.timers, now: () => clock.now() + 2000 });
  second.start();
  await waitFor(() => received.length === 1, 5000, 5);
  await second.idle();
  t.deepEqual(received, [logout('down', 'sub-9', 'sid-9')]);
  t.deepEqual(await sqlite(t)('backchannel_deliveries').pluck('id'), []);
});

for (const kind of ['sqlite', 'pg'] as const) {
  test.serial(`two processes over one ${kind} table, both looking at once, send each delivery exactly once`, async (t) => {
    const db = t.context.databases.find((d) => d.kind === kind)!.db;
    // A second connection pool: the other process.
    const other = openDatabase(loadConfig({ DATABASE_URL: t.context.databases.find((d) => d.kind === kind)!.database.url }).database);
    try {
      const sends = new Map<string, number>();
      const send = async (l: PendingLogout) => {
        sends.set(l.sub, (sends.get(l.sub) ?? 0) + 1);
        await new Promise((resolve) => setImmediate(resolve));
      };
      const n = 60;
      await db('backchannel_deliveries').insert(
        Array.from({ length: n }, (_, i) => ({
          id: `race-${i}`,
          client_id: 'app',
          sub: `p${i}`,
          sid: null,
          attempts: 0,
          due_at: 0,
          claimed_until: null,
          created_at: 0,
        })),
      );
      const a = queue(db, send);
      const b = queue(other, send);
      a.start();
      b.start();
      await waitFor(async () => Number((await db('backchannel_deliveries').count({ n: '*' }))[0]!.n) === 0, 20_000, 20);
      await Promise.all([a.idle(), b.idle()]);
      t.is(sends.size, n, 'every delivery was sent');
      t.deepEqual(
        [...sends].filter(([, count]) => count !== 1),
        [],
        'none twice',
      );
      a.close();
      b.close();
    } finally {
      await other.destroy();
    }
  });
}
