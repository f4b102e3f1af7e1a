/**
 * Deployment trust boundaries: what Gatehouse believes of the network in front of it.
 *
 * Gatehouse runs behind real appending proxies here (test/support/forwarding-proxy.ts, which
 * appends to X-Forwarded-For as nginx's $proxy_add_x_forwarded_for does), one of them with
 * GATEHOUSE_TRUST_PROXY=1 and two chained with =2. Each person reaches the outermost proxy
 * through a network of their own (a TCP hop connecting from an address of its own, as a NAT
 * does), so every address Gatehouse could pick is distinct: the person's, each proxy's, and
 * whatever the person wrote into X-Forwarded-For.
 *
 * Also here, the other edges of a deployment: HSTS on an https issuer, and the passwords in
 * store URLs, which start-up errors, CLI errors, an import's report and the audit log must not
 * show.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { LOGIN_THROTTLE } from '../src/accounts/throttle.ts';
import { findForm, FORM_CONTENT_TYPE } from './support/http.ts';
import { startForwardingProxy, type ForwardingProxy } from './support/forwarding-proxy.ts';
import { runCli } from './support/cli.ts';
import { copyFixture, loadDotIntoPostgres } from './support/dot.ts';
import { createTestDatabase, startTestGatehouse, type TestGatehouse } from './support/gatehouse.ts';
import { createClient, createUserDirectly, REDIRECT_URI } from './support/relying-party.ts';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.ts';
import { UserAgent, isLoginPage } from './support/user-agent.ts';

const PUBLIC_ISSUER = 'https://id.example.com';
const PASSWORD = 'correct horse battery staple';

/** Where the attacker's and a bystander's requests come from, as the outermost proxy sees them. */
const ATTACKER = '127.0.0.66';
const BYSTANDER = '127.0.0.77';

/** One Gatehouse behind `hops` appending proxies, and the way in for the attacker and a bystander. */
interface Deployment {
  gh: TestGatehouse;
  hops: number;
  clientId: string;
  adminToken: string;
  /** Every line Gatehouse logged (JSON), for what the log says of each request. */
  logLines: Array<Record<string, unknown>>;
  /** The outermost proxy as each person reaches it: http://127.0.0.1:<their own hop's port>. */
  from: Record<typeof ATTACKER | typeof BYSTANDER, string>;
  close(): Promise<void>;
}

async function deployBehindProxies(hops: number): Promise<Deployment> {
  const logLines: Array<Record<string, unknown>> = [];
  const gh = await startTestGatehouse({
    env: { GATEHOUSE_TRUST_PROXY: String(hops), GATEHOUSE_ISSUER: PUBLIC_ISSUER, GATEHOUSE_LOG_LEVEL: 'info' },
    logDestination: {
      write: (chunk: string) =>
        void logLines.push(
          ...chunk
            .split('\n')
            .filter(Boolean)
            .map((line) => JSON.parse(line) as Record<string, unknown>),
        ),
    },
  });
  // Innermost first: each proxy forwards to the one before it, from an address of its own.
  const proxies: ForwardingProxy[] = [];
  let next = gh.url.replace('localhost', '127.0.0.1');
  for (let i = 0; i < hops; i++) {
    const proxy = await startForwardingProxy(next, { connectFrom: `127.0.0.${11 + i}` });
    proxies.push(proxy);
    next = proxy.url;
  }
  const outermost = proxies.at(-1)!;
  const networks: TcpProxy[] = await Promise.all([ATTACKER, BYSTANDER].map((address) => startTcpProxy('127.0.0.1', outermost.port, { connectFrom: address })));
  const [web] = await Promise.all([
    createClient(gh, ['--name', 'Web app', '--type', 'confidential', '--grant', 'authorization_code', '--redirect-uri', REDIRECT_URI]),
    createUserDirectly(gh, 'alice', PASSWORD),
  ]);
  const { token } = await gh.services.adminTokens.create('deploy-bot');
  return {
    gh,
    hops,
    clientId: web!.clientId,
    adminToken: token,
    logLines,
    from: { [ATTACKER]: `http://127.0.0.1:${networks[0]!.port}`, [BYSTANDER]: `http://127.0.0.1:${networks[1]!.port}` },
    async close() {
      for (const n of networks) await n.close();
      for (const p of proxies) await p.close();
      await gh.close();
    },
  };
}

const test = anyTest as TestFn<{ behindOne: Deployment; behindTwo: Deployment }>;

test.before(async (t) => {
  const [behindOne, behindTwo] = await Promise.all([deployBehindProxies(1), deployBehindProxies(2)]);
  t.context = { behindOne, behindTwo };
});

test.after.always(async (t) => {
  await Promise.all([t.context.behindOne?.close(), t.context.behindTwo?.close()]);
});

/** A person opens the app's sign-in link through the proxies and gets the login page. */
async function loginPage(d: Deployment, base: string, agent: UserAgent) {
  const url = `${base}/authorize?${new URLSearchParams({ client_id: d.clientId, redirect_uri: REDIRECT_URI, response_type: 'code', scope: 'openid', state: 'xyz' })}`;
  const page = await agent.open(url);
  if (!isLoginPage(page)) throw new Error(`no login page at ${page.url} (${page.status}):\n${page.html.slice(0, 300)}`);
  return page;
}

/** Posts the login form with these credentials and X-Forwarded-For, without following the answer. */
async function signIn(agent: UserAgent, page: Awaited<ReturnType<typeof loginPage>>, username: string, password: string, forwardedFor: string) {
  const form = findForm(page, { action: /\/login$/ });
  form.fields.set('username', username);
  form.fields.set('password', password);
  const res = await agent.request(form.target, { method: 'POST', headers: { ...FORM_CONTENT_TYPE, 'x-forwarded-for': forwardedFor }, body: form.fields });
  return { status: res.status, location: res.headers.get('location'), html: await res.text() };
}

const deployments = (t: ExecutionContext<{ behindOne: Deployment; behindTwo: Deployment }>) => [t.context.behindOne, t.context.behindTwo];

for (const which of ['behindOne', 'behindTwo'] as const) {
  const hops = which === 'behindOne' ? 1 : 2;

  test(`behind ${hops} appending prox${hops === 1 ? 'y' : 'ies'}, wrong sign-ins that each forge another X-Forwarded-For still lock the address they come from, and only it`, async (t) => {
    const d = t.context[which];
    const attacker = new UserAgent();
    const page = await loginPage(d, d.from[ATTACKER], attacker);
    // Each guess claims to come from another address, and guesses another username so that no
    // username lock gets in the way: only the address counter can stop them.
    for (let i = 0; i < LOGIN_THROTTLE.lockAddressAfter; i++) {
      const guess = await signIn(attacker, page, `guess-${i}`, 'wrong password', `203.0.113.${i}, 127.0.0.1`);
      t.not(guess.status, 303, `guess ${i} signed in`);
    }
    const locked = await signIn(attacker, page, 'alice', PASSWORD, '198.51.100.1');
    t.is(locked.status, 429, 'the address the guesses came from is locked, whatever they wrote into X-Forwarded-For');
    t.regex(locked.html, /locked|too many/i);

    const bystander = new UserAgent();
    const answer = await signIn(bystander, await loginPage(d, d.from[BYSTANDER], bystander), 'alice', PASSWORD, `203.0.113.1`);
    t.is(answer.status, 303, 'a person at another address, behind the same proxies, still signs in');
  });

  test(`behind ${hops} appending prox${hops === 1 ? 'y' : 'ies'}, an admin change is audited and logged from the address it came from, not the one the client wrote`, async (t) => {
    const d = t.context[which];
    const res = await fetch(`${d.from[ATTACKER]}/admin/api/clients`, {
      method: 'POST',
      headers: { authorization: `Bearer ${d.adminToken}`, 'content-type': 'application/json', 'x-forwarded-for': '10.66.66.66' },
      body: JSON.stringify({ client_name: `Audited ${hops}`, grant_types: ['client_credentials'] }),
    });
    t.is(res.status, 201);
    const { client_id } = (await res.json()) as { client_id: string };
    const entries = await d.gh.services.audit.list();
    const entry = entries.find((e) => e.target.includes(client_id));
    t.truthy(entry, 'the change is in the audit log');
    t.is(entry!.address, ATTACKER);
    const logged = d.logLines.filter((l) => l.event === 'admin.change' && typeof l.target === 'string' && l.target.includes(client_id));
    t.deepEqual(
      logged.map((l) => l.ip),
      [ATTACKER],
      'the security event names the same address',
    );
    const requestLine = d.logLines.find((l) => l.msg === 'request' && l.method === 'POST' && l.path === '/admin/api/clients' && l.status === 201);
    t.is(requestLine?.ip, ATTACKER, 'the request log line too');
  });
}

test('behind the proxy, discovery lists https endpoints on the host the person asked for', async (t) => {
  for (const d of deployments(t)) {
    const res = await fetch(`${d.from[BYSTANDER]}/.well-known/openid-configuration`);
    const discovery = (await res.json()) as { issuer: string; token_endpoint: string };
    t.is(discovery.issuer, PUBLIC_ISSUER);
    t.regex(discovery.token_endpoint, /^https:\/\/127\.0\.0\.1:\d+\/token$/, `behind ${d.hops}`);
  }
});

test('a client that writes X-Forwarded-Proto: http in front of a proxy that appends to it does not turn the endpoints into http', async (t) => {
  const d = t.context.behindOne;
  const appending = await startForwardingProxy(d.gh.url.replace('localhost', '127.0.0.1'), { connectFrom: '127.0.0.21', appendForwardedProto: true });
  t.teardown(() => appending.close());
  const res = await fetch(`${appending.url}/.well-known/openid-configuration`, { headers: { 'x-forwarded-proto': 'http' } });
  const discovery = (await res.json()) as { token_endpoint: string };
  t.regex(discovery.token_endpoint, /^https:\/\//);
});

test('every answer of an https issuer carries Strict-Transport-Security, its pages and errors included', async (t) => {
  const d = t.context.behindOne;
  for (const path of ['/.well-known/openid-configuration', '/admin/login', '/no-such-page', '/healthz']) {
    const res = await fetch(`${d.from[BYSTANDER]}${path}`);
    t.is(res.headers.get('strict-transport-security'), 'max-age=31536000', path);
  }
});

test('an http issuer sends no Strict-Transport-Security, and GATEHOUSE_HSTS_MAX_AGE sets or turns it off', async (t) => {
  const [plain, shortLived, off] = await Promise.all([
    startTestGatehouse(),
    startTestGatehouse({ env: { GATEHOUSE_ISSUER: PUBLIC_ISSUER, GATEHOUSE_HSTS_MAX_AGE: '600' } }),
    startTestGatehouse({ env: { GATEHOUSE_ISSUER: PUBLIC_ISSUER, GATEHOUSE_HSTS_MAX_AGE: '0' } }),
  ]);
  t.teardown(() => Promise.all([plain.close(), shortLived.close(), off.close()]));
  const hsts = async (gh: TestGatehouse) => (await fetch(`${gh.url}/.well-known/openid-configuration`)).headers.get('strict-transport-security');
  t.is(await hsts(plain), null);
  t.is(await hsts(shortLived), 'max-age=600');
  t.is(await hsts(off), null);
});

const root = fileURLToPath(new URL('..', import.meta.url));

/** Runs `npm start`'s server or the CLI as an operator does, and returns everything it printed. */
function run(entry: string[], env: Record<string, string>): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import=tsx', ...entry], {
      cwd: root,
      env: { ...process.env, GATEHOUSE_WORKERS: '1', PORT: '0', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, output }));
  });
}

test('an unreachable database named with its passwords (user:pass@ and ?password=) stops start-up and the CLI without printing them', async (t) => {
  const urls = [
    'postgres://gatehouse:Pa55-userinfo@127.0.0.1:1/gatehouse',
    'postgres://127.0.0.1:1/gatehouse?user=gatehouse&password=Pa55-query&sslmode=disable',
  ];
  for (const url of urls) {
    const secret = url.includes('Pa55-query') ? 'Pa55-query' : 'Pa55-userinfo';
    const server = await run(['src/server.ts'], { DATABASE_URL: url, GATEHOUSE_LOG_LEVEL: 'info' });
    t.is(server.code, 1, server.output);
    t.regex(server.output, /could not start: the database at postgres:\/\/.*127\.0\.0\.1:1\/gatehouse.* is unreachable/);
    t.false(server.output.includes(secret), `the server printed the password:\n${server.output}`);
    const cli = await run(['src/cli/index.ts', 'clients', 'list'], { DATABASE_URL: url });
    t.is(cli.code, 1, cli.output);
    t.false(cli.output.includes(secret), `the CLI printed the password:\n${cli.output}`);
  }
});

test('an import from a postgres:// URL with passwords in it names the source without them, in its report and in the audit log', async (t) => {
  const dot = await createTestDatabase('pg');
  t.teardown(() => dot.drop());
  await loadDotIntoPostgres(copyFixture('dot17.sqlite3'), dot.url);
  // The test PostgreSQL trusts local connections: any password is accepted, and must not show.
  const url = new URL(dot.url);
  url.password = 'Pa55-userinfo';
  url.searchParams.set('password', 'Pa55-query');
  const gh = await startTestGatehouse();
  t.teardown(() => gh.close());
  const imported = await runCli(['import', 'dot', '--from', url.toString()], gh.env);
  t.is(imported.code, 0, imported.stderr);
  t.regex(imported.stdout, /Import from postgres:\/\/[^:]+:\*\*\*@127\.0\.0\.1:5432\/\w+\?password=\*\*\*/);
  const audited = (await gh.services.audit.list()).find((e) => e.action === 'import.dot');
  t.truthy(audited);
  t.regex(audited!.target, /^source:postgres:\/\/[^:]+:\*\*\*@/);
  for (const text of [imported.stdout, imported.stderr, JSON.stringify(audited)]) {
    t.false(text.includes('Pa55'), text);
  }
});
