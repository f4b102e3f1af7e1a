/**
 * Pushed authorization requests (PAR, RFC 9126) and DPoP (RFC 9449), as the README documents
 * them: a web app pushes its authorization request to /request from its backend, sends the
 * browser to /authorize with only the request_uri it got back, and redeems the code with DPoP
 * proofs, so that its tokens are bound to a key only it holds.
 */
import anyTest, { type TestFn } from 'ava';
import { basicAuth, FORM_CONTENT_TYPE } from './support/http.ts';
import type { TestGatehouse } from './support/gatehouse.ts';
import {
  callbackParams,
  createClient,
  createUserDirectly,
  oauthError,
  oidc,
  REDIRECT_URI,
  relyingParty,
  startLoopbackGatehouse,
  type RegisteredClient,
} from './support/relying-party.ts';
import { signInAllowingConsent, UserAgent } from './support/user-agent.ts';
import { runCli } from './support/cli.ts';

const test = anyTest as TestFn<{ gh: TestGatehouse; web: RegisteredClient; rp: oidc.Configuration; sub: string }>;

const PASSWORD = 'correct horse battery staple';

test.before(async (t) => {
  const gh = await startLoopbackGatehouse();
  const [web, sub] = await Promise.all([
    createClient(gh, [
      '--name',
      'Web app',
      '--type',
      'confidential',
      '--grant',
      'authorization_code',
      '--grant',
      'refresh_token',
      '--redirect-uri',
      REDIRECT_URI,
    ]),
    createUserDirectly(gh, 'alice', PASSWORD),
  ]);
  t.context = { gh, web, sub, rp: await relyingParty(gh, web, 'basic') };
});

test.after.always(async (t) => t.context.gh?.close());

test('discovery advertises the PAR endpoint and the DPoP proof algorithms', async (t) => {
  const { gh } = t.context;
  const doc = (await (await fetch(`${gh.config.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
  t.is(doc.pushed_authorization_request_endpoint, `${gh.config.issuer}/request`);
  t.is(doc.require_pushed_authorization_requests, undefined, 'PAR is offered, not required');
  t.deepEqual(doc.dpop_signing_alg_values_supported, ['ES256', 'Ed25519', 'EdDSA']);
});

test('a web app pushes its authorization request, sends the browser with only the request_uri, and redeems the code with DPoP-bound tokens', async (t) => {
  const { gh, web, rp, sub } = t.context;
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();

  // The backend pushes the request, authenticated as the client (curl -u id:secret -d … /request).
  const pushed = await fetch(`${gh.config.issuer}/request`, {
    method: 'POST',
    headers: { ...FORM_CONTENT_TYPE, authorization: basicAuth(web.clientId, web.clientSecret!) },
    body: new URLSearchParams({
      client_id: web.clientId,
      response_type: 'code',
      redirect_uri: REDIRECT_URI,
      scope: 'openid profile',
      state,
      nonce,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    }),
  });
  t.is(pushed.status, 201, await pushed.clone().text());
  const { request_uri, expires_in } = (await pushed.json()) as { request_uri: string; expires_in: number };
  t.regex(request_uri, /^urn:ietf:params:oauth:request_uri:/);
  t.is(expires_in, 60, 'a pushed request lives a minute');

  // The browser carries nothing but the client id and the request_uri.
  const authorize = `${gh.config.issuer}/authorize?${new URLSearchParams({ client_id: web.clientId, request_uri })}`;
  const { consent, landed } = await signInAllowingConsent(new UserAgent([REDIRECT_URI]), authorize, 'alice', PASSWORD);
  t.truthy(consent, 'the consent page was shown');
  const callback = new URL(landed.url);
  t.is(callback.searchParams.get('state'), state, 'the pushed state comes back');
  t.truthy(callback.searchParams.get('code'));

  // The code is redeemed with DPoP proofs: the tokens are bound to this key pair.
  const DPoP = oidc.getDPoPHandle(rp, await oidc.randomDPoPKeyPair('ES256'));
  const tokens = await oidc.authorizationCodeGrant(rp, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce }, undefined, {
    DPoP,
  });
  t.is(tokens.token_type, 'dpop');
  t.is(tokens.claims()?.sub, sub);
  t.is((await oidc.fetchUserInfo(rp, tokens.access_token, sub, { DPoP })).sub, sub, 'with a proof of the key, userinfo answers');

  // Without the key, the token is worth nothing: sent as a plain bearer token, it is refused.
  const asBearer = await fetch(`${gh.config.issuer}/userinfo`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
  t.is(asBearer.status, 401);

  // The code works once, and so does the pushed request: the same link again is sent back to
  // the app (its only redirect URI) with invalid_request_uri.
  t.is(
    await oauthError(
      oidc.authorizationCodeGrant(rp, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce }, undefined, { DPoP }),
    ),
    'invalid_grant',
  );
  const again = await new UserAgent([REDIRECT_URI]).open(authorize);
  t.is(callbackParams(again)?.get('error'), 'invalid_request_uri');
});

/** A second web app of the operator's, registered with `extra` (e.g. --require-par). */
async function strictApp(t: { context: { gh: TestGatehouse } }, extra: string[]) {
  const { gh } = t.context;
  const app = await createClient(gh, [
    '--name',
    `Strict app ${extra.join(' ')}`,
    '--type',
    'confidential',
    '--grant',
    'authorization_code',
    '--redirect-uri',
    REDIRECT_URI,
    ...extra,
  ]);
  return { app, rp: await relyingParty(gh, app, 'basic') };
}

test('with --require-par, a plain authorization link is refused and a pushed request works (openid-client buildAuthorizationUrlWithPAR)', async (t) => {
  const { gh } = t.context;
  const { app, rp } = await strictApp(t, ['--require-par']);
  const shown = await runCli(['clients', 'show', app.clientId, '--json'], gh.env);
  t.true(shown.json<{ require_pushed_authorization_requests: boolean }>().require_pushed_authorization_requests);
  const verifier = oidc.randomPKCECodeVerifier();
  const params = {
    redirect_uri: REDIRECT_URI,
    scope: 'openid',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state: oidc.randomState(),
  };

  const plain = await new UserAgent([REDIRECT_URI]).open(oidc.buildAuthorizationUrl(rp, params).href);
  t.is(callbackParams(plain)?.get('error'), 'invalid_request', `refused back at the app: ${plain.url}`);
  t.regex(callbackParams(plain)?.get('error_description') ?? '', /pushed authorization request/i);

  const pushed = await oidc.buildAuthorizationUrlWithPAR(rp, params);
  const { landed } = await signInAllowingConsent(new UserAgent([REDIRECT_URI]), pushed.href, 'alice', PASSWORD);
  const tokens = await oidc.authorizationCodeGrant(rp, new URL(landed.url), { pkceCodeVerifier: verifier, expectedState: params.state });
  t.is(tokens.claims()?.sub, t.context.sub);
});

test('with --require-dpop, a token request without a DPoP proof is refused, and one with a proof gets a bound token', async (t) => {
  const { gh } = t.context;
  const { app, rp } = await strictApp(t, ['--require-dpop']);
  const shown = await runCli(['clients', 'show', app.clientId, '--json'], gh.env);
  t.true(shown.json<{ dpop_bound_access_tokens: boolean }>().dpop_bound_access_tokens);
  const signIn = async () => {
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const url = oidc.buildAuthorizationUrl(rp, {
      redirect_uri: REDIRECT_URI,
      scope: 'openid',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
    });
    const { landed } = await signInAllowingConsent(new UserAgent([REDIRECT_URI]), url.href, 'alice', PASSWORD);
    return { callback: new URL(landed.url), verifier, state };
  };

  const first = await signIn();
  // oidc-provider refuses it as invalid_grant (its detail, "DPoP proof JWT not provided", stays in its log).
  t.is(await oauthError(oidc.authorizationCodeGrant(rp, first.callback, { pkceCodeVerifier: first.verifier, expectedState: first.state })), 'invalid_grant');

  const second = await signIn();
  const DPoP = oidc.getDPoPHandle(rp, await oidc.randomDPoPKeyPair('ES256'));
  const tokens = await oidc.authorizationCodeGrant(rp, second.callback, { pkceCodeVerifier: second.verifier, expectedState: second.state }, undefined, {
    DPoP,
  });
  t.is(tokens.token_type, 'dpop');
  const asBearer = await fetch(`${gh.config.issuer}/userinfo`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
  t.is(asBearer.status, 401);
});
