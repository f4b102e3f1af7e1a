/**
 * Fixed SQL prepared once per connection (src/stores/prepared.ts), on both databases: it answers
 * what knex.raw would (rows, changed rows), goes through Knex's pool (so it never runs inside
 * another caller's open transaction, nor sees what that transaction has not committed), reuses
 * its statement, and refuses values written into its text.
 */
import anyTest, { type TestFn } from 'ava';
import type { Knex } from 'knex';
import { loadConfig } from '../src/config.ts';
import { migrateToLatest, openDatabase } from '../src/db.ts';
import { preparedQueries } from '../src/stores/prepared.ts';
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

const UPSERT = `insert into login_failures (subject, failures, pending, window_started_at, locked_until, not_before)
  values (?, 0, 1, cast(? as bigint), null, null)
  on conflict (subject) do update set pending = login_failures.pending + 1 returning pending`;

for (const kind of ['sqlite', 'pg'] as const) {
  test(`${kind}: a prepared upsert answers its returned rows, and an update the rows it changed`, async (t) => {
    const query = preparedQueries(t.context[kind].db);
    const subject = `test:prepared-${kind}-${Date.now()}`;
    const answers = [];
    for (let i = 0; i < 5; i++) answers.push(Number((await query(UPSERT, [subject, Date.now()])).rows[0]?.pending));
    t.deepEqual(answers, [1, 2, 3, 4, 5]);
    const updated = await query('update login_failures set pending = 0 where subject = ?', [subject]);
    t.is(updated.changes, 1);
    t.deepEqual(updated.rows, []);
    const none = await query('update login_failures set pending = 0 where subject = ?', [`${subject}-nobody`]);
    t.is(none.changes, 0);
    const read = await query('select pending, subject from login_failures where subject = ?', [subject]);
    t.deepEqual(
      read.rows.map((r) => ({ ...r, pending: Number(r.pending) })),
      [{ pending: 0, subject }],
    );
  });

  test(`${kind}: a prepared statement never runs inside another caller's open transaction`, async (t) => {
    const { db } = t.context[kind];
    const query = preparedQueries(db);
    const subject = `test:prepared-trx-${kind}-${Date.now()}`;
    let seenDuring: unknown;
    await db.transaction(async (trx) => {
      await trx('login_failures').insert({ subject, failures: 7, pending: 0, window_started_at: Date.now() });
      // SQLite's pool has one connection, held by this transaction: the query waits for it.
      // PostgreSQL's runs on another connection and sees nothing uncommitted.
      const pending = query('select failures from login_failures where subject = ?', [subject]);
      if (kind === 'pg') seenDuring = (await pending).rows.length;
      else pending.then((r) => (seenDuring = r.rows.map((row) => Number(row.failures))));
      await new Promise((resolve) => setImmediate(resolve));
      if (kind === 'sqlite') t.is(seenDuring, undefined, 'the query ran inside the transaction');
    });
    if (kind === 'pg') t.is(seenDuring, 0);
    else {
      for (let i = 0; i < 20 && seenDuring === undefined; i++) await new Promise((resolve) => setImmediate(resolve));
      t.deepEqual(seenDuring, [7]);
    }
  });

  test(`${kind}: values written into the text are refused (each text is kept for the connection's life)`, async (t) => {
    const query = preparedQueries(t.context[kind].db);
    await t.throwsAsync(query("select 1 where 'a' = ?", ['a']), { message: /values as parameters only/ });
    t.is((await query('select 1 as one where ? = ?', ['a', 'a'])).rows.length, 1);
  });
}
