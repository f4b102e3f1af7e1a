import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { Redis } from 'ioredis';
import knex from 'knex';
import { ProcessInvalidations } from '../src/cache/invalidation.ts';
import { ChangesFileChannel, watchChangesFile } from '../src/cache/changes-file.ts';
import { newMessage, type Channel, type InvalidationMessage, type Receiver } from '../src/cache/messages.ts';
import { listenOnPostgres, PostgresChannel } from '../src/cache/postgres-channel.ts';
import { listenOnRedis, RedisChannel } from '../src/cache/redis-channel.ts';
import { createLogger } from '../src/observability/logger.ts';
import { basicAuth } from './support/http.ts';
import { runCli } from './support/cli.ts';
import { call } from './support/faults.ts';
import { createTestDatabase, REDIS_TEST_URL, startTestGatehouse } from './support/gatehouse.ts';
import { startTcpProxy } from './support/tcp-proxy.ts';

/**
 * The paths a change takes to the other processes (src/cache/), each on its own: what a
 * listener hears, and what it does when it may have missed something. End to end, with workers
 * and hosts, in worker-caches.test.ts.
 */

/** Log lines as a log shipper would get them. */
function capturedLog() {
  const lines: Array<Record<string, any>> = [];
  const log = createLogger('info', { write: (chunk: string) => void lines.push(...chunk.split('\n').filter(Boolean).map((l) => JSON.parse(l))) });
  return { log, lines };
}

/** Between two looks at something that changes by itself (a connection coming up). */
const pause = () => new Promise((resolve) => setTimeout(resolve, 50));

/** A receiver whose next message, or next "missed", a test can wait for. */
function listeningReceiver() {
  const heard: InvalidationMessage[] = [];
  let missed = 0;
  let wake: () => void = () => undefined;
  const changed = () => new Promise<void>((resolve) => (wake = resolve));
  const receiver: Receiver = {
    receive: (m) => {
      heard.push(m);
      wake();
    },
    missed: () => {
      missed++;
      wake();
    },
  };
  return {
    receiver,
    heard,
    missed: () => missed,
    /** Waits until `done()` holds, woken by each message (never by the clock). */
    async until(done: () => boolean) {
      while (!done()) await changed();
    },
  };
}

test('a process hears each change once, even when two paths bring it, and publishing waits for a key reload to finish', async (t) => {
  const invalidations = new ProcessInvalidations();
  const seen: Array<string | undefined> = [];
  let reloaded = false;
  invalidations.subscribe('clients', (key) => void seen.push(key));
  invalidations.subscribe('keys', () => new Promise<void>((resolve) => setImmediate(() => {
          reloaded = true;
          resolve();
        })));
  const message = newMessage('clients', 'abc');
  invalidations.receiver.receive(message);
  invalidations.receiver.receive(message);
  await invalidations.deliver(message);
  t.deepEqual(seen, ['abc']);
  await invalidations.publish('keys');
  t.true(reloaded);
  invalidations.receiver.missed();
  t.deepEqual(seen, ['abc', undefined], 'a possible loss drops every cache, whatever its topic');
  await invalidations.close();
});

test('a path that is down does not fail the change: publish resolves and a warning says the TTL bounds it', async (t) => {
  const { log, lines } = capturedLog();
  const down: Channel = { name: 'Redis pub/sub', send: () => Promise.reject(new Error('Connection is closed.')), close: async () => undefined };
  const invalidations = new ProcessInvalidations([down], log);
  let dropped = false;
  invalidations.subscribe('clients', () => (dropped = true));
  await t.notThrowsAsync(invalidations.publish('clients', 'abc'));
  t.true(dropped, 'this process still dropped its own copy');
  const warning = lines.find((l) => l.level === 'warn');
  t.like(warning, { topic: 'clients', channel: 'Redis pub/sub', detail: 'Connection is closed.' });
  t.regex(warning!.msg, /short TTL/);
  await invalidations.close();
});

test('the SQLite changes file: another process appends a change and the listener hears it; a file emptied under it drops every cache', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-changes-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'gatehouse.sqlite3.changes');
  const listener = listeningReceiver();
  const watching = watchChangesFile(file, listener.receiver, capturedLog().log);
  t.teardown(() => watching.close());
  t.is(fs.statSync(file).mode & 0o777, 0o600, 'the file is private to the service user');

  const writer = new ChangesFileChannel(file);
  await writer.send(newMessage('clients', 'first'));
  await writer.send(newMessage('keys'));
  await listener.until(() => listener.heard.length === 2);
  t.deepEqual(
    listener.heard.map((m) => [m.topic, m.key]),
    [
      ['clients', 'first'],
      ['keys', undefined],
    ],
  );

  // Past about 64 KiB the next writer starts the file over; the listener cannot know what the
  // lines it did not read said, so it drops everything.
  fs.appendFileSync(file, `${JSON.stringify(newMessage('filler', 'x'.repeat(70 * 1024)))}\n`);
  await listener.until(() => listener.heard.length === 3);
  await writer.send(newMessage('clients', 'after'));
  await listener.until(() => listener.missed() > 0 && listener.heard.some((m) => m.key === 'after'));
  t.true(fs.statSync(file).size < 1024);

  // A line that is not a change (a hand edit) cannot be trusted either.
  const missedBefore = listener.missed();
  fs.appendFileSync(file, 'not a change\n');
  await listener.until(() => listener.missed() > missedBefore);
  t.true(listener.missed() > missedBefore, 'a line that is not a change dropped every cache');
});

test('Redis: a change published by one process is heard by another, and a listener whose connection came back drops every cache', async (t) => {
  const proxy = await startTcpProxy('127.0.0.1', Number(new URL(REDIS_TEST_URL).port || 6379));
  t.teardown(() => proxy.close());
  const prefix = `gh-test-${randomBytes(4).toString('hex')}:`;
  const listener = listeningReceiver();
  const { log, lines } = capturedLog();
  const listening = listenOnRedis(`redis://127.0.0.1:${proxy.port}`, {}, prefix, listener.receiver, log);
  t.teardown(() => listening.close());
  const publisher = new Redis(REDIS_TEST_URL);
  t.teardown(() => publisher.disconnect());
  const sender = new RedisChannel(publisher, prefix);

  // The listener subscribes once it is connected.
  const subscribers = async () => ((await publisher.pubsub('NUMSUB', `${prefix}invalidations`)) as [string, number])[1];
  while ((await subscribers()) === 0) await pause();
  await sender.send(newMessage('clients', 'abc'));
  await listener.until(() => listener.heard.length === 1);
  t.like(listener.heard[0], { topic: 'clients', key: 'abc' });
  t.is(listener.missed(), 0);

  await proxy.cut();
  await proxy.restore();
  await listener.until(() => listener.missed() === 1);
  t.true(lines.some((l) => l.level === 'warn' && /lost the Redis connection/.test(l.msg)));
  t.true(lines.some((l) => l.level === 'info' && /through Redis again/.test(l.msg)));
});

test('PostgreSQL without Redis: NOTIFY reaches the listener, and a listener whose connection was cut reconnects and drops every cache', async (t) => {
  const database = await createTestDatabase('pg');
  t.teardown(() => database.drop());
  const db = knex({ client: 'pg', connection: database.url, pool: { min: 0, max: 2 } });
  t.teardown(() => db.destroy());
  const listener = listeningReceiver();
  const listening = listenOnPostgres(database.url, listener.receiver, capturedLog().log);
  t.teardown(() => listening.close());
  const sender = new PostgresChannel(db);
  const listens = async () => (await db.raw(`select count(*)::int as n from pg_stat_activity where datname = current_database() and query ilike 'listen %'`)).rows[0].n;
  while ((await listens()) === 0) await pause();

  await sender.send(newMessage('clients', 'abc'));
  await listener.until(() => listener.heard.length === 1);
  t.like(listener.heard[0], { topic: 'clients', key: 'abc' });

  await db.raw(`select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and query ilike 'listen %'`);
  await listener.until(() => listener.missed() === 1);
  await sender.send(newMessage('keys'));
  await listener.until(() => listener.heard.length === 2);
  t.is(listener.heard[1]!.topic, 'keys');
});

test('an operator rotates a secret in the admin API while Redis is down: the change is made, and the log says the other processes see it within their TTL', async (t) => {
  const proxy = await startTcpProxy('127.0.0.1', Number(new URL(REDIS_TEST_URL).port || 6379));
  t.teardown(() => proxy.close());
  const { lines } = capturedLog();
  const gh = await startTestGatehouse({
    env: { REDIS_URL: `redis://127.0.0.1:${proxy.port}`, GATEHOUSE_REDIS_PREFIX: `gh-test-${randomBytes(4).toString('hex')}:`, GATEHOUSE_LOG_LEVEL: 'warn' },
    logDestination: { write: (chunk: string) => void lines.push(...chunk.split('\n').filter(Boolean).map((l) => JSON.parse(l))) },
  });
  t.teardown(() => gh.close());
  const token = (await runCli(['admin-tokens', 'create', '--name', 'ops', '--json'], gh.env)).json().token;
  const created = (await runCli(['clients', 'create', '--json', '--name', 'Service', '--type', 'confidential', '--grant', 'client_credentials', '--scope', 'read'], gh.env)).json();

  await proxy.cut();
  const rotated = await call(gh.url, 'POST', `/admin/api/clients/${created.client_id}/rotate-secret`, { headers: { authorization: `Bearer ${token}` } });
  t.is(rotated.status, 200, rotated.text);
  t.true(
    lines.some((l) => l.level === 'warn' && l.channel === 'Redis pub/sub' && /TTL/.test(l.msg)),
    JSON.stringify(lines),
  );
  // The client's tokens in Redis could not be revoked: the log says so, naming the client.
  t.true(
    lines.some((l) => l.level === 'warn' && l.whose === `client ${created.client_id}` && /not every token/.test(l.msg)),
    JSON.stringify(lines),
  );

  await proxy.restore();
  const tokenWith = (secret: string) =>
    call(gh.url, 'POST', '/token', { headers: { authorization: basicAuth(created.client_id, secret), 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials' });
  // Redis reconnects by itself (access tokens live there).
  while ((await call(gh.url, 'GET', '/readyz')).status !== 200) await pause();
  t.is((await tokenWith(rotated.json.client_secret)).status, 200);
  t.is((await tokenWith(created.client_secret)).status, 401);
});
