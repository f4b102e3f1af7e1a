import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import type { Browser } from 'playwright-core';
import { chromiumAvailable, launchBrowser, screenshotForDocs } from './support/browser.ts';
import { testClock } from './support/clock.ts';
import type { TestGatehouse } from './support/gatehouse.ts';
import { createClient, createUserDirectly, oauthError, oidc, relyingParty, startLoopbackGatehouse } from './support/relying-party.ts';
import { isConsentPage, isLoginPage, UserAgent, type Page } from './support/user-agent.ts';

/**
 * Device sign-in (RFC 8628): a command-line tool with the device_code grant shows a code, a
 * person enters it at ISSUER/device in a browser, signs in and allows, and the tool's polling
 * gets the tokens. openid-client plays the tool; Chromium or a plain HTTP agent the person.
 */

interface Context {
  gh: TestGatehouse;
  /** The CLI: a public client with the device grant and refresh tokens. */
  cli: oidc.Configuration;
  browser: Browser;
}

const test = anyTest as TestFn<Context>;
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const PASSWORD = 'correct horse battery staple';
const clock = testClock();
/** Eight letters of twenty consonants, in two groups: easy to read out and to type. */
const USER_CODE = /^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/;

test.before(async (t) => {
  if (!chromiumAvailable()) throw new Error('Debian chromium is required for the browser tests (apt-get install -y chromium)');
  const gh = await startLoopbackGatehouse();
  const client = await createClient(gh, ['--name', 'Deploy CLI', '--type', 'public', '--grant', DEVICE_GRANT, '--grant', 'refresh_token']);
  t.context = { gh, cli: await relyingParty(gh, client, 'none'), browser: await launchBrowser() };
});

test.after.always(async (t) => {
  await t.context.browser?.close();
  await t.context.gh?.close();
});

let people = 0;
async function person(t: ExecutionContext<Context>): Promise<{ username: string; sub: string }> {
  const username = `device-user-${++people}`;
  return { username, sub: await createUserDirectly(t.context.gh, username, PASSWORD) };
}

/** A person at the code page, over plain HTTP: enters `code` and returns the page that follows. */
async function enterCode(agent: UserAgent, gh: TestGatehouse, code: string): Promise<Page> {
  const page = await agent.open(`${gh.config.issuer}/device`);
  return agent.submit(page, /\/device$/, { user_code: code });
}

test('a person signs a command-line tool in by entering its code in a real browser, and the tool gets their tokens', async (t) => {
  const { gh, cli, browser } = t.context;
  const me = await person(t);
  const device = await oidc.initiateDeviceAuthorization(cli, { scope: 'openid profile offline_access' });
  t.regex(device.user_code, USER_CODE);
  t.is(device.verification_uri, `${gh.config.issuer}/device`);
  t.is(device.expires_in, 600);
  const polling = oidc.pollDeviceAuthorizationGrant(cli, device);

  const page = await browser.newPage();
  try {
    const response = await page.goto(device.verification_uri);
    t.is(await page.getAttribute('html', 'lang'), 'en');
    t.is(await page.title(), 'Sign in a device · Gatehouse');
    t.is(response!.headers()['x-frame-options'], 'DENY');
    t.notRegex(response!.headers()['content-security-policy']!, /unsafe-inline/);
    t.is(await page.locator('label[for="user_code"]').textContent(), 'Code');
    await screenshotForDocs(page, 'device-code');
    // Typed as people type it: lower case, without the dash.
    await page.fill('#user_code', device.user_code.replace('-', '').toLowerCase());
    await page.click('button[type="submit"]');

    await page.waitForSelector('text=Sign in on this device?');
    t.is(await page.locator('.user-code code').textContent(), device.user_code);
    t.regex((await page.textContent('body'))!, /Deploy CLI/);
    await page.click('button.primary');

    await page.waitForSelector('input[name="password"]');
    await page.fill('input[name="username"]', me.username);
    await page.fill('input[name="password"]', PASSWORD);
    await page.click('button[type="submit"]');
    await page.waitForSelector('button[name="decision"][value="allow"]');
    t.regex((await page.textContent('body'))!, /Allow Deploy CLI\?/);
    await page.click('button[name="decision"][value="allow"]');
    await page.waitForSelector('text=Your device is signed in');
  } finally {
    await page.close();
  }

  const tokens = await polling;
  t.is(tokens.claims()!.sub, me.sub);
  t.truthy(tokens.refresh_token, 'offline_access with the refresh_token grant');
  const info = await oidc.fetchUserInfo(cli, tokens.access_token, me.sub);
  t.is(info.preferred_username, me.username);
  const refreshed = await oidc.refreshTokenGrant(cli, tokens.refresh_token!);
  t.truthy(refreshed.access_token);
});

test('Deny on the confirmation page tells the tool access_denied, and the code cannot be used again', async (t) => {
  const { gh, cli } = t.context;
  const device = await oidc.initiateDeviceAuthorization(cli, { scope: 'openid' });
  const polling = oauthError(oidc.pollDeviceAuthorizationGrant(cli, device));
  const agent = new UserAgent();
  const confirm = await enterCode(agent, gh, device.user_code);
  t.regex(confirm.html, /Sign in on this device\?/);
  const denied = await agent.submit(confirm, /\/device$/, { abort: 'yes' });
  t.is(denied.status, 200);
  t.regex(denied.html, /Device not signed in/);
  t.is(await polling, 'access_denied');
  const again = await enterCode(new UserAgent(), gh, device.user_code);
  t.regex(again.html, /That code was used already/);
});

test('a code link (verification_uri_complete) fills the code in, and the person still confirms it', async (t) => {
  const { gh, cli } = t.context;
  const me = await person(t);
  const device = await oidc.initiateDeviceAuthorization(cli, { scope: 'openid' });
  t.is(device.verification_uri_complete, `${gh.config.issuer}/device?user_code=${device.user_code}`);
  const polling = oidc.pollDeviceAuthorizationGrant(cli, device);
  const agent = new UserAgent();
  // oidc-provider posts the code on with a self-submitting form; a browser would run it.
  const relay = await agent.open(device.verification_uri_complete!);
  const confirm = await agent.submit(relay, /\/device$/, {});
  t.regex(confirm.html, /Sign in on this device\?/);
  let page = await agent.submit(confirm, /\/device$/, {});
  t.true(isLoginPage(page), page.html.slice(0, 300));
  page = await agent.submit(page, /\/login$/, { username: me.username, password: PASSWORD });
  t.true(isConsentPage(page));
  page = await agent.submit(page, /\/consent$/, { decision: 'allow' });
  t.regex(page.html, /Your device is signed in/);
  t.is((await polling).claims()!.sub, me.sub);
});

test('a wrong code, an empty one and a form without its token get a clear answer on the code page, and nothing is signed in', async (t) => {
  const { gh } = t.context;
  const wrong = await enterCode(new UserAgent(), gh, 'BBBB-BBBB');
  t.is(wrong.status, 200);
  t.regex(wrong.html, /That code is not right/);
  t.regex(wrong.html, /value="BBBB-BBBB"/, 'what was typed stays in the field');
  const empty = await enterCode(new UserAgent(), gh, '');
  t.regex(empty.html, /Enter the code your device shows/);
  const forged = await fetch(`${gh.config.issuer}/device`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ user_code: 'BBBB-BBBB', confirm: 'yes' }),
  });
  t.is(forged.status, 400);
  const answer = await forged.text();
  t.regex(answer, /This form has expired/);
  t.regex(answer, /href="\/device"/);
  // With a session of its own but a wrong token: refused the same way oidc-provider refuses it.
  const agent = new UserAgent();
  const page = await agent.open(`${gh.config.issuer}/device`);
  const tampered = await agent.submit(page, /\/device$/, { user_code: 'BBBB-BBBB', xsrf: 'not-the-token' });
  t.is(tampered.status, 400);
  t.regex(tampered.html, /This form has expired or was changed/);
  t.regex(tampered.html, /name="user_code"/, 'with a fresh form to try again');
});

test('a client without the device grant cannot start a device sign-in', async (t) => {
  const { gh } = t.context;
  const web = await createClient(gh, [
    '--name',
    'Web',
    '--type',
    'confidential',
    '--grant',
    'authorization_code',
    '--redirect-uri',
    'http://127.0.0.1:8765/cb',
  ]);
  const res = await fetch(`${gh.config.issuer}/device/auth`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${web.clientId}:${web.clientSecret}`).toString('base64')}`,
    },
    body: new URLSearchParams({ scope: 'openid' }),
  });
  t.is(res.status, 400);
  t.deepEqual(await res.json(), { error: 'invalid_request', error_description: `${DEVICE_GRANT} is not allowed for this client` });
});

// Serial: the clock jumps past every device code's lifetime.
test.serial('a code not used within ten minutes expires: the page says so and the polling tool is told', async (t) => {
  const { gh, cli } = t.context;
  const device = await oidc.initiateDeviceAuthorization(cli, { scope: 'openid' });
  clock.advance(601_000);
  const page = await enterCode(new UserAgent(), gh, device.user_code);
  t.regex(page.html, /That code (has expired|is not right)/);
  // RFC 8628 names this expired_token; the store no longer finds an expired device code, so
  // oidc-provider answers invalid_grant. Both end a client's polling.
  t.true(['expired_token', 'invalid_grant'].includes(await oauthError(oidc.pollDeviceAuthorizationGrant(cli, device))));
});

test('guessing codes from one address is locked after ten wrong ones, the right code included, with Retry-After', async (t) => {
  // Its own server: the lock is per address, and every test here comes from 127.0.0.1.
  const gh = await startLoopbackGatehouse();
  t.teardown(() => gh.close());
  const client = await createClient(gh, ['--name', 'Guessed CLI', '--type', 'public', '--grant', DEVICE_GRANT]);
  const cli = await relyingParty(gh, client, 'none');
  const device = await oidc.initiateDeviceAuthorization(cli, { scope: 'openid' });
  const agent = new UserAgent();
  for (let i = 0; i < 10; i++) t.regex((await enterCode(agent, gh, `BBBB-BBB${'CDFGHJKLMN'[i]}`)).html, /That code is not right/);
  const locked = await enterCode(agent, gh, device.user_code);
  t.is(locked.status, 429);
  t.truthy(Number(locked.headers.get('retry-after')) > 0);
  t.regex(locked.html, /too many wrong device codes/);
  t.notRegex(locked.html, /Sign in on this device\?/);
});
