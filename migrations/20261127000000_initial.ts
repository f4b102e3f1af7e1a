import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // Every oidc-provider artifact stored in the database: one row per (model, id), the
  // payload as JSON text, and the fields the adapter contract looks up by in their own
  // indexed columns so no lookup scans JSON.
  await knex.schema.createTable('oidc_payloads', (t) => {
    t.string('model', 64).notNullable();
    t.string('id', 255).notNullable();
    t.text('payload').notNullable();
    t.string('grant_id', 255).nullable();
    t.string('uid', 255).nullable();
    t.string('user_code', 255).nullable();
    t.string('account_id', 255).nullable();
    t.string('client_id', 255).nullable();
    t.bigInteger('expires_at').nullable();
    t.bigInteger('consumed_at').nullable();
    t.primary(['model', 'id']);
    // Partial indexes: most rows (client-credentials tokens, say) have no grant, uid, user code
    // or account, and a token insert should not pay to index nothing.
    t.index(['grant_id'], 'oidc_payloads_grant_id', { predicate: knex.whereNotNull('grant_id') });
    t.index(['model', 'uid'], 'oidc_payloads_model_uid', { predicate: knex.whereNotNull('uid') });
    t.index(['model', 'user_code'], 'oidc_payloads_model_user_code', { predicate: knex.whereNotNull('user_code') });
    t.index(['expires_at'], 'oidc_payloads_expires_at');
    // A user's grants and sessions: remembered consent, bearer logout, disabling a user.
    t.index(['account_id', 'model'], 'oidc_payloads_account_model', { predicate: knex.whereNotNull('account_id') });
  });

  await knex.schema.createTable('clients', (t) => {
    t.string('client_id', 255).primary();
    t.string('name', 255).notNullable();
    t.string('type', 32).notNullable();
    t.text('secret_hash').nullable();
    t.text('settings').notNullable();
    t.boolean('disabled').notNullable().defaultTo(false);
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
  });

  await knex.schema.createTable('signing_keys', (t) => {
    t.string('kid', 255).primary();
    t.string('alg', 16).notNullable();
    t.text('private_jwk').notNullable();
    t.string('status', 16).notNullable();
    t.bigInteger('created_at').notNullable();
    t.bigInteger('rotated_at').nullable();
  });

  // Server-side secrets Gatehouse generates once (cookie keys, the client-secret HMAC key).
  await knex.schema.createTable('settings', (t) => {
    t.string('name', 255).primary();
    t.text('value').notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('settings');
  await knex.schema.dropTable('signing_keys');
  await knex.schema.dropTable('clients');
  await knex.schema.dropTable('oidc_payloads');
}
