import test from 'ava';
import { startLoopbackGatehouse, createUserDirectly, relyingParty, authorizationRequest, signInAndAllow, redeem, oidc, REDIRECT_URI, type RegisteredClient } from './support/relying-party.ts';
import { startTestGatehouse, freePort, createTestDatabase, type TestGatehouse } from './support/gatehouse.ts';
import { UserAgent } from './support/user-agent.ts';
import { clientCredentialsToken } from './support/admin-api.ts';
import { basicAuth } from './support/http.ts';
import { waitFor } from './support/wait.ts';
import { userdata } from './support/userdata.ts';
import { spawnGatehouse } from './support/processes.ts';
import { CLI_ACTOR } from '../src/admin/audit.ts';

/** Log lines as the operator's log shipper gets them, parsed. */
class CapturedLog {
  readonly raw: string[] = [];
  write(chunk: string): void {
    this.raw.push(...chunk.split('\n').filter(Boolean));
  }
  get lines(): Array<Record<string, any>> {
    return this.raw.map((l) => JSON.parse(l) as Record<string, any>);
  }
  events(name: string) {
    return this.lines.filter((l) => l.event === name);
  }
}

interface Run {
  gh: TestGatehouse;
  log: CapturedLog;
  /** Every credential the run used or was given, each at least 6 characters long. */
  secrets: Map<string, string>;
  requestIds: string[];
  forwardedId: string;
}

const PASSWORD = 'correct horse battery staple 42';
const WRONG_PASSWORD = 'Tr0ub4dor&3-not-it';

/**
 * One full run, as an operator's first day would go: a service gets a token, a person signs in,
 * refreshes, reads userinfo, stores data, is signed out; somebody guesses passwords and client
 * secrets; an operator works through the admin API. All at the most verbose log level.
 */
async function fullRun(): Promise<Run> {
  const log = new CapturedLog();
  const gh = await startLoopbackGatehouse({ env: { GATEHOUSE_LOG_LEVEL: 'debug' }, logDestination: log });
  const secrets = new Map<string, string>();
  const keep = (what: string, value: string | undefined) => {
    if (value && value.length >= 6) secrets.set(`${what} ${secrets.size}`, value);
  };
  const requestIds: string[] = [];
  const track = (res: Response | { headers: Headers }) => requestIds.push(res.headers.get('x-request-id') ?? 'missing');

  keep('password', PASSWORD);
  keep('wrong password', WRONG_PASSWORD);
  const sub = await createUserDirectly(gh, 'olivia', PASSWORD);

  // A confidential service with client credentials, and a web app with the code flow.
  const service = await gh.services.admin.createClient(CLI_ACTOR, { name: 'Billing', type: 'confidential', grantTypes: ['client_credentials'] });
  const app = await gh.services.admin.createClient(CLI_ACTOR, {
    name: 'Wiki',
    type: 'confidential',
    grantTypes: ['authorization_code', 'refresh_token'],
    redirectUris: [REDIRECT_URI],
    scope: ['openid', 'profile', 'email', 'offline_access', 'userdata'],
  });
  keep('service secret', service.clientSecret!);
  keep('app secret', app.clientSecret!);
  const serviceClient: RegisteredClient = { clientId: service.client.clientId, clientSecret: service.clientSecret! };
  const appClient: RegisteredClient = { clientId: app.client.clientId, clientSecret: app.clientSecret! };

  const cc = await clientCredentialsToken(gh, serviceClient.clientId, serviceClient.clientSecret!);
  keep('client credentials token', cc.body.access_token);
  const introspected = await fetch(`${gh.url}/introspect`, {
    method: 'POST',
    headers: { authorization: basicAuth(serviceClient.clientId, serviceClient.clientSecret!), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: cc.body.access_token }),
  });
  track(introspected);
  const revoked = await fetch(`${gh.url}/revoke`, {
    method: 'POST',
    headers: { authorization: basicAuth(serviceClient.clientId, serviceClient.clientSecret!), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: cc.body.access_token }),
  });
  track(revoked);

  // Somebody guesses a client secret, with Basic and in the body.
  const guessed = 'guessed-secret-' + 'x'.repeat(20);
  keep('guessed secret', guessed);
  track(await fetch(`${gh.url}/token`, { method: 'POST', headers: { authorization: basicAuth(serviceClient.clientId, guessed), 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials' }));
  track(await fetch(`${gh.url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'client_credentials', client_id: serviceClient.clientId, client_secret: guessed }) }));

  // A person signs in to the web app: one wrong password first.
  const rp = await relyingParty(gh, appClient, 'basic');
  const pending = await authorizationRequest(rp, { scope: 'openid profile email offline_access userdata', prompt: 'consent' });
  keep('code verifier', pending.verifier);
  const agent = new UserAgent([REDIRECT_URI]);
  const loginPage = await agent.open(pending.url);
  const refused = await agent.submit(loginPage, /\/login$/, { username: 'olivia', password: WRONG_PASSWORD });
  let landed = await agent.submit(refused, /\/login$/, { username: 'olivia', password: PASSWORD });
  if (/name="decision"/.test(landed.html)) landed = await agent.submit(landed, /\/consent$/, { decision: 'allow' });
  keep('authorization code', new URL(landed.url).searchParams.get('code') ?? undefined);
  for (const cookie of agent.cookieValues()) keep('cookie', cookie);
  const tokens = await redeem(rp, landed, pending);
  keep('access token', tokens.access_token);
  keep('refresh token', tokens.refresh_token);
  keep('id token', tokens.id_token);
  await oidc.fetchUserInfo(rp, tokens.access_token, oidc.skipSubjectCheck);
  const refreshed = await oidc.refreshTokenGrant(rp, tokens.refresh_token!);
  keep('rotated access token', refreshed.access_token);
  keep('rotated refresh token', refreshed.refresh_token);
  // The old refresh token again: reuse, which revokes the grant.
  await oidc.refreshTokenGrant(rp, tokens.refresh_token!).catch(() => undefined);

  // Somebody else tries six passwords for one username: failures, then a lockout.
  const mallory = new UserAgent([REDIRECT_URI]);
  let page = await mallory.open((await authorizationRequest(rp)).url);
  for (let i = 0; i < 6; i++) page = await mallory.submit(page, /\/login$/, { username: 'victor', password: `${WRONG_PASSWORD}-${i}` });
  for (let i = 0; i < 6; i++) keep('guessed password', `${WRONG_PASSWORD}-${i}`);

  // The app stores data for the person with an API key; a wrong key is refused.
  const apiKey = await gh.services.admin.createApiKey(CLI_ACTOR, appClient.clientId, ['userdata:read', 'userdata:write']);
  keep('api key', apiKey.key);
  const fresh = await signInAgain(gh, rp);
  keep('second access token', fresh.access_token);
  const written = await userdata(gh, sub, { method: 'PUT', key: apiKey.key, body: { theme: 'dark' } });
  track(written);
  const wrongKey = `ghk_${'A'.repeat(20)}_${'B'.repeat(40)}`;
  keep('wrong api key', wrongKey);
  track(await userdata(gh, sub, { key: wrongKey }));

  // An operator works through the admin API with a token.
  const adminToken = await gh.services.admin.createAdminToken(CLI_ACTOR, 'deploy script');
  keep('admin token', adminToken.token);
  const listed = await fetch(`${gh.url}/admin/api/clients`, { headers: { authorization: `Bearer ${adminToken.token}` } });
  track(listed);
  const rotated = await fetch(`${gh.url}/admin/api/clients/${serviceClient.clientId}/rotate-secret`, { method: 'POST', headers: { authorization: `Bearer ${adminToken.token}` } });
  track(rotated);
  keep('rotated service secret', ((await rotated.json()) as { client_secret?: string }).client_secret);

  // The app signs the person out with their bearer token.
  const forwardedId = 'lb-7f3a9c.trace-42';
  const loggedOut = await fetch(`${gh.url}/logout`, { method: 'POST', headers: { authorization: `Bearer ${fresh.access_token}`, 'x-request-id': forwardedId } });
  track(loggedOut);

  // Last, since they lock: a client secret guessed until the client is locked, API keys guessed
  // until this address is.
  const target = await gh.services.admin.createClient(CLI_ACTOR, { name: 'Target', type: 'confidential', grantTypes: ['client_credentials'] });
  for (let i = 0; i < 21; i++) await clientCredentialsToken(gh, target.client.clientId, guessed);
  for (let i = 0; i < 51; i++) await userdata(gh, sub, { key: wrongKey });

  return { gh, log, secrets, requestIds, forwardedId };
}

/** A second sign-in of the same person (already signed in at Gatehouse, consent remembered). */
async function signInAgain(gh: TestGatehouse, rp: oidc.Configuration) {
  const pending = await authorizationRequest(rp, { scope: 'openid userdata' });
  const agent = new UserAgent([REDIRECT_URI]);
  const landed = await signInAndAllow(agent, pending.url, 'olivia', PASSWORD);
  void gh;
  return redeem(rp, landed, pending);
}

let run: Run;
test.before(async () => {
  run = await fullRun();
});
test.after.always(async () => {
  await run?.gh.close();
});

test('a full run logs one JSON line per request, and no secret, password, code, token or cookie it used appears in any line', (t) => {
  const { log, secrets } = run;
  t.true(secrets.size >= 20, `the run collected only ${secrets.size} credentials`);
  t.true(log.raw.length > 40, `only ${log.raw.length} log lines`);
  for (const line of log.raw) JSON.parse(line);
  const leaks: string[] = [];
  for (const [what, value] of secrets) {
    // Tokens may be cut or encoded on the way into a line: look for any 12-character piece too.
    const pieces = value.length > 24 ? [value, value.slice(0, 12), value.slice(-12)] : [value];
    const encoded = [encodeURIComponent(value), Buffer.from(value).toString('base64')];
    for (const line of log.raw) {
      if ([...pieces, ...encoded].some((p) => line.includes(p))) leaks.push(`${what} in ${line.slice(0, 200)}`);
    }
  }
  t.deepEqual(leaks, []);
  t.log(`scanned ${log.raw.length} log lines for ${secrets.size} credentials`);
});

test('every request line names its request id, method, route, status and time, and the id is the one sent back in X-Request-Id', (t) => {
  const requests = run.log.lines.filter((l) => l.msg === 'request');
  t.true(requests.length >= 20);
  for (const line of requests) {
    t.regex(line.req_id, /^[\w.:-]+$/);
    t.is(typeof line.method, 'string');
    t.is(typeof line.status, 'number');
    t.is(typeof line.ms, 'number');
    t.is(typeof line.route, 'string');
    t.false(String(line.path).includes('?'), 'a query string (codes, states) was logged');
  }
  const logged = new Set(requests.map((l) => l.req_id));
  for (const id of run.requestIds) t.true(logged.has(id), `the response's request id ${id} is not in the log`);
  t.true(requests.some((l) => l.route === 'token' && l.status === 200));
  t.true(requests.some((l) => l.route === '/userdata/:sub' && l.status === 200));
});

test("a request id sent by the proxy in front is kept, so one id follows the request through both logs", (t) => {
  const line = run.log.lines.find((l) => l.msg === 'request' && l.path === '/logout');
  t.is(line?.req_id, run.forwardedId);
});

test('security events are logged as such: failed and locked sign-ins, failed client authentication, revocations, admin changes', (t) => {
  const { log } = run;
  const failed = log.events('login.failed');
  t.true(failed.some((e) => e.username === 'olivia'));
  // No account is called victor: what was typed as a username may be a password, so it is not logged.
  t.false(log.raw.some((line) => line.includes('victor')), 'a username that names no account is never logged');
  t.true(failed.some((e) => e.username_known === false));
  t.true(log.events('login.locked').some((e) => e.username_known === false && e.locked_for_seconds > 0));
  t.true(log.events('login.succeeded').some((e) => e.username === 'olivia'));
  const clientFailures = log.events('client.authentication_failed');
  t.true(clientFailures.filter((e) => e.endpoint === 'token').length >= 2, 'both guessed secrets are logged');
  t.true(clientFailures.every((e) => typeof e.client_id === 'string' && e.client_id.length > 0), 'a failure names the client');
  t.true(log.events('token.grant_refused').length >= 1, 'the reused refresh token is logged');
  t.true(log.events('grant.revoked').length >= 1);
  t.true(log.events('token.revoked').some((e) => e.kind === 'client_credentials'));
  t.true(log.events('authentication.failed').some((e) => e.error === 'invalid_api_key'));
  t.true(log.events('client.authentication_locked').length >= 1, 'a locked client is logged as such');
  t.true(log.events('authentication.locked').some((e) => e.path.startsWith('/userdata/') && e.error === 'too_many_requests'), 'a locked address is logged as such');
  const admin = log.events('admin.change').map((e) => e.action);
  for (const action of ['client.create', 'api_key.create', 'admin_token.create', 'client.rotate_secret']) t.true(admin.includes(action), `${action} is not logged`);
  for (const event of log.lines.filter((l) => l.security)) {
    t.is(typeof event.event, 'string');
    t.true(['info', 'warn'].includes(event.level));
  }
  const events = [...new Set(log.lines.filter((l) => l.security).map((l) => l.event))].sort();
  t.log(`security events logged: ${events.join(', ')}`);
});

test('/metrics is off unless the operator turns it on', async (t) => {
  const res = await fetch(`${run.gh.url}/metrics`);
  t.is(res.status, 404);
});

test('with GATEHOUSE_METRICS=true, /metrics serves requests, latency, tokens issued and errors in Prometheus format; with a token, only to its bearer', async (t) => {
  const token = 'metrics-scraper-token-0123456789abcdef';
  const gh = await startTestGatehouse({ env: { GATEHOUSE_METRICS: 'true', GATEHOUSE_METRICS_TOKEN: token } });
  t.teardown(() => gh.close());
  const client = await gh.services.admin.createClient(CLI_ACTOR, { name: 'Scraped', type: 'confidential', grantTypes: ['client_credentials'] });
  for (let i = 0; i < 3; i++) t.is((await clientCredentialsToken(gh, client.client.clientId, client.clientSecret!)).status, 200);
  await fetch(`${gh.url}/.well-known/openid-configuration`);
  t.is((await fetch(`${gh.url}/token`, { method: 'POST' })).status, 400);

  t.is((await fetch(`${gh.url}/metrics`)).status, 401);
  t.is((await fetch(`${gh.url}/metrics`, { headers: { authorization: 'Bearer not-the-token' } })).status, 401);
  const res = await fetch(`${gh.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  t.is(res.status, 200);
  t.regex(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  t.regex(text, /^gatehouse_tokens_issued_total\{grant_type="client_credentials"\} 3$/m);
  t.regex(text, /^gatehouse_http_requests_total\{method="POST",route="token",status="200"\} 3$/m);
  t.regex(text, /^gatehouse_http_requests_total\{method="GET",route="discovery",status="200"\} 1$/m);
  t.regex(text, /^gatehouse_http_request_duration_seconds_bucket\{le="\+Inf",route="token"\} 4$/m);
  t.regex(text, /^gatehouse_process_resident_memory_bytes \d+/m);
  t.regex(text, /^# TYPE gatehouse_http_server_errors_total counter$/m);
  t.notRegex(text, /userdata\/[0-9a-f-]{8,}/, 'raw paths with user ids became metric labels');
});

test('with several workers, /metrics adds up the requests every worker answered', async (t) => {
  const database = await createTestDatabase('sqlite');
  t.teardown(() => database.drop());
  const port = await freePort();
  const gh = await spawnGatehouse({ PORT: String(port), DATABASE_URL: database.url, GATEHOUSE_WORKERS: '2', GATEHOUSE_METRICS: 'true' });
  t.teardown(() => gh.stop());
  const before = discoveryCount(await (await fetch(`${gh.url}/metrics`)).text());
  // Each request on a new connection, so the kernel spreads them over both workers.
  for (let i = 0; i < 20; i++) await fetch(`${gh.url}/.well-known/openid-configuration`, { headers: { connection: 'close' } });
  const text = await (await fetch(`${gh.url}/metrics`)).text();
  t.is(discoveryCount(text) - before, 20);
  // Both workers answered some (node:cluster hands connections round-robin), so the sum is over both.
  const pids = () => new Set([...gh.output().matchAll(/"pid":(\d+)[^\n]*"route":"discovery"/g)].map((m) => m[1]));
  await waitFor(() => pids().size === 2, 5000);
  t.is(pids().size, 2, `discovery was answered by ${pids().size} worker(s)`);
});

const discoveryCount = (text: string) => Number(/^gatehouse_http_requests_total\{method="GET",route="discovery",status="200"\} (\d+)$/m.exec(text)?.[1] ?? 0);
