import type { Knex } from 'knex';

/**
 * Back-channel logout tokens still to be delivered (src/logout/backchannel-deliveries.ts), so a
 * restart does not lose them: what the token is rebuilt from (the app, the person, the session
 * id the app knows), never the signed token itself, which is short-lived and a credential of
 * sorts. `due_at` is when the next attempt may be made; `claimed_until` is the lease of the
 * process sending it now (one conditional update claims it, so two processes never send the
 * same delivery at once), after which a process that died while sending is taken over.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('backchannel_deliveries', (t) => {
    t.string('id', 32).primary();
    t.string('client_id', 255).notNullable();
    t.string('sub', 255).notNullable();
    t.string('sid', 255).nullable();
    t.integer('attempts').notNullable();
    t.bigInteger('due_at').notNullable();
    t.bigInteger('claimed_until').nullable();
    t.bigInteger('created_at').notNullable();
    t.index(['due_at'], 'backchannel_deliveries_due_at');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('backchannel_deliveries');
}
