import { randomBytes } from 'node:crypto';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import type { TestGatehouse } from './support/gatehouse.ts';
import {
  authorizationRequest,
  callbackParams,
  createClient,
  createUserDirectly,
  oauthError,
  oidc,
  POST_LOGOUT_URI,
  redeem,
  REDIRECT_URI,
  relyingParty,
  startLoopbackGatehouse,
  signInAndAllow,
} from './support/relying-party.ts';
import { rawBasicAuth, submitFormById } from './support/http.ts';
import { isConsentPage, isLoginPage, UserAgent } from './support/user-agent.ts';

interface Context {
  gh: TestGatehouse;
  rp: { web: oidc.Configuration; other: oidc.Configuration; service: oidc.Configuration };
}

const test = anyTest as TestFn<Context>;

const PASSWORD = 'correct horse battery staple';

test.before(async (t) => {
  const gh = await startLoopbackGatehouse();
  const [web, other, service] = await Promise.all([
    createClient(gh, ['--name', 'Web app', '--type', 'confidential', '--grant', 'authorization_code', '--grant', 'refresh_token', '--redirect-uri', REDIRECT_URI, '--post-logout-redirect-uri', POST_LOGOUT_URI]),
    createClient(gh, ['--name', 'Another app', '--type', 'confidential', '--grant', 'authorization_code', '--redirect-uri', REDIRECT_URI]),
    createClient(gh, ['--name', 'Billing service', '--type', 'confidential', '--grant', 'client_credentials']),
  ]);
  t.context = {
    gh,
    rp: { web: await relyingParty(gh, web, 'basic'), other: await relyingParty(gh, other, 'basic'), service: await relyingParty(gh, service, 'basic') },
  };
});

test.after.always(async (t) => t.context.gh?.close());

/** A person of the test's own, signed in to the web app in their own browser. */
async function signedIn(t: ExecutionContext<Context>) {
  const { gh, rp } = t.context;
  const username = `p${randomBytes(5).toString('hex')}`;
  const sub = await createUserDirectly(gh, username, PASSWORD);
  const agent = new UserAgent([REDIRECT_URI, POST_LOGOUT_URI]);
  const pending = await authorizationRequest(rp.web);
  const tokens = await redeem(rp.web, await signInAndAllow(agent, pending.url, username, PASSWORD), pending);
  return { username, sub, agent, tokens };
}

function bearerLogout(gh: TestGatehouse, authorization?: string): Promise<Response> {
  return fetch(`${gh.config.issuer}/logout`, { method: 'POST', headers: authorization ? { authorization } : {} });
}

async function userinfoStatus(gh: TestGatehouse, accessToken: string): Promise<number> {
  const res = await fetch(`${gh.config.issuer}/userinfo`, { headers: { authorization: `Bearer ${accessToken}` } });
  await res.arrayBuffer();
  return res.status;
}

test('signing out from the app: I confirm on Gatehouse, return to the app with its state, and must sign in again', async (t) => {
  const { rp } = t.context;
  const { agent, tokens } = await signedIn(t);
  const state = oidc.randomState();
  const endSession = oidc.buildEndSessionUrl(rp.web, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: POST_LOGOUT_URI, state });
  t.is(endSession.origin + endSession.pathname, `${t.context.gh.config.issuer}/session/end`);

  const confirm = await agent.open(endSession.href);
  t.is(confirm.status, 200);
  t.regex(confirm.html, /Web app/, 'the page names the app');
  t.regex(confirm.html, /<button\b[^>]*form="op\.logoutForm"[^>]*name="logout"[^>]*value="yes"/);

  const back = await submitFormById(agent, confirm, 'op.logoutForm', { logout: 'yes' });
  t.true(back.url.startsWith(POST_LOGOUT_URI), `expected the post-logout redirect URI, got ${back.url} (${back.status})`);
  t.is(new URL(back.url).searchParams.get('state'), state);

  const again = await agent.open((await authorizationRequest(rp.web)).url);
  t.true(isLoginPage(again), `expected the login page, got ${again.url}`);
});

// BUG (interactions/views/logout.njk): the "Stay signed in" button is name="logout" value="no";
// oidc-provider signs out on any non-empty `logout` parameter, so it signs the person out.
test('choosing "Stay signed in" on the sign-out page keeps me signed in to Gatehouse', async (t) => {
  const { rp } = t.context;
  const { agent, tokens } = await signedIn(t);
  const endSession = oidc.buildEndSessionUrl(rp.web, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: POST_LOGOUT_URI });
  const confirm = await agent.open(endSession.href);
  t.regex(confirm.html, /Stay signed in/);
  // The browser sends what the clicked button carries: here name="logout" value="no".
  const stay = /<button\b[^>]*form="op\.logoutForm"[^>]*>\s*Stay signed in/.exec(confirm.html)?.[0] ?? '';
  const name = /\bname="([^"]*)"/.exec(stay)?.[1];
  const value = /\bvalue="([^"]*)"/.exec(stay)?.[1];
  await submitFormById(agent, confirm, 'op.logoutForm', name ? { [name]: value ?? '' } : {});

  // Still signed in: another app does not ask for my password.
  const page = await agent.open((await authorizationRequest(rp.other)).url);
  t.false(isLoginPage(page), 'the login page came back: "Stay signed in" signed me out');
  t.true(isConsentPage(page));
});

test('an unregistered post_logout_redirect_uri is never redirected to', async (t) => {
  const { rp } = t.context;
  const { agent, tokens } = await signedIn(t);
  const evil = 'http://127.0.0.1:8765/elsewhere';
  const endSession = oidc.buildEndSessionUrl(rp.web, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: evil, state: 'x' });

  const res = await agent.request(endSession.href);
  const html = await res.text();
  t.is(res.status, 400);
  t.is(res.headers.get('location'), null);
  t.regex(html, /post_logout_redirect_uri/);
  t.false(html.includes('op.logoutForm'), 'no sign-out form that could lead there');
});

test('POST /logout with my access token revokes the app\'s tokens and ends my session there', async (t) => {
  const { gh, rp } = t.context;
  const { agent, tokens } = await signedIn(t);
  t.is(await userinfoStatus(gh, tokens.access_token), 200);

  const res = await bearerLogout(gh, `Bearer ${tokens.access_token}`);
  t.is(res.status, 204);
  t.is(await res.text(), '');

  t.is(await userinfoStatus(gh, tokens.access_token), 401);
  t.false((await oidc.tokenIntrospection(rp.web, tokens.access_token)).active);
  t.is(await oauthError(oidc.refreshTokenGrant(rp.web, tokens.refresh_token!)), 'invalid_grant');

  // The app was the only one in my session, so the session is over.
  const again = await agent.open((await authorizationRequest(rp.web)).url);
  t.true(isLoginPage(again), `expected the login page, got ${again.url}`);

  // The token is spent: a second logout with it is refused.
  t.is((await bearerLogout(gh, `Bearer ${tokens.access_token}`)).status, 401);
});

test('POST /logout signs me out of that app only: my session in another app stays', async (t) => {
  const { gh, rp } = t.context;
  const { agent, tokens, sub } = await signedIn(t);
  const otherPending = await authorizationRequest(rp.other);
  const otherLanded = await signInAndAllow(agent, otherPending.url, 'unused', 'unused');
  t.truthy(callbackParams(otherLanded)?.get('code'), 'signed in already: only consent was asked');
  const otherTokens = await redeem(rp.other, otherLanded, otherPending);

  t.is((await bearerLogout(gh, `Bearer ${tokens.access_token}`)).status, 204);
  t.is(await userinfoStatus(gh, tokens.access_token), 401);
  t.is(await userinfoStatus(gh, otherTokens.access_token), 200, 'the other app\'s token is untouched');

  const silentOther = await authorizationRequest(rp.other, { prompt: 'none' });
  const other = await agent.open(silentOther.url);
  t.truthy(callbackParams(other)?.get('code'), `the other app still signs me in silently, got ${other.url}`);
  t.is((await redeem(rp.other, other, silentOther)).claims()!.sub, sub);

  const silentWeb = await authorizationRequest(rp.web, { prompt: 'none' });
  const web = await agent.open(silentWeb.url);
  t.falsy(callbackParams(web)?.get('code'), 'the signed-out app gets no code silently');
  t.truthy(callbackParams(web)?.get('error'));
  const visible = await agent.open((await authorizationRequest(rp.web)).url);
  t.true(isLoginPage(visible) || isConsentPage(visible), `the signed-out app must ask again, got ${visible.url}`);
});

test('POST /logout with an invalid token gets 401 invalid_token JSON and a WWW-Authenticate challenge', async (t) => {
  const { gh } = t.context;
  const res = await bearerLogout(gh, `Bearer ${randomBytes(32).toString('base64url')}`);
  t.is(res.status, 401);
  t.regex(res.headers.get('content-type') ?? '', /application\/json/);
  t.regex(res.headers.get('www-authenticate') ?? '', /^Bearer\b.*error="invalid_token"/);
  const body = (await res.json()) as Record<string, unknown>;
  t.is(body.error, 'invalid_token');
  t.is(typeof body.error_description, 'string');
});

test('POST /logout without an Authorization header gets 401', async (t) => {
  const { gh } = t.context;
  const res = await bearerLogout(gh);
  t.is(res.status, 401);
  t.regex(res.headers.get('www-authenticate') ?? '', /^Bearer\b/);
  t.is(((await res.json()) as Record<string, unknown>).error, 'invalid_token');

  const basic = await bearerLogout(gh, rawBasicAuth('a', 'b'));
  t.is(basic.status, 401);
});

test('POST /logout with a client-credentials token gets 401: there is no person to sign out', async (t) => {
  const { gh, rp } = t.context;
  const { access_token } = await oidc.clientCredentialsGrant(rp.service);
  const res = await bearerLogout(gh, `Bearer ${access_token}`);
  t.is(res.status, 401);
  t.is(((await res.json()) as Record<string, unknown>).error, 'invalid_token');
  t.true((await oidc.tokenIntrospection(rp.service, access_token)).active, 'and the service token is left alone');
});
