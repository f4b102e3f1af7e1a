import type { Knex } from 'knex';

/**
 * Single-use links mailed to people (issue 16): a password reset (30 minutes) and an address
 * verification (24 hours). Only the SHA-256 of a link's token is stored, so a copy of the
 * database holds no link that works. `email` is the address a verification link confirms (a
 * changed address is used only once confirmed).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('account_links', (t) => {
    t.string('token_hash', 64).primary();
    t.string('purpose', 16).notNullable();
    t.string('user_id', 255).notNullable().references('id').inTable('users').onDelete('CASCADE');
    t.string('email', 254).nullable();
    t.bigInteger('expires_at').notNullable();
    t.bigInteger('used_at').nullable();
    t.bigInteger('created_at').notNullable();
    t.index(['user_id', 'purpose'], 'account_links_user_purpose');
    t.index(['expires_at'], 'account_links_expires_at');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('account_links');
}
