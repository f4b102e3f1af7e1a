/**
 * The CLI as a newcomer meets it: --help and -h on every command, and usage errors (a mistyped
 * option or command) that show the command's own usage with a suggestion and exit 2, before
 * any database is opened.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { runCli, type CliResult } from './support/cli.ts';
import { inParallel } from './support/faults.ts';
import { didYouMean, usageFor } from '../src/cli/usage.ts';

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-cli-usage-'));
/** No command here may create anything in it: help and usage errors never open the database. */
const env = { GATEHOUSE_DATA_DIR: path.join(dataDir, 'data'), DATABASE_URL: '' };

test.after.always(() => fs.rmSync(dataDir, { recursive: true, force: true }));

const lines = (text: string) => text.split('\n').filter((l) => l.trim() && !/^oidc-provider WARNING/.test(l));

function assertNothingCreated(t: { false(v: boolean, m?: string): void }) {
  t.false(fs.existsSync(env.GATEHOUSE_DATA_DIR), 'the data directory (and its database) was created');
}

/** A usage error: exit 2, nothing on stdout, `error: <message>` and then the usage of `shows`. */
function assertUsageError(t: any, res: CliResult, message: RegExp, shows: RegExp) {
  t.is(res.code, 2, res.stderr);
  t.is(res.stdout, '');
  const [first, ...usage] = lines(res.stderr);
  t.regex(first!, /^error: /);
  t.regex(first!, message);
  t.notRegex(res.stderr, /place it at the end of the command|ERR_PARSE_ARGS|\n\s+at /, 'no parseArgs advice, no stack trace');
  t.regex(usage[0] ?? '', /^usage: npm run -s cli -- /);
  t.regex(usage.join('\n'), shows);
}

test('`clients create --grants` says "did you mean --grant?" and shows how to create a client, exit 2', async (t) => {
  const res = await runCli(['clients', 'create', '--name', 'Flask app', '--type', 'confidential', '--grants', 'authorization_code'], env);
  assertUsageError(t, res, /^error: unknown option --grants \(did you mean --grant\?\)$/, /^ {2}clients create --name N --type confidential\|public$/m);
  t.notRegex(res.stderr, /users create/, 'only the command\'s own usage');
  assertNothingCreated(t);
});

for (const [args, suggestion] of [
  [['clients', 'create', '--redirect-uris', 'https://a.example/cb'], '--redirect-uri'],
  [['clients', 'update', 'ID', '--scopes', 'openid'], '--scope'],
  [['users', 'create', '--user-name', 'ann'], '--username'],
  [['api-keys', 'create', '--clients', 'X'], '--client'],
  [['import', 'dot', '--dryrun'], '--dry-run'],
  [['keys', 'list', '--jsno'], '--json'],
] as const) {
  test(`${args.join(' ')} suggests ${suggestion}, exit 2`, async (t) => {
    const res = await runCli([...args], env);
    assertUsageError(t, res, new RegExp(`unknown option ${args.find((a) => a.startsWith('--'))} \\(did you mean ${suggestion}\\?\\)$`), new RegExp(`^ {2}${args[0]} ${args[1]}`, 'm'));
    assertNothingCreated(t);
  });
}

test('an option another subcommand takes is refused, not ignored: clients create --search, clients show --name', async (t) => {
  const create = await runCli(['clients', 'create', '--name', 'App', '--type', 'public', '--search', 'App'], env);
  assertUsageError(t, create, /^error: unknown option --search$/, /^ {2}clients create --name N/m);
  const show = await runCli(['clients', 'show', 'some-id', '--name', 'Renamed'], env);
  assertUsageError(t, show, /^error: unknown option --name$/, /^ {2}clients show ID$/m);
  const list = await runCli(['clients', 'list', '--disable'], env);
  assertUsageError(t, list, /^error: unknown option --disable$/, /^ {2}clients list \[--search TEXT\]/m);
  assertNothingCreated(t);
});

test('an option nothing resembles is named without a guess', async (t) => {
  const res = await runCli(['clients', 'list', '--colour', 'blue'], env);
  assertUsageError(t, res, /^error: unknown option --colour$/, /^ {2}clients list \[--search TEXT\]/m);
});

test('a mistyped command or subcommand gets a suggestion and the usage to pick from, exit 2', async (t) => {
  const command = await runCli(['client', 'list'], env);
  assertUsageError(t, command, /^error: unknown command client \(did you mean clients\?\)$/, /^ {2}migrate/m);
  const sub = await runCli(['clients', 'creat'], env);
  assertUsageError(t, sub, /^error: unknown clients command creat \(did you mean create\?\)$/, /^ {2}clients rotate-secret ID$/m);
  const missing = await runCli(['users'], env);
  assertUsageError(t, missing, /^error: users needs a command: create, list/, /^ {2}users create/m);
  assertNothingCreated(t);
});

test('an option without its value, a value on a flag, and a stray argument are usage errors, exit 2', async (t) => {
  assertUsageError(t, await runCli(['users', 'create', '--username'], env), /^error: --username needs a value$/, /^ {2}users create/m);
  assertUsageError(t, await runCli(['clients', 'create', '--name', '--type', 'public'], env), /^error: --name needs a value; for a value starting with "-", write --name=VALUE$/, /^ {2}clients create/m);
  assertUsageError(t, await runCli(['clients', 'list', '--json=yes'], env), /^error: --json takes no value$/, /^ {2}clients list/m);
  assertUsageError(t, await runCli(['migrate', 'now'], env), /^error: unexpected argument now$/, /^ {2}migrate/m);
  assertUsageError(t, await runCli(['migrate', '--force'], env), /^error: unknown option --force$/, /^ {2}migrate/m);
  assertNothingCreated(t);
});

test('with --json a usage error is one JSON line on stderr, exit 2', async (t) => {
  const res = await runCli(['clients', 'create', '--grants', 'x', '--json'], env);
  t.is(res.code, 2);
  t.is(res.stdout, '');
  t.deepEqual(lines(res.stderr).map((l) => JSON.parse(l)), [{ error: 'usage', error_description: 'unknown option --grants (did you mean --grant?)' }]);
});

test('`clients create --help` and `-h` print how to create a client, on stdout, exit 0', async (t) => {
  for (const flag of ['--help', '-h']) {
    const res = await runCli(['clients', 'create', flag], env);
    t.is(res.code, 0, res.stderr);
    t.is(lines(res.stderr).length, 0, res.stderr);
    const out = lines(res.stdout);
    t.is(out[0], 'usage: npm run -s cli -- clients create [options] [--json]');
    t.regex(res.stdout, /--grant authorization_code\|refresh_token\|client_credentials \(repeatable\)/);
    t.regex(res.stdout, /--auth-method client_secret_basic\|client_secret_post\|none/);
    t.notRegex(res.stdout, /clients delete/);
  }
  assertNothingCreated(t);
});

test('`clients --help` lists every clients command; `--help` and `help` list every command', async (t) => {
  const clients = await runCli(['clients', '--help'], env);
  t.is(clients.code, 0);
  t.is(lines(clients.stdout)[0], 'usage: npm run -s cli -- clients <command> [options] [--json]');
  for (const sub of ['create', 'list', 'show ID', 'update ID', 'delete ID', 'rotate-secret ID']) t.regex(clients.stdout, new RegExp(`^ {2}clients ${sub}`, 'm'));
  t.notRegex(clients.stdout, /^ {2}users /m);
  for (const args of [['--help'], ['-h'], ['help']]) {
    const all = await runCli(args, env);
    t.is(all.code, 0, args.join(' '));
    for (const command of ['migrate', 'clients create', 'users create', 'api-keys create', 'admin-tokens create', 'import dot', 'keys rotate', 'scopes create']) {
      t.regex(all.stdout, new RegExp(`^ {2}${command}`, 'm'), `${args.join(' ')} lists ${command}`);
    }
  }
  const helpOn = await runCli(['help', 'users', 'remove-admin'], env);
  t.is(helpOn.code, 0);
  t.regex(helpOn.stdout, /^ {2}users grant-admin ID\|USERNAME \| remove-admin ID\|USERNAME$/m);
  assertNothingCreated(t);
});

test('every command and subcommand answers --help with usage that names it, exit 0', async (t) => {
  const all = (await runCli(['--help'], env)).stdout;
  const entries = [...all.matchAll(/^ {2}([a-z-]+)(?: ([a-z-]+))?/gm)].map((m) => [m[1]!, m[2]] as const);
  t.true(entries.length >= 20, `only ${entries.length} commands in the usage`);
  const results = await inParallel(entries, 4, ([command, sub]) => runCli([command, ...(sub ? [sub] : []), '--help'], env));
  entries.forEach(([command, sub], i) => {
    const res = results[i]!;
    t.is(res.code, 0, `${command} ${sub ?? ''} --help: ${res.stderr}`);
    t.regex(res.stdout, new RegExp(`^ {2}${command}${sub ? ` ${sub}` : ''}`, 'm'), `${command} ${sub ?? ''} --help`);
  });
  assertNothingCreated(t);
});

test('without a command the CLI prints its usage on stderr and exits 2', async (t) => {
  const res = await runCli([], env);
  t.is(res.code, 2);
  t.is(res.stdout, '');
  t.regex(res.stderr, /^usage: npm run -s cli -- <command>/m);
});

test('the suggestion picks the closest option, and none when nothing is close', (t) => {
  const options = ['--grant', '--name', '--type', '--redirect-uri', '--json', '--help'];
  t.is(didYouMean('--grants', options), ' (did you mean --grant?)');
  t.is(didYouMean('--Name', options), ' (did you mean --name?)');
  t.is(didYouMean('--redirect', options), ' (did you mean --redirect-uri?)');
  t.is(didYouMean('--colour', options), '');
  t.is(didYouMean('--x', options), '');
});

test('a command\'s usage is its own lines of the usage text, with their continuation lines', (t) => {
  const usage = 'usage: x\n\n  a one --p P\n         [--q]\n  a two\n  b one | three ID';
  t.is(usageFor(usage, 'a', 'one'), 'usage: npm run -s cli -- a one [options] [--json]\n\n  a one --p P\n         [--q]');
  t.is(usageFor(usage, 'a'), 'usage: npm run -s cli -- a <command> [options] [--json]\n\n  a one --p P\n         [--q]\n  a two');
  t.is(usageFor(usage, 'b', 'three'), 'usage: npm run -s cli -- b three [options] [--json]\n\n  b one | three ID');
  t.is(usageFor(usage, 'c'), usage, 'a command not in the text: everything');
  t.is(usageFor(usage, 'a', 'four'), usageFor(usage, 'a'), 'a subcommand not in the text: the command');
});
