import type { PreparedQuery } from '../stores/prepared.ts';

/** What a reservation needs to know of its counter (a Limit of throttle.ts). */
export interface CounterLimit {
  subject: string;
  lockAfter?: number;
}

interface Waiter<T> {
  resolve(value: T): void;
  reject(err: unknown): void;
}

interface Reserving {
  limit: CounterLimit;
  waiters: Array<Waiter<number | undefined>>;
}

interface Releasing {
  subject: string;
  count: number;
  /** Some of them succeeded with the counter's own credential: its failures, lock and backoff go. */
  clear: boolean;
  waiters: Array<Waiter<void>>;
}

/**
 * The counter statements every attempt at a credential runs, one per counter and turn of the
 * event loop instead of one per attempt: the reservations of one subject asked for in the same
 * turn are granted by one statement (as many as the counter has room for, in the order asked),
 * and their releases are given back by one. Under load a token endpoint's attempts all come from
 * a few addresses, so a dozen requests at once updated the same two rows four times each: on
 * PostgreSQL a queue of round trips on two row locks, on SQLite a statement each. Nothing else
 * changes: every attempt is still counted in the database before its credential is checked,
 * across processes, and no more are let through than a counter allows.
 *
 * Each statement touches one row, so on PostgreSQL no two of them (or a sweep) wait for each
 * other in a circle.
 */
export class CounterBatches {
  private reserving = new Map<string, Reserving>();
  private releasing = new Map<string, Releasing>();
  private readonly reserveText: string;

  constructor(
    private readonly query: PreparedQuery,
    dialect: 'pg' | 'sqlite',
    private readonly now: () => number,
    private readonly windowMs: number,
  ) {
    this.reserveText = reserveStatement(dialect);
  }

  /** One attempt more in flight on the counter: answers its failures so far, or undefined when it refused. */
  reserve(limit: CounterLimit): Promise<number | undefined> {
    return new Promise((resolve, reject) => {
      // Counters of one subject always have the same limit; keyed by both all the same.
      const key = `${limit.lockAfter ?? ''}|${limit.subject}`;
      let batch = this.reserving.get(key);
      if (!batch) {
        batch = { limit, waiters: [] };
        this.reserving.set(key, batch);
        if (this.reserving.size === 1) setImmediate(() => this.flushReservations());
      }
      batch.waiters.push({ resolve, reject });
    });
  }

  /** Gives a reserved attempt back; `clear` also forgets the counter's failures, lock and backoff. */
  release(subject: string, clear: boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      let batch = this.releasing.get(subject);
      if (!batch) {
        batch = { subject, count: 0, clear: false, waiters: [] };
        this.releasing.set(subject, batch);
        if (this.releasing.size === 1) setImmediate(() => this.flushReleases());
      }
      batch.count++;
      batch.clear ||= clear;
      batch.waiters.push({ resolve, reject });
    });
  }

  private flushReservations(): void {
    const batches = [...this.reserving.values()];
    this.reserving = new Map();
    const now = this.now();
    for (const { limit, waiters } of batches) {
      const values = { subject: limit.subject, asked: waiters.length, lockAfter: limit.lockAfter ?? null, now, windowStart: now - this.windowMs };
      this.query(
        this.reserveText,
        RESERVE_PARAMS.map((name) => values[name]),
      ).then(
        ({ rows }) => {
          const granted = rows[0] ? Number(rows[0].granted) : 0;
          const failures = rows[0] ? Number(rows[0].failures) : undefined;
          // The first ones asked get the room there was.
          waiters.forEach((waiter, i) => {
            waiter.resolve(i < granted ? failures : undefined);
          });
        },
        (err) => {
          for (const waiter of waiters) waiter.reject(err);
        },
      );
    }
  }

  private flushReleases(): void {
    const batches = [...this.releasing.values()];
    this.releasing = new Map();
    for (const { subject, count, clear, waiters } of batches) {
      const statement = clear ? CLEAR : REFUND;
      const values: Record<string, unknown> = { count, subject };
      this.query(
        statement.text,
        statement.names.map((name) => values[name]),
      ).then(
        () => {
          for (const waiter of waiters) waiter.resolve();
        },
        (err) => {
          for (const waiter of waiters) waiter.reject(err);
        },
      );
    }
  }
}

/** Named parameters in SQL text, as positional `?` and the names in their order. */
function positional(text: string): { text: string; names: string[] } {
  const names: string[] = [];
  return {
    text: text.replace(/:([a-zA-Z]+)/g, (_, name: string) => {
      names.push(name);
      return '?';
    }),
    names,
  };
}

// Every SET expression sees the row as it was before the statement; `granted` carries the room
// given out to RETURNING (which sees the row as it leaves). The casts tell PostgreSQL what the
// parameters are (SQLite takes them as they are); PostgreSQL's least() ignores a null, SQLite's
// min() answers null, so no null reaches either.
const ASKED = 'cast(:asked as integer)';
const STALE = 'login_failures.window_started_at < cast(:windowStart as bigint)';
const UNDER = (fn: string) => `${fn}(${ASKED}, coalesce(cast(:lockAfter as integer), ${ASKED}))`;
const ROOM = (fn: string) => `${fn}(${ASKED}, coalesce(cast(:lockAfter as integer) - login_failures.failures - login_failures.pending, ${ASKED}))`;

const RESERVE_SQL = (fn: string) =>
  positional(`insert into login_failures (subject, failures, pending, window_started_at, locked_until, not_before, granted)
     values (:subject, 0, ${UNDER(fn)}, cast(:now as bigint), null, null, ${UNDER(fn)})
     on conflict (subject) do update set
       failures = case when ${STALE} then 0 else login_failures.failures end,
       pending = case when ${STALE} then ${UNDER(fn)} else login_failures.pending + ${ROOM(fn)} end,
       granted = case when ${STALE} then ${UNDER(fn)} else ${ROOM(fn)} end,
       window_started_at = case when ${STALE} then cast(:now as bigint) else login_failures.window_started_at end
     where (login_failures.locked_until is null or login_failures.locked_until <= cast(:now as bigint))
       and (login_failures.not_before is null or login_failures.not_before <= cast(:now as bigint))
       and (cast(:lockAfter as integer) is null or ${STALE}
            or login_failures.failures + login_failures.pending < cast(:lockAfter as integer))
     returning failures, granted`);

type ReserveParam = 'subject' | 'asked' | 'lockAfter' | 'now' | 'windowStart';
const RESERVE_PARAMS = RESERVE_SQL('min').names as ReserveParam[];

function reserveStatement(dialect: 'pg' | 'sqlite'): string {
  return RESERVE_SQL(dialect === 'pg' ? 'least' : 'min').text;
}

// `pending - n` never below zero: an operator's unlock or a sweep may have reset the row meanwhile.
const GIVEN_BACK = 'pending = case when pending > cast(:count as integer) then pending - cast(:count as integer) else 0 end';
const REFUND = positional(`update login_failures set ${GIVEN_BACK} where subject = :subject`);
const CLEAR = positional(`update login_failures set failures = 0, locked_until = null, not_before = null, ${GIVEN_BACK} where subject = :subject`);
