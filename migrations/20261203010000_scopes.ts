import type { Knex } from 'knex';

const BUILT_IN = new Set(['openid', 'profile', 'email', 'offline_access', 'userdata']);
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]{1,100}$/;
// The words the consent page used for the default GATEHOUSE_API_SCOPES before scopes were rows.
const WORDS: Record<string, string> = { read: 'Read data on your behalf', write: 'Change data on your behalf' };

export async function up(knex: Knex): Promise<void> {
  // API scopes (the built-in OpenID Connect ones and userdata are not rows): what clients may be
  // given, and the words the consent page shows for each.
  await knex.schema.createTable('scopes', (t) => {
    t.string('name', 100).primary();
    t.string('description', 200).notNullable();
    t.bigInteger('created_at').notNullable();
  });
  // Names GATEHOUSE_API_SCOPES has seeded once: a seeded scope an operator deleted stays deleted
  // across restarts, while a name newly added to the variable is still seeded.
  await knex.schema.createTable('scope_seeds', (t) => {
    t.string('name', 100).primary();
    t.bigInteger('seeded_at').notNullable();
  });

  // Until now the scopes lived in GATEHOUSE_API_SCOPES alone: every API scope a client holds
  // becomes a row, so no client stops working when the server next starts without the variable.
  const now = Date.now();
  const inUse = new Set<string>();
  for (const { settings } of await knex('clients').select('settings')) {
    const parsed = JSON.parse(String(settings)) as { scope?: unknown };
    if (!Array.isArray(parsed.scope)) continue;
    for (const name of parsed.scope) if (typeof name === 'string' && !BUILT_IN.has(name) && SCOPE_TOKEN.test(name)) inUse.add(name);
  }
  for (const name of [...inUse].sort()) {
    await knex('scopes').insert({ name, description: WORDS[name] ?? `Use the "${name}" permission on your behalf`, created_at: now });
  }
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('scope_seeds');
  await knex.schema.dropTable('scopes');
}
