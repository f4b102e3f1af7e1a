import type { Knex } from 'knex';

/**
 * The owner of a document no client can be named for (see below). No Gatehouse-made client id
 * has parentheses; the admin shows these documents as "no app" and can clear them.
 * The same value as UNASSIGNED_OWNER in src/userdata/service.ts (a migration keeps its own copy:
 * it must do tomorrow what it did today, whatever the code becomes).
 */
const UNASSIGNED = '(unassigned)';

interface SharedRow {
  sub: string;
  document: string;
  version: number | string;
  updated_at: number | string;
  updated_by_client: string | null;
}

/**
 * /userdata documents belong to an app: one per (sub, client_id) instead of one per sub shared
 * by every client. Each existing document goes to the client that last wrote it. A document
 * whose writer is unknown (null) or deleted since goes, as a copy each, to the clients that
 * could read it until now: those with a live grant for that user that includes the userdata
 * scope. When there is none, it is kept under the owner "(unassigned)", for an operator to see
 * and clear in the admin: nothing is dropped. Versions are kept, so an ETag an app holds stays
 * valid for its own document.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('userdata_per_client', (t) => {
    t.string('sub', 255).notNullable();
    t.string('client_id', 255).notNullable();
    t.text('document').notNullable();
    t.bigInteger('version').notNullable();
    t.bigInteger('updated_at').notNullable();
    // Named (the string form: Knex's SQLite compiler takes no options object here), so the key
    // is not called after the temporary table name once renamed.
    t.primary(['sub', 'client_id'], 'userdata_sub_client_id_pkey');
    // Deleting a client deletes its documents.
    t.index(['client_id'], 'userdata_client_id');
  });

  const clients = new Set((await knex('clients').select('client_id')).map((r: { client_id: string }) => r.client_id));
  const now = Math.floor(Date.now() / 1000);
  /** What only this migration reads of oidc-provider's grants, as they were stored when it was written. */
  const readersOf = async (sub: string): Promise<string[]> => {
    const grants: Array<{ client_id: string; payload: string }> = await knex('oidc_payloads')
      .select('client_id', 'payload')
      .where({ account_id: sub, model: 'Grant' })
      .andWhere((w) => w.whereNull('expires_at').orWhere('expires_at', '>', now));
    const readers = grants.filter((g) => clients.has(g.client_id) && ((JSON.parse(g.payload) as { openid?: { scope?: string } }).openid?.scope ?? '').split(' ').includes('userdata'));
    return [...new Set(readers.map((g) => g.client_id))].sort();
  };

  let after = '';
  for (;;) {
    const rows: SharedRow[] = await knex('userdata').select('*').where('sub', '>', after).orderBy('sub').limit(500);
    if (!rows.length) break;
    after = rows.at(-1)!.sub;
    const moved = [];
    for (const row of rows) {
      const writer = row.updated_by_client;
      const owners = writer && clients.has(writer) ? [writer] : await readersOf(row.sub);
      for (const clientId of owners.length ? owners : [UNASSIGNED]) {
        moved.push({ sub: row.sub, client_id: clientId, document: row.document, version: row.version, updated_at: row.updated_at });
      }
    }
    for (let i = 0; i < moved.length; i += 100) await knex('userdata_per_client').insert(moved.slice(i, i + 100));
  }

  await knex.schema.dropTable('userdata');
  await knex.schema.renameTable('userdata_per_client', 'userdata');
}

/** Back to one document per user: the one written last wins (the others are lost). */
export async function down(knex: Knex): Promise<void> {
  await knex.schema.createTable('userdata_shared', (t) => {
    t.string('sub', 255).notNullable();
    t.text('document').notNullable();
    t.bigInteger('version').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.string('updated_by_client', 255).nullable();
    t.primary(['sub'], 'userdata_shared_sub_pkey');
  });
  const rows: Array<{ sub: string; client_id: string; document: string; version: number; updated_at: number }> = await knex('userdata').select('*').orderBy([{ column: 'sub' }, { column: 'updated_at', order: 'desc' }]);
  const latest = new Map<string, (typeof rows)[number]>();
  for (const row of rows) if (!latest.has(row.sub)) latest.set(row.sub, row);
  const kept = [...latest.values()].map((r) => ({ sub: r.sub, document: r.document, version: r.version, updated_at: r.updated_at, updated_by_client: r.client_id === UNASSIGNED ? null : r.client_id }));
  for (let i = 0; i < kept.length; i += 100) await knex('userdata_shared').insert(kept.slice(i, i + 100));
  await knex.schema.dropTable('userdata');
  await knex.schema.renameTable('userdata_shared', 'userdata');
}
