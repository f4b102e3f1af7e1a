/**
 * ../shared/seeds/000_1412ab2f348981af.txt: "How to make new oauth app". A superuser, an app
 * registered as Confidential / Authorization code with Postman's callback, and Postman's
 * authorization code flow at DOT's /o/ URLs with the client sent as a Basic Auth header and the
 * Scope field left empty.
 */
import test from 'ava';
import { followAuthorizationLink, postmanTokenRequest, registerApp, seedServer, type SeedServer } from './support/seeds.ts';

const POSTMAN_CALLBACK = 'https://www.getpostman.com/oauth2/callback';

let server: SeedServer;
test.before(async () => {
  server = await seedServer('dot');
});
test.after.always(async () => server?.gh.close());

test("Postman's authorization code flow with Basic client auth and no scope gets a token the API accepts", async (t) => {
  // Name: oauthgptdemo · Client Type: Confidential · Authorization Grant Type: Authorization code
  const app = await registerApp(server, ['--name', 'oauthgptdemo', '--type', 'confidential', '--grant', 'authorization_code', '--redirect-uri', POSTMAN_CALLBACK]);

  // "Get New Access Token": Postman opens Auth URL with the fields it has (no Scope, no State).
  const authUrl = new URL(`${server.origin}/o/authorize/`);
  authUrl.search = new URLSearchParams({ response_type: 'code', client_id: app.clientId, redirect_uri: POSTMAN_CALLBACK }).toString();
  // "Get prompted to login and authorize. SO login using the superuser and authorize"
  const landing = await followAuthorizationLink(authUrl.href, POSTMAN_CALLBACK);
  t.truthy(landing.code, `came back with a code, not ${landing.url.search}`);

  // Access Token URL, Client Authentication: "Send as Basic Auth header".
  const token = await postmanTokenRequest(`${server.origin}/o/token/`, app, { grant_type: 'authorization_code', code: landing.code!, redirect_uri: POSTMAN_CALLBACK });
  t.is(token.status, 200, JSON.stringify(token.body));
  t.is(token.body.token_type, 'Bearer');
  t.is(typeof token.body.access_token, 'string');
  t.truthy(token.body.scope, 'the token carries the app\'s default scope');

  // "Select Use This Token": the API checks it with Gatehouse.
  const introspection = await postmanTokenRequest(`${server.origin}/o/introspect/`, app, { token: token.body.access_token });
  t.like(introspection.body, { active: true, client_id: app.clientId, scope: token.body.scope });
});
