import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { createTestDatabase } from './support/gatehouse.ts';
import { runCli } from './support/cli.ts';

const migrationNames = fs
  .readdirSync(new URL('../migrations', import.meta.url))
  .filter((f) => f.endsWith('.ts'))
  .map((f) => path.basename(f, '.ts'))
  .sort();

const lines = (text: string) => text.split('\n').filter((l) => l.trim() && !/^oidc-provider WARNING/.test(l));

for (const kind of ['sqlite', 'pg'] as const) {
  test(`migrate names each migration it applied to a new ${kind === 'pg' ? 'PostgreSQL' : 'SQLite'} database, then says it is already up to date`, async (t) => {
    const database = await createTestDatabase(kind);
    try {
      const env = { DATABASE_URL: database.url };
      const first = await runCli(['migrate'], env);
      t.is(first.code, 0, first.stderr);
      t.deepEqual(lines(first.stdout), [`applied ${migrationNames.length} migrations:`, ...migrationNames.map((n) => `  ${n}`)]);
      const again = await runCli(['migrate'], env);
      t.is(again.code, 0, again.stderr);
      t.deepEqual(lines(again.stdout), ['database is already up to date']);
      const json = await runCli(['migrate', '--json'], env);
      t.deepEqual(json.json(), { migrated: true, applied: [] });
    } finally {
      await database.drop();
    }
  });
}

test('migrate --json lists what it applied', async (t) => {
  const database = await createTestDatabase('sqlite');
  try {
    const res = await runCli(['migrate', '--json'], { DATABASE_URL: database.url });
    t.is(res.code, 0, res.stderr);
    t.deepEqual(res.json(), { migrated: true, applied: migrationNames });
  } finally {
    await database.drop();
  }
});
