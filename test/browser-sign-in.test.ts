import http from 'node:http';
import anyTest, { type TestFn } from 'ava';
import type { Browser } from 'playwright-core';
import { chromiumAvailable, launchBrowser, screenshotForDocs } from './support/browser.ts';
import { freePort, startTestGatehouse, type TestGatehouse } from './support/gatehouse.ts';
import { createClient, createUser, oidc, relyingParty } from './support/relying-party.ts';

const test = anyTest as TestFn<{ gh: TestGatehouse; browser: Browser; app: http.Server; redirectUri: string }>;

test.before(async (t) => {
  if (!chromiumAvailable()) throw new Error('Debian chromium is required for the browser tests (apt-get install -y chromium)');
  const gh = await startTestGatehouse();
  // The relying party's callback: a real page the browser lands on.
  const port = await freePort();
  const app = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>Signed in</title><h1>Back at the app</h1>');
  });
  await new Promise<void>((resolve) => app.listen(port, '127.0.0.1', resolve));
  t.context = { gh, browser: await launchBrowser(), app, redirectUri: `http://127.0.0.1:${port}/callback` };
});

test.after.always(async (t) => {
  await t.context.browser?.close();
  t.context.app?.close();
  await t.context.gh?.close();
});

test('a person signs in and consents by clicking in a real browser, and the app gets their tokens', async (t) => {
  const { gh, browser, redirectUri } = t.context;
  const sub = await createUser(gh, 'grace', 'hopper-rules-1906');
  const client = await createClient(gh, ['--name', 'Team Wiki', '--type', 'confidential', '--grant', 'authorization_code', '--redirect-uri', redirectUri]);
  const rp = await relyingParty(gh, client, 'basic');
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const url = oidc.buildAuthorizationUrl(rp, {
    redirect_uri: redirectUri,
    scope: 'openid profile email',
    state,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  });

  const page = await browser.newPage();
  try {
    await page.goto(url.href);
    t.is(await page.locator('h1').textContent(), 'Sign in');
    t.regex((await page.textContent('body'))!, /Team Wiki/);
    await page.fill('input[name="username"]', 'grace');
    await page.fill('input[name="password"]', 'hopper-rules-1906');
    await page.click('button[type="submit"]');

    await page.waitForSelector('button[name="decision"][value="allow"]');
    const consent = (await page.textContent('body'))!;
    t.regex(consent, /Allow Team Wiki\?/);
    t.regex(consent, /Your email address/);
    t.regex(consent, /Your name and username/);
    await screenshotForDocs(page, 'consent');
    await page.click('button[name="decision"][value="allow"]');

    await page.waitForURL((u) => u.href.startsWith(redirectUri));
    const tokens = await oidc.authorizationCodeGrant(rp, new URL(page.url()), { pkceCodeVerifier: verifier, expectedState: state, idTokenExpected: true });
    t.is(tokens.claims()!.sub, sub);
  } finally {
    await page.close();
  }
});

test('our pages cannot be framed and send no referrer', async (t) => {
  const { gh, browser, redirectUri } = t.context;
  const client = await createClient(gh, ['--name', 'Framed', '--type', 'public', '--grant', 'authorization_code', '--redirect-uri', redirectUri]);
  const rp = await relyingParty(gh, client, 'none');
  const url = oidc.buildAuthorizationUrl(rp, {
    redirect_uri: redirectUri,
    scope: 'openid',
    code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
    code_challenge_method: 'S256',
  });
  const page = await browser.newPage();
  try {
    const response = await page.goto(url.href);
    const headers = response!.headers();
    t.is(headers['x-frame-options'], 'DENY');
    t.regex(headers['content-security-policy']!, /frame-ancestors 'none'/);
    t.is(headers['referrer-policy'], 'no-referrer');
    await screenshotForDocs(page, 'login');
  } finally {
    await page.close();
  }
});
