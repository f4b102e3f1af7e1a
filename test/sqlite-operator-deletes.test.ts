import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import anyTest, { type TestFn } from 'ava';
import { CLI_ACTOR } from '../src/admin/audit.ts';
import { adminApi, type AdminApi } from './support/admin-api.ts';
import { startTestGatehouse, type TestGatehouse } from './support/gatehouse.ts';

/**
 * Deleting a scope, a resource or a client on SQLite while another process writes to the same
 * file: each delete waits for the write lock and succeeds (no 500 "database is locked"), and
 * neither its rows nor the other process's are lost. A transaction that reads before it writes
 * fails at once in that case (SQLITE_BUSY: busy_timeout does not apply to it), which is what
 * these deletes did.
 */

interface Context {
  gh: TestGatehouse;
  api: AdminApi;
}

const test = anyTest as TestFn<Context>;

test.before(async (t) => {
  const gh = await startTestGatehouse();
  const { token } = await gh.services.admin.createAdminToken(CLI_ACTOR, 'deletes');
  t.context = { gh, api: adminApi(gh, token) };
});

test.after.always(async (t) => t.context.gh?.close());

/**
 * Another process (a second Gatehouse, a CLI run) writing to the database as fast as it can: one
 * scope row per write, a millisecond apart. Prints how many it wrote when its stdin closes.
 */
function concurrentWriter(filename: string, prefix: string): { proc: ChildProcess; stop: () => Promise<number> } {
  const script = `
    const Database = require('better-sqlite3');
    const db = new Database(process.argv[1]);
    db.pragma('journal_mode = WAL');
    db.pragma('busy_timeout = 5000');
    const insert = db.prepare('insert into scopes (name, description, created_at) values (?, ?, ?)');
    let written = 0;
    let stopped = false;
    process.stdin.on('end', () => { stopped = true; });
    process.stdin.resume();
    const write = () => {
      if (stopped) { process.stdout.write(String(written)); db.close(); return; }
      insert.run(process.argv[2] + written, 'written by another process', Date.now());
      written++;
      setTimeout(write, 1);
    };
    process.stdout.write('ready\\n');
    write();
  `;
  const proc = spawn(process.execPath, ['-e', script, filename, prefix], { cwd: process.cwd(), stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  proc.stdout!.on('data', (chunk) => (out += chunk));
  const stop = () =>
    new Promise<number>((resolve, reject) => {
      proc.once('exit', (code) => (code === 0 ? resolve(Number(out.replace('ready\n', ''))) : reject(new Error(`writer exited ${code}`))));
      proc.stdin!.end();
    });
  return { proc, stop };
}

async function writerReady(proc: ChildProcess): Promise<void> {
  await new Promise<void>((resolve) => proc.stdout!.once('data', () => resolve()));
}

test('scopes, resources and clients deleted while another process writes: every delete succeeds and no row is lost', async (t) => {
  const { gh, api } = t.context;
  const tag = randomBytes(3).toString('hex');
  const n = 8;
  const scopes = Array.from({ length: n }, (_, i) => `race-${tag}-${i}`);
  const audiences = Array.from({ length: n }, (_, i) => `https://api-${tag}-${i}.example`);
  // The clients first: a new client gets the API scopes that exist, and these scopes must be free.
  const clientIds: string[] = [];
  for (let i = 0; i < n; i++) {
    const { client } = await gh.services.clients.create({ name: `raced ${i}`, type: 'confidential', grantTypes: ['client_credentials'] });
    clientIds.push(client.clientId);
  }
  for (const name of scopes) await gh.services.scopes.create({ name, description: 'raced' });
  // A scope a resource accepts cannot go: its delete must still be refused (409), not lost.
  await gh.services.scopes.create({ name: `race-${tag}-kept`, description: 'accepted by a resource' });
  for (const audience of audiences) await gh.services.resources.create({ audience, scopes: [`race-${tag}-kept`] });
  await gh.services.resources.create({ audience: `https://kept-${tag}.example`, scopes: [`race-${tag}-kept`] });

  const writer = concurrentWriter(gh.config.database.client === 'sqlite' ? gh.config.database.filename : '', `other-${tag}-`);
  await writerReady(writer.proc);
  const answers = await Promise.all([
    ...scopes.map((name) => api('DELETE', `/scopes/${name}`)),
    ...audiences.map((audience) => api('DELETE', `/resources/${encodeURIComponent(audience)}`)),
    ...clientIds.map((id) => api('DELETE', `/clients/${id}`)),
    api('DELETE', `/scopes/race-${tag}-kept`),
  ]);
  const written = await writer.stop();

  const refused = answers.pop()!;
  t.is(refused.status, 409, refused.text);
  t.deepEqual(
    answers.map((a) => a.status).filter((s) => s !== 204),
    [],
    answers
      .filter((a) => a.status !== 204)
      .map((a) => a.text)
      .join('\n'),
  );
  t.true(written > 0, 'the other process wrote while the deletes ran');
  const db = gh.services.db;
  t.is(Number((await db('scopes').where('name', 'like', `other-${tag}-%`).count({ n: '*' }))[0]!.n), written, 'every row the other process wrote is there');
  t.deepEqual(await db('scopes').whereIn('name', scopes).pluck('name'), []);
  t.deepEqual(await db('resources').whereIn('audience', audiences).pluck('audience'), []);
  t.deepEqual(await db('clients').whereIn('client_id', clientIds).pluck('client_id'), []);
  t.deepEqual(
    await db('scopes')
      .where({ name: `race-${tag}-kept` })
      .pluck('name'),
    [`race-${tag}-kept`],
    'the refused delete left its scope',
  );
});
