/**
 * ../shared/seeds/001_e0cd5f4cb1e329b9.txt: DOT's "Part 1 — Make a Provider in a Minute". An app
 * with an allowed origin for XHR calls to the token endpoint, Postman's "Authorization code
 * (With PKCE)" at DOT's /o/ URLs with every other field left at its default (no scope, Basic
 * client auth), then the refresh that swaps the refresh token for new tokens.
 */
import { createHash, randomBytes } from 'node:crypto';
import test from 'ava';
import { basicAsToolsWriteIt, followAuthorizationLink, postmanTokenRequest, registerApp, seedServer, type SeedServer } from './support/seeds.ts';
import type { RegisteredClient } from './support/relying-party.ts';

const POSTMAN_CALLBACK = 'https://oauth.pstmn.io/v1/callback';
const HEROKU_APP = 'http://localhost:3000';

let server: SeedServer;
let app: RegisteredClient;
test.before(async () => {
  server = await seedServer('dot');
  // Client type Confidential, grant Authorization code (DOT issues refresh tokens with it),
  // allowed origins for the browser app. Secrets are always hashed in Gatehouse.
  app = await registerApp(server, [
    '--name', 'Provider in a minute', '--type', 'confidential',
    '--grant', 'authorization_code', '--grant', 'refresh_token',
    '--redirect-uri', POSTMAN_CALLBACK, '--origin', HEROKU_APP,
  ]);
});
test.after.always(async () => server?.gh.close());

const basic = () => basicAsToolsWriteIt(app);

test("Postman's code flow with PKCE, then its Refresh button, work at DOT's URLs", async (t) => {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const authUrl = new URL(`${server.origin}/o/authorize/`);
  authUrl.search = new URLSearchParams({
    response_type: 'code',
    client_id: app.clientId,
    redirect_uri: POSTMAN_CALLBACK,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  }).toString();
  const landing = await followAuthorizationLink(authUrl.href, POSTMAN_CALLBACK);
  t.truthy(landing.code, `came back with a code, not ${landing.url.search}`);

  const token = await postmanTokenRequest(`${server.origin}/o/token/`, app, { grant_type: 'authorization_code', code: landing.code!, redirect_uri: POSTMAN_CALLBACK, code_verifier: verifier });
  t.is(token.status, 200, JSON.stringify(token.body));
  // "your access token, the token type, its lifetime and the Refresh Token"
  t.is(token.body.token_type, 'Bearer');
  t.true(token.body.expires_in > 0);
  t.is(typeof token.body.refresh_token, 'string');

  // "Refresh the token": the access and refresh token change their values.
  const refreshed = await postmanTokenRequest(`${server.origin}/o/token/`, app, { grant_type: 'refresh_token', refresh_token: token.body.refresh_token });
  t.is(refreshed.status, 200, JSON.stringify(refreshed.body));
  t.not(refreshed.body.access_token, token.body.access_token);
  t.not(refreshed.body.refresh_token, token.body.refresh_token);
});

test('a code redeemed without its PKCE verifier is refused, as the tutorial warns (invalid_request / invalid_grant)', async (t) => {
  const challenge = createHash('sha256').update(randomBytes(32).toString('base64url')).digest('base64url');
  const authUrl = `${server.origin}/o/authorize/?${new URLSearchParams({ response_type: 'code', client_id: app.clientId, redirect_uri: POSTMAN_CALLBACK, code_challenge: challenge, code_challenge_method: 'S256' })}`;
  const landing = await followAuthorizationLink(authUrl, POSTMAN_CALLBACK);
  const token = await postmanTokenRequest(`${server.origin}/o/token/`, app, { grant_type: 'authorization_code', code: landing.code!, redirect_uri: POSTMAN_CALLBACK });
  t.is(token.status, 400);
  t.true(['invalid_request', 'invalid_grant'].includes(token.body.error), JSON.stringify(token.body));
});

test("the browser app's XHR POST to the token endpoint is allowed from its listed origin and from no other", async (t) => {
  const preflight = (origin: string) =>
    fetch(`${server.origin}/o/token/`, {
      method: 'OPTIONS',
      headers: { Origin: origin, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' },
    });
  const listed = await preflight(HEROKU_APP);
  t.true(listed.status < 300);
  t.true(['*', HEROKU_APP].includes(listed.headers.get('access-control-allow-origin') ?? ''));

  // The actual POST: the listed origin reads the answer, another origin does not.
  const post = (origin: string) =>
    fetch(`${server.origin}/o/token/`, {
      method: 'POST',
      headers: { Origin: origin, Authorization: basic(), 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: 'not-a-token' }),
    });
  const fromListed = await post(HEROKU_APP);
  t.is(fromListed.headers.get('access-control-allow-origin'), HEROKU_APP);
  const fromOther = await post('http://evil.example');
  t.not(fromOther.headers.get('access-control-allow-origin'), 'http://evil.example');
});
