import type { Knex } from 'knex';

/**
 * Counters reserve an attempt before it is checked (issue 15): `pending` counts attempts being
 * checked, `not_before` is the backoff of a subject that answers "try again in N seconds". Subjects are now bounded
 * (long parts hashed), so the rows of the old unbounded form are dropped: they are only counts.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('login_failures', (t) => {
    t.bigInteger('not_before').nullable();
    // Attempts reserved and still being checked: they count against a limit until they end.
    t.integer('pending').notNullable().defaultTo(0);
  });
  await knex('login_failures').whereRaw('length(subject) > 250').delete();
  // The sweep deletes by window; an index keeps it from reading the whole table.
  await knex.schema.alterTable('login_failures', (t) => {
    t.index(['window_started_at'], 'login_failures_window_started_at');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('login_failures', (t) => {
    t.dropIndex(['window_started_at'], 'login_failures_window_started_at');
    t.dropColumn('not_before');
    t.dropColumn('pending');
  });
}
