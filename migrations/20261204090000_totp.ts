import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // A person's authenticator app (TOTP, RFC 6238): one per person. The secret is sealed with
  // AtRest (Gatehouse must read it back to check codes). confirmed_at stays null until the
  // first right code, so a half-finished setup never asks for codes at sign-in. last_step is
  // the last time step a code was accepted for: a code is not accepted twice in its window.
  await knex.schema.createTable('user_totp', (t) => {
    t.string('user_id', 255).primary();
    t.text('secret_sealed').notNullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('confirmed_at').nullable();
    t.bigInteger('last_step').nullable();
  });

  // Recovery codes, stored as their SHA-256 (each is 50 random bits or more, shown once); used_at
  // set once, atomically, so each works a single time.
  await knex.schema.createTable('user_recovery_codes', (t) => {
    t.string('user_id', 255).notNullable();
    t.string('code_hash', 64).notNullable();
    t.bigInteger('used_at').nullable();
    t.primary(['user_id', 'code_hash']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('user_recovery_codes');
  await knex.schema.dropTable('user_totp');
}
