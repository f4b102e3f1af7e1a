import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { ConfigError, loadConfig } from '../src/config.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

test('with no environment at all, Gatehouse serves http://localhost:3000 from a SQLite file under ./data', (t) => {
  const config = loadConfig({});
  t.is(config.port, 3000);
  t.is(config.issuer, 'http://localhost:3000');
  t.deepEqual(config.database, { client: 'sqlite', filename: path.resolve('data', 'gatehouse.sqlite3'), synchronous: 'normal' });
  t.is(config.dataDir, path.resolve('data'));
  t.false(config.trustProxy);
  t.deepEqual(config.apiScopes, ['read', 'write']);
  t.is(config.redisUrl, undefined);
  t.is(config.cookieKeys, undefined);
});

test('the default issuer follows PORT', (t) => {
  const config = loadConfig({ PORT: '8080' });
  t.is(config.port, 8080);
  t.is(config.issuer, 'http://localhost:8080');
});

test('an empty variable counts as unset', (t) => {
  const config = loadConfig({ PORT: '', GATEHOUSE_ISSUER: '', DATABASE_URL: '', GATEHOUSE_TRUST_PROXY: '' });
  t.is(config.port, 3000);
  t.is(config.issuer, 'http://localhost:3000');
  t.is(config.database.client, 'sqlite');
  t.false(config.trustProxy);
});

test('the issuer is taken exactly as given', (t) => {
  t.is(loadConfig({ GATEHOUSE_ISSUER: 'https://id.example.com' }).issuer, 'https://id.example.com');
  t.is(loadConfig({ GATEHOUSE_ISSUER: 'https://example.com/tenants/a' }).issuer, 'https://example.com/tenants/a');
});

test('DATABASE_URL selects PostgreSQL or a SQLite file', (t) => {
  t.deepEqual(loadConfig({ DATABASE_URL: 'postgres://gh@db.internal:5432/gatehouse' }).database, {
    client: 'pg',
    connectionString: 'postgres://gh@db.internal:5432/gatehouse',
  });
  t.is(loadConfig({ DATABASE_URL: 'postgresql://db/gatehouse' }).database.client, 'pg');
  t.deepEqual(loadConfig({ DATABASE_URL: 'sqlite:/var/lib/gatehouse/db.sqlite3' }).database, {
    client: 'sqlite',
    filename: '/var/lib/gatehouse/db.sqlite3',
    synchronous: 'normal',
  });
  t.like(loadConfig({ GATEHOUSE_SQLITE_SYNCHRONOUS: 'full' }).database, { client: 'sqlite', synchronous: 'full' });
  t.throws(() => loadConfig({ GATEHOUSE_SQLITE_SYNCHRONOUS: 'off' }), { message: /^invalid GATEHOUSE_SQLITE_SYNCHRONOUS: must be normal or full$/ });
});

test('REDIS_URL, cookie keys, proxy trust and API scopes are read when given', (t) => {
  const key1 = 'k'.repeat(32);
  const key2 = 'z'.repeat(40);
  const config = loadConfig({
    REDIS_URL: 'rediss://cache.internal:6380',
    GATEHOUSE_COOKIE_KEYS: `${key1}, ${key2}`,
    GATEHOUSE_TRUST_PROXY: 'true',
    GATEHOUSE_API_SCOPES: 'orders:read orders:write,reports',
  });
  t.is(config.redisUrl, 'rediss://cache.internal:6380');
  t.deepEqual(config.cookieKeys, [key1, key2]);
  t.true(config.trustProxy);
  t.deepEqual(config.apiScopes, ['orders:read', 'orders:write', 'reports']);
  for (const yes of ['1', 'yes', 'TRUE']) t.true(loadConfig({ GATEHOUSE_TRUST_PROXY: yes }).trustProxy, yes);
  for (const no of ['0', 'no', 'false']) t.false(loadConfig({ GATEHOUSE_TRUST_PROXY: no }).trustProxy, no);
});

test('GATEHOUSE_TRUST_PROXY counts the proxies in front: true is one, a number is that many, false none', (t) => {
  const hops = (value: string) => loadConfig({ GATEHOUSE_TRUST_PROXY: value }).proxyHops;
  t.is(hops('true'), 1);
  t.is(hops('1'), 1);
  t.is(hops('2'), 2);
  t.is(hops('10'), 10);
  t.is(hops('false'), 0);
  t.is(hops('0'), 0);
  t.is(loadConfig({}).proxyHops, 0);
  t.true(loadConfig({ GATEHOUSE_TRUST_PROXY: '3' }).trustProxy);
  for (const bad of ['11', '-1', '1.5', 'two']) {
    t.throws(() => loadConfig({ GATEHOUSE_TRUST_PROXY: bad }), { message: /^invalid GATEHOUSE_TRUST_PROXY: must be true, false, or the number of proxies in front \(0 to 10\)$/ }, bad);
  }
});

test('HSTS lasts a year unless GATEHOUSE_HSTS_MAX_AGE says otherwise; 0 turns it off', (t) => {
  t.is(loadConfig({}).hstsMaxAge, 31536000);
  t.is(loadConfig({ GATEHOUSE_HSTS_MAX_AGE: '0' }).hstsMaxAge, 0);
  t.is(loadConfig({ GATEHOUSE_HSTS_MAX_AGE: '600' }).hstsMaxAge, 600);
  t.throws(() => loadConfig({ GATEHOUSE_HSTS_MAX_AGE: '-5' }), { message: /^invalid GATEHOUSE_HSTS_MAX_AGE: must be 0 \(off\) or more$/ });
});

const badValues: [variable: string, value: string][] = [
  ['PORT', 'abc'],
  ['PORT', '70000'],
  ['PORT', '80.5'],
  ['GATEHOUSE_ISSUER', 'not-a-url'],
  ['GATEHOUSE_ISSUER', 'https://id.example.com/?tenant=a'],
  ['GATEHOUSE_ISSUER', 'https://id.example.com/#top'],
  ['GATEHOUSE_ISSUER', 'https://id.example.com?'],
  ['GATEHOUSE_ISSUER', 'https://id.example.com#'],
  ['GATEHOUSE_ISSUER', 'ftp://id.example.com'],
  ['DATABASE_URL', 'mysql://x'],
  ['REDIS_URL', 'http://x'],
  ['GATEHOUSE_TRUST_PROXY', 'maybe'],
  ['GATEHOUSE_TRUST_PROXY', '11'],
  ['GATEHOUSE_HSTS_MAX_AGE', 'a year'],
  ['GATEHOUSE_COOKIE_KEYS', 'short'],
  ['GATEHOUSE_API_SCOPES', 'openid'],
];

for (const [variable, value] of badValues) {
  test(`${variable}=${value} stops start-up with one line naming ${variable}`, (t) => {
    const err = t.throws(() => loadConfig({ [variable]: value }), { instanceOf: ConfigError });
    t.regex(err!.message, new RegExp(`\\b${variable}\\b`));
    t.false(err!.message.includes('\n'), `more than one line: ${err!.message}`);
    // The variable at fault is named, not another one.
    for (const [other] of badValues) if (other !== variable) t.false(err!.message.includes(other), err!.message);
  });
}

test('a good variable next to a bad one does not hide the bad one', (t) => {
  const err = t.throws(() => loadConfig({ PORT: '8080', GATEHOUSE_TRUST_PROXY: 'sometimes' }), { instanceOf: ConfigError });
  t.regex(err!.message, /GATEHOUSE_TRUST_PROXY/);
});

/** Lines a Node runtime other than the one oidc-provider recommends prints on import; not Gatehouse's output. */
const runtimeWarning = /^oidc-provider WARNING: Unsupported runtime/;

test('the server started with PORT=abc exits at once with one line naming PORT and no stack trace', async (t) => {
  const { code, signal, stdout, stderr } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import=tsx', 'src/server.ts'], {
      cwd: root,
      env: { ...process.env, PORT: 'abc', DATABASE_URL: '', GATEHOUSE_ISSUER: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    // A server that started despite the bad PORT would run until killed here. Generous,
    // because a loaded machine takes seconds only to load the modules.
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (c, sig) => {
      clearTimeout(timer);
      resolve({ code: c, signal: sig, stdout: out, stderr: err });
    });
  });
  t.is(signal, null, 'the server kept running and had to be killed');
  t.not(code, 0);
  t.not(code, null);
  const lines = stderr.split('\n').filter((l) => l.trim() && !runtimeWarning.test(l));
  t.is(lines.length, 1, `stderr was:\n${stderr}`);
  t.regex(lines[0]!, /\bPORT\b/);
  t.notRegex(stderr, /\n\s+at /, 'a stack trace was printed');
  t.notRegex(stdout, /serving/, 'the server announced itself although it did not start');
});
