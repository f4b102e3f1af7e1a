import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // One JSON document per user; `version` backs ETags and compare-and-set writes.
  await knex.schema.createTable('userdata', (t) => {
    t.string('sub', 255).primary();
    t.text('document').notNullable();
    t.bigInteger('version').notNullable();
    t.bigInteger('updated_at').notNullable();
    t.string('updated_by_client', 255).nullable();
  });

  // API keys: a public id to find the row, and an HMAC of the secret part.
  await knex.schema.createTable('api_keys', (t) => {
    t.string('id', 64).primary();
    t.string('client_id', 255).notNullable().index('api_keys_client_id');
    t.text('secret_hash').notNullable();
    t.text('scopes').notNullable();
    t.string('name', 200).notNullable().defaultTo('');
    t.bigInteger('created_at').notNullable();
    t.bigInteger('last_used_at').nullable();
    t.bigInteger('revoked_at').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('api_keys');
  await knex.schema.dropTable('userdata');
}
