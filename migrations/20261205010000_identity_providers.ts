import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // Upstream identity providers a person may sign in with (OpenID Connect issuers, GitHub). The
  // client secret Gatehouse presents upstream is sealed (src/settings/at-rest.ts): a copy of the
  // table signs in nowhere.
  await knex.schema.createTable('identity_providers', (t) => {
    t.string('name', 40).primary();
    // 'oidc' (discovery, ID token) or 'github' (OAuth 2.0 and its API).
    t.string('protocol', 10).notNullable();
    t.string('preset', 60).nullable();
    t.string('issuer', 500).notNullable();
    t.string('client_id', 500).notNullable();
    t.text('client_secret_sealed').notNullable();
    t.string('scope', 500).notNullable();
    t.string('button', 100).notNullable();
    // The operator's order of the buttons on the sign-in page (smallest first).
    t.integer('position').notNullable();
    t.boolean('enabled').notNullable().defaultTo(true);
    t.boolean('create_accounts').notNullable().defaultTo(true);
    t.bigInteger('created_at').notNullable();
    t.bigInteger('updated_at').notNullable();
  });

  // Who a person is at an upstream (its subject, never its email) and which account that is here.
  await knex.schema.createTable('linked_identities', (t) => {
    t.string('idp_name', 40).notNullable().references('name').inTable('identity_providers').onDelete('CASCADE');
    t.string('subject', 255).notNullable();
    t.string('user_id', 255).notNullable().references('id').inTable('users').onDelete('CASCADE').index('linked_identities_user');
    // What the upstream said when the link was made, shown on /account.
    t.string('email', 254).notNullable().defaultTo('');
    t.bigInteger('created_at').notNullable();
    t.bigInteger('last_used_at').nullable();
    t.primary(['idp_name', 'subject']);
  });

  // A client may show only some providers on its sign-in page; a client without rows shows all.
  await knex.schema.createTable('client_identity_providers', (t) => {
    t.string('client_id', 255).notNullable().references('client_id').inTable('clients').onDelete('CASCADE');
    t.string('idp_name', 40).notNullable().references('name').inTable('identity_providers').onDelete('CASCADE');
    t.primary(['client_id', 'idp_name']);
  });

  // A sign-in on its way through an upstream: the state (stored as SHA-256) and, sealed under it,
  // the nonce and PKCE verifier, bound to one interaction, used once within minutes. A pending
  // link (the upstream identity waiting for the password of the account it would join) is kept
  // the same way under its own random token.
  await knex.schema.createTable('idp_flows', (t) => {
    t.string('id', 64).primary();
    t.string('purpose', 10).notNullable();
    t.string('interaction_uid', 64).notNullable();
    t.string('idp_name', 40).notNullable();
    t.text('sealed').notNullable();
    t.bigInteger('expires_at').notNullable().index('idp_flows_expiry');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('idp_flows');
  await knex.schema.dropTable('client_identity_providers');
  await knex.schema.dropTable('linked_identities');
  await knex.schema.dropTable('identity_providers');
}
