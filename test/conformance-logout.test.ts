import { generateKeyPairSync } from 'node:crypto';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { SignJWT } from 'jose';
import type { TestGatehouse } from './support/gatehouse.ts';
import { submitFormById } from './support/http.ts';
import { LOGOUT_EVENT, LogoutReceiver } from './support/logout-receiver.ts';
import { POST_LOGOUT_URI, REDIRECT_URI, startLoopbackGatehouse, type RegisteredClient } from './support/relying-party.ts';
import { authorizeUrl, codeFlow, random, registerClient, registerPerson, type CodeFlow } from './support/conformance.ts';
import { UserAgent, type Page } from './support/user-agent.ts';

/**
 * The OpenID Foundation's RP-Initiated Logout and Back-Channel RP-Initiated Logout OP test
 * plans, one test per module, named after it. Each module signs a person in, sends the browser
 * to end_session_endpoint as the module does, and checks what the suite checks: where the
 * browser is (never) sent back to, what it carries, and that the person is signed out
 * afterwards (prompt=none gets login_required).
 */

interface Context {
  gh: TestGatehouse;
  app: RegisteredClient;
  /** Registered with a back-channel logout URI that requires the session id. */
  backchannelApp: RegisteredClient;
  receiver: LogoutReceiver;
}

const test = anyTest as TestFn<Context>;
const PASSWORD = 'correct horse battery staple';
type T = ExecutionContext<Context>;

test.before(async (t) => {
  const gh = await startLoopbackGatehouse();
  const receiver = new LogoutReceiver();
  let backchannelId = '';
  await receiver.start(gh.config.issuer, () => backchannelId);
  const code = { type: 'confidential', grantTypes: ['authorization_code'], redirectUris: [REDIRECT_URI], postLogoutRedirectUris: [POST_LOGOUT_URI] };
  const [app, backchannelApp] = await Promise.all([
    registerClient(gh, { name: 'Conformance logout', ...code }),
    registerClient(gh, { name: 'Conformance back-channel', ...code, backchannelLogoutUri: receiver.url, backchannelLogoutSessionRequired: true }),
  ]);
  backchannelId = backchannelApp.clientId;
  t.context = { gh, app, backchannelApp, receiver };
});

test.after.always((t) => {
  t.context.receiver?.close();
  return t.context.gh?.close();
});

/** A person signed in to `client` in their own browser (the agent stops at the app's URIs). */
async function signedIn(t: T, client: RegisteredClient = t.context.app): Promise<CodeFlow & { agent: UserAgent; client: RegisteredClient }> {
  const agent = new UserAgent([REDIRECT_URI, POST_LOGOUT_URI]);
  const person = await registerPerson(t.context.gh, PASSWORD);
  const flow = await codeFlow(t.context.gh, agent, { client, person, password: PASSWORD, redirectUri: REDIRECT_URI });
  return { ...flow, agent, client };
}

const endSessionUrl = (gh: TestGatehouse, params: Record<string, string | undefined>) => {
  const url = new URL(`${gh.config.issuer}/session/end`);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.set(k, v);
  return url.href;
};

/** The person confirms on Gatehouse's sign-out page; returns where the browser ends up. */
async function confirmSignOut(t: T, agent: UserAgent, page: Page): Promise<Page> {
  t.is(page.status, 200, `a sign-out page, not ${page.status} at ${page.url}`);
  t.regex(page.html, /op\.logoutForm/, 'Gatehouse asks before signing out');
  return submitFormById(agent, page, 'op.logoutForm', { logout: 'yes' });
}

/** The suite's closing check: the session is gone, so prompt=none answers login_required. */
async function assertSignedOut(t: T, flow: { agent: UserAgent; client: RegisteredClient }) {
  const state = random();
  const page = await flow.agent.open(
    authorizeUrl(t.context.gh, { response_type: 'code', client_id: flow.client.clientId, redirect_uri: REDIRECT_URI, scope: 'openid', state, prompt: 'none' }),
  );
  const params = new URL(page.url).searchParams;
  t.is(params.get('error'), 'login_required', `prompt=none after sign-out: ${page.url}`);
  t.is(params.get('state'), state);
}

/** The browser was not sent to the post-logout URI (nor anywhere of the app's). */
function assertNotSentBack(t: T, page: Page) {
  t.false(page.url.startsWith(POST_LOGOUT_URI), `sent back to ${page.url}`);
  t.false(page.url.startsWith(REDIRECT_URI), `sent back to ${page.url}`);
}

/** What the app is sent back with, beyond the state, must be nothing (the suite warns on more). */
function assertOnlyState(t: T, page: Page, state: string | undefined) {
  t.true(page.url.startsWith(POST_LOGOUT_URI), `back at the post-logout URI, not ${page.url} (${page.status})`);
  const params = new URL(page.url).searchParams;
  t.deepEqual([...params.keys()], state === undefined ? [] : ['state']);
  if (state !== undefined) t.is(params.get('state'), state);
}

test('oidcc-rp-initiated-logout: with id_token_hint, post_logout_redirect_uri and state, the person is signed out and sent back with the state', async (t) => {
  const flow = await signedIn(t);
  const state = random();
  const confirm = await flow.agent.open(
    endSessionUrl(t.context.gh, { id_token_hint: flow.token.body.id_token, post_logout_redirect_uri: POST_LOGOUT_URI, state }),
  );
  assertOnlyState(t, await confirmSignOut(t, flow.agent, confirm), state);
  await assertSignedOut(t, flow);
});

test('oidcc-rp-initiated-logout-no-state: without state, the person is sent back with no state', async (t) => {
  const flow = await signedIn(t);
  const confirm = await flow.agent.open(endSessionUrl(t.context.gh, { id_token_hint: flow.token.body.id_token, post_logout_redirect_uri: POST_LOGOUT_URI }));
  assertOnlyState(t, await confirmSignOut(t, flow.agent, confirm), undefined);
  await assertSignedOut(t, flow);
});

test('oidcc-rp-initiated-logout-no-params: with no parameters, Gatehouse asks, signs the person out and shows that they are signed out', async (t) => {
  const flow = await signedIn(t);
  const done = await confirmSignOut(t, flow.agent, await flow.agent.open(endSessionUrl(t.context.gh, {})));
  assertNotSentBack(t, done);
  t.regex(done.html, /Signed out/);
  await assertSignedOut(t, flow);
});

test('oidcc-rp-initiated-logout-no-post-logout-redirect-uri: with id_token_hint only, the person is signed out and stays on Gatehouse', async (t) => {
  const flow = await signedIn(t);
  const done = await confirmSignOut(t, flow.agent, await flow.agent.open(endSessionUrl(t.context.gh, { id_token_hint: flow.token.body.id_token })));
  assertNotSentBack(t, done);
  t.regex(done.html, /Signed out/);
  await assertSignedOut(t, flow);
});

test('oidcc-rp-initiated-logout-only-state: with only a state, the person is signed out and stays on Gatehouse', async (t) => {
  const flow = await signedIn(t);
  const done = await confirmSignOut(t, flow.agent, await flow.agent.open(endSessionUrl(t.context.gh, { state: random() })));
  assertNotSentBack(t, done);
  await assertSignedOut(t, flow);
});

test('oidcc-rp-initiated-logout-no-id-token-hint: a post_logout_redirect_uri without id_token_hint is never redirected to', async (t) => {
  const flow = await signedIn(t);
  const page = await flow.agent.open(endSessionUrl(t.context.gh, { post_logout_redirect_uri: POST_LOGOUT_URI, state: random() }));
  assertNotSentBack(t, page);
  t.true(page.status === 400 || /op\.logoutForm/.test(page.html), `an error or a confirmation, not ${page.status}`);
  if (page.status === 200) assertNotSentBack(t, await confirmSignOut(t, flow.agent, page));
});

test('oidcc-rp-initiated-logout-bad-post-logout-redirect-uri: an unregistered post_logout_redirect_uri gets an error page and no redirect', async (t) => {
  const flow = await signedIn(t);
  const page = await flow.agent.open(
    endSessionUrl(t.context.gh, { id_token_hint: flow.token.body.id_token, post_logout_redirect_uri: 'http://127.0.0.1:8765/not-registered', state: random() }),
  );
  t.is(page.status, 400);
  assertNotSentBack(t, page);
  t.false(page.html.includes('op.logoutForm'), 'no sign-out form that could lead there');
});

test('oidcc-rp-initiated-logout-query-added-to-post-logout-redirect-uri: the registered URI with a query added gets an error page and no redirect', async (t) => {
  const flow = await signedIn(t);
  const page = await flow.agent.open(
    endSessionUrl(t.context.gh, { id_token_hint: flow.token.body.id_token, post_logout_redirect_uri: `${POST_LOGOUT_URI}?foo=bar`, state: random() }),
  );
  t.is(page.status, 400);
  assertNotSentBack(t, page);
});

test('oidcc-rp-initiated-logout-bad-id-token-hint: an id_token_hint signed by someone else gets an error page and no redirect', async (t) => {
  const flow = await signedIn(t);
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const forged = await new SignJWT({ ...flow.claims }).setProtectedHeader({ alg: 'RS256', kid: 'not-a-gatehouse-key' }).sign(privateKey);
  const page = await flow.agent.open(endSessionUrl(t.context.gh, { id_token_hint: forged, post_logout_redirect_uri: POST_LOGOUT_URI, state: random() }));
  t.is(page.status, 400);
  assertNotSentBack(t, page);
});

test('oidcc-rp-initiated-logout-modified-id-token-hint: the id_token_hint turned into alg:none gets an error page and no redirect', async (t) => {
  const flow = await signedIn(t);
  const [, payload] = flow.token.body.id_token.split('.');
  const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${payload}.`;
  const page = await flow.agent.open(endSessionUrl(t.context.gh, { id_token_hint: unsigned, post_logout_redirect_uri: POST_LOGOUT_URI, state: random() }));
  t.is(page.status, 400);
  assertNotSentBack(t, page);
});

test('oidcc-backchannel-rp-initiated-logout: the app gets a valid logout token for the session at its back-channel URI, the browser is sent back with the state, and the person is signed out', async (t) => {
  const { gh, receiver, backchannelApp } = t.context;
  const flow = await signedIn(t, backchannelApp);
  t.is(typeof flow.claims.sid, 'string', 'the ID token carries sid, as the session-required app asked');
  const state = random();
  const confirm = await flow.agent.open(endSessionUrl(gh, { id_token_hint: flow.token.body.id_token, post_logout_redirect_uri: POST_LOGOUT_URI, state }));
  assertOnlyState(t, await confirmSignOut(t, flow.agent, confirm), state);

  // Signature, iss, aud and age were checked by the receiver against the JWKS.
  const received = await receiver.tokenFor(flow.claims.sub);
  t.deepEqual(received.fields, ['logout_token'], 'nothing but the logout token in the request');
  t.is(received.claims.sub, flow.claims.sub);
  t.is(received.claims.sid, flow.claims.sid);
  t.deepEqual(received.claims.events, { [LOGOUT_EVENT]: {} });
  t.is(typeof received.claims.jti, 'string');
  t.is(typeof received.claims.iat, 'number');
  t.false('nonce' in received.claims);
  await assertSignedOut(t, flow);
});
