import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test from 'ava';
import knex from 'knex';
import { loadConfig } from '../src/config.ts';
import { openServices } from '../src/services.ts';
import { createTestDatabase, freePort } from './support/gatehouse.ts';
import { spawnGatehouse } from './support/processes.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

test('npm start runs the compiled server on plain node, over a database the TypeScript sources migrated', async (t) => {
  // `npm ci` compiles already (prepare); this brings dist/ up to date with the sources under test.
  await promisify(execFile)('npm', ['run', '-s', 'compile'], { cwd: root });
  const database = await createTestDatabase('sqlite');
  t.teardown(() => database.drop());
  const services = await openServices(loadConfig({ DATABASE_URL: database.url }));
  await services.close();

  const port = await freePort();
  const gh = await spawnGatehouse({ PORT: String(port), DATABASE_URL: database.url }, { compiled: true });
  t.teardown(() => gh.stop());
  t.is(gh.child.spawnargs.includes('--import=tsx'), false);
  const discovery = (await (await fetch(`${gh.url}/.well-known/openid-configuration`)).json()) as { issuer: string; token_endpoint: string };
  t.is(discovery.issuer, `http://localhost:${port}`);
  const login = await fetch(`${gh.url}/assets/gatehouse.css`);
  t.is(login.status, 200, 'the compiled server finds its stylesheet');
  t.is((await fetch(`${gh.url}/admin/login`)).status, 200, 'and its page templates');

  // Both forms record the migrations under the same names: neither sees the other's as unknown.
  const db = knex({ client: 'better-sqlite3', connection: { filename: database.url.slice('sqlite:'.length) }, useNullAsDefault: true });
  t.teardown(() => db.destroy());
  const names = (await db('knex_migrations').select('name')).map((r: { name: string }) => r.name);
  t.true(names.length >= 5);
  t.true(names.every((n) => n.endsWith('.ts')), names.join(', '));
  t.is(new Set(names).size, names.length, 'a migration ran twice');
});
