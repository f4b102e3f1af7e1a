/**
 * ../shared/seeds/002_7478d045d8afd657.txt: a DOT walkthrough with DOT mounted at /oauth/. An
 * authorization link without scope or state, the code exchanged by curl with the secret in the
 * body, then a service's client credentials with a Basic header made by hand in Python.
 */
import test from 'ava';
import { basicAsToolsWriteIt, curlData, followAuthorizationLink, registerApp, scopesOnConsent, seedServer, send, type SeedServer } from './support/seeds.ts';

const CALLBACK = 'http://127.0.0.1:8000/noexist/callback';

let server: SeedServer;
test.before(async () => {
  server = await seedServer('dot:/oauth');
});
test.after.always(async () => server?.gh.close());

test('the walkthrough\'s scope-less authorization link, curl token exchange and bearer call work as written', async (t) => {
  // "create application "Authorization Grant Type" choose "authorization-code"": DOT's default
  // scopes are read and write, and the walkthrough posts the secret in the body.
  const app = await registerApp(server, [
    '--name', 'DjangoGetStarted', '--type', 'confidential',
    '--grant', 'authorization_code', '--grant', 'refresh_token',
    '--redirect-uri', CALLBACK, '--scope', 'read write', '--auth-method', 'client_secret_post',
  ]);

  const landing = await followAuthorizationLink(
    `${server.origin}/oauth/authorize/?response_type=code&client_id=${app.clientId}&redirect_uri=${CALLBACK}`,
    CALLBACK,
  );
  t.deepEqual(scopesOnConsent(landing.consentShown), ['read', 'write'], 'the consent page lists the default scopes it asks for');
  t.truthy(landing.code, `came back with a code, not ${landing.url.search}`);
  t.false(landing.url.searchParams.has('state'), 'no state was sent, none comes back');

  const token = await send(`${server.origin}/oauth/token/`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: curlData([
      ['client_id', app.clientId],
      ['client_secret', app.clientSecret!],
      ['code', landing.code!],
      ['redirect_uri', CALLBACK],
      ['grant_type', 'authorization_code'],
    ]),
  });
  t.is(token.status, 200, JSON.stringify(token.body));
  t.is(token.body.token_type, 'Bearer');
  t.is(token.body.scope, 'read write');
  t.is(typeof token.body.access_token, 'string');
  t.is(typeof token.body.refresh_token, 'string');
  t.true(token.body.expires_in > 0);

  // "To access the user resources we just use the access_token": the API asks Gatehouse about it.
  const introspection = await send(`${server.origin}/oauth/introspect/`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: curlData([['client_id', app.clientId], ['client_secret', app.clientSecret!], ['token', token.body.access_token]]),
  });
  t.is(introspection.status, 200);
  t.like(introspection.body, { active: true, scope: 'read write', client_id: app.clientId });

  // "The code … can only be used once and then disappears."
  const again = await send(`${server.origin}/oauth/token/`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: curlData([['client_id', app.clientId], ['client_secret', app.clientSecret!], ['code', landing.code!], ['redirect_uri', CALLBACK], ['grant_type', 'authorization_code']]),
  });
  t.is(again.status, 400);
  t.is(again.body.error, 'invalid_grant');
});

test('the walkthrough\'s client credentials request, with its hand-made Basic header and Cache-Control, gets "read write"', async (t) => {
  const service = await registerApp(server, ['--name', 'backend', '--type', 'confidential', '--grant', 'client_credentials']);
  // base64.b64encode("{0}:{1}".format(client_id, secret).encode("utf-8")), as the seed's Python does.
  const authorization = basicAsToolsWriteIt(service);

  const answer = await send(`${server.origin}/oauth/token/`, {
    method: 'POST',
    headers: {
      Authorization: authorization,
      'Cache-Control': 'no-cache',
      'Content-Type': 'application/x-www-form-urlencoded',
    },
    body: 'grant_type=client_credentials',
  });
  t.is(answer.status, 200, JSON.stringify(answer.body));
  t.is(answer.body.token_type, 'Bearer');
  t.is(answer.body.scope, 'read write');
  t.true(answer.body.expires_in > 0);
  t.is(answer.body.refresh_token, undefined, 'a service acting for itself gets no refresh token');
});
