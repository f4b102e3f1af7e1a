/**
 * ../shared/seeds/003_283b5fb2cddad2cc.txt: DOT's tutorial part 1, older text. The app is
 * registered with the tutorial's consumer exchange URL; the consumer builds the authorization
 * link (no scope), the person signs in and allows, and the consumer's form exchanges the code
 * with the client's id and secret for an access token, its lifetime, type and a refresh token.
 */
import test from 'ava';
import { runCli } from './support/cli.ts';
import { followAuthorizationLink, postmanTokenRequest, registerApp, seedServer, type SeedServer } from './support/seeds.ts';

const TUTORIAL_EXCHANGE = 'http://django-oauth-toolkit.herokuapp.com/consumer/exchange/';

let server: SeedServer;
test.before(async () => {
  server = await seedServer('dot');
});
test.after.always(async () => server?.gh.close());

const appOptions = (redirectUri: string, ...more: string[]) => [
  '--name', 'Tutorial consumer', '--type', 'confidential',
  '--grant', 'authorization_code', '--grant', 'refresh_token', '--redirect-uri', redirectUri, ...more,
];

test("the tutorial's plain-http exchange URL is refused by default, saying why and what to do", async (t) => {
  const res = await runCli(['clients', 'create', ...appOptions(TUTORIAL_EXCHANGE)], server.gh.env);
  t.is(res.code, 1, res.stderr);
  t.regex(res.stderr, /https/);
  t.regex(res.stderr, /--allow-insecure-redirect/, 'the error names the explicit opt-in');
});

for (const [title, redirectUri, extra] of [
  ['with the https form of the exchange URL', TUTORIAL_EXCHANGE.replace('http:', 'https:'), []],
  ['with the plain-http exchange URL, allowed explicitly for this client', TUTORIAL_EXCHANGE, ['--allow-insecure-redirect']],
] as const) {
  test(`the consumer's flow ${title}: link without scope, sign in, allow, exchange for tokens`, async (t) => {
    const app = await registerApp(server, appOptions(redirectUri, ...extra));
    const shown = await runCli(['clients', 'show', app.clientId, '--json'], server.gh.env);
    t.is(shown.json().allow_insecure_redirect, extra.length > 0, 'the opt-in is visible on the client');
    const link = `${server.origin}/o/authorize/?${new URLSearchParams({ client_id: app.clientId, response_type: 'code', redirect_uri: redirectUri })}`;
    const landing = await followAuthorizationLink(link, redirectUri);
    t.truthy(landing.code, `came back with a code, not ${landing.url.search}`);

    // "Fill the form with the missing data and click Submit"
    const token = await postmanTokenRequest(`${server.origin}/o/token/`, app, { grant_type: 'authorization_code', code: landing.code!, redirect_uri: redirectUri });
    t.is(token.status, 200, JSON.stringify(token.body));
    t.is(token.body.token_type, 'Bearer');
    t.true(token.body.expires_in > 0);
    t.is(typeof token.body.access_token, 'string');
    t.is(typeof token.body.refresh_token, 'string');
  });
}
