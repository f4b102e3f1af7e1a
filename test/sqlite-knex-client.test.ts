/**
 * Knex on SQLite with each statement prepared once per connection (src/stores/sqlite-knex-client.ts):
 * it answers as Knex's own better-sqlite3 dialect does (rows, inserted ids, changed rows,
 * transactions that roll back), prepares a text once however often it runs, and keeps a bounded
 * number of texts. And the assumption it rests on: it extends the dialect `client: 'better-sqlite3'` selects.
 */
import { createRequire } from 'node:module';
import test from 'ava';
import knex from 'knex';
import type Database from 'better-sqlite3';
import { loadConfig } from '../src/config.ts';
import { openDatabase } from '../src/db.ts';
import { CachedStatementsSqliteClient, MAX_CACHED_STATEMENTS } from '../src/stores/sqlite-knex-client.ts';
import { createTestDatabase } from './support/gatehouse.ts';

async function openSqlite() {
  const database = await createTestDatabase('sqlite');
  const db = openDatabase(loadConfig({ DATABASE_URL: database.url }).database);
  await db.schema.createTable('items', (t) => {
    t.increments('id');
    t.string('name').notNullable().unique();
  });
  return { db, database };
}

test('the client extends the dialect Knex selects for better-sqlite3', async (t) => {
  const Dialect = createRequire(import.meta.url)('knex/lib/dialects/better-sqlite3/index.js');
  const plain = knex({ client: 'better-sqlite3', connection: { filename: ':memory:' }, useNullAsDefault: true });
  t.true(plain.client instanceof Dialect);
  t.true(CachedStatementsSqliteClient.prototype instanceof Dialect);
  await plain.destroy();
});

test('queries answer as with Knex’s own dialect: rows, inserted ids, changed rows, rolled-back transactions', async (t) => {
  const { db, database } = await openSqlite();
  try {
    const [id] = await db('items').insert({ name: 'a' });
    t.is(id, 1);
    await db('items').insert({ name: 'b' });
    t.deepEqual(await db('items').select('name').orderBy('id'), [{ name: 'a' }, { name: 'b' }]);
    t.is(await db('items').where({ name: 'a' }).update({ name: 'c' }), 1);
    t.is(await db('items').where({ name: 'nobody' }).delete(), 0);
    await t.throwsAsync(
      db.transaction(async (trx) => {
        await trx('items').insert({ name: 'd' });
        await trx('items').insert({ name: 'c' }); // unique: fails, the whole transaction rolls back
      }),
      { any: true, code: 'SQLITE_CONSTRAINT_UNIQUE' },
    );
    t.deepEqual(
      (await db('items').select('name').orderBy('id')).map((r) => r.name),
      ['c', 'b'],
    );
  } finally {
    await db.destroy();
    await database.drop();
  }
});

test('a text is prepared once however often it runs, and the texts kept are bounded', async (t) => {
  const { db, database } = await openSqlite();
  try {
    await db('items').insert({ name: 'a' });
    // Count what the connection prepares from here on.
    const connection = (await db.client.acquireConnection()) as Database.Database;
    const prepare = connection.prepare.bind(connection);
    let prepared = 0;
    connection.prepare = ((sql: string) => {
      prepared++;
      return prepare(sql);
    }) as typeof connection.prepare;
    await db.client.releaseConnection(connection);
    for (let i = 0; i < 50; i++) t.is((await db('items').where({ name: 'a' }).first())?.name, 'a');
    t.is(prepared, 1);
    // More distinct texts than are kept: each still runs, and an old one is prepared again.
    for (let n = 1; n <= MAX_CACHED_STATEMENTS + 10; n++) await db.raw(`select ${n} as n`);
    const before = prepared;
    await db('items').where({ name: 'a' }).first();
    t.is(prepared, before + 1);
  } finally {
    await db.destroy();
    await database.drop();
  }
});
