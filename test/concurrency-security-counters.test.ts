/**
 * Every security counter under parallel attempts (issue 15, test class a): sign-in, admin
 * sign-in, client secrets, API keys and admin tokens. Bursts are sent all at once, as an
 * attacker would; however many arrive together, no more credentials are checked than the limit
 * allows, and a real operator signing in during a burst of bogus sign-ins is not starved.
 *
 * Gatehouse trusts the proxy here (GATEHOUSE_TRUST_PROXY=true), so each burst comes from
 * addresses of its own through X-Forwarded-For.
 */
import { randomBytes } from 'node:crypto';
import anyTest, { type TestFn } from 'ava';
import { CREDENTIAL_THROTTLE, LOGIN_THROTTLE } from '../src/accounts/throttle.ts';
import { hashStarts, MAX_CONCURRENT_HASHES } from '../src/accounts/passwords.ts';
import { CLI_ACTOR } from '../src/admin/audit.ts';
import type { TestGatehouse } from './support/gatehouse.ts';
import { basicAuth, FORM_CONTENT_TYPE, findForm } from './support/http.ts';
import { authorizationRequest, createClient, createUserDirectly, REDIRECT_URI, relyingParty, startLoopbackGatehouse } from './support/relying-party.ts';
import { UserAgent } from './support/user-agent.ts';
import { createApiKeyWithCli, userdata, userWhoAuthorized } from './support/userdata.ts';

/** Log lines as the operator's log shipper gets them, parsed. */
class CapturedLog {
  readonly raw: string[] = [];
  write(chunk: string): void {
    this.raw.push(...chunk.split('\n').filter(Boolean));
  }
  events(name: string, where: (line: Record<string, unknown>) => boolean = () => true): Array<Record<string, unknown>> {
    return this.raw.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.event === name && where(l));
  }
}

interface Context {
  gh: TestGatehouse;
  log: CapturedLog;
  app: { clientId: string; clientSecret: string };
  rp: Awaited<ReturnType<typeof relyingParty>>;
  key: string;
  sub: string;
}
const test = anyTest as TestFn<Context>;

const PASSWORD = 'correct horse battery staple';

test.before(async (t) => {
  const log = new CapturedLog();
  const gh = await startLoopbackGatehouse({ env: { GATEHOUSE_TRUST_PROXY: 'true', GATEHOUSE_LOG_LEVEL: 'info' }, logDestination: log });
  const web = await createClient(gh, ['--name', 'Web app', '--type', 'confidential', '--grant', 'authorization_code', '--redirect-uri', REDIRECT_URI]);
  const { client, clientSecret } = await gh.services.admin.createClient(CLI_ACTOR, {
    name: 'Notes app',
    type: 'confidential',
    grantTypes: ['authorization_code', 'client_credentials'],
    redirectUris: [REDIRECT_URI],
    scope: ['openid', 'userdata'],
  });
  const app = { clientId: client.clientId, clientSecret: clientSecret! };
  const [{ key }, { sub }] = await Promise.all([createApiKeyWithCli(gh, app.clientId, ['userdata:read']), userWhoAuthorized(gh, 'keeper', [app])]);
  t.context = { gh, log, app, rp: await relyingParty(gh, web, 'basic'), key, sub };
});

test.after.always(async (t) => t.context.gh?.close());

/** An address of the test's own (TEST-NET-3, 203.0.113.0/24, and its neighbours). */
const address = () => `203.0.${113 + (randomBytes(1)[0]! % 50)}.${1 + (randomBytes(1)[0]! % 250)}`;
const wrong = () => randomBytes(32).toString('base64url');
const person = () => `p${randomBytes(5).toString('hex')}`;

/** The status of an answer, its body read (and dropped) so the connection is free again. */
const statusOf = async (res: Response) => {
  await res.arrayBuffer();
  return res.status;
};

/** Sends every request at once and waits for all the answers. */
const allAtOnce = <T>(count: number, send: (i: number) => Promise<T>) => Promise.all(Array.from({ length: count }, (_, i) => send(i)));

/** The sign-in form of a pending authorization: where it posts, its hidden fields, and the browser holding its cookies. */
async function interactionLoginForm(rp: Context['rp']) {
  const agent = new UserAgent([REDIRECT_URI]);
  const page = await agent.open((await authorizationRequest(rp)).url);
  return { agent, ...findForm(page, { action: /\/login$/ }) };
}

async function adminLoginForm(gh: TestGatehouse) {
  const agent = new UserAgent();
  const page = await agent.open(`${gh.url}/admin/login`);
  return { agent, ...findForm(page, { action: /\/admin\/login$/ }) };
}

/** Posts a sign-in form with a username and password from `from`; the status says what became of it. */
async function postSignIn(form: Awaited<ReturnType<typeof adminLoginForm>>, username: string, password: string, from: string): Promise<number> {
  const body = new URLSearchParams(form.fields);
  body.set('username', username);
  body.set('password', password);
  const res = await form.agent.request(form.target, { method: 'POST', headers: { ...FORM_CONTENT_TYPE, 'x-forwarded-for': from }, body });
  await res.arrayBuffer();
  return res.status;
}

/** A password was checked: refused as wrong (401), or signed in (a redirect onwards). */
const checked = (statuses: number[]) => statuses.filter((s) => s === 401 || (s >= 300 && s < 400)).length;

test('twelve parallel sign-ins for one username, eleven wrong and the right one last, check no more passwords than the lock allows', async (t) => {
  const { gh, log, rp } = t.context;
  const username = person();
  await createUserDirectly(gh, username, PASSWORD);
  const from = address();
  const statuses: number[] = [];
  // Three bursts, each its own form, as a script would send them.
  for (let round = 0; round < 3; round++) {
    const form = await interactionLoginForm(rp);
    statuses.push(...(await allAtOnce(12, (i) => postSignIn(form, username, i === 11 ? PASSWORD : `wrong password ${i}`, from))));
  }
  t.log(`36 attempts: ${checked(statuses)} checked, ${statuses.filter((s) => s === 429).length} refused with 429`);
  t.true(checked(statuses) <= LOGIN_THROTTLE.lockUsernameAddressAfter, `passwords checked: ${checked(statuses)} (${statuses.join(' ')})`);
  t.true(
    statuses.every((s) => s === 401 || s === 429 || (s >= 300 && s < 400)),
    statuses.join(' '),
  );
  // The log agrees: one line per password checked, never more.
  const lines = log.events('login.failed', (l) => l.ip === from).length + log.events('login.succeeded', (l) => l.ip === from).length;
  t.is(lines, checked(statuses));
});

test('forty parallel admin sign-ins are counted as they arrive: no more than the lock allows are checked', async (t) => {
  const { gh, log } = t.context;
  const operator = person();
  await gh.services.accounts.create({ username: operator, email: `${operator}@example.com`, password: PASSWORD, isAdmin: true });
  const from = address();
  const form = await adminLoginForm(gh);
  const statuses = await allAtOnce(40, (i) => postSignIn(form, operator, `wrong password ${i}`, from));
  const again = await allAtOnce(40, (i) => postSignIn(form, operator, `wrong password ${i}`, from));
  const all = [...statuses, ...again];
  t.log(`80 attempts: ${checked(all)} checked`);
  t.true(checked(all) <= LOGIN_THROTTLE.lockUsernameAddressAfter, `passwords checked: ${checked(all)}`);
  t.is(log.events('login.failed', (l) => l.ip === from).length, checked(all));
  // The operator, from their own desk, is not locked out by it.
  t.is(await postSignIn(await adminLoginForm(gh), operator, PASSWORD, address()), 303);
});

test('forty parallel wrong client secrets from one address are checked no more often than the (client, address) lock allows, and the app keeps working', async (t) => {
  const { gh, app } = t.context;
  const from = address();
  const token = (secret: string, at: string) =>
    fetch(`${gh.url}/token`, {
      method: 'POST',
      headers: { ...FORM_CONTENT_TYPE, authorization: basicAuth(app.clientId, secret), 'x-forwarded-for': at },
      body: new URLSearchParams({ grant_type: 'client_credentials' }),
    }).then(statusOf);
  const statuses = await allAtOnce(40, () => token(wrong(), from));
  const refusedAsWrong = statuses.filter((s) => s === 401).length;
  t.log(`40 attempts: ${refusedAsWrong} secrets checked`);
  t.true(refusedAsWrong <= CREDENTIAL_THROTTLE.lockClientAddressPairAfter, `secrets checked: ${refusedAsWrong}`);
  t.true(statuses.every((s) => s === 401 || s === 429));
  t.is(await token(app.clientSecret, address()), 200, 'the app, from its own address, still gets tokens');
});

test('eighty parallel wrong API keys from one address check no more than the lock allows', async (t) => {
  const { gh, key, sub } = t.context;
  const from = address();
  const [, id] = /^ghk_([^_]+)_/.exec(key)!;
  const statuses = await allAtOnce(
    80,
    async () => (await userdata(gh, sub, { key: `ghk_${id}_${wrong().slice(0, 43)}`, headers: { 'x-forwarded-for': from } })).status,
  );
  const refusedAsWrong = statuses.filter((s) => s === 401).length;
  t.log(`80 attempts: ${refusedAsWrong} keys checked`);
  t.true(refusedAsWrong <= CREDENTIAL_THROTTLE.lockApiKeyAddressAfter, `keys checked: ${refusedAsWrong}`);
  t.is((await userdata(gh, sub, { key, headers: { 'x-forwarded-for': from } })).status, 429, 'the address is locked');
  t.is((await userdata(gh, sub, { key, headers: { 'x-forwarded-for': address() } })).status, 200, 'the key works from elsewhere');
});

test('eighty parallel wrong admin tokens from one address check no more than the lock allows', async (t) => {
  const { gh } = t.context;
  const { token } = await gh.services.admin.createAdminToken(CLI_ACTOR, 'deploy script');
  const [, id] = /^gha_([^_]+)_/.exec(token)!;
  const from = address();
  const list = (bearer: string, at: string) =>
    fetch(`${gh.url}/admin/api/clients`, { headers: { authorization: `Bearer ${bearer}`, 'x-forwarded-for': at } }).then(statusOf);
  const statuses = await allAtOnce(80, () => list(`gha_${id}_${wrong().slice(0, 43)}`, from));
  const refusedAsWrong = statuses.filter((s) => s === 401).length;
  t.log(`80 attempts: ${refusedAsWrong} tokens checked`);
  t.true(refusedAsWrong <= CREDENTIAL_THROTTLE.lockAdminTokenAddressAfter, `tokens checked: ${refusedAsWrong}`);
  t.is(await list(token, from), 429, 'the address is locked');
  t.is(await list(token, address()), 200, 'the token works from elsewhere');
});

test.serial('an operator signing in during a burst of 100 bogus sign-ins gets the next free hash slot, not a place behind the burst', async (t) => {
  const { gh } = t.context;
  const operator = person();
  await gh.services.accounts.create({ username: operator, email: `${operator}@example.com`, password: PASSWORD, isAdmin: true });
  const desk = address();
  // How many other hashes started between the operator's request and their own hash: the
  // queue's order, which a loaded machine does not change (their latency it does).
  const signInAmidst = async () => {
    const form = await adminLoginForm(gh);
    const before = hashStarts();
    const started = performance.now();
    t.is(await postSignIn(form, operator, PASSWORD, desk), 303);
    return { ms: performance.now() - started, othersFirst: hashStarts(desk) - before - 1 };
  };
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  await signInAmidst(); // warm: the decoy hash, compiled templates
  const quiet = median([(await signInAmidst()).ms, (await signInAmidst()).ms, (await signInAmidst()).ms]);

  // The burst: one address spraying made-up usernames, and one victim's username hammered
  // from fifty addresses at once.
  const attacker = address();
  const victim = person();
  await createUserDirectly(gh, victim, PASSWORD);
  const forms = await Promise.all([adminLoginForm(gh), adminLoginForm(gh)]);
  let finished = 0;
  const burst = allAtOnce(100, async (i) => {
    const status = i % 2 ? await postSignIn(forms[0]!, person(), wrong(), attacker) : await postSignIn(forms[1]!, victim, wrong(), address());
    finished++;
    return status;
  });
  await new Promise((resolve) => setTimeout(resolve, 50)); // the burst is in
  const during = [await signInAmidst(), await signInAmidst(), await signInAmidst()];
  const statuses = await burst;
  t.log(
    `quiet ${quiet.toFixed(0)} ms, during the burst ${median(during.map((d) => d.ms)).toFixed(0)} ms; other hashes started first: ${during.map((d) => d.othersFirst).join(', ')}; burst: ${checked(statuses)} checked, ${statuses.filter((s) => s === 429).length} refused (${finished} done)`,
  );
  // The slots the burst held when the operator came, and the hashes that started while their
  // request was on its way in (its throttle check comes before its hash); a queue in arrival
  // order would put them behind dozens.
  for (const { othersFirst } of during) t.true(othersFirst <= MAX_CONCURRENT_HASHES + 2, `${othersFirst} other hashes started first`);
});
