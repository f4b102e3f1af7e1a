import http from 'node:http';
import Provider from 'oidc-provider';
import anyTest, { type TestFn } from 'ava';
import * as OTPAuth from 'otpauth';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { chromiumAvailable, launchBrowser } from './support/browser.ts';
import { freePort, startTestGatehouse, type TestGatehouse } from './support/gatehouse.ts';
import { runCli } from './support/cli.ts';
import { startGitHubStandIn } from './support/github-stand-in.ts';
import { signInToAccount, UserAgent } from './support/user-agent.ts';
import { adminApi } from './support/admin-api.ts';
import { operatorAgent } from './support/attacks.ts';
import { accountForUpstream } from '../src/idps/sign-in.ts';
import type { GatehouseError } from '../src/errors.ts';
import { isoCBOR } from '@simplewebauthn/server/helpers';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { PasskeyStore } from '../src/accounts/passkeys/store.ts';
import { createClient, oidc, relyingParty, startLoopbackGatehouse, type RegisteredClient } from './support/relying-party.ts';
import { testClock } from './support/clock.ts';
import { ACCOUNT_SESSION } from '../src/account/sessions.ts';

/**
 * Signing in through an upstream identity provider, end to end: an app's authorization request
 * at Gatehouse ("downstream", 127.0.0.1), the person clicks "Sign in with Upstream", signs in at
 * a second, real Gatehouse ("upstream", on localhost: another site, so the two keep their own
 * cookies in the one browser), and comes back to the app with a code and tokens.
 */

interface Context {
  browser: Browser;
  down: TestGatehouse;
  up: TestGatehouse;
  app: http.Server;
  appCallback: string;
  appClient: RegisteredClient;
  /** Payroll: an app registered with --require-mfa. */
  mfaClient: RegisteredClient;
  upClient: RegisteredClient;
  /** A bare oidc-provider (its development sign-in pages) as another upstream. */
  bare: http.Server;
  /** Accepts connections and never answers: an upstream that hangs. */
  hanging: http.Server;
}
const test = anyTest as TestFn<Context>;

const PASSWORD = 'correct-horse-battery-9';
const clock = testClock();

test.before(async (t) => {
  if (!chromiumAvailable()) throw new Error('Debian chromium is required for the browser tests (apt-get install -y chromium)');
  const [down, up] = await Promise.all([startLoopbackGatehouse({ env: { GATEHOUSE_IDP_TIMEOUT_MS: '5000' } }), startTestGatehouse()]);
  const appPort = await freePort();
  const app = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>Back at the app</title><h1>Back at the app</h1>');
  });
  await new Promise<void>((resolve) => app.listen(appPort, '127.0.0.1', resolve));
  const appCallback = `http://127.0.0.1:${appPort}/callback`;
  const appClient = await createClient(down, [
    '--name',
    'Team Wiki',
    '--type',
    'confidential',
    '--grant',
    'authorization_code',
    '--redirect-uri',
    appCallback,
    '--skip-consent',
  ]);
  const mfaClient = await createClient(down, [
    '--name',
    'Payroll',
    '--type',
    'confidential',
    '--grant',
    'authorization_code',
    '--redirect-uri',
    appCallback,
    '--skip-consent',
    '--require-mfa',
  ]);
  // Gatehouse downstream is a client of the upstream, registered with the redirect URI `idps create` prints.
  const upClient = await createClient(up, [
    '--name',
    'Downstream Gatehouse',
    '--type',
    'confidential',
    '--grant',
    'authorization_code',
    '--redirect-uri',
    `${down.config.issuer}/idp/upstream/callback`,
    '--skip-consent',
  ]);

  const barePort = await freePort();
  const bareIssuer = `http://localhost:${barePort}`;
  const bareProvider = new Provider(bareIssuer, {
    clients: [
      {
        client_id: 'gatehouse',
        client_secret: 'a-bare-client-secret-of-some-length',
        redirect_uris: [`${down.config.issuer}/idp/bare/callback`],
        grant_types: ['authorization_code'],
        response_types: ['code'],
      },
    ],
    // Whoever types a login is that subject, with a verified address.
    findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub, email: `${sub}@bare.example`, email_verified: true, name: sub }) }),
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    features: { devInteractions: { enabled: true } },
  });
  // This upstream answers with an ID token for another nonce than it was sent (a mix-up, or a
  // token injected on the way): Gatehouse must refuse it, and nothing else here finishes through it.
  bareProvider.use(async (ctx, next) => {
    if (ctx.path === '/auth' && ctx.query.nonce) {
      const query = new URLSearchParams(ctx.querystring);
      query.set('nonce', 'an-attackers-nonce');
      ctx.querystring = query.toString();
    }
    await next();
  });
  const bare = bareProvider.listen(barePort);
  const hanging = http.createServer(() => {});
  const hangingPort = await freePort();
  await new Promise<void>((resolve) => hanging.listen(hangingPort, '127.0.0.1', resolve));
  const closedPort = await freePort();
  const idps = down.services.idps;
  await idps.create({
    name: 'bare',
    issuer: bareIssuer,
    clientId: 'gatehouse',
    clientSecret: 'a-bare-client-secret-of-some-length',
    button: 'Sign in with Bare',
  });
  await idps.create({ name: 'slow', issuer: `http://127.0.0.1:${hangingPort}`, clientId: 'x', clientSecret: 'y', button: 'Sign in with Slow' });
  await idps.create({ name: 'down', issuer: `http://127.0.0.1:${closedPort}`, clientId: 'x', clientSecret: 'y', button: 'Sign in with Down' });
  t.context = { browser: await launchBrowser(), down, up, app, appCallback, appClient, mfaClient, upClient, bare, hanging };
  const created = await runCli(
    [
      'idps',
      'create',
      '--name',
      'upstream',
      '--issuer',
      up.config.issuer,
      '--client-id',
      upClient.clientId,
      '--client-secret-stdin',
      '--button',
      'Sign in with Upstream',
      '--json',
    ],
    down.env,
    `${upClient.clientSecret}\n`,
  );
  if (created.code !== 0) throw new Error(created.stderr);
});

test.after.always(async (t) => {
  await t.context.browser?.close();
  t.context.app?.close();
  t.context.bare?.close();
  t.context.hanging?.closeAllConnections();
  t.context.hanging?.close();
  await Promise.all([t.context.down?.close(), t.context.up?.close()]);
});

/** A person at the upstream, with an address the upstream has (or has not) verified. */
async function upstreamPerson(t: { context: Context }, username: string, emailVerified = true, email = `${username}@example.com`) {
  return t.context.up.services.accounts.create({
    username,
    email,
    name: `${username[0]!.toUpperCase()}${username.slice(1)} Upstream`,
    password: PASSWORD,
    emailVerified,
  });
}

/** The app sends a fresh browser to Gatehouse; returns the page (the sign-in page) and what the app keeps. */
async function appSignIn(
  t: { context: Context },
  context: BrowserContext,
  client: RegisteredClient = t.context.appClient,
  down: TestGatehouse = t.context.down,
) {
  const rp = await relyingParty(down, client, 'basic');
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(rp, {
    redirect_uri: t.context.appCallback,
    scope: 'openid profile email',
    state,
    nonce,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  });
  const page = await context.newPage();
  await page.goto(url.href);
  const redeem = () =>
    oidc.authorizationCodeGrant(rp, new URL(page.url()), { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true });
  return { page, redeem };
}

/** On Gatehouse's sign-in page: "Sign in with Upstream", then the upstream's own sign-in form. */
async function throughUpstream(t: { context: Context }, page: Page, username: string) {
  await page.click('button:has-text("Sign in with Upstream")');
  await page.waitForURL((u) => u.origin === t.context.up.config.issuer);
  await page.fill('input[name="username"]', username);
  await page.fill('input[name="password"]', PASSWORD);
  await Promise.all([page.waitForURL((u) => u.origin !== t.context.up.config.issuer), page.click('button[type="submit"]:has-text("Sign in")')]);
}

const bodyText = async (page: Page) => (await page.textContent('body')) ?? '';

test('a first sign-in through the upstream creates a Gatehouse account, and the app gets its code and tokens', async (t) => {
  const { down, browser, appCallback } = t.context;
  const upstreamUser = await upstreamPerson(t, 'ada');
  const context = await browser.newContext();
  try {
    const { page, redeem } = await appSignIn(t, context);
    t.is(await page.locator('h1').textContent(), 'Sign in');
    // A form POST (with CSRF), not a link.
    t.is(await page.locator('form[action="/idp/upstream/start"] input[name="csrf"]').count(), 1);
    await throughUpstream(t, page, 'ada');
    await page.waitForURL((u) => u.href.startsWith(appCallback));
    const tokens = await redeem();
    const claims = tokens.claims()!;
    const created = await down.services.accounts.get(claims.sub);
    // sub is Gatehouse's own; name and email come from the upstream.
    t.not(claims.sub, upstreamUser.id);
    t.is(created.email, 'ada@example.com');
    t.true(created.emailVerified);
    t.is(created.name, 'Ada Upstream');
    t.is(created.username, 'ada');
    t.false(created.hasPassword);
    t.deepEqual(claims.amr, ['fed']);
    const links = await down.services.idps.linksOf(created.id);
    t.deepEqual(
      links.map((l) => [l.idpName, l.subject]),
      [['upstream', upstreamUser.id]],
    );

    // The second time, the same account (by the upstream's subject), no new one.
    const again = await appSignIn(t, context);
    await again.page.waitForURL((u) => u.href.startsWith(appCallback) || /\/interaction\//.test(u.pathname));
    if (!again.page.url().startsWith(appCallback)) {
      await again.page.click('button:has-text("Sign in with Upstream")');
      await again.page.waitForURL((u) => u.href.startsWith(appCallback));
    }
    t.is((await again.redeem()).claims()!.sub, claims.sub);
  } finally {
    await context.close();
  }
});

/** The code an authenticator app shows now for `secret`. */
const codeNow = (secret: string) => new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), digits: 6, period: 30 }).generate();
/** Moves the clock to the start of the next 30-second window: the app shows a new code. */
const nextWindow = () => clock.advanceTo((Math.floor(Date.now() / 30_000) + 1) * 30_000 + 1000);

/** A Gatehouse account (no password) linked to the upstream person, with or without an authenticator app; returns the app's secret. */
async function linkedDownstreamAccount(t: { context: Context }, username: string, withApp: boolean) {
  const { down } = t.context;
  const upstreamUser = await upstreamPerson(t, username);
  const account = await down.services.accounts.create({ username, email: `${username}@example.com`, emailVerified: true });
  await down.services.idps.link('upstream', upstreamUser.id, account.id, `${username}@example.com`);
  if (!withApp) return { account, secret: undefined };
  const setup = await down.services.totp.begin(account.id, username);
  if (!(await down.services.totp.confirm(account.id, codeNow(setup!.secret)))) throw new Error('setup refused');
  nextWindow();
  return { account, secret: setup!.secret };
}

test('a person with an authenticator app who signs in through the upstream is asked for its code, a wrong one changes nothing, and the ID token says fed, otp, mfa', async (t) => {
  const { browser, appCallback } = t.context;
  const { account, secret } = await linkedDownstreamAccount(t, 'ottilie', true);
  const context = await browser.newContext();
  try {
    const { page, redeem } = await appSignIn(t, context);
    await throughUpstream(t, page, 'ottilie');
    t.is(await page.locator('h1').textContent(), 'Enter your code');
    t.regex(new URL(page.url()).pathname, /^\/interaction\/[^/]+\/idp\/upstream\/callback$/);

    const right = codeNow(secret!);
    const wrong = right === '000000' ? '111111' : '000000';
    await page.fill('input[name="code"]', wrong);
    const refused = await Promise.all([page.waitForResponse((r) => r.url().endsWith('/code')), page.click('button:has-text("Continue")')]);
    t.is(refused[0].status(), 401);
    t.is(await page.locator('h1').textContent(), 'Enter your code');
    t.regex((await page.locator('[role="alert"]').textContent()) ?? '', /not correct/);
    t.false(page.url().startsWith(appCallback), 'a wrong code signs no one in');

    await page.fill('input[name="code"]', right);
    await Promise.all([page.waitForURL((u) => u.href.startsWith(appCallback)), page.click('button:has-text("Continue")')]);
    const claims = (await redeem()).claims()!;
    t.is(claims.sub, account.id);
    t.deepEqual(claims.amr, ['fed', 'otp', 'mfa']);
    t.is(claims.acr, 'urn:gatehouse:acr:mfa');
  } finally {
    await context.close();
  }
});

test('an app that requires two factors has an upstream person without an app set one up, and the sign-in finishes (no loop back to sign-in)', async (t) => {
  const { down, browser, appCallback, mfaClient } = t.context;
  const { account } = await linkedDownstreamAccount(t, 'petra', false);
  const context = await browser.newContext();
  try {
    const { page, redeem } = await appSignIn(t, context, mfaClient);
    await throughUpstream(t, page, 'petra');
    t.is(await page.locator('h1').textContent(), 'Set up an authenticator app');
    t.false(await down.services.totp.isEnrolled(account.id), 'nothing is on before the first code');
    const secret = (await page.inputValue('#otpauth-secret')).replace(/\s/g, '');
    await page.fill('input[name="code"]', codeNow(secret));
    await Promise.all([page.waitForURL((u) => u.pathname.endsWith('/enrol')), page.click('button:has-text("Turn on")')]);
    t.is(await page.locator('h1').textContent(), 'Your recovery codes');
    t.true(await down.services.totp.isEnrolled(account.id));
    await Promise.all([page.waitForURL((u) => u.href.startsWith(appCallback)), page.click('a:has-text("Continue")')]);
    const claims = (await redeem()).claims()!;
    t.is(claims.sub, account.id);
    t.deepEqual(claims.amr, ['fed', 'otp', 'mfa']);
    t.is(claims.acr, 'urn:gatehouse:acr:mfa');
  } finally {
    await context.close();
  }
});

test('an upstream person without an app signs in to an app that requires nothing more with amr fed alone', async (t) => {
  const { browser, appCallback } = t.context;
  const { account } = await linkedDownstreamAccount(t, 'quinn', false);
  const context = await browser.newContext();
  try {
    const { page, redeem } = await appSignIn(t, context);
    await throughUpstream(t, page, 'quinn');
    await page.waitForURL((u) => u.href.startsWith(appCallback));
    const claims = (await redeem()).claims()!;
    t.is(claims.sub, account.id);
    t.deepEqual(claims.amr, ['fed']);
    t.is(claims.acr, undefined, 'no acr of ours claims what the upstream checked');
  } finally {
    await context.close();
  }
});

/** The error page the person sees, as status, heading and text. */
async function errorPageOf(page: Page, response: { status(): number } | null) {
  return { status: response?.status(), title: await page.locator('h1').textContent(), text: await bodyText(page) };
}

test('a forged or unknown state at the callback gets a clear page, 400', async (t) => {
  const { down, browser } = t.context;
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const response = await page.goto(`${down.config.issuer}/idp/upstream/callback?code=stolen&state=not-one-we-sent`);
    const shown = await errorPageOf(page, response);
    t.is(shown.status, 400);
    t.regex(shown.text, /not for a sign-in Gatehouse is waiting for/);
  } finally {
    await context.close();
  }
});

test('a replayed callback is refused: the state was used by the first', async (t) => {
  const { browser, appCallback } = t.context;
  await upstreamPerson(t, 'rita');
  const context = await browser.newContext();
  try {
    const { page } = await appSignIn(t, context);
    let callback: string | undefined;
    page.on('request', (r) => {
      if (r.url().includes('/idp/upstream/callback?')) callback ??= r.url();
    });
    await throughUpstream(t, page, 'rita');
    await page.waitForURL((u) => u.href.startsWith(appCallback));
    t.truthy(callback);
    const replay = await context.newPage();
    const shown = await errorPageOf(replay, await replay.goto(callback!));
    t.is(shown.status, 400);
    t.regex(shown.text, /already used, it expired, or it belongs to another sign-in/);
  } finally {
    await context.close();
  }
});

test('the callback in another browser than the one that started is refused', async (t) => {
  const { browser } = t.context;
  await upstreamPerson(t, 'otto');
  const context = await browser.newContext();
  const other = await browser.newContext();
  try {
    // An attacker starts a sign-in in their browser and keeps the link to the upstream…
    const { page } = await appSignIn(t, context);
    let authorization: string | undefined;
    page.on('request', (r) => {
      // The first navigation to the upstream: its authorization endpoint, with state and nonce.
      if (r.url().startsWith(t.context.up.config.issuer) && r.isNavigationRequest()) authorization ??= r.url();
    });
    await page.click('button:has-text("Sign in with Upstream")');
    await page.waitForURL((u) => u.origin === t.context.up.config.issuer);
    t.truthy(authorization);
    // …and gets someone else to finish it in another browser: that browser has no such sign-in.
    const victim = await other.newPage();
    await victim.goto(authorization!);
    await victim.fill('input[name="username"]', 'otto');
    await victim.fill('input[name="password"]', PASSWORD);
    const landed = victim.waitForResponse((r) => /\/interaction\/[^/]+\/idp\/upstream\/callback/.test(r.url()));
    await victim.click('button[type="submit"]:has-text("Sign in")');
    const shown = await errorPageOf(victim, await landed);
    t.is(shown.status, 400);
    t.is(shown.title, 'This sign-in has expired');
    t.is(await t.context.down.services.idps.linkOf('upstream', (await t.context.up.services.accounts.resolve('otto')).id), undefined);
  } finally {
    await context.close();
    await other.close();
  }
});

test('the person declines at the upstream (access_denied) and sees why, 403', async (t) => {
  const context = await t.context.browser.newContext();
  try {
    const { page } = await appSignIn(t, context);
    await page.click('button:has-text("Sign in with Bare")');
    await page.waitForURL((u) => u.port !== new URL(t.context.down.config.issuer).port);
    const landed = page.waitForResponse((r) => /\/interaction\/[^/]+\/idp\/bare\/callback/.test(r.url()));
    await page.click('a[href*="/abort"]');
    const shown = await errorPageOf(page, await landed);
    t.is(shown.status, 403);
    t.regex(shown.text, /Bare did not sign you in \(the sign-in was declined there\)/);
  } finally {
    await context.close();
  }
});

test('an ID token for another nonce than this sign-in sent is refused, 400', async (t) => {
  const context = await t.context.browser.newContext();
  try {
    const { page } = await appSignIn(t, context);
    await page.click('button:has-text("Sign in with Bare")');
    await page.waitForSelector('input[name="login"]');
    await page.fill('input[name="login"]', 'nina');
    await page.fill('input[name="password"]', 'anything');
    await page.click('button[type="submit"]');
    await page.waitForSelector('button:has-text("Continue")');
    const landed = page.waitForResponse((r) => /\/interaction\/[^/]+\/idp\/bare\/callback/.test(r.url()));
    await page.click('button:has-text("Continue")');
    const shown = await errorPageOf(page, await landed);
    t.is(shown.status, 400);
    t.regex(shown.text, /its nonce does not match/);
    t.is(await t.context.down.services.idps.linkOf('bare', 'nina'), undefined);
  } finally {
    await context.close();
  }
});

test('an upstream that does not answer gets a page within the timeout (504), one that is down a 502', async (t) => {
  const context = await t.context.browser.newContext();
  try {
    const { page } = await appSignIn(t, context);
    const startedAt = Date.now();
    const [slow] = await Promise.all([page.waitForResponse((r) => r.url().endsWith('/idp/slow/start')), page.click('button:has-text("Sign in with Slow")')]);
    const shown = await errorPageOf(page, slow);
    t.is(shown.status, 504);
    t.regex(shown.text, /Slow did not answer in time/);
    t.true(Date.now() - startedAt < 20_000, 'the timeout (5 s here) ended the wait, not the browser');

    const second = await appSignIn(t, context);
    const [down] = await Promise.all([
      second.page.waitForResponse((r) => r.url().endsWith('/idp/down/start')),
      second.page.click('button:has-text("Sign in with Down")'),
    ]);
    const refused = await errorPageOf(second.page, down);
    t.is(refused.status, 502);
    t.regex(refused.text, /Down cannot be reached right now/);
  } finally {
    await context.close();
  }
});

test('a provider turned off after the page showed its button, and an unknown one, get their pages', async (t) => {
  const { down } = t.context;
  await down.services.idps.create({ name: 'soon-off', issuer: t.context.up.config.issuer, clientId: 'x', clientSecret: 'y', button: 'Sign in with Soon Off' });
  const context = await t.context.browser.newContext();
  try {
    const { page } = await appSignIn(t, context);
    await down.services.idps.update('soon-off', { enabled: false });
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/idp/soon-off/start')),
      page.click('button:has-text("Sign in with Soon Off")'),
    ]);
    const shown = await errorPageOf(page, response);
    t.is(shown.status, 403);
    t.regex(shown.text, /Signing in with Soon Off is turned off/);
    // A disabled provider's button is not shown at all.
    const next = await appSignIn(t, context);
    t.is(await next.page.locator('button:has-text("Sign in with Soon Off")').count(), 0);

    const unknown = await fetch(`${down.config.issuer}/idp/nobody/start`, { method: 'POST', body: new URLSearchParams({ uid: 'x' }), redirect: 'manual' });
    t.is(unknown.status, 404);
    t.regex(await unknown.text(), /There is no such sign-in option here/);
  } finally {
    await context.close();
  }
});

test('an upstream email that another account has is not taken: a clear page, 409, and no account', async (t) => {
  const { down } = t.context;
  // Unverified at the upstream: never matched, never linked, and no second account gets it.
  await down.services.accounts.create({ username: 'walt', email: 'walt@example.com', password: PASSWORD });
  const person = await upstreamPerson(t, 'walter', false, 'walt@example.com');
  const context = await t.context.browser.newContext();
  try {
    const { page } = await appSignIn(t, context);
    const landed = page.waitForResponse((r) => /\/interaction\/[^/]+\/idp\/upstream\/callback/.test(r.url()));
    await throughUpstream(t, page, 'walter');
    const shown = await errorPageOf(page, await landed);
    t.is(shown.status, 409);
    t.regex(shown.text, /belongs to another Gatehouse account/);
    t.is((await down.services.accounts.activeWithEmail('walt@example.com')).length, 1);
    t.is(await down.services.idps.linkOf('upstream', person.id), undefined);
  } finally {
    await context.close();
  }
});

test('an upstream email that is an existing account is linked only after that account’s password, then signs in to it', async (t) => {
  const { down, browser, appCallback } = t.context;
  const existing = await down.services.accounts.create({ username: 'lin', email: 'lin@example.com', password: PASSWORD, name: 'Lin Here' });
  const person = await upstreamPerson(t, 'lin-upstream', true, 'lin@example.com');
  const context = await browser.newContext();
  try {
    const { page, redeem } = await appSignIn(t, context);
    await throughUpstream(t, page, 'lin-upstream');
    t.is(await page.locator('h1').textContent(), 'Link Upstream to your account');
    t.regex(await bodyText(page), /belongs to the Gatehouse account lin/);
    // Not linked by the email match alone.
    t.is(await down.services.idps.linkOf('upstream', person.id), undefined);

    const wrong = page.waitForResponse((r) => r.url().endsWith('/idp/upstream/link'));
    await page.fill('input[name="password"]', 'not-the-password-at-all');
    await page.click('button:has-text("Link and sign in")');
    t.is((await wrong).status(), 401);
    t.regex(await bodyText(page), /username or password is not correct/);
    t.is(await down.services.idps.linkOf('upstream', person.id), undefined);

    await page.fill('input[name="password"]', PASSWORD);
    await page.click('button:has-text("Link and sign in")');
    await page.waitForURL((u) => u.href.startsWith(appCallback));
    const claims = (await redeem()).claims()!;
    t.is(claims.sub, existing.id);
    t.deepEqual(claims.amr, ['fed', 'pwd']);
    t.is((await down.services.idps.linkOf('upstream', person.id))?.userId, existing.id);
    // The account keeps its own name; nothing new was created.
    t.is((await down.services.accounts.get(existing.id)).name, 'Lin Here');
    t.is((await down.services.accounts.activeWithEmail('lin@example.com')).length, 1);
  } finally {
    await context.close();
  }
  // Next time, in a new browser, the upstream alone signs in to the linked account.
  const fresh = await browser.newContext();
  try {
    const { page, redeem } = await appSignIn(t, fresh);
    await throughUpstream(t, page, 'lin-upstream');
    await page.waitForURL((u) => u.href.startsWith(appCallback));
    t.is((await redeem()).claims()!.sub, existing.id);
  } finally {
    await fresh.close();
  }
});

test('an upstream email that is an account with a passkey (and no password) is linked after a passkey of that account that checked it is them', async (t) => {
  const { browser, appCallback } = t.context;
  // WebAuthn needs a host name as RP id: here the downstream is on localhost, the upstream on 127.0.0.1.
  const [down, up] = await Promise.all([startTestGatehouse(), startLoopbackGatehouse()]);
  const context = await browser.newContext();
  try {
    const client = (name: string, redirectUri: string, gh: TestGatehouse) =>
      createClient(gh, ['--name', name, '--type', 'confidential', '--grant', 'authorization_code', '--redirect-uri', redirectUri, '--skip-consent']);
    const appClient = await client('Team Wiki', appCallback, down);
    const upClient = await client('Downstream Gatehouse', `${down.config.issuer}/idp/upstream/callback`, up);
    await down.services.idps.create({
      name: 'upstream',
      issuer: up.config.issuer,
      clientId: upClient.clientId,
      clientSecret: upClient.clientSecret!,
      button: 'Sign in with Upstream',
    });
    await up.services.accounts.create({ username: 'grace', email: 'grace@example.com', name: 'Grace Upstream', password: PASSWORD, emailVerified: true });
    const account = await down.services.accounts.create({ username: 'grace', email: 'grace@example.com', emailVerified: true });

    // Her passkey: a device-bound key in the browser's authenticator, registered to her account.
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = publicKey.export({ format: 'jwk' });
    const cose = isoCBOR.encode(
      new Map<number, number | Uint8Array>([
        [1, 2],
        [3, -7],
        [-1, 1],
        [-2, Buffer.from(jwk.x!, 'base64url')],
        [-3, Buffer.from(jwk.y!, 'base64url')],
      ]),
    );
    const credentialId = randomBytes(16);
    await new PasskeyStore(down.services.db).add({
      userId: account.id,
      credentialId: credentialId.toString('base64url'),
      publicKey: cose,
      counter: 0,
      transports: ['internal'],
      backupEligible: false,
      backedUp: false,
      name: 'Laptop',
    });
    const { page, redeem } = await appSignIn(t, context, appClient, down);
    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: 'internal',
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    });
    await cdp.send('WebAuthn.addCredential', {
      authenticatorId,
      credential: {
        credentialId: credentialId.toString('base64'),
        isResidentCredential: true,
        rpId: 'localhost',
        privateKey: privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64'),
        userHandle: Buffer.from(account.id).toString('base64'),
        signCount: 1,
      },
    });

    await page.click('button:has-text("Sign in with Upstream")');
    await page.waitForURL((u) => u.origin === up.config.issuer);
    await page.fill('input[name="username"]', 'grace');
    await page.fill('input[name="password"]', PASSWORD);
    await Promise.all([page.waitForURL((u) => u.origin === down.config.issuer), page.click('button[type="submit"]:has-text("Sign in")')]);
    t.is(await page.locator('h1').textContent(), 'Link Upstream to your account');
    t.is(await page.locator('input[name="password"]').count(), 0, 'no password to ask for');
    t.deepEqual(await down.services.idps.linksOf(account.id), [], 'nothing is linked before the proof');
    // An answer that is no passkey of hers is refused with the page again, and links nothing.
    const form = page.locator('form[action$="/link-passkey"]');
    const forged = await page.request.post(`${down.config.issuer}${await form.getAttribute('action')}`, {
      form: { csrf: await form.locator('input[name="csrf"]').inputValue(), token: await form.locator('input[name="token"]').inputValue(), credential: '{}' },
      maxRedirects: 0,
    });
    t.is(forged.status(), 401);
    t.regex(await forged.text(), /did not prove the account is yours/);
    t.deepEqual(await down.services.idps.linksOf(account.id), []);

    await Promise.all([page.waitForURL((u) => u.href.startsWith(appCallback)), page.click('button:has-text("Use a passkey")')]);
    const claims = (await redeem()).claims()!;
    t.is(claims.sub, account.id);
    t.deepEqual(claims.amr, ['fed', 'hwk', 'mfa']);
    t.deepEqual(
      (await down.services.idps.linksOf(account.id)).map((l) => l.idpName),
      ['upstream'],
    );
  } finally {
    await context.close();
    await Promise.all([down.close(), up.close()]);
  }
});

test('a provider that creates no accounts signs in only linked people, and a disabled account stays out', async (t) => {
  const { down } = t.context;
  const { idps, accounts } = down.services;
  const closed = await idps.create({
    name: 'closed',
    issuer: 'https://idp.example.com',
    clientId: 'c',
    clientSecret: 's',
    createAccounts: false,
    enabled: false,
  });
  const stranger = { subject: 'stranger-1', email: 'stranger@example.com', emailVerified: true, name: 'Stranger', username: 'stranger' };
  const error = await t.throwsAsync(accountForUpstream({ idps, accounts }, closed, stranger));
  t.is((error as GatehouseError).status, 403);
  t.regex(error!.message, /new accounts are not created through closed/);
  t.is((await accounts.activeWithEmail('stranger@example.com')).length, 0);

  const member = await accounts.create({ username: 'member', email: 'member@example.com', password: PASSWORD });
  await idps.link('closed', 'member-1', member.id, 'member@example.com');
  const outcome = await accountForUpstream({ idps, accounts }, closed, { ...stranger, subject: 'member-1' });
  t.like(outcome, { kind: 'signedIn', created: false, user: { id: member.id } });
  // The same identity cannot be linked twice.
  await t.throwsAsync(idps.link('closed', 'member-1', member.id, ''), { message: /already linked/ });

  await accounts.setDisabled(member.id, true);
  const disabled = await t.throwsAsync(accountForUpstream({ idps, accounts }, closed, { ...stranger, subject: 'member-1' }));
  t.is((disabled as GatehouseError).status, 403);
});

test('the same first sign-in through an upstream arriving several times at once makes exactly one account and one link (SQLite and PostgreSQL)', async (t) => {
  const pg = await startTestGatehouse({ database: 'pg' });
  try {
    for (const gh of [t.context.down, pg]) {
      const { idps, accounts } = gh.services;
      const idp = await idps.create({ name: 'racer', issuer: 'https://racer.example.com', clientId: 'c', clientSecret: 's' });
      const person = { subject: 'racer-1', email: 'racer@example.com', emailVerified: true, name: 'Racer', username: 'racer' };
      const outcomes = await Promise.all(Array.from({ length: 4 }, () => accountForUpstream({ idps, accounts }, idp, person)));
      const ids = new Set(outcomes.map((o) => o.user.id));
      t.is(ids.size, 1, 'every one signs in to the same account');
      t.is(outcomes.filter((o) => o.kind === 'signedIn' && o.created).length, 1);
      const made = await accounts.list('racer');
      t.deepEqual(
        made.map((u) => u.id),
        [...ids],
        'no spare account',
      );
      t.deepEqual(
        (await idps.linksOf(made[0]!.id)).map((l) => [l.idpName, l.subject]),
        [['racer', 'racer-1']],
      );
    }
  } finally {
    await pg.close();
  }
});

test('the GitHub preset signs a person in through GitHub’s OAuth and API, with the primary verified address', async (t) => {
  const { down, browser, appCallback } = t.context;
  const clientSecret = 'github-oauth-app-secret-0123456789';
  const github = await startGitHubStandIn({ clientId: 'Iv1.gatehouse', clientSecret, redirectUri: `${down.config.issuer}/idp/github/callback` });
  try {
    github.emails = [
      { email: 'octo@old.example', primary: false, verified: true },
      { email: 'octo@example.com', primary: true, verified: true },
    ];
    // The preset's address replaced by configuration (as for GitHub Enterprise Server), never by a request.
    const created = await runCli(
      ['idps', 'create', '--name', 'github', '--preset', 'github', '--issuer', github.url, '--client-id', 'Iv1.gatehouse', '--client-secret-stdin', '--json'],
      down.env,
      `${clientSecret}\n`,
    );
    t.is(created.code, 0, created.stderr);
    t.like(created.json(), {
      name: 'github',
      protocol: 'github',
      button: 'Sign in with GitHub',
      scope: 'read:user user:email',
      redirect_uri: `${down.config.issuer}/idp/github/callback`,
    });
    t.false(created.stdout.includes(clientSecret));

    const context = await browser.newContext();
    try {
      const { page, redeem } = await appSignIn(t, context);
      await page.click('button:has-text("Sign in with GitHub")');
      await page.waitForURL((u) => u.href.startsWith(appCallback));
      const claims = (await redeem()).claims()!;
      const user = await down.services.accounts.get(claims.sub);
      t.like(user, { username: 'octo-cat', email: 'octo@example.com', emailVerified: true, name: 'Octo Cat' });
      t.is((await down.services.idps.linkOf('github', '4242'))?.userId, user.id);
    } finally {
      await context.close();
    }
  } finally {
    github.close();
  }
});

test('the account page lists linked sign-ins, unlinks one with its CSRF token, and never the last way in', async (t) => {
  const { down } = t.context;
  const { idps, accounts, db } = down.services;
  const user = await accounts.create({ username: 'una', email: 'una@example.com', password: PASSWORD });
  await idps.link('upstream', 'una-at-upstream', user.id, 'una@upstream.example');
  await idps.link('bare', 'una-at-bare', user.id, 'una@bare.example');
  const agent = new UserAgent();
  let page = await signInToAccount(agent, down.config.issuer, 'una', PASSWORD);
  t.regex(page.html, /Linked sign-ins/);
  t.regex(page.html, /Upstream<\/strong> una@upstream\.example/);
  t.regex(page.html, /Bare<\/strong> una@bare\.example/);

  // Without the page's CSRF token: nothing changes.
  const forged = await agent.request(`${down.config.issuer}/account/idps/unlink`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ idp: 'upstream', subject: 'una-at-upstream' }),
  });
  t.is(forged.status, 403);
  t.is((await idps.linksOf(user.id)).length, 2);

  page = await agent.submit(page, /\/account\/idps\/unlink$/, {});
  t.is(page.status, 200);
  t.regex(page.html, /That sign-in is unlinked/);
  t.deepEqual(
    (await idps.linksOf(user.id)).map((l) => l.idpName),
    ['upstream'],
  );

  // An account whose password is gone (it was made through an upstream) keeps its last link.
  await db('users').where({ id: user.id }).update({ password_hash: null });
  page = await agent.open(`${down.config.issuer}/account`);
  page = await agent.submit(page, /\/account\/idps\/unlink$/, {});
  t.is(page.status, 409);
  t.regex(page.html, /This is your only way to sign in/);
  t.is((await idps.linksOf(user.id)).length, 1);

  // Another person's link is not theirs to unlink.
  const other = await accounts.create({ username: 'otis', email: 'otis@example.com', password: PASSWORD });
  await idps.link('upstream', 'otis-at-upstream', other.id, '');
  const notTheirs = await agent.submit(page, /\/account\/idps\/unlink$/, { subject: 'otis-at-upstream' });
  t.is(notTheirs.status, 404);
  t.is((await idps.linksOf(other.id)).length, 1);
});

test('operators manage providers through the admin API (no secret ever shown, audited) and limit a client’s buttons from the CLI', async (t) => {
  const { down } = t.context;
  const { token } = await down.services.adminTokens.create('idps-test');
  const api = adminApi(down, token);
  const created = await api('POST', '/idps', {
    body: { name: 'corp', issuer: 'https://login.corp.example', client_id: 'gh', client_secret: 'corp-secret-value', position: 1 },
  });
  t.is(created.status, 201);
  t.like(created.body, { name: 'corp', button: 'Sign in with corp', position: 1, enabled: true, redirect_uri: `${down.config.issuer}/idp/corp/callback` });
  t.false(created.text.includes('corp-secret-value'));
  // Stored sealed, never as typed.
  const row = await down.services.db('identity_providers').where({ name: 'corp' }).first();
  t.false(JSON.stringify(row).includes('corp-secret-value'));
  t.is(await down.services.idps.clientSecret('corp'), 'corp-secret-value');

  const bad = await api('POST', '/idps', { body: { name: 'Not OK', issuer: 'http://corp.example', client_id: '', client_secret: 'x', colour: 'red' } });
  t.is(bad.status, 400);
  t.regex(bad.body.error_description, /colour: is not an identity provider field/);
  const badFields = await api('POST', '/idps', { body: { name: 'Not OK', issuer: 'http://corp.example', client_id: '', client_secret: 'x' } });
  t.regex(badFields.body.error_description, /name: .*issuer: must be an https URL \(plain http only for localhost\).*client_id: is required/);

  const patched = await api('PATCH', '/idps/corp', { body: { button: 'Sign in with Corp SSO', enabled: false, client_secret: 'rotated-secret' } });
  t.is(patched.status, 200);
  t.like(patched.body, { button: 'Sign in with Corp SSO', enabled: false });
  t.is(await down.services.idps.clientSecret('corp'), 'rotated-secret');
  const audited = await down.services.audit.list({ limit: 20 });
  const update = audited.find((e) => e.action === 'idp.update');
  t.deepEqual((update?.details as { fields?: string[] })?.fields?.sort(), ['button', 'client_secret', 'enabled']);
  t.false(JSON.stringify(audited).includes('rotated-secret'));

  // A client limited to one provider shows only its button.
  const limited = await createClient(down, ['--name', 'Limited', '--type', 'public', '--grant', 'authorization_code', '--redirect-uri', t.context.appCallback]);
  const refused = await runCli(['clients', 'update', limited.clientId, '--idp', 'nope', '--name', 'Renamed', '--json'], down.env);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /unknown identity provider nope/);
  t.is((await down.services.clients.get(limited.clientId)).name, 'Limited');
  const set = await runCli(['clients', 'update', limited.clientId, '--idp', 'bare', '--json'], down.env);
  t.is(set.code, 0, set.stderr);
  t.deepEqual(set.json().idps, ['bare']);
  t.deepEqual((await api('GET', `/clients/${limited.clientId}/idps`)).body, { idps: ['bare'] });
  t.deepEqual(
    (await down.services.idps.offeredTo(limited.clientId)).map((i) => i.name),
    ['bare'],
  );
  t.true((await down.services.idps.offeredTo(t.context.appClient.clientId)).length > 1);

  t.is((await api('DELETE', '/idps/corp')).status, 204);
  t.is((await api('GET', '/idps/corp')).status, 404);
});

test('an operator adds a provider on the admin pages, sees the redirect URI to register, and turns it off', async (t) => {
  const { down } = t.context;
  await down.services.accounts.create({ username: 'idp-operator', email: 'idp-operator@example.com', password: PASSWORD, isAdmin: true });
  const { agent } = await operatorAgent(down, 'idp-operator', PASSWORD);
  let page = await agent.open(`${down.config.issuer}/admin/idps`);
  t.is(page.status, 200);
  t.regex(page.html, new RegExp(`${down.config.issuer}/idp/upstream/callback`));

  const refused = await agent.submit(page, /\/admin\/idps$/, { name: 'gitlab', preset: 'gitlab', clientId: '', clientSecret: '' });
  t.is(refused.status, 400);
  t.regex(refused.html, /Nothing was saved/);
  t.is(await down.services.idps.find('gitlab'), undefined);

  page = await agent.submit(page, /\/admin\/idps$/, { name: 'gitlab', preset: 'gitlab', clientId: 'gl-app', clientSecret: 'gl-secret', createAccounts: 'on' });
  t.is(page.status, 200);
  t.regex(page.html, /The provider is added/);
  t.regex(page.html, new RegExp(`${down.config.issuer}/idp/gitlab/callback`));
  t.like(await down.services.idps.find('gitlab'), { issuer: 'https://gitlab.com', button: 'Sign in with GitLab', enabled: true });
  t.is(await down.services.idps.clientSecret('gitlab'), 'gl-secret');
  t.false(page.html.includes('gl-secret'));

  page = await agent.submit(page, /\/admin\/idps\/gitlab\/disable$/, {});
  t.regex(page.html, /The provider is saved/);
  t.false((await down.services.idps.find('gitlab'))!.enabled);
  page = await agent.submit(page, /\/admin\/idps\/gitlab\/delete$/, {});
  t.is(await down.services.idps.find('gitlab'), undefined);
});

test('a client limited to some providers shows only their buttons, and a forged start for another is refused, 403', async (t) => {
  const { down, browser, appCallback } = t.context;
  const limited = await createClient(down, [
    '--name',
    'Bare Only',
    '--type',
    'confidential',
    '--grant',
    'authorization_code',
    '--redirect-uri',
    appCallback,
    '--skip-consent',
  ]);
  await down.services.admin.setClientIdps({ label: 'test' }, limited.clientId, ['bare']);
  const rp = await relyingParty(down, limited, 'basic');
  const url = oidc.buildAuthorizationUrl(rp, {
    redirect_uri: appCallback,
    scope: 'openid',
    code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
    code_challenge_method: 'S256',
  });
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(url.href);
    t.deepEqual(await page.locator('form[action^="/idp/"] button').allTextContents(), ['Sign in with Bare']);
    // The same form, pointed at a provider this client does not offer.
    await page.evaluate(() => document.querySelector('form[action="/idp/bare/start"]')!.setAttribute('action', '/idp/upstream/start'));
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/idp/upstream/start')),
      page.click('button:has-text("Sign in with Bare")'),
    ]);
    t.is(response.status(), 403);
    t.regex(await bodyText(page), /This application does not offer signing in with Upstream/);
  } finally {
    await context.close();
  }
});

/** A fresh browser at the account page's sign-in, which shows the enabled providers' buttons as forms with CSRF. */
async function accountSignIn(t: { context: Context }, context: BrowserContext) {
  const page = await context.newPage();
  await page.goto(`${t.context.down.config.issuer}/account/login`);
  return page;
}

test('a person whose account an upstream sign-in created signs in to /account through the upstream and sees their linked sign-ins', async (t) => {
  const { down, browser, appCallback } = t.context;
  const upstreamUser = await upstreamPerson(t, 'amara');
  const first = await browser.newContext();
  try {
    const { page } = await appSignIn(t, first);
    await throughUpstream(t, page, 'amara');
    await page.waitForURL((u) => u.href.startsWith(appCallback));
  } finally {
    await first.close();
  }
  const link = await down.services.idps.linkOf('upstream', upstreamUser.id);
  t.truthy(link);
  t.false((await down.services.accounts.get(link!.userId)).hasPassword, 'no password: the upstream is its only way in');

  const context = await browser.newContext();
  try {
    const page = await accountSignIn(t, context);
    t.is(await page.locator('form[action="/account/login/idp/upstream/start"] input[name="csrf"]').count(), 1);
    t.is(await page.locator('form[action="/account/login/idp/bare/start"] button').textContent(), 'Sign in with Bare');
    const callback = page.waitForRequest((r) => r.url().includes('/account/login/idp/upstream/callback'));
    await throughUpstream(t, page, 'amara');
    const callbackUrl = (await callback).url();
    await page.waitForURL((u) => u.pathname === '/account');
    t.is(await page.locator('h1').textContent(), 'Your account');
    const text = await bodyText(page);
    t.regex(text, /You are signed in to your account/);
    t.regex(text, /Linked sign-ins/);
    t.regex(text, /amara@example\.com/);
    t.true((await context.cookies()).some((c) => c.name === ACCOUNT_SESSION.cookie));

    // The state was used: the same answer again finds nothing, and signs no one in.
    const replay = await context.newPage();
    const shown = await errorPageOf(replay, await replay.goto(callbackUrl));
    t.is(shown.status, 400);
    t.regex(shown.text, /not for a sign-in Gatehouse is waiting for/);
  } finally {
    await context.close();
  }
});

test('an upstream identity linked to no account is refused at /account, 403, and nothing is created or linked (not even to the account its email belongs to)', async (t) => {
  const { down, browser } = t.context;
  const stranger = await upstreamPerson(t, 'ulrich');
  const holderUpstream = await upstreamPerson(t, 'ursula');
  const holder = await down.services.accounts.create({ username: 'ursula', email: 'ursula@example.com', password: PASSWORD, emailVerified: true });
  for (const [username, subject] of [
    ['ulrich', stranger.id],
    ['ursula', holderUpstream.id],
  ] as const) {
    const context = await browser.newContext();
    try {
      const page = await accountSignIn(t, context);
      const landed = page.waitForResponse((r) => r.url().includes('/account/login/idp/upstream/callback'));
      await throughUpstream(t, page, username);
      const shown = await errorPageOf(page, await landed);
      t.is(shown.status, 403, username);
      t.regex(shown.text, /No Gatehouse account is linked to this Upstream sign-in/);
      t.regex(shown.text, /Sign in to an application with Upstream first/);
      t.is(await down.services.idps.linkOf('upstream', subject), undefined, `${username}: nothing linked`);
      t.false(
        (await context.cookies()).some((c) => c.name === ACCOUNT_SESSION.cookie),
        'no account session',
      );
    } finally {
      await context.close();
    }
  }
  t.deepEqual(await down.services.accounts.activeWithEmail('ulrich@example.com'), [], 'no account was created');
  t.false(await down.services.accounts.usernameExists('ulrich'));
  t.deepEqual(await down.services.idps.linksOf(holder.id), []);
});

test('a person with an authenticator app who signs in to /account through the upstream is asked for its code; a wrong one signs no one in', async (t) => {
  const { browser } = t.context;
  const { secret } = await linkedDownstreamAccount(t, 'tessa', true);
  const context = await browser.newContext();
  try {
    const page = await accountSignIn(t, context);
    await throughUpstream(t, page, 'tessa');
    t.is(await page.locator('h1').textContent(), 'Enter your code');
    t.is(new URL(page.url()).pathname, '/account/login/idp/upstream/callback');

    const right = codeNow(secret!);
    const wrong = right === '000000' ? '111111' : '000000';
    await page.fill('input[name="code"]', wrong);
    const refused = await Promise.all([page.waitForResponse((r) => r.url().endsWith('/account/login/code')), page.click('button:has-text("Continue")')]);
    t.is(refused[0].status(), 401);
    t.is(await page.locator('h1').textContent(), 'Enter your code');
    const noSession = await context.newPage();
    await noSession.goto(`${t.context.down.config.issuer}/account`);
    t.is(new URL(noSession.url()).pathname, '/account/login', 'a wrong code signs no one in');

    await page.fill('input[name="code"]', right);
    await Promise.all([page.waitForURL((u) => u.pathname === '/account'), page.click('button:has-text("Continue")')]);
    t.regex(await bodyText(page), /You are signed in to your account/);
  } finally {
    await context.close();
  }
});

test('the app sign-in’s failures get the same pages at /account: declined upstream 403, another nonce 400', async (t) => {
  const context = await t.context.browser.newContext();
  try {
    let page = await accountSignIn(t, context);
    await page.click('button:has-text("Sign in with Bare")');
    await page.waitForURL((u) => u.port !== new URL(t.context.down.config.issuer).port);
    let landed = page.waitForResponse((r) => r.url().includes('/account/login/idp/bare/callback'));
    await page.click('a[href*="/abort"]');
    let shown = await errorPageOf(page, await landed);
    t.is(shown.status, 403);
    t.regex(shown.text, /Bare did not sign you in \(the sign-in was declined there\)/);

    page = await accountSignIn(t, context);
    await page.click('button:has-text("Sign in with Bare")');
    await page.waitForSelector('input[name="login"]');
    await page.fill('input[name="login"]', 'nora');
    await page.fill('input[name="password"]', 'anything');
    await page.click('button[type="submit"]');
    await page.waitForSelector('button:has-text("Continue")');
    landed = page.waitForResponse((r) => r.url().includes('/account/login/idp/bare/callback'));
    await page.click('button:has-text("Continue")');
    shown = await errorPageOf(page, await landed);
    t.is(shown.status, 400);
    t.regex(shown.text, /its nonce does not match/);
    t.is(await t.context.down.services.idps.linkOf('bare', 'nora'), undefined);
  } finally {
    await context.close();
  }
});

// Serial (ava runs these first, alone): this file's upstream timeout is 1.5 s, and the first
// discovery of the upstream, while every browser test of the file starts at once, can take longer.
test.serial('the /account start needs its form’s CSRF token, and its callback only opens in the browser that started it', async (t) => {
  const { down, up } = t.context;
  // Flows are stored under the hash of their state (the other tests here hold flows of their own at the same time).
  const held = async (state: string) =>
    (await down.services
      .db('idp_flows')
      .where({ id: createHash('sha256').update(`start:${state}`).digest('base64url') })
      .first()) !== undefined;
  const agent = new UserAgent([up.config.issuer]);
  const login = await agent.open(`${down.config.issuer}/account/login`);
  const forged = await agent.request(`${down.config.issuer}/account/login/idp/upstream/start`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ csrf: 'not-the-token' }),
  });
  t.is(forged.status, 403);
  t.regex(await forged.text(), /Your form expired/);
  t.deepEqual(
    agent.cookieNames().filter((n) => n.startsWith('gh_account_idp')),
    [],
    'a forged start binds no flow to the browser',
  );

  const atUpstream = await agent.submit(login, /\/account\/login\/idp\/upstream\/start$/, {});
  t.true(atUpstream.url.startsWith(up.config.issuer), `${atUpstream.status} ${atUpstream.url} ${atUpstream.html.replace(/\s+/g, ' ').slice(0, 600)}`);
  const state = new URL(atUpstream.url).searchParams.get('state')!;
  t.true(await held(state));
  t.true(agent.cookieNames().includes('gh_account_idp'));

  // Another browser with this state: the shared callback hands it to /account, which finds no flow of that browser's.
  const other = await new UserAgent().open(`${down.config.issuer}/idp/upstream/callback?code=stolen&state=${state}`);
  t.is(other.status, 400);
  t.regex(other.html, /not for a sign-in Gatehouse is waiting for/);
  t.true(await held(state), 'the other browser used nothing up');

  // The browser that started it still can (here the upstream declined).
  const own = await agent.open(`${down.config.issuer}/idp/upstream/callback?error=access_denied&state=${state}`);
  t.is(own.status, 403);
  t.regex(own.html, /Upstream did not sign you in/);
  t.false(await held(state), 'used once');
});
