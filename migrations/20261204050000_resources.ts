import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // Resource servers (RFC 8707): the APIs a client may ask an access token for, by audience.
  // Their scopes are names of the scopes table, kept as a JSON array (a resource holds a few).
  await knex.schema.createTable('resources', (t) => {
    t.string('audience', 500).primary();
    t.string('name', 200).notNullable();
    t.text('scopes').notNullable();
    t.string('token_format', 10).notNullable();
    t.string('signing_alg', 10).notNullable();
    // Seconds; null: the access token lifetime of the rest of Gatehouse (GATEHOUSE_ACCESS_TOKEN_TTL).
    t.integer('access_token_ttl').nullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('resources');
}
