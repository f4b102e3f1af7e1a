import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // People signed in to their own account page (/account); like admin_sessions, the id is the
  // SHA-256 of the cookie value, so a copy of the table opens no session.
  await knex.schema.createTable('account_sessions', (t) => {
    t.string('id', 64).primary();
    t.string('user_id', 255).notNullable().index('account_sessions_user');
    t.string('csrf', 64).notNullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('last_seen_at').notNullable();
  });

  // The recent security events a person sees on /account (sign-ins, failures, changes), a few
  // dozen per person at most (src/account/events.ts trims older ones). Never a secret.
  await knex.schema.createTable('account_events', (t) => {
    t.increments('id').primary();
    t.string('user_id', 255).notNullable();
    t.string('kind', 64).notNullable();
    t.string('address', 100).nullable();
    t.bigInteger('at').notNullable();
    t.index(['user_id', 'at'], 'account_events_user_at');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('account_events');
  await knex.schema.dropTable('account_sessions');
}
