/**
 * Authorization requests that name no scope (the DOT tutorial, Postman with an empty Scope
 * field, the Flask guide) ask for the client's default scope: its registered scope unless the
 * operator set a narrower default. A client without a default refuses them with invalid_scope
 * before any page is shown.
 */
import anyTest, { type TestFn } from 'ava';
import type { TestGatehouse } from './support/gatehouse.ts';
import { CLI_ACTOR } from '../src/admin/audit.ts';
import { callbackParams, createUserDirectly, oidc, REDIRECT_URI, relyingParty, startLoopbackGatehouse, type RegisteredClient } from './support/relying-party.ts';
import { signInAllowingConsent, UserAgent } from './support/user-agent.ts';
import { scopesOnConsent } from './support/seeds.ts';
import { ProxiedUserAgent, walk } from './support/conformance.ts';
import { basicAuth } from './support/http.ts';

const test = anyTest as TestFn<{ gh: TestGatehouse; tutorial: RegisteredClient; narrowed: RegisteredClient; strict: RegisteredClient; noRefresh: RegisteredClient }>;

const PASSWORD = 'default-scope-correct-horse';
/** The DOT tutorial's redirect URI, as it registers it. */
const TUTORIAL_CALLBACK = 'http://127.0.0.1:8000/noexist/callback';

test.before(async (t) => {
  const gh = await startLoopbackGatehouse({ env: { GATEHOUSE_API_SCOPES: 'read write' } });
  await Promise.all(['alice', 'bob', 'carol'].map((name) => createUserDirectly(gh, name, PASSWORD)));
  const app = async (name: string, settings: Record<string, unknown>): Promise<RegisteredClient> => {
    const { client, clientSecret } = await gh.services.admin.createClient(CLI_ACTOR, { name, type: 'confidential', ...settings });
    return { clientId: client.clientId, clientSecret: clientSecret! };
  };
  const signIn = ['authorization_code', 'refresh_token'];
  t.context = {
    gh,
    // DOT's tutorial app: its scopes are DOT's "read write", and it posts its secret in the body.
    tutorial: await app('DOT tutorial', { grantTypes: signIn, authMethod: 'client_secret_post', redirectUris: [TUTORIAL_CALLBACK], scope: ['read', 'write'] }),
    narrowed: await app('Narrowed', { grantTypes: signIn, redirectUris: [REDIRECT_URI], scope: ['openid', 'profile', 'email', 'offline_access'], defaultScope: ['openid', 'profile'] }),
    strict: await app('Strict', { grantTypes: ['authorization_code'], redirectUris: [REDIRECT_URI], defaultScope: [] }),
    noRefresh: await app('Offline only', { grantTypes: ['authorization_code'], redirectUris: [REDIRECT_URI], scope: ['offline_access'] }),
  };
});

test.after.always(async (t) => t.context.gh?.close());

/** The person signs in and, when asked, allows; returns the consent page seen (if any) and where the browser landed. */
const signInAndAllow = (agent: UserAgent, url: string, username: string) => signInAllowingConsent(agent, url, username, PASSWORD);

test.serial("the DOT tutorial's scope-less request ends with a code, and the token's scope is the app's default", async (t) => {
  const { gh, tutorial } = t.context;
  const agent = new UserAgent([TUTORIAL_CALLBACK]);
  // Exactly the tutorial's link: no scope, no state.
  const { consent, landed } = await signInAndAllow(
    agent,
    `${gh.config.issuer}/authorize?response_type=code&client_id=${tutorial.clientId}&redirect_uri=${TUTORIAL_CALLBACK}`,
    'alice',
  );
  t.deepEqual(scopesOnConsent(consent?.html), ['read', 'write'], 'the consent page lists what the default asks');
  t.true(landed.url.startsWith(TUTORIAL_CALLBACK), `landed at ${landed.url}`);
  const code = new URL(landed.url).searchParams.get('code');
  t.truthy(code);
  t.false(new URL(landed.url).searchParams.has('error'));

  // Its curl token exchange, client_secret_post.
  const res = await fetch(`${gh.config.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: `client_id=${tutorial.clientId}&client_secret=${tutorial.clientSecret}&code=${code}&redirect_uri=${TUTORIAL_CALLBACK}&grant_type=authorization_code`,
  });
  const body = (await res.json()) as Record<string, unknown>;
  t.is(res.status, 200, JSON.stringify(body));
  t.is(body.scope, 'read write', 'as the tutorial shows: "scope": "read write"');
  t.is(body.token_type, 'Bearer');
  t.is(typeof body.refresh_token, 'string');
  t.is(body.id_token, undefined, 'no openid in the default: a plain OAuth 2.0 flow');
});

test.serial('a second scope-less sign-in of the same person is not asked again: the default was allowed', async (t) => {
  const { gh, tutorial } = t.context;
  const agent = new UserAgent([TUTORIAL_CALLBACK]);
  const { consent, landed } = await signInAndAllow(agent, `${gh.config.issuer}/authorize?response_type=code&client_id=${tutorial.clientId}&redirect_uri=${TUTORIAL_CALLBACK}`, 'alice');
  t.is(consent, undefined);
  t.truthy(new URL(landed.url).searchParams.get('code'));
});

test.serial('with a narrower default, a request without scope asks only for it, and gets an ID token since openid is in it', async (t) => {
  const { gh, narrowed } = t.context;
  const rp = await relyingParty(gh, narrowed, 'basic');
  const state = oidc.randomState();
  const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: REDIRECT_URI, state });
  t.false(url.searchParams.has('scope'));
  const agent = new UserAgent([REDIRECT_URI]);
  const { consent, landed } = await signInAndAllow(agent, url.href, 'bob');
  t.deepEqual(scopesOnConsent(consent?.html), ['openid', 'profile']);
  const tokens = await oidc.authorizationCodeGrant(rp, new URL(landed.url), { expectedState: state, idTokenExpected: true });
  t.is(tokens.scope, 'openid profile');
  t.truthy(tokens.claims()?.sub);
  const info = await oidc.fetchUserInfo(rp, tokens.access_token, tokens.claims()!.sub);
  t.is(info.preferred_username, 'bob');
  t.is(info.email, undefined, 'email is registered but not in the default');
});

test.serial('a request that names its scope gets that scope, not the default', async (t) => {
  const { gh, narrowed } = t.context;
  const rp = await relyingParty(gh, narrowed, 'basic');
  const state = oidc.randomState();
  const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: REDIRECT_URI, state, scope: 'openid email' });
  const { landed } = await signInAndAllow(new UserAgent([REDIRECT_URI]), url.href, 'bob');
  const tokens = await oidc.authorizationCodeGrant(rp, new URL(landed.url), { expectedState: state, idTokenExpected: true });
  t.is(tokens.scope, 'openid email');
});

test.serial('a client without a default refuses a scope-less request with invalid_scope at its redirect URI, before any page, with the state', async (t) => {
  const { gh, strict } = t.context;
  const agent = new UserAgent([REDIRECT_URI]);
  const page = await agent.open(`${gh.config.issuer}/authorize?client_id=${strict.clientId}&redirect_uri=${REDIRECT_URI}&response_type=code&state=random_state_string`);
  const params = callbackParams(page);
  t.truthy(params, `sent to ${page.url}`);
  t.is(params!.get('error'), 'invalid_scope');
  t.regex(params!.get('error_description')!, /names no scope/);
  t.is(params!.get('state'), 'random_state_string');
  t.false(params!.has('code'));
  t.deepEqual(agent.cookieNames().filter((n) => n.startsWith('_interaction')), [], 'no sign-in was started');

  const withoutState = callbackParams(await new UserAgent([REDIRECT_URI]).open(`${gh.config.issuer}/authorize?client_id=${strict.clientId}&redirect_uri=${REDIRECT_URI}&response_type=code`));
  t.is(withoutState!.get('error'), 'invalid_scope');
  t.false(withoutState!.has('state'));
});

test.serial('a client whose only scope is offline_access, without the refresh_token grant, has nothing to default to: invalid_scope before any page', async (t) => {
  const { gh, noRefresh } = t.context;
  for (const scope of ['', '&scope=offline_access']) {
    const page = await new UserAgent([REDIRECT_URI]).open(`${gh.config.issuer}/authorize?client_id=${noRefresh.clientId}&redirect_uri=${REDIRECT_URI}&response_type=code&state=s1${scope}`);
    const params = callbackParams(page);
    t.is(params?.get('error'), 'invalid_scope', `${scope || 'no scope'}: sent to ${page.url}`);
    t.is(params?.get('state'), 's1');
  }
});

test.serial('an unregistered redirect URI still gets an error page, never a redirect, even without scope', async (t) => {
  const { gh, strict } = t.context;
  const page = await new UserAgent(['http://evil.example']).open(`${gh.config.issuer}/authorize?client_id=${strict.clientId}&redirect_uri=http://evil.example/cb&response_type=code`);
  t.is(page.status, 400);
  t.regex(page.html, /redirect_uri/);
});

test.serial('the default follows the registered scope when the operator changes it, unless a default was set', async (t) => {
  const { gh, tutorial } = t.context;
  const { client } = await gh.services.clients.update(tutorial.clientId, { scope: ['read'] });
  t.is(client.defaultScope, null);
  const agent = new UserAgent([TUTORIAL_CALLBACK]);
  const { consent, landed } = await signInAndAllow(agent, `${gh.config.issuer}/authorize?response_type=code&client_id=${tutorial.clientId}&redirect_uri=${TUTORIAL_CALLBACK}`, 'carol');
  t.deepEqual(scopesOnConsent(consent?.html), ['read']);
  t.truthy(new URL(landed.url).searchParams.get('code'));
});

// Where Gatehouse serves POSTed authorization requests (https behind its trusted proxy, see
// src/oidc/provider.ts), the scope is read from the form body as oidc-provider reads it.
test('a POSTed authorization request without scope asks for the default; one with offline_access keeps it (https issuer behind the trusted proxy)', async (t) => {
  const publicOrigin = 'https://id.example.com';
  const gh = await startLoopbackGatehouse({ env: { GATEHOUSE_TRUST_PROXY: 'true', GATEHOUSE_ISSUER: publicOrigin } });
  try {
    await createUserDirectly(gh, 'dana', PASSWORD);
    const { client, clientSecret } = await gh.services.admin.createClient(CLI_ACTOR, {
      name: 'Posting app', type: 'confidential', grantTypes: ['authorization_code', 'refresh_token'], redirectUris: [REDIRECT_URI], scope: ['openid', 'profile', 'offline_access'], defaultScope: ['profile'],
    });
    const post = async (fields: Record<string, string>) => {
      const agent = new ProxiedUserAgent([REDIRECT_URI], publicOrigin, gh.url.replace('localhost', '127.0.0.1'));
      const body = new URLSearchParams({ response_type: 'code', client_id: client.clientId, redirect_uri: REDIRECT_URI, state: 'posted', ...fields });
      const first = await agent.open(`${publicOrigin}/authorize`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
      const walked = await walk(agent, first, 'dana', PASSWORD);
      const code = new URL(walked.page.url).searchParams.get('code');
      const res = await fetch(`${gh.url}/token`, {
        method: 'POST',
        headers: { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'id.example.com', authorization: basicAuth(client.clientId, clientSecret!) },
        body: new URLSearchParams({ grant_type: 'authorization_code', code: code ?? '', redirect_uri: REDIRECT_URI }),
      });
      return { walked, token: (await res.json()) as Record<string, string> };
    };
    const scopeless = await post({});
    t.is(scopeless.token.scope, 'profile', JSON.stringify(scopeless.token));
    const offline = await post({ scope: 'openid offline_access' });
    t.deepEqual(offline.token.scope?.split(' ').sort(), ['offline_access', 'openid'], JSON.stringify(offline.token));
  } finally {
    await gh.close();
  }
});
