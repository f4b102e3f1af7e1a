import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('admin_tokens', (t) => {
    t.string('id', 64).primary();
    t.string('name', 200).notNullable();
    t.text('secret_hash').notNullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('last_used_at').nullable();
    t.bigInteger('revoked_at').nullable();
  });

  // Signed-in operators of the admin pages; in the database so any process serves them.
  await knex.schema.createTable('admin_sessions', (t) => {
    t.string('id', 64).primary();
    t.string('user_id', 255).notNullable();
    t.string('csrf', 64).notNullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('last_seen_at').notNullable();
  });

  // Who changed what, when and from where. Never a secret.
  await knex.schema.createTable('audit_log', (t) => {
    t.increments('id').primary();
    t.bigInteger('at').notNullable().index('audit_log_at');
    t.string('actor', 300).notNullable();
    t.string('action', 100).notNullable();
    t.string('target', 300).notNullable();
    t.text('details').notNullable();
    t.string('address', 100).nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('audit_log');
  await knex.schema.dropTable('admin_sessions');
  await knex.schema.dropTable('admin_tokens');
}
