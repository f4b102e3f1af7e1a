import anyTest, { type TestFn } from 'ava';
import { startTestGatehouse, type TestGatehouse } from './support/gatehouse.ts';
import { createClient, createUser, oidc, POST_LOGOUT_URI, REDIRECT_URI, relyingParty, signInAndAllow, type RegisteredClient } from './support/relying-party.ts';
import { UserAgent } from './support/user-agent.ts';

const test = anyTest as TestFn<{ gh: TestGatehouse; sub: string; web: RegisteredClient; flask: RegisteredClient; spa: RegisteredClient }>;

const PASSWORD = 'correct horse battery staple';

test.before(async (t) => {
  const gh = await startTestGatehouse();
  const sub = await createUser(gh, 'alice', PASSWORD, ['--name', 'Alice Liddell', '--email-verified']);
  const web = await createClient(gh, ['--name', 'Web app', '--type', 'confidential', '--grant', 'authorization_code', '--grant', 'refresh_token', '--redirect-uri', REDIRECT_URI, '--post-logout-redirect-uri', POST_LOGOUT_URI]);
  const flask = await createClient(gh, ['--name', 'Flask tutorial', '--type', 'confidential', '--grant', 'authorization_code', '--auth-method', 'client_secret_post', '--redirect-uri', REDIRECT_URI]);
  const spa = await createClient(gh, ['--name', 'Single-page app', '--type', 'public', '--grant', 'authorization_code', '--grant', 'refresh_token', '--redirect-uri', REDIRECT_URI]);
  t.context = { gh, sub, web, flask, spa };
});

test.after.always(async (t) => t.context.gh?.close());

test('a web app signs a person in with client_secret_basic and PKCE, refreshes, and reads userinfo', async (t) => {
  const { gh, web, sub } = t.context;
  const rp = await relyingParty(gh, web, 'basic');
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(rp, {
    redirect_uri: REDIRECT_URI,
    scope: 'openid profile email',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  const agent = new UserAgent([REDIRECT_URI]);
  const landed = await signInAndAllow(agent, url.href, 'alice', PASSWORD);
  t.true(landed.url.startsWith(REDIRECT_URI), landed.html.slice(0, 300));

  const tokens = await oidc.authorizationCodeGrant(rp, new URL(landed.url), { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true });
  t.is(tokens.claims()!.sub, sub);
  t.truthy(tokens.refresh_token, 'a client with the refresh_token grant gets one without offline_access');

  const info = await oidc.fetchUserInfo(rp, tokens.access_token, sub);
  t.is(info.preferred_username, 'alice');
  t.is(info.name, 'Alice Liddell');
  t.is(info.email, 'alice@example.com');
  t.true(info.email_verified);

  const refreshed = await oidc.refreshTokenGrant(rp, tokens.refresh_token!);
  t.not(refreshed.refresh_token, tokens.refresh_token, 'refresh tokens rotate on every use');
  t.truthy(refreshed.access_token);
});
