/**
 * Guessing credentials that are not passwords: client secrets (at /token, /introspect and
 * /revoke) and API keys (at /userdata). Sign-in throttling is in sign-in-attacks.test.ts.
 *
 * Gatehouse trusts the proxy here (GATEHOUSE_TRUST_PROXY=true), so each test comes from
 * addresses of its own through X-Forwarded-For and the per-address counters of one test do
 * not lock another.
 */
import { randomBytes } from 'node:crypto';
import anyTest, { type TestFn } from 'ava';
import { CREDENTIAL_THROTTLE, CredentialThrottle } from '../src/accounts/throttle.ts';
import { basicAuth } from './support/http.ts';
import type { TestGatehouse } from './support/gatehouse.ts';
import { startLoopbackGatehouse, REDIRECT_URI } from './support/relying-party.ts';
import { createApiKeyWithCli, userdata, userWhoAuthorized } from './support/userdata.ts';
import { CLI_ACTOR } from '../src/admin/audit.ts';

const test = anyTest as TestFn<{ gh: TestGatehouse; app: { clientId: string; clientSecret: string }; key: string; sub: string }>;

test.before(async (t) => {
  const gh = await startLoopbackGatehouse({ env: { GATEHOUSE_TRUST_PROXY: 'true' } });
  const app = await service(gh, 'Notes app', { grantTypes: ['authorization_code'], redirectUris: [REDIRECT_URI], scope: ['openid', 'userdata'] });
  const [{ key }, { sub }] = await Promise.all([createApiKeyWithCli(gh, app.clientId, ['userdata:read']), userWhoAuthorized(gh, 'keeper', [app])]);
  t.context = { gh, app, key, sub };
});

test.after.always(async (t) => t.context.gh?.close());

/** A confidential client of the test's own, made through the audited operation the CLI calls. */
async function service(gh: TestGatehouse, name: string, settings: Record<string, unknown> = { grantTypes: ['client_credentials'] }) {
  const { client, clientSecret } = await gh.services.admin.createClient(CLI_ACTOR, { name, type: 'confidential', ...settings });
  return { clientId: client.clientId, clientSecret: clientSecret! };
}

/** An address of the test's own (TEST-NET-2, 198.51.100.0/24, and its neighbours). */
const address = () => `198.51.${100 + (randomBytes(1)[0]! % 50)}.${1 + (randomBytes(1)[0]! % 250)}`;

type Endpoint = 'token' | 'introspect' | 'revoke';
const BODY: Record<Endpoint, Record<string, string>> = {
  token: { grant_type: 'client_credentials' },
  introspect: { token: 'some-token-the-api-was-given' },
  revoke: { token: 'some-token-the-app-holds' },
};

async function authenticate(gh: TestGatehouse, endpoint: Endpoint, clientId: string, secret: string, from: string, how: 'basic' | 'post' = 'basic') {
  const body = new URLSearchParams(BODY[endpoint]);
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': from };
  if (how === 'basic') headers.authorization = basicAuth(clientId, secret);
  else {
    body.set('client_id', clientId);
    body.set('client_secret', secret);
  }
  const res = await fetch(`${gh.url}/${endpoint}`, { method: 'POST', headers, body });
  const text = await res.text();
  return { status: res.status, text, body: text ? (JSON.parse(text) as Record<string, string>) : {}, retryAfter: res.headers.get('retry-after'), challenge: res.headers.get('www-authenticate') };
}

const wrong = () => randomBytes(32).toString('base64url');

const pairSubject = (clientId: string, from: string) => CredentialThrottle.clientLimits(clientId, from)[1]!.subject;

/** Moves a (client, address) counter's backoff into the past, as the shared counters would see it a minute later. */
async function backoffOver(gh: TestGatehouse, clientId: string, from: string) {
  await gh.services.db('login_failures').where({ subject: pairSubject(clientId, from) }).update({ not_before: Date.now() - 1 });
}

test('wrong secrets for one client from many addresses never lock the app out: its right secret keeps working', async (t) => {
  const { gh } = t.context;
  const billing = await service(gh, 'Billing');
  // Anyone can read a client_id off an authorize URL; 25 guesses from all over the place.
  for (let i = 1; i <= 25; i++) {
    const res = await authenticate(gh, 'token', billing.clientId, wrong(), address());
    t.is(res.status, 401, `attempt ${i}`);
    t.is(res.body.error, 'invalid_client');
    t.truthy(res.challenge, 'a Basic challenge');
  }
  const right = await authenticate(gh, 'token', billing.clientId, billing.clientSecret, address());
  t.is(right.status, 200, 'the app itself is not locked out');
  t.truthy(right.body.access_token);
});

test(`one address guessing one client's secret backs off after ${CREDENTIAL_THROTTLE.slowClientAddressAfter} and is locked after ${CREDENTIAL_THROTTLE.lockClientAddressPairAfter}; the app works from elsewhere`, async (t) => {
  const { gh } = t.context;
  const billing = await service(gh, 'Invoices');
  const from = address();
  for (let i = 1; i <= CREDENTIAL_THROTTLE.slowClientAddressAfter; i++) t.is((await authenticate(gh, 'token', billing.clientId, wrong(), from)).status, 401, `attempt ${i}`);

  // The next attempt waits a little, whatever it presents: nothing is checked meanwhile.
  const slowed = await authenticate(gh, 'token', billing.clientId, billing.clientSecret, from);
  t.is(slowed.status, 429);
  t.is(slowed.body.error, 'invalid_client');
  t.regex(slowed.body.error_description ?? '', /too many failed client authentications.*locked for \d+ seconds?/);
  t.true(Number(slowed.retryAfter) >= 1 && Number(slowed.retryAfter) <= 2, `Retry-After: ${slowed.retryAfter}`);

  // Once the wait is over the next guess is checked, and the wait after it is longer.
  await backoffOver(gh, billing.clientId, from);
  t.is((await authenticate(gh, 'token', billing.clientId, wrong(), from)).status, 401);
  const longer = await authenticate(gh, 'token', billing.clientId, wrong(), from);
  t.is(longer.status, 429);
  t.true(Number(longer.retryAfter) > 2 && Number(longer.retryAfter) <= 4, `Retry-After: ${longer.retryAfter}`);

  // Guessing on until the lock: the pair is locked for 15 minutes.
  await gh.services.db('login_failures').where({ subject: pairSubject(billing.clientId, from) }).update({ failures: CREDENTIAL_THROTTLE.lockClientAddressPairAfter - 1, not_before: null });
  t.is((await authenticate(gh, 'token', billing.clientId, wrong(), from)).status, 401, 'the last guess before the lock');
  await backoffOver(gh, billing.clientId, from);
  const locked = await authenticate(gh, 'token', billing.clientId, billing.clientSecret, from);
  t.is(locked.status, 429);
  t.regex(locked.body.error_description ?? '', /locked for 15 minutes/);
  t.true(Number(locked.retryAfter) > 800, `Retry-After: ${locked.retryAfter}`);
  t.false('access_token' in locked.body);
  // The secret in the body (client_secret_post) is no way around it.
  t.is((await authenticate(gh, 'token', billing.clientId, billing.clientSecret, from, 'post')).status, 429);
  // The app itself, from its own address, is not locked.
  t.is((await authenticate(gh, 'token', billing.clientId, billing.clientSecret, address())).status, 200);
});

test('while an address is refused for a client, the right and a wrong secret get the very same answer', async (t) => {
  const { gh } = t.context;
  const billing = await service(gh, 'Reports');
  const from = address();
  for (let i = 0; i < CREDENTIAL_THROTTLE.slowClientAddressAfter; i++) await authenticate(gh, 'token', billing.clientId, wrong(), from);
  const right = await authenticate(gh, 'token', billing.clientId, billing.clientSecret, from);
  const guess = await authenticate(gh, 'token', billing.clientId, wrong(), from);
  t.is(right.status, 429);
  t.is(guess.status, right.status);
  t.is(guess.body.error, right.body.error);
  t.is(guess.challenge, right.challenge);
});

test('wrong secrets at /introspect and /revoke count too, and a refused address is refused there as well', async (t) => {
  const { gh } = t.context;
  const api = await service(gh, 'Resource server');
  const from = address();
  const half = Math.ceil(CREDENTIAL_THROTTLE.slowClientAddressAfter / 2);
  for (let i = 0; i < half; i++) t.is((await authenticate(gh, 'introspect', api.clientId, wrong(), from)).status, 401);
  for (let i = half; i < CREDENTIAL_THROTTLE.slowClientAddressAfter; i++) t.is((await authenticate(gh, 'revoke', api.clientId, wrong(), from)).status, 401);
  for (const endpoint of ['token', 'introspect', 'revoke'] as const) {
    const res = await authenticate(gh, endpoint, api.clientId, api.clientSecret, from);
    t.is(res.status, 429, endpoint);
    t.is(res.body.error, 'invalid_client', endpoint);
  }
});

test(`one address trying wrong secrets for many clients is locked after ${CREDENTIAL_THROTTLE.lockClientAddressAfter}, for every client; other addresses are not`, async (t) => {
  const { gh } = t.context;
  const perClient = CREDENTIAL_THROTTLE.slowClientAddressAfter;
  const sprayed = Math.ceil(CREDENTIAL_THROTTLE.lockClientAddressAfter / perClient);
  const clients = await Promise.all(Array.from({ length: sprayed + 1 }, (_, i) => service(gh, `Sprayed ${i}`)));
  const from = address();
  for (let i = 0; i < CREDENTIAL_THROTTLE.lockClientAddressAfter; i++) {
    const target = clients[i % sprayed]!; // under each client's own backoff
    t.is((await authenticate(gh, 'token', target.clientId, wrong(), from)).status, 401, `attempt ${i + 1}`);
  }
  const last = clients[sprayed]!;
  const locked = await authenticate(gh, 'token', last.clientId, last.clientSecret, from);
  t.is(locked.status, 429, 'the address was not locked');
  t.is(locked.body.error, 'invalid_client');
  t.regex(locked.body.error_description ?? '', /locked for 15 minutes/);
  t.is((await authenticate(gh, 'token', last.clientId, last.clientSecret, address())).status, 200, 'another address is locked too');
  t.is((await authenticate(gh, 'token', clients[0]!.clientId, clients[0]!.clientSecret, address())).status, 200, 'the sprayed clients themselves are not locked');
});

test('a lock ends by itself: once its time is up the right secret works again from that address', async (t) => {
  const { gh } = t.context;
  const billing = await service(gh, 'Payroll');
  const from = address();
  for (let i = 0; i < CREDENTIAL_THROTTLE.slowClientAddressAfter; i++) await authenticate(gh, 'token', billing.clientId, wrong(), from);
  await gh.services.db('login_failures').where({ subject: pairSubject(billing.clientId, from) }).update({ failures: CREDENTIAL_THROTTLE.lockClientAddressPairAfter, locked_until: Date.now() + 15 * 60_000 });
  t.is((await authenticate(gh, 'token', billing.clientId, billing.clientSecret, from)).status, 429);
  // Sixteen minutes later, as the shared counters see it.
  const past = Date.now() - 16 * 60_000;
  await gh.services.db('login_failures').where({ subject: pairSubject(billing.clientId, from) }).update({ window_started_at: past, locked_until: past + 1, not_before: null });
  t.is((await authenticate(gh, 'token', billing.clientId, billing.clientSecret, from)).status, 200);
});

// API keys.

test(`${CREDENTIAL_THROTTLE.lockApiKeyAddressAfter} wrong API keys from one address lock that address: even the right key then gets a clear 429`, async (t) => {
  const { gh, key, sub } = t.context;
  const from = address();
  const [, id] = /^ghk_([^_]+)_/.exec(key)!;
  for (let i = 1; i < CREDENTIAL_THROTTLE.lockApiKeyAddressAfter; i++) {
    // Made-up keys, and the real key id with guessed secrets.
    const guess = i % 2 ? `ghk_${randomBytes(8).toString('hex')}_${wrong().slice(0, 43)}` : `ghk_${id}_${wrong().slice(0, 43)}`;
    const res = await userdata(gh, sub, { key: guess, headers: { 'x-forwarded-for': from } });
    t.is(res.status, 401, `attempt ${i}`);
  }
  t.is((await userdata(gh, sub, { key, headers: { 'x-forwarded-for': from } })).status, 200, 'one short of the limit the right key works');
  t.is((await userdata(gh, sub, { key: 'ghk_nope', headers: { 'x-forwarded-for': from } })).status, 401);

  const locked = await userdata(gh, sub, { key, headers: { 'x-forwarded-for': from } });
  t.is(locked.status, 429);
  t.is(locked.json.error, 'too_many_requests');
  t.regex(locked.json.error_description, /too many wrong API keys.*locked for 15 minutes/);
  t.true(Number(locked.headers.get('retry-after')) > 800);
  const guess = await userdata(gh, sub, { key: `ghk_${id}_${wrong().slice(0, 43)}`, headers: { 'x-forwarded-for': from } });
  t.is(guess.status, 429);
  t.is(guess.text, locked.text, 'a wrong key and the right key get the same answer while locked');
  const write = await userdata(gh, sub, { method: 'PUT', key, body: { stolen: true }, headers: { 'x-forwarded-for': from } });
  t.is(write.status, 429);

  // The key itself works from elsewhere: only the guessing address is locked.
  t.is((await userdata(gh, sub, { key, headers: { 'x-forwarded-for': address() } })).status, 200);
});

test('requests without any API key do not count as guesses', async (t) => {
  const { gh, key, sub } = t.context;
  const from = address();
  for (let i = 0; i < CREDENTIAL_THROTTLE.lockApiKeyAddressAfter + 5; i++) t.is((await userdata(gh, sub, { headers: { 'x-forwarded-for': from } })).status, 401);
  t.is((await userdata(gh, sub, { key, headers: { 'x-forwarded-for': from } })).status, 200);
});

// Admin API tokens.

test(`${CREDENTIAL_THROTTLE.lockAdminTokenAddressAfter} wrong admin tokens from one address lock that address: even the right token then gets a clear 429`, async (t) => {
  const { gh } = t.context;
  const { token } = await gh.services.admin.createAdminToken(CLI_ACTOR, 'deploy script');
  const from = address();
  const list = (bearer: string, at = from) => fetch(`${gh.url}/admin/api/clients`, { headers: { authorization: `Bearer ${bearer}`, 'x-forwarded-for': at } });
  const [, id] = /^gha_([^_]+)_/.exec(token)!;
  for (let i = 1; i < CREDENTIAL_THROTTLE.lockAdminTokenAddressAfter; i++) {
    const guess = i % 2 ? `gha_${randomBytes(8).toString('hex')}_${wrong().slice(0, 43)}` : `gha_${id}_${wrong().slice(0, 43)}`;
    t.is((await list(guess)).status, 401, `attempt ${i}`);
  }
  t.is((await list(token)).status, 200, 'one short of the limit the right token works');
  t.is((await list('gha_nope')).status, 401);

  const locked = await list(token);
  t.is(locked.status, 429);
  const body = (await locked.json()) as Record<string, string>;
  t.is(body.error, 'too_many_requests');
  t.regex(body.error_description!, /too many wrong admin tokens.*locked for 15 minutes/);
  t.true(Number(locked.headers.get('retry-after')) > 800);
  t.is((await list(`gha_${id}_${wrong().slice(0, 43)}`)).status, 429, 'a wrong token gets the same answer while locked');
  t.is((await list(token, address())).status, 200, 'the token itself works from elsewhere');
});
