import fs from 'node:fs';
import anyTest, { type TestFn } from 'ava';
import { runCli } from './support/cli.ts';
import type { TestGatehouse } from './support/gatehouse.ts';
import { authorizationRequest, callbackParams, type oidc, REDIRECT_URI, relyingParty, signInAndAllow, startLoopbackGatehouse } from './support/relying-party.ts';
import { isLoginPage, UserAgent } from './support/user-agent.ts';

interface Context {
  gh: TestGatehouse;
  rp: oidc.Configuration;
}

const test = anyTest as TestFn<Context>;

test.before(async (t) => {
  const gh = await startLoopbackGatehouse();
  // The app people sign in to (not what this file is about: made in-process, without a CLI run).
  const { client, clientSecret } = await gh.services.clients.create({ name: 'Web app', type: 'confidential', grantTypes: ['authorization_code'], redirectUris: [REDIRECT_URI] });
  t.context = { gh, rp: await relyingParty(gh, { clientId: client.clientId, clientSecret: clientSecret! }, 'basic') };
});

test.after.always(async (t) => t.context.gh?.close());

/**
 * Runs `users …` as an operator would. At most four CLI processes at a time: each is a fresh
 * Node with TypeScript loading, and a dozen at once would starve the server under test.
 */
let running = 0;
const waiting: (() => void)[] = [];
async function users(t: { context: Context }, args: string[], stdin?: string) {
  if (running >= 4) await new Promise<void>((resolve) => waiting.push(resolve));
  running++;
  try {
    return await runCli(['users', ...args], t.context.gh.env, stdin);
  } finally {
    running--;
    waiting.shift()?.();
  }
}

/** A user made through the accounts service the CLI calls, for tests about other commands. */
async function existingUser(t: { context: Context }, username: string, password: string): Promise<string> {
  const user = await t.context.gh.services.accounts.create({ username, email: `${username}@example.com`, password });
  return user.id;
}

/** Is there a user by this username? (Read from the store, without another CLI process.) */
async function exists(t: { context: Context }, username: string): Promise<boolean> {
  return Boolean(await t.context.gh.services.db('users').where({ username_key: username.toLowerCase() }).first('id'));
}

/** The error a CLI run printed: the one line after the runtime's warnings. */
const errorLine = (stderr: string) => stderr.split('\n').filter((l) => l.trim() && !/oidc-provider WARNING/.test(l)).join('\n');

/** Does this username and password sign in to the web app? */
async function canSignIn(t: { context: Context }, username: string, password: string): Promise<boolean> {
  const pending = await authorizationRequest(t.context.rp);
  const page = await signInAndAllow(new UserAgent([REDIRECT_URI]), pending.url, username, password);
  if (callbackParams(page)?.get('code')) return true;
  if (isLoginPage(page) && page.status === 401) return false;
  throw new Error(`neither signed in nor refused: ${page.url} (${page.status})\n${page.html.slice(0, 300)}`);
}

test('users create prints the new user as JSON, with its id, and never the password', async (t) => {
  const password = 'a long and secret passphrase';
  const res = await users(t, ['create', '--username', 'carol', '--email', 'carol@example.com', '--name', 'Carol', '--password-stdin', '--json'], `${password}\n`);
  t.is(res.code, 0, res.stderr);
  const json = res.json();
  t.regex(json.id, /^[\w-]{8,}$/);
  t.like(json, { username: 'carol', email: 'carol@example.com', name: 'Carol', disabled: false, admin: false });
  t.false(res.stdout.includes(password));
  t.false(res.stderr.includes(password));
  t.false(JSON.stringify(json).toLowerCase().includes('hash'));
});

test('users create without --password-stdin and without a terminal fails with a clear message', async (t) => {
  const res = await users(t, ['create', '--username', 'dave', '--email', 'dave@example.com', '--json'], 'piped but not asked for\n');
  t.not(res.code, 0);
  t.is(res.stdout, '');
  t.regex(errorLine(res.stderr), /--password-stdin/);
  t.regex(errorLine(res.stderr), /terminal/);
  t.false(await exists(t, 'dave'), 'no user was created');
});

test('a username that exists already, in any case, is refused', async (t) => {
  await existingUser(t, 'Erin', 'password one');
  for (const username of ['eRIN']) {
    const again = await users(t, ['create', '--username', username, '--email', 'other@example.com', '--password-stdin', '--json'], 'password two\n');
    t.is(again.code, 1, username);
    t.is(again.stdout, '');
    const error = JSON.parse(errorLine(again.stderr));
    t.regex(error.error_description, /username/, username);
    t.regex(error.error_description, /taken/, username);
  }
  t.is((await t.context.gh.services.db('users').where('username_key', 'erin').select('id')).length, 1);
});

test('an invalid email address is refused, naming the email', async (t) => {
  for (const email of ['not-an-email']) {
    const res = await users(t, ['create', '--username', 'frank', '--email', email, '--password-stdin'], 'password for frank\n');
    t.is(res.code, 1, email);
    t.regex(errorLine(res.stderr), /email/, email);
  }
  t.false(await exists(t, 'frank'));
});

test('a password shorter than 8 characters is refused', async (t) => {
  const res = await users(t, ['create', '--username', 'grace', '--email', 'grace@example.com', '--password-stdin', '--json'], 'short\n');
  t.is(res.code, 1);
  const error = JSON.parse(errorLine(res.stderr));
  t.regex(error.error_description, /password/);
  t.regex(error.error_description, /8/);
  t.false(await exists(t, 'grace'));
});

test('users list lists the users and users show finds one by username', async (t) => {
  const id = await existingUser(t, 'heidi', 'password for heidi');

  const list = await users(t, ['list', '--json']);
  t.is(list.code, 0, list.stderr);
  t.true(list.json<{ id: string; username: string }[]>().some((u) => u.id === id && u.username === 'heidi'));

  // By username, which compares case-insensitively.
  const byName = await users(t, ['show', 'HEIDI', '--json']);
  t.is(byName.code, 0, byName.stderr);
  t.like(byName.json(), { id, username: 'heidi', email: 'heidi@example.com', disabled: false });

  const missing = await users(t, ['show', 'nobody-here', '--json']);
  t.is(missing.code, 1);
  t.is(JSON.parse(errorLine(missing.stderr)).error, 'not_found');
});

test('users set-password: the old password stops working and the new one signs in', async (t) => {
  await existingUser(t, 'ivan', 'the old password');
  t.true(await canSignIn(t, 'ivan', 'the old password'));

  const changed = await users(t, ['set-password', 'ivan', '--password-stdin', '--json'], 'the new password\n');
  t.is(changed.code, 0, changed.stderr);
  t.false(changed.stdout.includes('the new password'));

  t.false(await canSignIn(t, 'ivan', 'the old password'));
  t.true(await canSignIn(t, 'ivan', 'the new password'));

  const tooShort = await users(t, ['set-password', 'ivan', '--password-stdin'], 'short\n');
  t.is(tooShort.code, 1);
  t.regex(errorLine(tooShort.stderr), /password/);
  t.true(await canSignIn(t, 'ivan', 'the new password'), 'a refused change changes nothing');
});

test('users disable refuses sign-in and users enable allows it again', async (t) => {
  await existingUser(t, 'judy', 'password for judy');

  const disabled = await users(t, ['disable', 'judy', '--json']);
  t.is(disabled.code, 0, disabled.stderr);
  t.true(disabled.json().disabled);
  t.false(await canSignIn(t, 'judy', 'password for judy'));

  const enabled = await users(t, ['enable', 'judy', '--json']);
  t.is(enabled.code, 0, enabled.stderr);
  t.false(enabled.json().disabled);
  t.true(await canSignIn(t, 'judy', 'password for judy'));
});

test('the users table stores an scrypt hash, never the password', async (t) => {
  const { gh } = t.context;
  const password = 'unmistakable-password-7d1f';
  const created = await users(t, ['create', '--username', 'mallory', '--email', 'mallory@example.com', '--password-stdin', '--json'], `${password}\n`);
  t.is(created.code, 0, created.stderr);

  const row = await gh.services.db('users').where({ id: created.json().id }).first();
  t.true(row.password_hash.startsWith('scrypt$'), row.password_hash);
  t.false(row.password_hash.includes(password));
  t.false(Object.values(row).some((v) => typeof v === 'string' && v.includes(password)));

  // Nowhere in the database files either.
  const db = gh.config.database;
  t.is(db.client, 'sqlite');
  if (db.client === 'sqlite') {
    for (const file of [db.filename, `${db.filename}-wal`]) {
      if (fs.existsSync(file)) t.false(fs.readFileSync(file).includes(password), file);
    }
  }

  // The same password twice gives two different hashes (salted).
  const twinRow = await gh.services.db('users').where({ id: await existingUser(t, 'mallory2', password) }).first();
  t.not(twinRow.password_hash, row.password_hash);
});
