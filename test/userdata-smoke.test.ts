import anyTest, { type TestFn } from 'ava';
import { runCli } from './support/cli.ts';
import { startTestGatehouse, type TestGatehouse } from './support/gatehouse.ts';
import { createClient, createUser, oidc, REDIRECT_URI, relyingParty, signInAndAllow } from './support/relying-party.ts';
import { UserAgent } from './support/user-agent.ts';

const test = anyTest as TestFn<{ gh: TestGatehouse }>;
test.before(async (t) => {
  t.context = { gh: await startTestGatehouse() };
});
test.after.always(async (t) => t.context.gh?.close());

test('an app signed in through Gatehouse stores and reads a user document with its key and with the user token', async (t) => {
  const { gh } = t.context;
  const sub = await createUser(gh, 'ada', 'analytical-engine-1843');
  const client = await createClient(gh, ['--name', 'Notes', '--type', 'confidential', '--grant', 'authorization_code', '--redirect-uri', REDIRECT_URI, '--scope', 'openid profile userdata']);
  const key = (await runCli(['api-keys', 'create', '--client', client.clientId, '--scope', 'userdata:read', '--scope', 'userdata:write', '--json'], gh.env)).json().key as string;
  t.regex(key, /^ghk_/);
  // Before the user authorized the app: 403
  t.is((await fetch(`${gh.url}/userdata/${sub}`, { headers: { 'x-api-key': key } })).status, 403);

  const rp = await relyingParty(gh, client, 'basic');
  const verifier = oidc.randomPKCECodeVerifier();
  const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: REDIRECT_URI, scope: 'openid userdata', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
  const landed = await signInAndAllow(new UserAgent([REDIRECT_URI]), url.href, 'ada', 'analytical-engine-1843');
  const tokens = await oidc.authorizationCodeGrant(rp, new URL(landed.url), { pkceCodeVerifier: verifier });

  const empty = await fetch(`${gh.url}/userdata/${sub}`, { headers: { 'x-api-key': key } });
  t.is(empty.status, 200);
  t.deepEqual(await empty.json(), {});
  t.is(empty.headers.get('etag'), '"0"');

  const put = await fetch(`${gh.url}/userdata/${sub}`, { method: 'PUT', headers: { 'x-api-key': key, 'content-type': 'application/json' }, body: JSON.stringify({ theme: 'dark', lang: 'en' }) });
  t.is(put.status, 200);
  const patched = await fetch(`${gh.url}/userdata/me`, { method: 'PATCH', headers: { authorization: `Bearer ${tokens.access_token}`, 'content-type': 'application/merge-patch+json' }, body: JSON.stringify({ lang: null, tz: 'UTC' }) });
  t.is(patched.status, 200);
  t.deepEqual(await patched.json(), { theme: 'dark', tz: 'UTC' });
  const stale = await fetch(`${gh.url}/userdata/${sub}`, { method: 'PUT', headers: { 'x-api-key': key, 'content-type': 'application/json', 'if-match': '"1"' }, body: '{}' });
  t.is(stale.status, 412);
});
