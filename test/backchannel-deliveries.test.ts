import test from 'ava';
import { BackchannelDeliveries, type DeliveryTimers } from '../src/logout/backchannel-deliveries.ts';
import { createLogger } from '../src/observability/logger.ts';

/**
 * The queue that carries back-channel logout tokens to apps: a logout never waits for an app,
 * a failing app is retried with growing pauses and then given up on, and each attempt is
 * logged and counted. Time is a hand-driven timer list, not waited for.
 */

/** Timers that fire only when the test says so. */
function handTimers() {
  const pending = new Map<number, { callback: () => void; ms: number }>();
  let next = 0;
  const timers: DeliveryTimers = {
    setTimeout: (callback, ms) => {
      pending.set(++next, { callback, ms });
      return next;
    },
    clearTimeout: (handle) => pending.delete(handle as number),
  };
  return {
    timers,
    /** The pauses now waiting, in ms. */
    waiting: () => [...pending.values()].map((p) => p.ms),
    /** Fires every timer of `ms` milliseconds. */
    fire(ms: number) {
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

const settle = () => new Promise((resolve) => setImmediate(resolve));

test('enqueue returns before the app has answered, and a delivery is logged and counted', async (t) => {
  const { log, lines } = recordingLog();
  const counted: string[] = [];
  const deliveries = new BackchannelDeliveries({ log, count: (o) => counted.push(o), timers: handTimers().timers });
  let answer!: () => void;
  deliveries.enqueue({ clientId: 'app-1', send: () => new Promise<void>((resolve) => (answer = resolve)) });
  t.deepEqual(counted, [], 'nothing is delivered yet: the caller did not wait');
  answer();
  await deliveries.idle();
  t.deepEqual(counted, ['delivered']);
  t.like(lines.at(-1), { event: 'backchannel_logout.delivered', client_id: 'app-1', attempt: 1, level: 'info' });
});

test('a failing app is retried after 2, 4, 8 and 16 seconds, then given up on with an error', async (t) => {
  const { log, lines } = recordingLog();
  const clock = handTimers();
  const counted: string[] = [];
  const deliveries = new BackchannelDeliveries({ log, count: (o) => counted.push(o), timers: clock.timers, timeoutMs: 5000 });
  let sent = 0;
  deliveries.enqueue({
    clientId: 'down-app',
    send: async () => {
      sent++;
      throw new Error('expected 200 OK from https://rp.example/logout, got: 503 Service Unavailable');
    },
  });
  for (const pause of [2000, 4000, 8000, 16000]) {
    await settle();
    t.deepEqual(clock.waiting(), [pause], `waits ${pause} ms before the next attempt`);
    clock.fire(pause);
  }
  await deliveries.idle();
  t.is(sent, 5);
  t.deepEqual(counted, ['retrying', 'retrying', 'retrying', 'retrying', 'failed']);
  t.like(lines.at(-1), { event: 'backchannel_logout.failed', client_id: 'down-app', attempt: 5, level: 'error' });
  t.regex(String(lines.at(-1)!.reason), /503/);
  t.like(lines[0], { event: 'backchannel_logout.retrying', retry_in_ms: 2000, level: 'warn' });
});

test('an app that answers after a retry is delivered to once', async (t) => {
  const { log } = recordingLog();
  const clock = handTimers();
  const counted: string[] = [];
  const deliveries = new BackchannelDeliveries({ log, count: (o) => counted.push(o), timers: clock.timers });
  let sent = 0;
  deliveries.enqueue({
    clientId: 'flaky',
    send: async () => {
      if (++sent === 1) throw new Error('connection refused');
    },
  });
  await settle();
  clock.fire(2000);
  await deliveries.idle();
  t.is(sent, 2);
  t.deepEqual(counted, ['retrying', 'delivered']);
});

test('an app that never answers counts as failed after the timeout, and is retried', async (t) => {
  const { log } = recordingLog();
  const clock = handTimers();
  const counted: string[] = [];
  const deliveries = new BackchannelDeliveries({ log, count: (o) => counted.push(o), timers: clock.timers, timeoutMs: 5000, attempts: 2 });
  deliveries.enqueue({ clientId: 'silent', send: () => new Promise<void>(() => undefined) });
  clock.fire(5000);
  await settle();
  t.deepEqual(counted, ['retrying']);
  clock.fire(2000);
  clock.fire(5000);
  await deliveries.idle();
  t.deepEqual(counted, ['retrying', 'failed']);
});

test('close drops the retries still waiting, and idle then resolves', async (t) => {
  const { log } = recordingLog();
  const clock = handTimers();
  const deliveries = new BackchannelDeliveries({ log, timers: clock.timers });
  deliveries.enqueue({
    clientId: 'down',
    send: async () => {
      throw new Error('down');
    },
  });
  await settle();
  t.deepEqual(clock.waiting(), [2000]);
  deliveries.close();
  t.deepEqual(clock.waiting(), []);
  await deliveries.idle();
  deliveries.enqueue({ clientId: 'after-close', send: async () => t.fail('nothing is sent after close') });
  t.pass();
});
