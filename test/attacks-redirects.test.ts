/**
 * Attacks on where Gatehouse sends the browser: redirect_uri and post_logout_redirect_uri
 * tricks are never followed, and what an app puts in the request (state, nonce, PKCE) comes
 * back exactly as sent or the code is worthless. Tricks already in sign-in-attacks.test.ts
 * (an unregistered path, a trailing slash, a case change in the path) and logout.test.ts (an
 * unregistered post-logout URI) are not repeated here.
 */
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import type { TestGatehouse } from './support/gatehouse.ts';
import {
  authorizationRequest,
  callbackParams,
  createClient,
  createUserDirectly,
  oauthError,
  oidc,
  redeem,
  REDIRECT_URI,
  relyingParty,
  signInAndAllow,
  startLoopbackGatehouse,
  type PendingAuthorization,
} from './support/relying-party.ts';
import { basicAuth } from './support/http.ts';
import { isLoginPage, UserAgent } from './support/user-agent.ts';

const APP = 'https://app.example.com/oidc/callback';
const APP_SIGNED_OUT = 'https://app.example.com/signed-out';
const OTHER = 'https://other.example.com/callback';
const OTHER_SIGNED_OUT = 'https://other.example.com/bye';
const PASSWORD = 'correct horse battery staple';

interface Context {
  gh: TestGatehouse;
  ids: { app: string; other: string };
  secrets: { app: string };
  rp: { app: oidc.Configuration; other: oidc.Configuration; loopback: oidc.Configuration };
  /** An ID token the app got for a signed-in person (for id_token_hint). */
  appIdToken: string;
}

const test = anyTest as TestFn<Context>;

test.before(async (t) => {
  const gh = await startLoopbackGatehouse();
  const [app, other, loopback] = await Promise.all([
    createClient(gh, ['--name', 'App', '--type', 'confidential', '--grant', 'authorization_code', '--redirect-uri', APP, '--post-logout-redirect-uri', APP_SIGNED_OUT]),
    createClient(gh, ['--name', 'Other', '--type', 'confidential', '--grant', 'authorization_code', '--redirect-uri', OTHER, '--post-logout-redirect-uri', OTHER_SIGNED_OUT]),
    createClient(gh, ['--name', 'Loopback app', '--type', 'confidential', '--grant', 'authorization_code', '--redirect-uri', REDIRECT_URI]),
    createUserDirectly(gh, 'alice', PASSWORD),
  ]);
  const rp = { app: await relyingParty(gh, app, 'basic'), other: await relyingParty(gh, other, 'basic'), loopback: await relyingParty(gh, loopback, 'basic') };
  const pending = await authorizationRequest(rp.app, { redirect_uri: APP });
  const landed = await signInAndAllow(new UserAgent([APP]), pending.url, 'alice', PASSWORD);
  const tokens = await oidc.authorizationCodeGrant(rp.app, new URL(landed.url), { pkceCodeVerifier: pending.verifier, expectedState: pending.state, expectedNonce: pending.nonce });
  t.context = { gh, ids: { app: app.clientId, other: other.clientId }, secrets: { app: app.clientSecret! }, rp, appIdToken: tokens.id_token! };
});

test.after.always(async (t) => t.context.gh?.close());

/** The authorization request with `uri` as redirect_uri: an error page, never a redirect, never a login form. */
async function neverRedirected(t: ExecutionContext<Context>, config: oidc.Configuration, uri: string) {
  const pending = await authorizationRequest(config, { redirect_uri: uri });
  const res = await fetch(pending.url, { redirect: 'manual' });
  const html = await res.text();
  t.is(res.status, 400, `${uri} was accepted`);
  t.is(res.headers.get('location'), null, `${uri} was redirected to`);
  t.regex(res.headers.get('content-type') ?? '', /^text\/html/);
  t.regex(html, /redirect_uri/);
  // A browser that follows everything stays on that page.
  const page = await new UserAgent([uri, APP, OTHER]).open(pending.url);
  t.is(page.url, pending.url);
  t.false(isLoginPage(page), 'a login form whose submission could lead there later');
}

test('the registered redirect_uri itself is accepted (the tricks below fail for their trick alone)', async (t) => {
  const pending = await authorizationRequest(t.context.rp.app, { redirect_uri: APP });
  const page = await new UserAgent([APP]).open(pending.url);
  t.is(page.status, 200);
  t.true(isLoginPage(page));
});

for (const [what, uri] of [
  ['a redirect_uri whose host differs only by case', APP.replace('app.example.com', 'APP.example.com')],
  ['a redirect_uri with an extra path segment', `${APP}/evil`],
  ['a redirect_uri with a path that merely starts like the registered one', `${APP}-evil`],
  ['a redirect_uri with an extra query', `${APP}?next=https://evil.example/`],
  ['a redirect_uri with a fragment', `${APP}#evil`],
  ['a redirect_uri with userinfo naming the app before @evil.example', 'https://app.example.com@evil.example/oidc/callback'],
  ['a redirect_uri with percent-encoded characters in its path', 'https://app.example.com/oidc/%63allback'],
  ['a redirect_uri with an encoded slash in its path', 'https://app.example.com/oidc%2Fcallback'],
  ['a redirect_uri on a different port', 'https://app.example.com:8443/oidc/callback'],
  ['a redirect_uri with the default port written out', 'https://app.example.com:443/oidc/callback'],
  ['a redirect_uri over http instead of https', APP.replace('https:', 'http:')],
  ['a redirect_uri on a subdomain of the registered host', 'https://evil.app.example.com/oidc/callback'],
  ['a redirect_uri with a trailing dot on the host', 'https://app.example.com./oidc/callback'],
  ['a javascript: redirect_uri', 'javascript:alert(document.cookie)//'],
] as const) {
  test(`${what} is never redirected to`, async (t) => {
    await neverRedirected(t, t.context.rp.app, uri);
  });
}

test("another registered client's redirect_uri is never redirected to with this client's request", async (t) => {
  await neverRedirected(t, t.context.rp.app, OTHER);
  await neverRedirected(t, t.context.rp.other, APP);
});

test('a code sent to one redirect_uri cannot be redeemed by naming another at the token endpoint', async (t) => {
  const { rp } = t.context;
  const pending = await authorizationRequest(rp.app, { redirect_uri: APP });
  const landed = await signInAndAllow(new UserAgent([APP]), pending.url, 'alice', PASSWORD);
  t.true(landed.url.startsWith(APP), landed.url);
  const code = new URL(landed.url).searchParams.get('code')!;
  const token = (redirectUri: string) =>
    fetch(`${t.context.gh.config.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(t.context.ids.app, t.context.secrets.app) },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: pending.verifier! }),
    });
  for (const other of [`${APP}-evil`, OTHER, APP.replace('https:', 'http:')]) {
    const res = await token(other);
    t.is(res.status, 400, other);
    t.is(((await res.json()) as { error: string }).error, 'invalid_grant');
  }
  // The rightful redemption still works: the forgeries did not spend the code.
  t.is((await token(APP)).status, 200);
});

// RP-initiated logout: post_logout_redirect_uri must be one the client registered, exactly.

async function endSession(t: { context: Context }, params: Record<string, string>) {
  const url = new URL(`${t.context.gh.config.issuer}/session/end`);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  const res = await fetch(url, { redirect: 'manual' });
  return { status: res.status, location: res.headers.get('location'), html: await res.text() };
}

test('the registered post_logout_redirect_uri is redirected to after sign-out (the tricks below fail for their trick alone)', async (t) => {
  const agent = new UserAgent([APP_SIGNED_OUT]);
  const url = new URL(`${t.context.gh.config.issuer}/session/end`);
  url.searchParams.set('client_id', t.context.ids.app);
  url.searchParams.set('post_logout_redirect_uri', APP_SIGNED_OUT);
  url.searchParams.set('state', 's1');
  const confirm = await agent.open(url.href);
  t.is(confirm.status, 200);
  // Without a session there is nothing to confirm: the page posts itself on to /session/end/confirm.
  const back = await agent.submit(confirm, /\/session\/end\/confirm$/, {});
  t.true(back.url.startsWith(APP_SIGNED_OUT), back.url);
  t.is(new URL(back.url).searchParams.get('state'), 's1');
});

for (const [what, uri] of [
  ['differing only by case', APP_SIGNED_OUT.replace('signed-out', 'Signed-out')],
  ['with a trailing slash', `${APP_SIGNED_OUT}/`],
  ['with an extra path segment', `${APP_SIGNED_OUT}/evil`],
  ['with an extra query', `${APP_SIGNED_OUT}?next=https://evil.example/`],
  ['with userinfo before @evil.example', 'https://app.example.com@evil.example/signed-out'],
  ['with percent-encoded characters', 'https://app.example.com/%73igned-out'],
  ['on a different port', 'https://app.example.com:8443/signed-out'],
  ['over http instead of https', APP_SIGNED_OUT.replace('https:', 'http:')],
  ["registered by another client", OTHER_SIGNED_OUT],
] as const) {
  test(`a post_logout_redirect_uri ${what} is never redirected to`, async (t) => {
    for (const hint of [{ client_id: t.context.ids.app }, { id_token_hint: t.context.appIdToken }] as Array<Record<string, string>>) {
      const res = await endSession(t, { ...hint, post_logout_redirect_uri: uri, state: 'x' });
      t.is(res.status, 400, `${uri} accepted with ${Object.keys(hint)[0]}`);
      t.is(res.location, null);
      t.regex(res.html, /post_logout_redirect_uri/);
      t.false(res.html.includes('op.logoutForm'), 'no sign-out form that could lead there');
    }
  });
}

test("an ID token of one app cannot carry the person to another app's post-logout URI", async (t) => {
  const res = await endSession(t, { id_token_hint: t.context.appIdToken, client_id: t.context.ids.other, post_logout_redirect_uri: OTHER_SIGNED_OUT });
  t.is(res.status, 400);
  t.is(res.location, null);
  t.false(res.html.includes('op.logoutForm'));
});

// What the app sends comes back exactly, or the code is worthless.

async function signIn(config: oidc.Configuration, params: Record<string, string> = {}, pkce = true): Promise<{ pending: PendingAuthorization; params: URLSearchParams; url: string }> {
  const pending = await authorizationRequest(config, params, { pkce });
  const landed = await signInAndAllow(new UserAgent([REDIRECT_URI]), pending.url, 'alice', PASSWORD);
  const got = callbackParams(landed);
  if (!got) throw new Error(`not at the redirect URI: ${landed.url} (${landed.status})`);
  return { pending, params: got, url: landed.url };
}

test('state comes back to the app unchanged, odd characters and all', async (t) => {
  const state = `a b&c=d/é+%25?#${'x'.repeat(200)}`;
  const { params } = await signIn(t.context.rp.loopback, { state });
  t.is(params.get('state'), state);
  t.truthy(params.get('code'));
});

test('the nonce the app sent lands in the ID token', async (t) => {
  const { rp } = t.context;
  const nonce = oidc.randomNonce();
  const { pending, url } = await signIn(rp.loopback, { nonce });
  const tokens = await redeem(rp.loopback, { url, status: 303, html: '', headers: new Headers() }, { ...pending, nonce });
  t.is(tokens.claims()!.nonce, nonce);
  // A library that expects another nonce refuses the ID token.
  await t.throwsAsync(redeem(rp.loopback, { url, status: 303, html: '', headers: new Headers() }, { ...pending, nonce: oidc.randomNonce() }));
});

test('a code-flow request without a nonce is fine, and its ID token carries none', async (t) => {
  const { rp } = t.context;
  const pending = await authorizationRequest(rp.loopback, {});
  const url = new URL(pending.url);
  url.searchParams.delete('nonce');
  const landed = await signInAndAllow(new UserAgent([REDIRECT_URI]), url.href, 'alice', PASSWORD);
  t.truthy(callbackParams(landed)?.get('code'), landed.url);
  const tokens = await oidc.authorizationCodeGrant(rp.loopback, new URL(landed.url), { pkceCodeVerifier: pending.verifier, expectedState: pending.state, idTokenExpected: true });
  t.false('nonce' in tokens.claims()!);
});

test('PKCE downgrade: a code asked for with a challenge cannot be redeemed without the verifier, even by a confidential client', async (t) => {
  const { rp } = t.context;
  const { pending, url } = await signIn(rp.loopback);
  t.truthy(pending.verifier);
  t.is(await oauthError(oidc.authorizationCodeGrant(rp.loopback, new URL(url), { expectedState: pending.state })), 'invalid_grant');
  // The thief's attempt did not consume it: with the verifier it works.
  const tokens = await oidc.authorizationCodeGrant(rp.loopback, new URL(url), { pkceCodeVerifier: pending.verifier, expectedState: pending.state, expectedNonce: pending.nonce });
  t.truthy(tokens.access_token);
});

test('PKCE downgrade: a verifier sent for a code asked for without a challenge is refused', async (t) => {
  const { rp } = t.context;
  const { pending, url } = await signIn(rp.loopback, {}, false);
  t.is(pending.verifier, undefined);
  t.is(await oauthError(oidc.authorizationCodeGrant(rp.loopback, new URL(url), { pkceCodeVerifier: oidc.randomPKCECodeVerifier(), expectedState: pending.state })), 'invalid_grant');
});
