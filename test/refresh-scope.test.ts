/**
 * offline_access asked for on Gatehouse's consent page stays in the grant (oidc-provider keeps
 * it only with prompt=consent otherwise), so a refresh that repeats the original scope, as
 * Authlib does with its client_kwargs, works; a scope never granted is still refused.
 */
import anyTest, { type TestFn } from 'ava';
import { CLI_ACTOR } from '../src/admin/audit.ts';
import type { TestGatehouse } from './support/gatehouse.ts';
import { authorizationRequest, createUserDirectly, oauthError, oidc, redeem, REDIRECT_URI, relyingParty, startLoopbackGatehouse, type RegisteredClient } from './support/relying-party.ts';
import { signInAllowingConsent, UserAgent } from './support/user-agent.ts';
import { scopesOnConsent } from './support/seeds.ts';

const test = anyTest as TestFn<{ gh: TestGatehouse; flask: RegisteredClient; firstParty: RegisteredClient; noRefresh: RegisteredClient; notRegistered: RegisteredClient }>;

const PASSWORD = 'refresh-scope-correct-horse';
/** What Authlib's client_kwargs carry in the Flask guide's app, and send again with every refresh. */
const AUTHLIB_SCOPE = 'openid profile email offline_access';

test.before(async (t) => {
  const gh = await startLoopbackGatehouse();
  await Promise.all(['alice', 'bob', 'carol', 'dave', 'erin'].map((name) => createUserDirectly(gh, name, PASSWORD)));
  const app = async (name: string, settings: Record<string, unknown>): Promise<RegisteredClient> => {
    const { client, clientSecret } = await gh.services.admin.createClient(CLI_ACTOR, { name, type: 'confidential', redirectUris: [REDIRECT_URI], ...settings });
    return { clientId: client.clientId, clientSecret: clientSecret! };
  };
  t.context = {
    gh,
    flask: await app('Flask app', { grantTypes: ['authorization_code', 'refresh_token'], authMethod: 'client_secret_post', scope: AUTHLIB_SCOPE.split(' ') }),
    firstParty: await app('First-party app', { grantTypes: ['authorization_code', 'refresh_token'], scope: AUTHLIB_SCOPE.split(' '), skipConsent: true }),
    noRefresh: await app('No refresh', { grantTypes: ['authorization_code'], scope: AUTHLIB_SCOPE.split(' ') }),
    notRegistered: await app('Online only', { grantTypes: ['authorization_code', 'refresh_token'], scope: ['openid', 'profile', 'email'] }),
  };
});

test.after.always(async (t) => t.context.gh?.close());

const signIn = (url: string, username: string, agent = new UserAgent([REDIRECT_URI])) => signInAllowingConsent(agent, url, username, PASSWORD);

/** Authlib's refresh_token(): a form post with the refresh token, the repeated scope and the client's secret. */
async function authlibRefresh(gh: TestGatehouse, app: RegisteredClient, refreshToken: string, scope = AUTHLIB_SCOPE) {
  const res = await fetch(`${gh.config.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, scope, client_id: app.clientId, client_secret: app.clientSecret! }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

test.serial('the consent page says in plain words that the app keeps access, and Allow keeps offline_access in the grant', async (t) => {
  const { gh, flask } = t.context;
  const rp = await relyingParty(gh, flask, 'post');
  const pending = await authorizationRequest(rp, { scope: AUTHLIB_SCOPE });
  t.false(new URL(pending.url).searchParams.has('prompt'), 'Authlib sends no prompt=consent');
  const { consent, landed } = await signIn(pending.url, 'alice');
  t.deepEqual(scopesOnConsent(consent?.html), AUTHLIB_SCOPE.split(' '));
  t.regex(consent!.html, /Keep access when you are not using it/);
  const tokens = await redeem(rp, landed, pending);
  t.deepEqual(tokens.scope?.split(' ').sort(), ['email', 'offline_access', 'openid', 'profile']);
  t.truthy(tokens.refresh_token);
  const [grant] = await gh.services.grants.listForUser(tokens.claims()!.sub);
  t.true(grant!.scope.split(' ').includes('offline_access'), `the grant holds ${grant!.scope}`);
});

test.serial("Authlib's refresh repeating the original scope works twice in a row, rotating the refresh token", async (t) => {
  const { gh, flask } = t.context;
  const rp = await relyingParty(gh, flask, 'post');
  const pending = await authorizationRequest(rp, { scope: AUTHLIB_SCOPE });
  const tokens = await redeem(rp, (await signIn(pending.url, 'bob')).landed, pending);
  let refreshToken = tokens.refresh_token!;
  for (const round of [1, 2]) {
    const refreshed = await authlibRefresh(gh, flask, refreshToken);
    t.is(refreshed.status, 200, `refresh ${round}: ${JSON.stringify(refreshed.body)}`);
    t.deepEqual(refreshed.body.scope.split(' ').sort(), ['email', 'offline_access', 'openid', 'profile']);
    t.not(refreshed.body.refresh_token, refreshToken, 'each refresh rotates');
    refreshToken = refreshed.body.refresh_token;
  }
  // The rotated token is spent: presenting it again is refused (and revokes the grant).
  t.is((await authlibRefresh(gh, flask, tokens.refresh_token!)).body.error, 'invalid_grant');
});

test.serial('a refresh asking for a scope never granted still gets invalid_scope', async (t) => {
  const { gh, flask } = t.context;
  const rp = await relyingParty(gh, flask, 'post');
  const pending = await authorizationRequest(rp, { scope: AUTHLIB_SCOPE });
  const tokens = await redeem(rp, (await signIn(pending.url, 'carol')).landed, pending);
  const wider = await authlibRefresh(gh, flask, tokens.refresh_token!, `${AUTHLIB_SCOPE} userdata`);
  t.is(wider.status, 400);
  t.is(wider.body.error, 'invalid_scope');
  t.is(wider.body.error_description, 'refresh token missing requested scope');

  // openid-client, as a Node app refreshes: the repeated scope works, a wider one does not.
  const refreshed = await oidc.refreshTokenGrant(rp, tokens.refresh_token!, { scope: AUTHLIB_SCOPE });
  t.deepEqual(refreshed.scope?.split(' ').sort(), ['email', 'offline_access', 'openid', 'profile']);
  t.is(await oauthError(oidc.refreshTokenGrant(rp, refreshed.refresh_token!, { scope: 'openid userdata' })), 'invalid_scope');
  const narrower = await oidc.refreshTokenGrant(rp, refreshed.refresh_token!, { scope: 'openid' });
  t.is(narrower.scope, 'openid', 'a narrower refresh still works');
});

test.serial('a sign-in that did not ask for offline_access cannot gain it at refresh', async (t) => {
  const { gh, flask } = t.context;
  const rp = await relyingParty(gh, flask, 'post');
  const pending = await authorizationRequest(rp, { scope: 'openid profile' });
  const { consent, landed } = await signIn(pending.url, 'dave');
  t.deepEqual(scopesOnConsent(consent?.html), ['openid', 'profile']);
  const tokens = await redeem(rp, landed, pending);
  t.is(tokens.scope, 'openid profile');
  t.truthy(tokens.refresh_token, 'the app has the refresh_token grant: it gets one anyway');
  t.is(await oauthError(oidc.refreshTokenGrant(rp, tokens.refresh_token!, { scope: AUTHLIB_SCOPE })), 'invalid_scope');

  // Asking again with offline_access, the person is asked only about it.
  const again = await authorizationRequest(rp, { scope: AUTHLIB_SCOPE });
  const agent = new UserAgent([REDIRECT_URI]);
  const second = await signIn(again.url, 'dave', agent);
  t.deepEqual(scopesOnConsent(second.consent?.html), ['email', 'offline_access']);
  const wider = await redeem(rp, second.landed, again);
  t.true(wider.scope!.split(' ').includes('offline_access'));
  t.is((await authlibRefresh(gh, t.context.flask, wider.refresh_token!)).status, 200);
});

test.serial('a first-party app (no consent page) keeps offline_access too, and its repeated-scope refresh works', async (t) => {
  const { gh, firstParty } = t.context;
  const rp = await relyingParty(gh, firstParty, 'basic');
  const pending = await authorizationRequest(rp, { scope: AUTHLIB_SCOPE });
  const { consent, landed } = await signIn(pending.url, 'erin');
  t.is(consent, undefined, 'no consent page for a first-party app');
  const tokens = await redeem(rp, landed, pending);
  t.true(tokens.scope!.split(' ').includes('offline_access'), tokens.scope);
  const refreshed = await oidc.refreshTokenGrant(rp, tokens.refresh_token!, { scope: AUTHLIB_SCOPE });
  t.true(refreshed.scope!.split(' ').includes('offline_access'));
});

test.serial('an app without the refresh_token grant asking for offline_access gets neither it nor a refresh token', async (t) => {
  const { gh, noRefresh } = t.context;
  const rp = await relyingParty(gh, noRefresh, 'basic');
  const pending = await authorizationRequest(rp, { scope: AUTHLIB_SCOPE });
  const { consent, landed } = await signIn(pending.url, 'alice');
  t.deepEqual(scopesOnConsent(consent?.html), ['openid', 'profile', 'email'], 'offline access is not offered');
  const tokens = await redeem(rp, landed, pending);
  t.is(tokens.scope, 'openid profile email');
  t.is(tokens.refresh_token, undefined);
});

test.serial('an app registered without offline_access does not get it by asking, and its refresh cannot ask for it', async (t) => {
  const { gh, notRegistered } = t.context;
  const rp = await relyingParty(gh, notRegistered, 'basic');
  const pending = await authorizationRequest(rp, { scope: AUTHLIB_SCOPE });
  const { consent, landed } = await signIn(pending.url, 'bob');
  t.deepEqual(scopesOnConsent(consent?.html), ['openid', 'profile', 'email']);
  const tokens = await redeem(rp, landed, pending);
  t.is(tokens.scope, 'openid profile email');
  t.is(await oauthError(oidc.refreshTokenGrant(rp, tokens.refresh_token!, { scope: AUTHLIB_SCOPE })), 'invalid_scope');
});
