import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('users', (t) => {
    // The OpenID Connect `sub`: stable for the life of the user, never reused.
    t.string('id', 255).primary();
    t.string('username', 150).notNullable();
    t.string('username_key', 150).notNullable().unique();
    t.string('email', 254).notNullable();
    t.boolean('email_verified').notNullable().defaultTo(false);
    t.string('name', 300).notNullable().defaultTo('');
    t.text('password_hash').nullable();
    t.boolean('must_reset_password').notNullable().defaultTo(false);
    t.boolean('is_admin').notNullable().defaultTo(false);
    t.boolean('disabled').notNullable().defaultTo(false);
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
  });

  // Failed sign-ins per username and per address, shared by every process.
  await knex.schema.createTable('login_failures', (t) => {
    t.string('subject', 400).primary();
    t.integer('failures').notNullable();
    t.bigInteger('window_started_at').notNullable();
    t.bigInteger('locked_until').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('login_failures');
  await knex.schema.dropTable('users');
}
