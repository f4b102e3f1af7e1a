import test from 'ava';
import { testClock } from './support/clock.ts';

// The test clock is what time-dependent tests trust instead of sleeping: it must move every
// way of reading the time at once, and leave dates as dates.
const clock = testClock();

test.serial('moving the test clock moves Date.now and new Date() alike, and nothing else about dates', (t) => {
  const before = new Date();
  clock.advance(30 * 60_000);
  t.true(Date.now() - before.getTime() >= 30 * 60_000);
  const made = new Date();
  t.true(made.getTime() - before.getTime() >= 30 * 60_000, 'new Date() reads the same clock');
  t.true(before instanceof Date, 'a date made before is still a Date');
  t.is(new Date(0).toISOString(), '1970-01-01T00:00:00.000Z', 'an explicit time is kept');
  t.is(typeof Date(), 'string');
  t.is(Date.UTC(2026, 11, 3), Date.parse('2026-12-03T00:00:00Z'));
  class Later extends Date {}
  t.true(new Later() instanceof Date);
});

test.serial('the test clock never moves backwards', (t) => {
  const now = Date.now();
  clock.advanceTo(now - 60_000);
  t.true(Date.now() >= now);
  t.throws(() => clock.advance(-1), { instanceOf: RangeError });
});
