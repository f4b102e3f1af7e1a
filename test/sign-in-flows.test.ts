import { randomBytes } from 'node:crypto';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import type { TestGatehouse } from './support/gatehouse.ts';
import {
  authorizationRequest,
  callbackParams,
  createClient,
  createUser,
  createUserDirectly,
  oidc,
  redeem,
  REDIRECT_URI,
  relyingParty,
  startLoopbackGatehouse,
  signInAndAllow,
  type RegisteredClient,
} from './support/relying-party.ts';
import { isConsentPage, isLoginPage, UserAgent } from './support/user-agent.ts';
import { testClock } from './support/clock.ts';

// Tests that move the clock are serial: nothing else is in flight while time jumps.
const clock = testClock();

interface Context {
  gh: TestGatehouse;
  aliceSub: string;
  flask: RegisteredClient;
  spa: RegisteredClient;
  web: RegisteredClient;
  rp: { flask: oidc.Configuration; spa: oidc.Configuration; web: oidc.Configuration };
}

const test = anyTest as TestFn<Context>;

const PASSWORD = 'correct horse battery staple';

test.before(async (t) => {
  const gh = await startLoopbackGatehouse();
  // Operators' CLI runs, side by side (each is a process of its own).
  const [aliceSub, flask, spa, web] = await Promise.all([
    createUser(gh, 'alice', PASSWORD, ['--name', 'Alice Liddell', '--email-verified']),
    // A Flask tutorial's client: confidential, secret in the POST body, no PKCE, no refresh tokens.
    createClient(gh, ['--name', 'Flask tutorial', '--type', 'confidential', '--grant', 'authorization_code', '--auth-method', 'client_secret_post', '--redirect-uri', REDIRECT_URI]),
    createClient(gh, ['--name', 'Single-page app', '--type', 'public', '--grant', 'authorization_code', '--grant', 'refresh_token', '--redirect-uri', REDIRECT_URI]),
    createClient(gh, ['--name', 'Web app', '--type', 'confidential', '--grant', 'authorization_code', '--grant', 'refresh_token', '--scope', 'openid profile email offline_access', '--redirect-uri', REDIRECT_URI, '--post-logout-redirect-uri', 'http://127.0.0.1:8765/signed-out']),
  ]);
  t.context = {
    gh,
    aliceSub,
    flask,
    spa,
    web,
    rp: { flask: await relyingParty(gh, flask, 'post'), spa: await relyingParty(gh, spa, 'none'), web: await relyingParty(gh, web, 'basic') },
  };
});

test.after.always(async (t) => t.context.gh?.close());

/**
 * A person of the test's own: consent is remembered per person and client, so tests that look
 * at the consent page must not share a person with tests that give consent.
 */
async function person(t: ExecutionContext<Context>): Promise<{ username: string; sub: string }> {
  const username = `p${randomBytes(5).toString('hex')}`;
  const sub = await createUserDirectly(t.context.gh, username, PASSWORD);
  return { username, sub };
}

test('a Flask tutorial app without PKCE signs a person in with client_secret_post and reads userinfo', async (t) => {
  const { rp, aliceSub } = t.context;
  const pending = await authorizationRequest(rp.flask, { scope: 'openid profile email' }, { pkce: false });
  t.false(new URL(pending.url).searchParams.has('code_challenge'));

  const agent = new UserAgent([REDIRECT_URI]);
  const landed = await signInAndAllow(agent, pending.url, 'alice', PASSWORD);
  const tokens = await redeem(rp.flask, landed, pending);
  t.is(tokens.token_type.toLowerCase(), 'bearer');
  t.is(tokens.claims()!.sub, aliceSub);
  t.is(tokens.refresh_token, undefined, 'a client without the refresh_token grant gets no refresh token');

  const info = await oidc.fetchUserInfo(rp.flask, tokens.access_token, aliceSub);
  t.is(info.preferred_username, 'alice');
  t.is(info.name, 'Alice Liddell');
  t.is(info.email, 'alice@example.com');
  t.true(info.email_verified);
});

test('a single-page app signs in with PKCE S256 and no secret, gets a refresh token and refreshes', async (t) => {
  const { rp } = t.context;
  const me = await person(t);
  const pending = await authorizationRequest(rp.spa);
  const landed = await signInAndAllow(new UserAgent([REDIRECT_URI]), pending.url, me.username, PASSWORD);
  const tokens = await redeem(rp.spa, landed, pending);
  t.is(tokens.claims()!.sub, me.sub);
  t.truthy(tokens.refresh_token);

  const refreshed = await oidc.refreshTokenGrant(rp.spa, tokens.refresh_token!);
  t.truthy(refreshed.access_token);
  t.not(refreshed.access_token, tokens.access_token);
  t.truthy(refreshed.refresh_token);
  t.not(refreshed.refresh_token, tokens.refresh_token);
  const info = await oidc.fetchUserInfo(rp.spa, refreshed.access_token, me.sub);
  t.is(info.preferred_username, me.username);
});

test('the ID token names me by the id that `users create` printed', async (t) => {
  const { rp, aliceSub } = t.context;
  t.regex(aliceSub, /^[\w-]{8,}$/);
  const pending = await authorizationRequest(rp.web);
  const landed = await signInAndAllow(new UserAgent([REDIRECT_URI]), pending.url, 'alice', PASSWORD);
  const tokens = await redeem(rp.web, landed, pending);
  const claims = tokens.claims()!;
  t.is(claims.sub, aliceSub);
  t.is(claims.iss, t.context.gh.config.issuer);
  t.is(claims.aud, t.context.web.clientId);
});

test('once I have allowed an app, asking again for the same scopes goes straight back to it', async (t) => {
  const { rp } = t.context;
  const me = await person(t);
  const agent = new UserAgent([REDIRECT_URI]);
  const first = await authorizationRequest(rp.web);
  let page = await agent.open(first.url);
  t.true(isLoginPage(page));
  page = await agent.submit(page, /\/login$/, { username: me.username, password: PASSWORD });
  t.true(isConsentPage(page), 'the first time, I am asked');
  page = await agent.submit(page, /\/consent$/, { decision: 'allow' });
  await redeem(rp.web, page, first);

  const second = await authorizationRequest(rp.web);
  const again = await agent.open(second.url);
  t.is(again.html, '', 'no page is shown');
  t.truthy(callbackParams(again)?.get('code'), `expected a code at the redirect URI, got ${again.url}`);
  const tokens = await redeem(rp.web, again, second);
  t.is(tokens.claims()!.sub, me.sub);
});

test('an app asking for a scope I have not allowed yet shows the consent page again', async (t) => {
  const { rp } = t.context;
  const me = await person(t);
  const agent = new UserAgent([REDIRECT_URI]);
  const first = await authorizationRequest(rp.web, { scope: 'openid profile' });
  const landed = await signInAndAllow(agent, first.url, me.username, PASSWORD);
  const firstTokens = await redeem(rp.web, landed, first);
  t.is((await oidc.fetchUserInfo(rp.web, firstTokens.access_token, me.sub)).email, undefined, 'email was not allowed');

  const wider = await authorizationRequest(rp.web, { scope: 'openid profile email' });
  const page = await agent.open(wider.url);
  t.false(isLoginPage(page), 'I am still signed in');
  t.true(isConsentPage(page), `expected the consent page, got ${page.url}`);
  t.regex(page.html, /\(email\)/, 'the page names the new scope');
  t.notRegex(page.html, /\(profile\)/, 'and not the one already allowed');

  const allowed = await agent.submit(page, /\/consent$/, { decision: 'allow' });
  const tokens = await redeem(rp.web, allowed, wider);
  t.is((await oidc.fetchUserInfo(rp.web, tokens.access_token, me.sub)).email, `${me.username}@example.com`);
});

test('consent is remembered across sessions: after signing out and in again, no consent page', async (t) => {
  const { rp } = t.context;
  const me = await person(t);
  const agent = new UserAgent([REDIRECT_URI, 'http://127.0.0.1:8765/signed-out']);
  const first = await authorizationRequest(rp.web);
  const tokens = await redeem(rp.web, await signInAndAllow(agent, first.url, me.username, PASSWORD), first);

  // RP-initiated logout, confirmed on our page.
  const endSession = oidc.buildEndSessionUrl(rp.web, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: 'http://127.0.0.1:8765/signed-out', state: 'bye' });
  const confirm = await agent.open(endSession.href);
  const out = await agent.submit(confirm, /\/session\/end\/confirm$/, { logout: 'yes' });
  t.true(out.url.startsWith('http://127.0.0.1:8765/signed-out'), out.url);

  const second = await authorizationRequest(rp.web);
  let page = await agent.open(second.url);
  t.true(isLoginPage(page), 'signed out: the login page comes back');
  page = await agent.submit(page, /\/login$/, { username: me.username, password: PASSWORD });
  t.false(isConsentPage(page), 'but not the consent page');
  t.truthy(callbackParams(page)?.get('code'), page.url);
  t.is((await redeem(rp.web, page, second)).claims()!.sub, me.sub);
});

test('prompt=consent shows the consent page even though I allowed the app before', async (t) => {
  const { rp } = t.context;
  const me = await person(t);
  const agent = new UserAgent([REDIRECT_URI]);
  const first = await authorizationRequest(rp.web);
  await redeem(rp.web, await signInAndAllow(agent, first.url, me.username, PASSWORD), first);

  const forced = await authorizationRequest(rp.web, { prompt: 'consent' });
  const page = await agent.open(forced.url);
  t.false(isLoginPage(page));
  t.true(isConsentPage(page), `expected the consent page, got ${page.url}`);
  const allowed = await agent.submit(page, /\/consent$/, { decision: 'allow' });
  t.is((await redeem(rp.web, allowed, forced)).claims()!.sub, me.sub);
});

// BUG (interactions/routes.ts, GET /interaction/:uid): the consent page lists only
// prompt.details.missingOIDCScope. When consent is forced by prompt=consent nothing is
// missing, so the page reads "Web app asks to:" above an empty list.
test('the consent page forced by prompt=consent still says what the app asks for', async (t) => {
  const { rp } = t.context;
  const me = await person(t);
  const agent = new UserAgent([REDIRECT_URI]);
  const first = await authorizationRequest(rp.web);
  await redeem(rp.web, await signInAndAllow(agent, first.url, me.username, PASSWORD), first);

  const page = await agent.open((await authorizationRequest(rp.web, { prompt: 'consent', scope: 'openid profile email' })).url);
  t.true(isConsentPage(page));
  const listed = /<ul class="scopes">([\s\S]*?)<\/ul>/.exec(page.html)?.[1] ?? '';
  t.regex(listed, /\(profile\)/);
  t.regex(listed, /\(email\)/);
});

test.serial('prompt=login asks for my password again although I am signed in', async (t) => {
  const { rp } = t.context;
  const me = await person(t);
  const agent = new UserAgent([REDIRECT_URI]);
  const first = await authorizationRequest(rp.web);
  const firstTokens = await redeem(rp.web, await signInAndAllow(agent, first.url, me.username, PASSWORD), first);

  // A long max_age asks for auth_time in the ID token without forcing anything by itself.
  const forced = await authorizationRequest(rp.web, { prompt: 'login', max_age: '3600' });
  let page = await agent.open(forced.url);
  t.true(isLoginPage(page), `expected the login page, got ${page.url}`);
  clock.advance(1100);
  const reauthenticatedAt = Math.floor(Date.now() / 1000);
  page = await agent.submit(page, /\/login$/, { username: me.username, password: PASSWORD });
  t.false(isConsentPage(page), 'consent was given already');
  const tokens = await redeem(rp.web, page, forced);
  t.is(tokens.claims()!.sub, me.sub);
  t.truthy(firstTokens.id_token);
  t.true(tokens.claims()!.auth_time! >= reauthenticatedAt, 'a new authentication');
});

test('prompt=none without a session sends error=login_required back to the app', async (t) => {
  const { rp } = t.context;
  const pending = await authorizationRequest(rp.web, { prompt: 'none' });
  const page = await new UserAgent([REDIRECT_URI]).open(pending.url);
  const params = callbackParams(page);
  t.truthy(params, `expected a redirect to the app, got ${page.url} (${page.status})`);
  t.is(params!.get('error'), 'login_required');
  t.is(params!.get('state'), pending.state);
  t.false(params!.has('code'));
});

test('prompt=none with a session and consent returns a code without any page', async (t) => {
  const { rp } = t.context;
  const me = await person(t);
  const agent = new UserAgent([REDIRECT_URI]);
  const first = await authorizationRequest(rp.web);
  await redeem(rp.web, await signInAndAllow(agent, first.url, me.username, PASSWORD), first);

  const silent = await authorizationRequest(rp.web, { prompt: 'none' });
  const page = await agent.open(silent.url);
  t.is(callbackParams(page)?.get('error'), null);
  t.truthy(callbackParams(page)?.get('code'), page.url);
  t.is((await redeem(rp.web, page, silent)).claims()!.sub, me.sub);
});

test.serial('max_age=1 makes me sign in again when I signed in two seconds ago', async (t) => {
  const { rp } = t.context;
  const me = await person(t);
  const agent = new UserAgent([REDIRECT_URI]);
  const first = await authorizationRequest(rp.web);
  await redeem(rp.web, await signInAndAllow(agent, first.url, me.username, PASSWORD), first);

  clock.advance(2000);
  const reauthenticatedAt = Math.floor(Date.now() / 1000);
  const fresh = await authorizationRequest(rp.web, { max_age: '1' });
  let page = await agent.open(fresh.url);
  t.true(isLoginPage(page), `expected the login page, got ${page.url}`);
  page = await agent.submit(page, /\/login$/, { username: me.username, password: PASSWORD });
  const tokens = await redeem(rp.web, page, fresh);
  t.true(tokens.claims()!.auth_time! >= reauthenticatedAt, 'auth_time is the new sign-in');
});

test('userinfo answers GET with a Bearer header, and POST with the token in the header or the body', async (t) => {
  const { rp, gh } = t.context;
  const me = await person(t);
  const pending = await authorizationRequest(rp.web);
  const tokens = await redeem(rp.web, await signInAndAllow(new UserAgent([REDIRECT_URI]), pending.url, me.username, PASSWORD), pending);
  const endpoint = rp.web.serverMetadata().userinfo_endpoint!;
  t.is(endpoint, `${gh.config.issuer}/userinfo`);

  const byGet = await fetch(endpoint, { headers: { authorization: `Bearer ${tokens.access_token}` } });
  t.is(byGet.status, 200);
  t.like(await byGet.json(), { sub: me.sub, preferred_username: me.username, email: `${me.username}@example.com` });

  const byPostHeader = await oidc.fetchProtectedResource(rp.web, tokens.access_token, new URL(endpoint), 'POST');
  t.is(byPostHeader.status, 200);
  t.like(await byPostHeader.json(), { sub: me.sub, preferred_username: me.username });

  const byPostBody = await fetch(endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ access_token: tokens.access_token }),
  });
  t.is(byPostBody.status, 200);
  t.like(await byPostBody.json(), { sub: me.sub });

  const noToken = await fetch(endpoint);
  t.is(noToken.status, 401);
});

test('pressing Deny sends error=access_denied with the state back to the app', async (t) => {
  const { rp } = t.context;
  const me = await person(t);
  const agent = new UserAgent([REDIRECT_URI]);
  const pending = await authorizationRequest(rp.web);
  let page = await agent.open(pending.url);
  page = await agent.submit(page, /\/login$/, { username: me.username, password: PASSWORD });
  t.true(isConsentPage(page));
  t.regex(page.html, /name="decision" value="deny"/);
  page = await agent.submit(page, /\/consent$/, { decision: 'deny' });
  const params = callbackParams(page);
  t.truthy(params, `expected a redirect to the app, got ${page.url}`);
  t.is(params!.get('error'), 'access_denied');
  t.is(params!.get('state'), pending.state);
  t.false(params!.has('code'));

  // Denying grants nothing: the next request asks again.
  const next = await authorizationRequest(rp.web);
  t.true(isConsentPage(await agent.open(next.url)));
});
