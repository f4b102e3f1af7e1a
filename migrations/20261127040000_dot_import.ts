import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // DOT refresh tokens once imported, by SHA-256: a later import must not bring back one that
  // was used, revoked or expired in Gatehouse since (those rows are gone from oidc_payloads).
  await knex.schema.createTable('dot_imported_refresh_tokens', (t) => {
    t.string('token_sha256', 64).primary();
    t.bigInteger('imported_at').notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('dot_imported_refresh_tokens');
}
