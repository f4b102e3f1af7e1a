import { generateKeyPairSync, randomBytes } from 'node:crypto';
import http from 'node:http';
import anyTest, { type TestFn } from 'ava';
import type { Browser, CDPSession, Page } from 'playwright-core';
import { ACR_MFA } from '../src/accounts/passkeys/index.ts';
import { CHALLENGE_TTL_MS, PasskeyChallenges } from '../src/accounts/passkeys/challenges.ts';
import { factorsOf } from '../src/accounts/passkeys/service.ts';
import { PasskeyStore } from '../src/accounts/passkeys/store.ts';
import { chromiumAvailable, launchBrowser, screenshotForDocs } from './support/browser.ts';
import { freePort, startTestGatehouse, type TestGatehouse } from './support/gatehouse.ts';
import { createClient, createUserDirectly, oidc, relyingParty } from './support/relying-party.ts';

// The issuer is http://localhost:<port>: a secure context for Chromium, and a host that can be
// a WebAuthn RP id (an IP address cannot).
const test = anyTest as TestFn<{ gh: TestGatehouse; browser: Browser; app: http.Server; redirectUri: string; rp: oidc.Configuration }>;

test.before(async (t) => {
  if (!chromiumAvailable()) throw new Error('Debian chromium is required for the browser tests (apt-get install -y chromium)');
  const gh = await startTestGatehouse();
  const port = await freePort();
  const app = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>Signed in</title><h1>Back at the app</h1>');
  });
  await new Promise<void>((resolve) => app.listen(port, '127.0.0.1', resolve));
  const redirectUri = `http://127.0.0.1:${port}/callback`;
  const client = await createClient(gh, ['--name', 'Team Wiki', '--type', 'confidential', '--grant', 'authorization_code', '--redirect-uri', redirectUri]);
  t.context = { gh, browser: await launchBrowser(), app, redirectUri, rp: await relyingParty(gh, client, 'basic') };
});

test.after.always(async (t) => {
  await t.context.browser?.close();
  t.context.app?.close();
  await t.context.gh?.close();
});

/** A page with a DevTools virtual authenticator: a platform authenticator that verifies its user. */
async function pageWithAuthenticator(browser: Browser, { autofill = false } = {}): Promise<{ page: Page; cdp: CDPSession; authenticatorId: string }> {
  const page = await browser.newPage();
  // A virtual authenticator answers the username field's passkey autofill (conditional UI) at
  // once, as if the person had picked their passkey there; tests of the button take the part of
  // a browser that offers no such autofill.
  // (A string, not a function: tsx would wrap a function in helpers the page does not have.)
  if (!autofill)
    await page.addInitScript({ content: "Object.defineProperty(PublicKeyCredential, 'isConditionalMediationAvailable', { value: async () => false });" });
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  return { page, cdp, authenticatorId: await addAuthenticator(cdp) };
}

async function addAuthenticator(cdp: CDPSession): Promise<string> {
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
  return authenticatorId;
}

async function signInToAccountPage(page: Page, base: string, username: string, password: string) {
  await page.goto(`${base}/account`);
  await page.fill('input[name="username"]', username);
  await page.fill('input[name="password"]', password);
  await page.click('button[type="submit"]');
  await page.waitForURL(/\/account\?notice=signed-in$/);
}

async function addPasskey(page: Page, name: string, password: string) {
  await page.goto(new URL('/account', page.url()).href);
  await page.fill('#passkey-name', name);
  await page.fill('#passkey-add-password', password);
  await page.getByRole('button', { name: 'Add a passkey' }).click();
  await page.waitForURL(/\/account\/passkeys\/add$/);
  // The password was right: the page now offers to create the passkey.
  if (await page.getByRole('button', { name: 'Create the passkey' }).count()) {
    await page.getByRole('button', { name: 'Create the passkey' }).click();
    await page.waitForURL(/notice=passkey-added|\/account\/passkeys\/create$/);
  }
}

/** An authorization request of Team Wiki, opened in `page`: the sign-in page. */
async function startSignIn(t: { context: { rp: oidc.Configuration; redirectUri: string } }, page: Page) {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const url = oidc.buildAuthorizationUrl(t.context.rp, {
    redirect_uri: t.context.redirectUri,
    scope: 'openid',
    state,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  });
  await page.goto(url.href);
  return { verifier, state };
}

/** Captures the form the passkey script posts (without sending it), to replay it by hand. */
async function capturePasskeyPost(page: Page): Promise<{ url: string; form: URLSearchParams }> {
  const captured = new Promise<{ url: string; form: URLSearchParams }>((resolve) => {
    void page.route('**/interaction/*/passkey', async (route) => {
      resolve({ url: route.request().url(), form: new URLSearchParams(route.request().postData() ?? '') });
      await route.fulfill({ status: 204 });
    });
  });
  await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
  const result = await captured;
  await page.unroute('**/interaction/*/passkey');
  return result;
}

const postAs = (page: Page, url: string, form: URLSearchParams) =>
  page.request.post(url, { headers: { 'content-type': 'application/x-www-form-urlencoded' }, data: form.toString(), maxRedirects: 0 });

const csrfOf = async (page: Page) => (await page.locator('form[data-passkey] input[name="csrf"]').first().getAttribute('value'))!;

test('a person adds a passkey on their account page, signs out, and signs in to an app with the passkey alone', async (t) => {
  const { gh, browser } = t.context;
  const sub = await createUserDirectly(gh, 'ada', 'analytical-engine-1843');
  const { page } = await pageWithAuthenticator(browser);
  try {
    await signInToAccountPage(page, gh.config.issuer, 'ada', 'analytical-engine-1843');
    await addPasskey(page, 'Work laptop', 'analytical-engine-1843');
    t.regex(page.url(), /notice=passkey-added$/);
    t.regex((await page.textContent('body'))!, /Your passkey is added/);
    t.regex((await page.locator('section[aria-labelledby="passkeys-heading"]').textContent())!, /Work laptop/);
    t.regex((await page.locator('table.events').textContent())!, /Passkey added/);
    await screenshotForDocs(page, 'account-passkeys', { fullPage: true });
    await page.getByRole('button', { name: 'Sign out of this page' }).click();
    await page.waitForURL(/\/account\/login$/);

    const { verifier, state } = await startSignIn(t, page);
    t.is(await page.locator('h1').textContent(), 'Sign in');
    await screenshotForDocs(page, 'sign-in-passkey');
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.waitForSelector('button[name="decision"][value="allow"]');
    await page.click('button[name="decision"][value="allow"]');
    await page.waitForURL((u) => u.href.startsWith(t.context.redirectUri));
    const tokens = await oidc.authorizationCodeGrant(t.context.rp, new URL(page.url()), {
      pkceCodeVerifier: verifier,
      expectedState: state,
      idTokenExpected: true,
    });
    const claims = tokens.claims()!;
    t.is(claims.sub, sub);
    // A device-bound passkey with user verification: a hardware key and two factors.
    t.deepEqual(claims.amr, ['hwk', 'mfa']);
    t.is(claims.acr, ACR_MFA);
  } finally {
    await page.close();
  }
});

test('where the browser offers passkeys in the username field, picking one there signs in', async (t) => {
  const { gh, browser } = t.context;
  const sub = await createUserDirectly(gh, 'alan', 'turing-machine-1936');
  const { page } = await pageWithAuthenticator(browser, { autofill: true });
  try {
    await signInToAccountPage(page, gh.config.issuer, 'alan', 'turing-machine-1936');
    await addPasskey(page, 'Laptop', 'turing-machine-1936');
    const { verifier, state } = await startSignIn(t, page);
    // The virtual authenticator picks the passkey offered under the username field by itself.
    await page.waitForSelector('button[name="decision"][value="allow"]');
    await page.click('button[name="decision"][value="allow"]');
    await page.waitForURL((u) => u.href.startsWith(t.context.redirectUri));
    const tokens = await oidc.authorizationCodeGrant(t.context.rp, new URL(page.url()), {
      pkceCodeVerifier: verifier,
      expectedState: state,
      idTokenExpected: true,
    });
    t.is(tokens.claims()!.sub, sub);
    t.deepEqual(tokens.claims()!.amr, ['hwk', 'mfa']);
  } finally {
    await page.close();
  }
});

test('adding a passkey with a wrong password is refused and adds nothing', async (t) => {
  const { gh, browser } = t.context;
  const sub = await createUserDirectly(gh, 'brendan', 'correct-horse-battery');
  const { page, cdp, authenticatorId } = await pageWithAuthenticator(browser);
  try {
    await signInToAccountPage(page, gh.config.issuer, 'brendan', 'correct-horse-battery');
    await addPasskey(page, 'Phone', 'not-my-password');
    t.regex((await page.locator('section[aria-labelledby="passkeys-heading"] [role="alert"]').textContent())!, /current password is not correct/);
    t.deepEqual(await gh.services.passkeys.of(sub), []);
    // The password is checked before the device is asked: no orphan passkey is left on it.
    t.deepEqual((await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials, []);
  } finally {
    await page.close();
  }
});

test('a person renames a passkey, and once it is removed it no longer signs them in', async (t) => {
  const { gh, browser } = t.context;
  const sub = await createUserDirectly(gh, 'carol', 'shaw-river-raid-1982');
  const { page, cdp, authenticatorId } = await pageWithAuthenticator(browser);
  try {
    await signInToAccountPage(page, gh.config.issuer, 'carol', 'shaw-river-raid-1982');
    await addPasskey(page, 'Desk', 'shaw-river-raid-1982');
    // Several are fine, one per device: the same device is not registered twice.
    await cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId });
    await addAuthenticator(cdp);
    await addPasskey(page, 'Spare', 'shaw-river-raid-1982');
    t.is((await gh.services.passkeys.of(sub)).length, 2);

    await page.fill('input[id^="passkey-name-"][value="Desk"]', 'Home desk');
    await page.getByRole('button', { name: 'Rename Desk' }).click();
    await page.waitForURL(/notice=passkey-renamed$/);
    t.deepEqual(
      (await gh.services.passkeys.of(sub)).map((p) => p.name),
      ['Home desk', 'Spare'],
    );

    // Removing asks for the password again.
    const homeDesk = page.locator('li', { has: page.getByRole('button', { name: 'Remove Home desk' }) });
    await homeDesk.locator('input[name="current_password"]').fill('wrong-password-here');
    await page.getByRole('button', { name: 'Remove Home desk' }).click();
    await page.waitForLoadState();
    t.regex((await page.locator('section[aria-labelledby="passkeys-heading"] [role="alert"]').textContent())!, /current password is not correct/);
    t.is((await gh.services.passkeys.of(sub)).length, 2);

    for (const name of ['Home desk', 'Spare']) {
      const row = page.locator('li', { has: page.getByRole('button', { name: `Remove ${name}` }) });
      await row.locator('input[name="current_password"]').fill('shaw-river-raid-1982');
      await page.getByRole('button', { name: `Remove ${name}` }).click();
      await page.waitForURL(/notice=passkey-removed$/);
    }
    t.deepEqual(await gh.services.passkeys.of(sub), []);

    // The authenticator still holds the credentials; Gatehouse no longer knows them.
    await startSignIn(t, page);
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.waitForSelector('[role="alert"]');
    t.regex((await page.locator('[role="alert"]').textContent())!, /That passkey did not sign you in/);
    t.is(await page.locator('h1').textContent(), 'Sign in');
  } finally {
    await page.close();
  }
});

test('a sign-in answer is used once: replayed, or posted to another sign-in, it is refused', async (t) => {
  const { gh, browser } = t.context;
  await createUserDirectly(gh, 'dennis', 'unix-and-c-1972');
  const { page } = await pageWithAuthenticator(browser);
  try {
    await signInToAccountPage(page, gh.config.issuer, 'dennis', 'unix-and-c-1972');
    await addPasskey(page, 'Laptop', 'unix-and-c-1972');

    await startSignIn(t, page);
    const first = await capturePasskeyPost(page);
    // Posted once, it signs in (a redirect back to the authorization); posted again, refused.
    t.is((await postAs(page, first.url, first.form)).status(), 303);
    const replayed = await postAs(page, first.url, first.form);
    t.is(replayed.status(), 401);
    t.regex(await replayed.text(), /That passkey did not sign you in/);

    // The same answer, taken to another sign-in (its challenge was not issued there).
    await startSignIn(t, page);
    const other = await capturePasskeyPost(page);
    const moved = new URLSearchParams(first.form);
    moved.set('csrf', other.form.get('csrf')!);
    const refused = await postAs(page, other.url, moved);
    t.is(refused.status(), 401);
    // And that sign-in's own answer still works: the refused one spent nothing of it.
    t.is((await postAs(page, other.url, other.form)).status(), 303);
  } finally {
    await page.close();
  }
});

test('a person an operator disables cannot sign in with their passkey', async (t) => {
  const { gh, browser } = t.context;
  const sub = await createUserDirectly(gh, 'hedy', 'frequency-hopping-1942');
  const { page } = await pageWithAuthenticator(browser);
  try {
    await signInToAccountPage(page, gh.config.issuer, 'hedy', 'frequency-hopping-1942');
    await addPasskey(page, 'Laptop', 'frequency-hopping-1942');
    await gh.services.accounts.setDisabled(sub, true);
    await startSignIn(t, page);
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.waitForSelector('[role="alert"]');
    t.regex((await page.locator('[role="alert"]').textContent())!, /That passkey did not sign you in/);
    t.is(await page.locator('h1').textContent(), 'Sign in');
  } finally {
    await page.close();
  }
});

test('a passkey Gatehouse never registered is refused, even one made for its RP id', async (t) => {
  const { browser } = t.context;
  const { page, cdp, authenticatorId } = await pageWithAuthenticator(browser);
  try {
    // A discoverable credential put straight into the authenticator: valid signatures, unknown key.
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await cdp.send('WebAuthn.addCredential', {
      authenticatorId,
      credential: {
        credentialId: randomBytes(16).toString('base64'),
        isResidentCredential: true,
        rpId: 'localhost',
        privateKey: privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64'),
        userHandle: Buffer.from('someone-else').toString('base64'),
        signCount: 1,
      },
    });
    await startSignIn(t, page);
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.waitForSelector('[role="alert"]');
    t.regex((await page.locator('[role="alert"]').textContent())!, /That passkey did not sign you in/);
    t.is(await page.locator('h1').textContent(), 'Sign in');
  } finally {
    await page.close();
  }
});

test('passkey forms refuse posts without their CSRF token and change nothing', async (t) => {
  const { gh, browser } = t.context;
  const sub = await createUserDirectly(gh, 'edsger', 'goto-considered-1968');
  const { page } = await pageWithAuthenticator(browser);
  try {
    await signInToAccountPage(page, gh.config.issuer, 'edsger', 'goto-considered-1968');
    const base = gh.config.issuer;
    for (const path of ['/account/passkeys/add', '/account/passkeys/create', '/account/passkeys/rename', '/account/passkeys/remove']) {
      const answer = await postAs(
        page,
        `${base}${path}`,
        new URLSearchParams({ csrf: 'forged', current_password: 'goto-considered-1968', name: 'x', passkey: '1', credential: '{}' }),
      );
      t.is(answer.status(), 403, path);
      t.regex(await answer.text(), /Nothing was changed/);
    }
    t.deepEqual(await gh.services.passkeys.of(sub), []);

    await startSignIn(t, page);
    const uid = new URL(page.url()).pathname.split('/').pop()!;
    const forged = await postAs(page, `${base}/interaction/${uid}/passkey`, new URLSearchParams({ csrf: 'forged', credential: '{}' }));
    t.is(forged.status(), 403);
    t.regex(await forged.text(), /Your form expired/);
    // Bad input (no credential, or not JSON) is a clear refusal, not a 500.
    const garbage = await postAs(page, `${base}/interaction/${uid}/passkey`, new URLSearchParams({ csrf: await csrfOf(page), credential: 'not json' }));
    t.is(garbage.status(), 401);
    t.regex(await garbage.text(), /Your browser sent no passkey/);
  } finally {
    await page.close();
  }
});

test('the passkey pages run only scripts Gatehouse serves, under a strict CSP', async (t) => {
  const { gh, browser } = t.context;
  await createUserDirectly(gh, 'frances', 'allen-ptran-1981');
  const { page } = await pageWithAuthenticator(browser);
  const violations: string[] = [];
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) violations.push(m.text());
  });
  try {
    await signInToAccountPage(page, gh.config.issuer, 'frances', 'allen-ptran-1981');
    const accountAnswer = await page.request.get(`${gh.config.issuer}/account`);
    await startSignIn(t, page);
    const loginAnswer = await page.request.get(page.url());
    for (const [name, answer] of [
      ['account', accountAnswer],
      ['sign-in', loginAnswer],
    ] as const) {
      const csp = answer.headers()['content-security-policy'] ?? '';
      t.regex(csp, /script-src 'self'/, name);
      t.notRegex(csp, /unsafe-inline|unsafe-eval/, name);
      t.is(answer.headers()['x-frame-options'], 'DENY', name);
      const html = await answer.text();
      const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
      t.true(scripts.length >= 2, name);
      for (const [, attributes, body] of scripts) {
        t.regex(attributes!, /src="\/assets\/[\w.-]+\.js"/, name);
        t.is(body!.trim(), '', name);
      }
    }
    t.is(await page.locator('html').getAttribute('lang'), 'en');
    t.is(await page.locator('#username').getAttribute('autocomplete'), 'username webauthn');
    // The library ran (served by us, no CDN): the passkey form's script found it.
    t.true(await page.evaluate(() => typeof (window as unknown as { SimpleWebAuthnBrowser?: object }).SimpleWebAuthnBrowser === 'object'));
    for (const asset of ['/assets/simplewebauthn-browser.js', '/assets/passkeys.js']) {
      const answer = await page.request.get(`${gh.config.issuer}${asset}`);
      t.is(answer.status(), 200, asset);
      t.regex(answer.headers()['content-type']!, /javascript/, asset);
    }
    t.deepEqual(violations, []);
  } finally {
    await page.close();
  }
});

test('a challenge answers once, only for what it was issued to, and not after five minutes', async (t) => {
  let now = 1_800_000_000_000;
  const challenges = new PasskeyChallenges(t.context.gh.services.db, () => now);
  const first = await challenges.issue('sign-in', 'interaction-a');
  t.false(await challenges.consume('sign-in', 'interaction-b', first), 'another sign-in');
  t.false(await challenges.consume('register', 'interaction-a', first), 'another purpose');
  t.true(await challenges.consume('sign-in', 'interaction-a', first));
  t.false(await challenges.consume('sign-in', 'interaction-a', first), 'a second time');

  const late = await challenges.issue('sign-in', 'interaction-a');
  now += CHALLENGE_TTL_MS;
  t.false(await challenges.consume('sign-in', 'interaction-a', late), 'expired');
  // Stored hashed: the table does not hold the challenge itself.
  const rows = await t.context.gh.services.db('passkey_challenges').select('id');
  t.false(rows.some((r: { id: string }) => r.id === late || r.id === first));
});

test('what a passkey sign-in says in amr and acr: hwk or swk, and mfa only with user verification', (t) => {
  t.deepEqual(factorsOf({ backupEligible: false }, true), { amr: ['hwk', 'mfa'], acr: ACR_MFA });
  t.deepEqual(factorsOf({ backupEligible: true }, true), { amr: ['swk', 'mfa'], acr: ACR_MFA });
  t.deepEqual(factorsOf({ backupEligible: true }, false), { amr: ['swk'], acr: undefined });
  t.deepEqual(factorsOf({ backupEligible: false }, false), { amr: ['hwk'], acr: undefined });
});

test('on PostgreSQL, passkeys keep their key, counter and flags, and challenges are used once', async (t) => {
  const pg = await startTestGatehouse({ database: 'pg' });
  try {
    const sub = await createUserDirectly(pg, 'grace', 'cobol-compiler-1959');
    const store = new PasskeyStore(pg.services.db);
    const publicKey = new Uint8Array(randomBytes(77));
    await store.add({
      userId: sub,
      credentialId: 'cred-1',
      publicKey,
      counter: 7,
      transports: ['internal', 'hybrid'],
      backupEligible: true,
      backedUp: false,
      name: 'Phone',
    });
    const [stored] = await store.of(sub);
    t.like(stored, { credentialId: 'cred-1', counter: 7, transports: ['internal', 'hybrid'], backupEligible: true, backedUp: false, name: 'Phone' });
    t.deepEqual(stored!.publicKey, publicKey);
    t.true(await store.recordUse(stored!, 8, true));
    // A second use recorded from the same reading of the counter loses: one of two racing sign-ins.
    t.false(await store.recordUse(stored!, 8, true));
    t.like(await store.byCredentialId('cred-1'), { counter: 8, backedUp: true });
    t.true(await store.rename(sub, stored!.id, 'Old phone'));
    t.false(await store.remove('someone-else', stored!.id));
    t.true(await store.remove(sub, stored!.id));

    const challenges = new PasskeyChallenges(pg.services.db);
    const challenge = await challenges.issue('register', 'session-csrf');
    const both = await Promise.all([challenges.consume('register', 'session-csrf', challenge), challenges.consume('register', 'session-csrf', challenge)]);
    t.deepEqual(both.sort(), [false, true]);
  } finally {
    await pg.close();
  }
});
