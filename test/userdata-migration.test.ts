import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import type { Knex } from 'knex';
import { loadConfig } from '../src/config.ts';
import { openDatabase } from '../src/db.ts';
import { UNASSIGNED_OWNER, UserdataService } from '../src/userdata/service.ts';
import { createTestDatabase, type DatabaseKind } from './support/gatehouse.ts';

/**
 * Migration 20261203000000_userdata_per_client, on SQLite and on PostgreSQL: a database migrated
 * up to the one before it, rows written as the old schema stored them (one document per user,
 * `updated_by_client` the last writer), then migrated to the latest.
 */

const test = anyTest as TestFn;

const PER_CLIENT = '20261203000000_userdata_per_client';

/** Runs the migrations that come before `name`, one at a time, and none after. */
async function migrateUpTo(db: Knex, name: string): Promise<void> {
  for (;;) {
    const [, pending] = (await db.migrate.list()) as [unknown[], string[]];
    if (!pending.length || pending[0]! >= name) return;
    await db.migrate.up();
  }
}

const NOW = Math.floor(Date.now() / 1000);

async function client(db: Knex, clientId: string) {
  await db('clients').insert({ client_id: clientId, name: clientId, type: 'confidential', settings: '{}', disabled: false, created_at: 1, updated_at: 1 });
}

async function grant(db: Knex, sub: string, clientId: string, scope: string, expiresAt: number | null = NOW + 3600) {
  const id = `grant-${sub}-${clientId}-${scope.replace(/ /g, '+')}`;
  await db('oidc_payloads').insert({ model: 'Grant', id, payload: JSON.stringify({ accountId: sub, clientId, openid: { scope } }), account_id: sub, client_id: clientId, expires_at: expiresAt });
}

/** A row as the old schema stored it. */
async function oldDocument(db: Knex, sub: string, document: object, version: number, updatedBy: string | null) {
  await db('userdata').insert({ sub, document: JSON.stringify(document), version, updated_at: 1_700_000_000_000 + version, updated_by_client: updatedBy });
}

async function documentsGoToTheirApps(t: ExecutionContext, kind: DatabaseKind) {
  const database = await createTestDatabase(kind);
  const db = openDatabase(loadConfig({ DATABASE_URL: database.url }).database);
  try {
    await migrateUpTo(db, PER_CLIENT);
    t.true(await db.schema.hasColumn('userdata', 'updated_by_client'), 'the old schema');

    for (const id of ['notes', 'calendar', 'reader', 'openid-only']) await client(db, id);
    // alice: Notes wrote it last.
    await oldDocument(db, 'alice', { theme: 'dark' }, 3, 'notes');
    // bob: no writer recorded; Calendar and Reader could read it (live grants with userdata),
    // openid-only could not (no userdata scope), nor Notes (its grant expired).
    await oldDocument(db, 'bob', { lang: 'fr' }, 2, null);
    await grant(db, 'bob', 'calendar', 'openid userdata');
    await grant(db, 'bob', 'reader', 'openid profile userdata');
    await grant(db, 'bob', 'openid-only', 'openid profile');
    await grant(db, 'bob', 'notes', 'openid userdata', NOW - 60);
    // carol: written by a client deleted since; Notes could read it.
    await oldDocument(db, 'carol', { tz: 'UTC' }, 5, 'deleted-app');
    await grant(db, 'carol', 'notes', 'openid userdata', null);
    // dave and erin: no app can be named, and none could read them.
    await oldDocument(db, 'dave', { legacy: true }, 1, null);
    await oldDocument(db, 'erin', { old: 'writer gone' }, 7, 'deleted-app');
    await grant(db, 'erin', 'openid-only', 'openid');
    // More users than the migration moves at once.
    const many = Array.from({ length: 1203 }, (_, i) => ({ sub: `user-${String(i).padStart(5, '0')}`, document: JSON.stringify({ i }), version: 1, updated_at: 1, updated_by_client: 'calendar' }));
    for (let i = 0; i < many.length; i += 100) await db('userdata').insert(many.slice(i, i + 100));

    await db.migrate.latest();

    t.false(await db.schema.hasColumn('userdata', 'updated_by_client'));
    const rows: Array<{ sub: string; client_id: string; document: string; version: number | string; updated_at: number | string }> = await db('userdata')
      .whereNot('sub', 'like', 'user-%')
      .orderBy(['sub', 'client_id']);
    t.deepEqual(
      rows.map((r) => [r.sub, r.client_id, JSON.parse(r.document), Number(r.version), Number(r.updated_at)]),
      [
        ['alice', 'notes', { theme: 'dark' }, 3, 1_700_000_000_003],
        ['bob', 'calendar', { lang: 'fr' }, 2, 1_700_000_000_002],
        ['bob', 'reader', { lang: 'fr' }, 2, 1_700_000_000_002],
        ['carol', 'notes', { tz: 'UTC' }, 5, 1_700_000_000_005],
        ['dave', UNASSIGNED_OWNER, { legacy: true }, 1, 1_700_000_000_001],
        ['erin', UNASSIGNED_OWNER, { old: 'writer gone' }, 7, 1_700_000_000_007],
      ],
    );
    const moved = await db('userdata').where('sub', 'like', 'user-%').andWhere({ client_id: 'calendar' }).count({ n: '*' }).first();
    t.is(Number(moved!.n), 1203);

    // The service reads each app's own document; another app's is {} at version 0.
    const userdata = new UserdataService(db, 65536);
    t.like(await userdata.get('alice', 'notes'), { document: { theme: 'dark' }, version: 3 });
    t.like(await userdata.get('alice', 'calendar'), { document: {}, version: 0 });
    t.like(await userdata.get('user-01202', 'calendar'), { document: { i: 1202 }, version: 1 });
    // And writes the new way: Notes' first document for bob, Calendar's next version.
    t.like(await userdata.write('bob', 'notes', undefined, () => ({ mine: true })), { version: 1 });
    t.like(await userdata.write('bob', 'calendar', [2], (d) => ({ ...d, more: 1 })), { version: 3, document: { lang: 'fr', more: 1 } });
    t.like(await userdata.get('bob', 'reader'), { document: { lang: 'fr' }, version: 2 });
  } finally {
    await db.destroy();
    await database.drop();
  }
}

test('on SQLite, each document goes to the app that last wrote it, or to the apps that could read it, or is kept unassigned', (t) => documentsGoToTheirApps(t, 'sqlite'));
test('on PostgreSQL, each document goes to the app that last wrote it, or to the apps that could read it, or is kept unassigned', (t) => documentsGoToTheirApps(t, 'pg'));
