import type { Knex } from 'knex';

/**
 * Reservations of one subject asked for in the same turn are granted by one statement (see
 * CredentialThrottle in src/accounts/throttle.ts): `granted` is how many attempts the last such
 * statement let through, written by it so that it can answer with it (RETURNING sees the row as
 * it leaves the statement, not as it found it). Nothing reads it otherwise.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('login_failures', (t) => {
    t.integer('granted').notNullable().defaultTo(0);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('login_failures', (t) => {
    t.dropColumn('granted');
  });
}
