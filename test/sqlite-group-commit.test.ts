import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import Database from 'better-sqlite3';
import { SqliteGroupCommit } from '../src/stores/sqlite-group-commit.ts';

/**
 * The SQLite writes of one turn of the event loop commit together (token inserts, consumes and
 * the credential counters): each caller is answered only once its write is committed, in the
 * order asked, and one write that fails neither takes the others with it nor lands itself.
 */

interface File {
  filename: string;
  writer: Database.Database;
  reader: Database.Database;
  /** How many groups the commit asked a connection for. */
  groups: () => number;
  commit: SqliteGroupCommit;
}

function sqliteFile(): File {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-group-commit-'));
  const filename = path.join(dir, 'db.sqlite');
  const writer = new Database(filename);
  writer.pragma('journal_mode = WAL');
  writer.pragma('busy_timeout = 200');
  writer.exec('create table rows (id text primary key, n integer not null)');
  const reader = new Database(filename);
  reader.pragma('busy_timeout = 200');
  let groups = 0;
  const commit = new SqliteGroupCommit(async (use) => {
    groups++;
    use(writer);
  });
  return { filename, writer, reader, groups: () => groups, commit };
}

const insert =
  (id: string, n = 1) =>
  (db: Database.Database) =>
    db.prepare('insert into rows (id, n) values (?, ?)').run(id, n).changes;
const count = (db: Database.Database) => (db.prepare('select count(*) as c from rows').get() as { c: number }).c;

test('fifty writes asked for in one turn commit as one group, and another connection sees each once it is answered', async (t) => {
  const file = sqliteFile();
  const answered = await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      file.commit
        .run(insert(`row-${i}`))
        .then((changes) => ({ changes, seenByAnother: file.reader.prepare('select 1 from rows where id = ?').get(`row-${i}`) !== undefined })),
    ),
  );
  t.is(file.groups(), 1);
  t.true(answered.every((a) => a.changes === 1 && a.seenByAnother));
  t.is(count(file.reader), 50);
});

test('writes run in the order they were asked for: the second of two updates to one row wins', async (t) => {
  const file = sqliteFile();
  await file.commit.run(insert('counter', 0));
  const order: number[] = [];
  await Promise.all(
    [1, 2, 3].map((n) =>
      file.commit.run((db) => {
        order.push(n);
        return db.prepare('update rows set n = ? where id = ?').run(n, 'counter').changes;
      }),
    ),
  );
  t.deepEqual(order, [1, 2, 3]);
  t.is((file.reader.prepare('select n from rows where id = ?').get('counter') as { n: number }).n, 3);
});

test('one failing write of a group is refused alone: the others land, and it leaves nothing behind', async (t) => {
  const file = sqliteFile();
  await file.commit.run(insert('taken'));
  const results = await Promise.allSettled([file.commit.run(insert('a')), file.commit.run(insert('taken')), file.commit.run(insert('b'))]);
  t.deepEqual(
    results.map((r) => r.status),
    ['fulfilled', 'rejected', 'fulfilled'],
  );
  t.regex(String((results[1] as PromiseRejectedResult).reason), /UNIQUE constraint failed/);
  t.deepEqual(
    (file.reader.prepare('select id from rows order by id').all() as Array<{ id: string }>).map((r) => r.id),
    ['a', 'b', 'taken'],
  );
});

test('while another process holds the write lock past busy_timeout, the whole group is refused as busy and none of it lands', async (t) => {
  const file = sqliteFile();
  const other = new Database(file.filename);
  other.exec('begin immediate');
  try {
    const results = await Promise.allSettled([file.commit.run(insert('x')), file.commit.run(insert('y'))]);
    t.true(results.every((r) => r.status === 'rejected' && String((r.reason as { code?: string }).code).startsWith('SQLITE_BUSY')));
  } finally {
    other.exec('rollback');
  }
  t.is(count(file.reader), 0);
  // Once the lock is gone, the next group goes through.
  t.is(await file.commit.run(insert('z')), 1);
});

test('a connection that cannot be had refuses the group with its error, and the next group is asked for again', async (t) => {
  let fail = true;
  const file = sqliteFile();
  const commit = new SqliteGroupCommit(async (use) => {
    if (fail) throw Object.assign(new Error('pool timeout'), { name: 'KnexTimeoutError' });
    use(file.writer);
  });
  await t.throwsAsync(commit.run(insert('p')), { message: 'pool timeout' });
  fail = false;
  t.is(await commit.run(insert('q')), 1);
  t.is(count(file.reader), 1);
});
