import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // A person's passkeys (WebAuthn credentials). Only public keys: a copy of the table signs no
  // one in. The counter and backup flags are kept so a cloned authenticator shows (the counter
  // goes back) and a synced passkey is told from a device-bound one (amr swk vs hwk).
  await knex.schema.createTable('passkeys', (t) => {
    t.increments('id').primary();
    t.string('user_id', 255).notNullable().index('passkeys_user');
    t.string('credential_id', 1400).notNullable().unique('passkeys_credential');
    t.text('public_key').notNullable();
    t.bigInteger('counter').notNullable().defaultTo(0);
    t.string('transports', 200).notNullable().defaultTo('');
    t.boolean('backup_eligible').notNullable().defaultTo(false);
    t.boolean('backed_up').notNullable().defaultTo(false);
    t.string('name', 100).notNullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('last_used_at').nullable();
  });

  // The challenges handed to browsers, each used once within minutes. Stored as SHA-256, bound to
  // what asked for it (an account-page session for a registration, an interaction for a sign-in).
  await knex.schema.createTable('passkey_challenges', (t) => {
    t.string('id', 64).primary();
    t.string('purpose', 16).notNullable();
    t.string('bound_to', 64).notNullable();
    t.bigInteger('expires_at').notNullable().index('passkey_challenges_expiry');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('passkey_challenges');
  await knex.schema.dropTable('passkeys');
}
