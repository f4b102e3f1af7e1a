/**
 * ../shared/seeds/004_d11ea912d81b86e3.txt: the custom provider's Flask guide. Its app sends the
 * person to /authorize/ without scope (state=random_state_string, Accept: application/json),
 * posts the code with its secret in the body, reads /userinfo/, reads the person's document at
 * /userdata/{id}/ with its API key, and signs out with POST /logout/ and the access token.
 * Authlib, which such an app uses, repeats its scope in every refresh request.
 * Run at Gatehouse's own paths and under GATEHOUSE_COMPAT_PATHS=dot:/oauth, the guide's layout.
 */
import test from 'ava';
import { createApiKeyWithCli } from './support/userdata.ts';
import { curlData, followAuthorizationLink, registerApp, seedServer, send, type SeedServer } from './support/seeds.ts';
import type { RegisteredClient } from './support/relying-party.ts';

const REDIRECT = 'http://localhost:5000/callback';

interface Layout {
  title: string;
  compat?: string;
  /** Where the guide's "Base URL" points, and how it writes each path. */
  path: (name: 'authorize' | 'token' | 'userinfo' | 'logout' | `userdata/${string}`) => string;
}

const LAYOUTS: Layout[] = [
  { title: "Gatehouse's own paths", path: (name) => `/${name}` },
  { title: 'the guide\'s /oauth/ paths (dot:/oauth)', compat: 'dot:/oauth', path: (name) => `/oauth/${name}/` },
];

for (const layout of LAYOUTS) {
  let server: SeedServer;
  let app: RegisteredClient;
  let apiKey: string;

  test.serial.before(async () => {
    server = await seedServer(layout.compat);
    app = await registerApp(server, [
      '--name', 'Flask Client', '--type', 'confidential',
      '--grant', 'authorization_code', '--grant', 'refresh_token',
      '--redirect-uri', REDIRECT, '--auth-method', 'client_secret_post',
    ]);
    apiKey = (await createApiKeyWithCli(server.gh, app.clientId, ['userdata:read', 'userdata:write'])).key;
  });
  test.after.always(async () => server?.gh.close());

  const url = (name: Parameters<Layout['path']>[0], query = '') => `${server.origin}${layout.path(name)}${query}`;

  /** Steps 2 and 3 of the guide: the authorization link, then the code exchanged in /callback. */
  async function signIn() {
    const landing = await followAuthorizationLink(
      url('authorize', `?client_id=${app.clientId}&redirect_uri=${REDIRECT}&response_type=code&state=random_state_string`),
      REDIRECT,
      { Accept: 'application/json' },
    );
    const token = await send(url('token'), {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: `grant_type=authorization_code&code=${landing.code}&client_id=${app.clientId}&client_secret=${app.clientSecret}&redirect_uri=${REDIRECT}`,
    });
    return { landing, token };
  }

  test.serial(`${layout.title}: the guide's flow runs end to end — sign-in, token, userinfo, userdata, logout`, async (t) => {
    const { landing, token } = await signIn();
    t.is(landing.url.searchParams.get('state'), 'random_state_string', 'the state comes back as sent');
    t.truthy(landing.code);
    t.is(token.status, 200, JSON.stringify(token.body));
    t.is(token.body.token_type, 'Bearer');
    const accessToken: string = token.body.access_token;

    // 4. Get User Info
    const info = await send(url('userinfo'), { headers: { Authorization: `Bearer ${accessToken}`, Accept: 'application/json' } });
    t.is(info.status, 200, JSON.stringify(info.body));
    const userId: string = info.body.sub;
    t.truthy(userId);

    // 5. Get User Data, right after sign-in, with the app's key: an empty document at first.
    const empty = await send(url(`userdata/${userId}`), { headers: { 'X-API-Key': apiKey, Accept: 'application/json' } });
    t.is(empty.status, 200, JSON.stringify(empty.body));
    t.deepEqual(empty.body, {});
    // "it has userdata feature which can be used to store/get json object for userdata"
    const stored = await send(url(`userdata/${userId}`), {
      method: 'PUT',
      headers: { 'X-API-Key': apiKey, 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ theme: 'dark' }),
    });
    t.is(stored.status, 200, JSON.stringify(stored.body));
    const read = await send(url(`userdata/${userId}`), { headers: { 'X-API-Key': apiKey, Accept: 'application/json' } });
    t.deepEqual(read.body, { theme: 'dark' });

    // 6. Logout: the token and its grant end.
    const logout = await send(url('logout'), { method: 'POST', headers: { Authorization: `Bearer ${accessToken}`, 'Content-Type': 'application/json' } });
    t.true(logout.status >= 200 && logout.status < 300, `logout answered ${logout.status} ${JSON.stringify(logout.body)}`);
    const after = await send(url('userinfo'), { headers: { Authorization: `Bearer ${accessToken}`, Accept: 'application/json' } });
    t.is(after.status, 401, 'the access token no longer works after logout');
  });

  test.serial(`${layout.title}: Authlib's refresh, repeating the scope of client_kwargs, works and rotates`, async (t) => {
    const { token } = await signIn();
    t.is(token.status, 200, JSON.stringify(token.body));
    t.is(typeof token.body.refresh_token, 'string');
    const granted: string = token.body.scope;
    t.deepEqual(granted.split(' ').sort(), ['email', 'offline_access', 'openid', 'profile']);

    let refreshToken: string = token.body.refresh_token;
    for (const round of [1, 2]) {
      const refreshed = await send(url('token'), {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: curlData([
          ['grant_type', 'refresh_token'],
          ['refresh_token', refreshToken],
          ['scope', 'openid%20profile%20email%20offline_access'],
          ['client_id', app.clientId],
          ['client_secret', app.clientSecret!],
        ]),
      });
      t.is(refreshed.status, 200, `refresh ${round}: ${JSON.stringify(refreshed.body)}`);
      t.not(refreshed.body.refresh_token, refreshToken, 'every refresh rotates the refresh token');
      refreshToken = refreshed.body.refresh_token;
    }

    const wider = await send(url('token'), {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: curlData([['grant_type', 'refresh_token'], ['refresh_token', refreshToken], ['scope', 'openid%20userdata'], ['client_id', app.clientId], ['client_secret', app.clientSecret!]]),
    });
    t.is(wider.status, 400);
    t.is(wider.body.error, 'invalid_scope', 'a scope never granted is refused');
  });
}
