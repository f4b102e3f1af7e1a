/**
 * The clock of the test's own process, moved forward on demand instead of waited for.
 *
 * Gatehouse runs in the test's process (startGatehouse), and oidc-provider, jose and
 * openid-client take the time from `Date.now()` and `new Date()` with no hook to hand them a
 * clock: expiry of codes, tokens, grants and sessions, `auth_time` and `max_age` all read it
 * there. So the one place to inject time for all of them at once is `Date` itself: after
 * `advance(ms)` every reader, the server and the relying party alike, sees the same later
 * time, as if that much time had passed on every machine. Timers are left alone (a real delay
 * stays real), and the clock keeps running at the real pace in between.
 */
export interface TestClock {
  /** Moves the time every reader sees forward by `ms` milliseconds. */
  advance(ms: number): void;
  /** Moves the time forward to `epochMs` (never backwards). */
  advanceTo(epochMs: number): void;
}

const RealDate = Date;
let offsetMs = 0;
const shiftedNow = () => RealDate.now() + offsetMs;

/**
 * Date with the shifted "now", sharing Date's own prototype, so instances made before or after
 * installing are the same kind of object and `instanceof Date` holds for both. Called without
 * `new` it returns the time as text, as Date does.
 */
function ShiftedDate(this: unknown, ...args: unknown[]): Date | string {
  if (!new.target) return new RealDate(shiftedNow()).toString();
  return Reflect.construct(RealDate, args.length === 0 ? [shiftedNow()] : args, new.target) as Date;
}
ShiftedDate.prototype = RealDate.prototype;
ShiftedDate.now = shiftedNow;
ShiftedDate.parse = RealDate.parse;
ShiftedDate.UTC = RealDate.UTC;

/** Installs the shifted clock for the rest of this process (one test file) and returns its control. */
export function testClock(): TestClock {
  if (globalThis.Date !== (ShiftedDate as unknown)) globalThis.Date = ShiftedDate as unknown as DateConstructor;
  return {
    advance(ms) {
      if (!(ms >= 0)) throw new RangeError('the test clock only moves forward');
      offsetMs += ms;
    },
    advanceTo(epochMs) {
      this.advance(Math.max(0, epochMs - shiftedNow()));
    },
  };
}
