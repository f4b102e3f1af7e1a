import type { Knex } from 'knex';

/** A row imported before sources were recorded: any DOT source may go on updating it. */
const ANY_SOURCE = '*';

export async function up(knex: Knex): Promise<void> {
  // Which users and clients a DOT import created, and from which source: an import may only
  // touch its own rows, never a client or user made in Gatehouse (nor by another source).
  await knex.schema.createTable('dot_import_rows', (t) => {
    t.string('kind', 10).notNullable(); // 'user' | 'client'
    t.string('key', 255).notNullable(); // the user's id (DOT's pk) or the client_id
    t.string('source', 1000).notNullable();
    t.bigInteger('imported_at').notNullable();
    t.primary(['kind', 'key']);
  });

  // Databases imported into before: their imported rows are recognised as such, so a re-run
  // does not refuse them as Gatehouse's own. Only where an import ran at all; users made in
  // Gatehouse have UUID ids (DOT's are integers), clients made in Gatehouse are audited.
  if (!(await knex('audit_log').first('id').where({ action: 'import.dot' }))) return;
  const now = Date.now();
  const users = (await knex('users').select('id')).map((r: { id: string }) => String(r.id)).filter((id) => /^\d+$/.test(id));
  const audited = new Set((await knex('audit_log').select('target').where({ action: 'client.create' })).map((r: { target: string }) => r.target));
  const clients = (await knex('clients').select('client_id'))
    .map((r: { client_id: string }) => String(r.client_id))
    .filter((id) => !audited.has(`client:${id}`));
  const rows = [...users.map((key) => ({ kind: 'user', key })), ...clients.map((key) => ({ kind: 'client', key }))];
  for (let i = 0; i < rows.length; i += 200) {
    await knex('dot_import_rows').insert(rows.slice(i, i + 200).map((r) => ({ ...r, source: ANY_SOURCE, imported_at: now })));
  }
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('dot_import_rows');
}
