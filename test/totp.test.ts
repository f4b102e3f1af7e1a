import anyTest, { type TestFn } from 'ava';
import * as OTPAuth from 'otpauth';
import type { TestGatehouse } from './support/gatehouse.ts';
import { decodeEntities, submitTampered } from './support/http.ts';
import {
  authorizationRequest,
  createClient,
  createUserDirectly,
  type oidc,
  REDIRECT_URI,
  redeem,
  relyingParty,
  startLoopbackGatehouse,
} from './support/relying-party.ts';
import { isConsentPage, signInToAccount, UserAgent, type Page } from './support/user-agent.ts';
import { testClock } from './support/clock.ts';
import { runCli } from './support/cli.ts';
import { adminApi } from './support/admin-api.ts';
import { chromiumAvailable, launchBrowser, screenshotForDocs } from './support/browser.ts';

const test = anyTest as TestFn<{ gh: TestGatehouse; rp: oidc.Configuration; base: string }>;
const clock = testClock();
const PASSWORD = 'correct horse battery';

test.before(async (t) => {
  const gh = await startLoopbackGatehouse();
  const client = await createClient(gh, ['--name', 'Team Wiki', '--type', 'confidential', '--grant', 'authorization_code', '--redirect-uri', REDIRECT_URI]);
  t.context = { gh, rp: await relyingParty(gh, client, 'basic'), base: gh.config.issuer };
});

test.after.always(async (t) => {
  await t.context.gh?.close();
});

/** The value of the read-only input `id` on a page. */
const inputValue = (page: Page, id: string) => decodeEntities(new RegExp(`id="${id}"[^>]*value="([^"]*)"`).exec(page.html)?.[1] ?? '');
/** The code an authenticator app shows now for `secret`, as a person reads it off their phone. */
const codeNow = (secret: string) => new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), digits: 6, period: 30 }).generate();
/** Moves the clock to the start of the next 30-second window: the app shows a new code. */
const nextWindow = () => clock.advanceTo((Math.floor(Date.now() / 30_000) + 1) * 30_000 + 1000);
const recoveryCodes = (page: Page) => [...page.html.matchAll(/<li><code>([a-z0-9-]+)<\/code><\/li>/g)].map((m) => m[1]!);

/** A person signs in to /account and sets up an authenticator app; returns the secret and recovery codes. */
async function enrol(t: { context: { base: string } }, username: string) {
  const agent = new UserAgent();
  const account = await signInToAccount(agent, t.context.base, username, PASSWORD);
  const setup = await agent.submit(account, /\/account\/totp\/setup$/, { current_password: PASSWORD });
  const secret = inputValue(setup, 'otpauth-secret');
  const shown = await agent.submit(setup, /\/account\/totp\/confirm$/, { code: codeNow(secret) });
  return { agent, setup, secret, shown, codes: recoveryCodes(shown) };
}

/** The person opens Team Wiki, types their password, and is asked for a code. */
async function passwordStep(t: { context: { rp: oidc.Configuration } }, agent: UserAgent, username: string) {
  const pending = await authorizationRequest(t.context.rp);
  const login = await agent.open(pending.url);
  const codePage = await agent.submit(login, /\/login$/, { username, password: PASSWORD });
  return { pending, codePage };
}

async function finishAtApp(t: { context: { rp: oidc.Configuration } }, agent: UserAgent, page: Page, pending: Parameters<typeof redeem>[2]) {
  const landed = isConsentPage(page) ? await agent.submit(page, /\/consent$/, { decision: 'allow' }) : page;
  return redeem(t.context.rp, landed, pending);
}

test.serial('a person sets up an authenticator app from the QR code and gets ten recovery codes, shown once', async (t) => {
  await createUserDirectly(t.context.gh, 'tess', PASSWORD);
  const { agent, setup, secret, shown, codes } = await enrol(t, 'tess');
  t.regex(setup.html, /<h1>Set up an authenticator app<\/h1>/);
  const uri = inputValue(setup, 'otpauth-uri');
  t.true(uri.startsWith('otpauth://totp/'), uri);
  t.is(new URL(uri).searchParams.get('secret'), secret);
  const img = /<img class="qr" src="data:image\/svg\+xml;base64,([^"]+)"/.exec(setup.html);
  t.truthy(img, 'a QR code drawn as SVG');
  t.regex(Buffer.from(img![1]!, 'base64').toString('utf8'), /^<svg /);
  t.regex(setup.html, /name="code" inputmode="numeric" autocomplete="one-time-code"/);
  for (const page of [setup, shown]) {
    t.regex(page.html, /<html lang="en">/);
    t.regex(page.headers.get('content-security-policy') ?? '', /default-src 'none'; script-src 'self'.*frame-ancestors 'none'/);
    t.is(page.headers.get('x-frame-options'), 'DENY');
    t.is(page.headers.get('cache-control'), 'no-store');
    t.false(/<script/.test(page.html), 'no script, inline or not');
  }
  t.regex(setup.html, /<title>Set up an authenticator app · Gatehouse<\/title>/);
  t.regex(setup.html, /<label for="code">/);
  t.is(shown.status, 200);
  t.is(codes.length, 10);
  t.is(new Set(codes).size, 10);
  // Back on the account page: on, ten codes left, and they are not shown again.
  const account = await agent.open(`${t.context.base}/account`);
  t.regex(account.html, /Recovery codes left: <strong>10<\/strong>/);
  for (const c of codes) t.false(account.html.includes(c));
  // Stored sealed and hashed: neither the secret nor a code is in the database as typed.
  const row = await t.context.gh.services.db('user_totp').first();
  t.false(JSON.stringify(row).includes(secret));
  const hashes = JSON.stringify(await t.context.gh.services.db('user_recovery_codes').select());
  for (const c of codes) t.false(hashes.includes(c));
});

test.serial('signing in to an app asks for a code after the password; the ID token says amr pwd+otp+mfa and the mfa acr', async (t) => {
  await createUserDirectly(t.context.gh, 'uma', PASSWORD);
  const { secret } = await enrol(t, 'uma');
  nextWindow();
  const agent = new UserAgent([REDIRECT_URI]);
  const { pending, codePage } = await passwordStep(t, agent, 'uma');
  t.regex(codePage.html, /<h1>Enter your code<\/h1>/);
  t.regex(codePage.html, /<label for="code">/);
  t.regex(codePage.html, /autocomplete="one-time-code"/);
  t.regex(codePage.headers.get('content-security-policy') ?? '', /default-src 'none'; script-src 'self'.*frame-ancestors 'none'/);
  t.is(codePage.headers.get('x-frame-options'), 'DENY');
  const after = await agent.submit(codePage, /\/code$/, { code: codeNow(secret) });
  const tokens = await finishAtApp(t, agent, after, pending);
  const claims = tokens.claims()!;
  t.deepEqual(claims.amr, ['pwd', 'otp', 'mfa']);
  t.is(claims.acr, 'urn:gatehouse:acr:mfa');
});

test.serial('without an authenticator the ID token says amr pwd and the password acr; discovery lists both acr values', async (t) => {
  await createUserDirectly(t.context.gh, 'vic', PASSWORD);
  const agent = new UserAgent([REDIRECT_URI]);
  const { pending, codePage } = await passwordStep(t, agent, 'vic');
  const claims = (await finishAtApp(t, agent, codePage, pending)).claims()!;
  t.deepEqual(claims.amr, ['pwd']);
  t.is(claims.acr, 'urn:gatehouse:acr:pwd');
  const discovery = (await (await fetch(`${t.context.base}/.well-known/openid-configuration`)).json()) as { acr_values_supported?: string[] };
  t.deepEqual(discovery.acr_values_supported, ['urn:gatehouse:acr:pwd', 'urn:gatehouse:acr:mfa']);
});

test.serial('a code used once is refused the second time in its window, and the next window’s code works', async (t) => {
  await createUserDirectly(t.context.gh, 'wes', PASSWORD);
  const { secret } = await enrol(t, 'wes');
  nextWindow();
  const code = codeNow(secret);
  const first = new UserAgent([REDIRECT_URI]);
  const one = await passwordStep(t, first, 'wes');
  await finishAtApp(t, first, await first.submit(one.codePage, /\/code$/, { code }), one.pending);

  const second = new UserAgent([REDIRECT_URI]);
  const two = await passwordStep(t, second, 'wes');
  const replayed = await second.submit(two.codePage, /\/code$/, { code });
  t.is(replayed.status, 401, replayed.html.match(/role="alert">([^<]*)/)?.[1]);
  t.regex(replayed.html, /That code was used already/);
  nextWindow();
  const fresh = await second.submit(replayed, /\/code$/, { code: codeNow(secret) });
  const claims = (await finishAtApp(t, second, fresh, two.pending)).claims()!;
  t.deepEqual(claims.amr, ['pwd', 'otp', 'mfa']);
});

test.serial('the same code submitted twice at once signs in once', async (t) => {
  await createUserDirectly(t.context.gh, 'xan', PASSWORD);
  const { secret } = await enrol(t, 'xan');
  nextWindow();
  const agents = [new UserAgent([REDIRECT_URI]), new UserAgent([REDIRECT_URI])];
  const steps = await Promise.all(agents.map((a) => passwordStep(t, a, 'xan')));
  const code = codeNow(secret);
  const answers = await Promise.all(agents.map((a, i) => a.submit(steps[i]!.codePage, /\/code$/, { code })));
  const signedIn = answers.filter((p) => p.url.startsWith(REDIRECT_URI) || isConsentPage(p));
  t.is(signedIn.length, 1, answers.map((p) => `${p.status} ${p.url}`).join(', '));
  t.is(answers.filter((p) => p.status === 401).length, 1);
});

test.serial('wrong codes are throttled like passwords: after five from one address, even the right code is refused', async (t) => {
  await createUserDirectly(t.context.gh, 'yan', PASSWORD);
  const { secret } = await enrol(t, 'yan');
  nextWindow();
  const agent = new UserAgent([REDIRECT_URI]);
  let { codePage: page } = await passwordStep(t, agent, 'yan');
  const wrong = codeNow(secret) === '000000' ? '111111' : '000000';
  for (let i = 0; i < 5; i++) {
    page = await agent.submit(page, /\/code$/, { code: wrong });
    t.is(page.status, 401);
    t.regex(page.html, /The code is not correct/);
  }
  const locked = await agent.submit(page, /\/code$/, { code: codeNow(secret) });
  t.is(locked.status, 429);
  t.regex(locked.html, /Too many wrong codes/);
  t.truthy(locked.headers.get('retry-after'));
});

test.serial('each recovery code signs in once, in place of a code', async (t) => {
  await createUserDirectly(t.context.gh, 'zoe', PASSWORD);
  const { codes, agent: accountBrowser } = await enrol(t, 'zoe');
  const first = new UserAgent([REDIRECT_URI]);
  const one = await passwordStep(t, first, 'zoe');
  const claims = (await finishAtApp(t, first, await first.submit(one.codePage, /\/code$/, { code: codes[0]!.toUpperCase() }), one.pending)).claims()!;
  t.deepEqual(claims.amr, ['pwd', 'otp', 'mfa']);
  const second = new UserAgent([REDIRECT_URI]);
  const two = await passwordStep(t, second, 'zoe');
  const again = await second.submit(two.codePage, /\/code$/, { code: codes[0]! });
  t.is(again.status, 401);
  const account = await accountBrowser.open(`${t.context.base}/account`);
  t.regex(account.html, /Recovery codes left: <strong>9<\/strong>/);
  // Their history says so (recentOf waits for events still being written), with no code in it.
  const history = account;
  t.regex(history.html, /Authenticator or recovery code accepted/);
  t.regex(history.html, /Wrong authenticator code typed/);
  t.false(history.html.includes(codes[0]!));
});

test.serial('the code form refuses a forged post, an empty or huge code, and a code without the password step', async (t) => {
  await createUserDirectly(t.context.gh, 'abe', PASSWORD);
  const { secret } = await enrol(t, 'abe');
  nextWindow();
  const agent = new UserAgent([REDIRECT_URI]);
  const { codePage } = await passwordStep(t, agent, 'abe');
  const forged = await submitTampered(agent, codePage, /\/code$/, { csrf: 'forged', code: codeNow(secret) });
  t.is(forged.status, 403);
  const empty = await agent.submit(codePage, /\/code$/, { code: '' });
  t.is(empty.status, 400);
  t.regex(empty.html, /Enter the code/);
  const huge = await agent.submit(codePage, /\/code$/, { code: '9'.repeat(10_000) });
  t.is(huge.status, 400);
  // Another browser with the same interaction page but no password step.
  const stranger = new UserAgent([REDIRECT_URI]);
  for (const [k, v] of agent.cookieEntries()) if (!k.startsWith('gh_pwd_ok')) stranger.setCookie(k, v);
  const skipped = await stranger.submit(codePage, /\/code$/, { code: codeNow(secret) });
  t.is(skipped.status, 400);
  t.regex(skipped.html, /sign in with your password first/);
});

test.serial('setup refuses a wrong first code, a forged form and bad input, and changes nothing', async (t) => {
  await createUserDirectly(t.context.gh, 'bea', PASSWORD);
  const agent = new UserAgent();
  const account = await signInToAccount(agent, t.context.base, 'bea', PASSWORD);
  const setup = await agent.submit(account, /\/account\/totp\/setup$/, { current_password: PASSWORD });
  const secret = inputValue(setup, 'otpauth-secret');
  const right = codeNow(secret);
  const wrong = await agent.submit(setup, /\/account\/totp\/confirm$/, { code: right === '123456' ? '654321' : '123456' });
  t.is(wrong.status, 400);
  t.regex(wrong.html, /not the one your app shows/);
  const letters = await agent.submit(setup, /\/account\/totp\/confirm$/, { code: 'abcdef' });
  t.is(letters.status, 400);
  const forged = await submitTampered(agent, setup, /\/account\/totp\/confirm$/, { csrf: 'forged', code: right });
  t.is(forged.status, 403);
  t.false(await t.context.gh.services.totp.isEnrolled((await t.context.gh.services.accounts.resolve('bea')).id));
});

test.serial('removing the authenticator asks for the current password again', async (t) => {
  await createUserDirectly(t.context.gh, 'cal', PASSWORD);
  const { agent } = await enrol(t, 'cal');
  const account = await agent.open(`${t.context.base}/account`);
  const wrong = await agent.submit(account, /\/account\/totp\/remove$/, { current_password: 'not it at all' });
  t.is(wrong.status, 401);
  t.regex(wrong.html, /current password is not correct/);
  const forged = await submitTampered(agent, account, /\/account\/totp\/remove$/, { csrf: 'forged', current_password: PASSWORD });
  t.is(forged.status, 403);
  const removed = await agent.submit(account, /\/account\/totp\/remove$/, { current_password: PASSWORD });
  t.is(removed.status, 200);
  t.regex(removed.html, /Your authenticator app is removed/);
  t.regex(removed.html, /Set up an authenticator app/);
});

test.serial('setting up an authenticator app asks for the current password first, and a wrong or missing one starts nothing', async (t) => {
  await createUserDirectly(t.context.gh, 'cyd', PASSWORD);
  const agent = new UserAgent();
  const account = await signInToAccount(agent, t.context.base, 'cyd', PASSWORD);
  t.regex(account.html, /<label for="totp_setup_password">Your password, to set up an app<\/label>/);
  const missing = await agent.submit(account, /\/account\/totp\/setup$/, { current_password: '' });
  t.is(missing.status, 400);
  t.regex(missing.html, /Enter your current password to set up an authenticator app/);
  const wrong = await agent.submit(account, /\/account\/totp\/setup$/, { current_password: 'not it at all' });
  t.is(wrong.status, 401);
  t.regex(wrong.html, /current password is not correct. Nothing was changed/);
  const forged = await submitTampered(agent, account, /\/account\/totp\/setup$/, { csrf: 'forged', current_password: PASSWORD });
  t.is(forged.status, 403);
  const id = (await t.context.gh.services.accounts.resolve('cyd')).id;
  t.is(await t.context.gh.services.db('user_totp').where({ user_id: id }).first(), undefined, 'no secret was made');
  const setup = await agent.submit(account, /\/account\/totp\/setup$/, { current_password: PASSWORD });
  t.regex(setup.html, /<h1>Set up an authenticator app<\/h1>/);
});

test.serial('signing in to /account asks for the code too', async (t) => {
  await createUserDirectly(t.context.gh, 'dee', PASSWORD);
  const { secret } = await enrol(t, 'dee');
  nextWindow();
  const agent = new UserAgent();
  const codePage = await signInToAccount(agent, t.context.base, 'dee', PASSWORD);
  t.regex(codePage.html, /<h1>Enter your code<\/h1>/);
  t.regex(codePage.html, /<label for="code">/);
  t.regex(codePage.html, /autocomplete="one-time-code"/);
  t.regex(codePage.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
  t.is(codePage.headers.get('x-frame-options'), 'DENY');
  t.is((await agent.open(`${t.context.base}/account`)).url, `${t.context.base}/account/login`);
  const forged = await submitTampered(agent, codePage, /\/account\/login\/code$/, { csrf: 'forged', code: codeNow(secret) });
  t.is(forged.status, 403);
  const account = await agent.submit(codePage, /\/account\/login\/code$/, { code: codeNow(secret) });
  t.is(account.url, `${t.context.base}/account?notice=signed-in`);
  t.regex(account.html, /Your account/);
});

/** The person's authenticator, as the database says (for operator tests: what the reset did). */
const enrolled = async (t: { context: { gh: TestGatehouse } }, username: string) =>
  t.context.gh.services.totp.isEnrolled((await t.context.gh.services.accounts.resolve(username)).id);

test.serial('an operator resets a person’s authenticator with `users mfa reset`; the password alone signs in again', async (t) => {
  await createUserDirectly(t.context.gh, 'eli', PASSWORD);
  await enrol(t, 'eli');
  const usage = await runCli(['users', 'mfa', 'reset'], t.context.gh.env);
  t.not(usage.code, 0);
  t.regex(usage.stderr, /missing user id or username/);
  const res = await runCli(['users', 'mfa', 'reset', 'eli', '--json'], t.context.gh.env);
  t.is(res.code, 0, res.stderr);
  t.is(res.json().authenticator_removed, true);
  t.false(await enrolled(t, 'eli'));
  const agent = new UserAgent([REDIRECT_URI]);
  const { pending, codePage } = await passwordStep(t, agent, 'eli');
  t.deepEqual((await finishAtApp(t, agent, codePage, pending)).claims()!.amr, ['pwd']);
  const audit = await t.context.gh.services.db('audit_log').where({ action: 'user.mfa_reset' }).select();
  t.true(audit.length >= 1);
});

test.serial('an operator resets it with POST /admin/api/users/{id}/mfa/reset', async (t) => {
  const id = await createUserDirectly(t.context.gh, 'fay', PASSWORD);
  await enrol(t, 'fay');
  const token = (await runCli(['admin-tokens', 'create', '--name', 'totp-test', '--json'], t.context.gh.env)).json().token as string;
  const api = adminApi(t.context.gh, token);
  const res = await api('POST', `/users/${id}/mfa/reset`);
  t.is(res.status, 200, res.text);
  t.is(res.body.authenticator_removed, true);
  t.false(await enrolled(t, 'fay'));
  t.is((await api('POST', `/users/${id}/mfa/reset`)).body.authenticator_removed, false);
  t.is((await api('POST', '/users/nobody-here/mfa/reset')).status, 404);
});

test.serial('in Chromium, a person sets up an authenticator app on /account, and an operator resets it from the admin page', async (t) => {
  if (!chromiumAvailable()) throw new Error('Debian chromium is required for the browser tests (apt-get install -y chromium)');
  await createUserDirectly(t.context.gh, 'gus', PASSWORD);
  await runCli(['users', 'create', '--username', 'opal', '--email', 'opal@example.com', '--admin', '--password-stdin'], t.context.gh.env, `${PASSWORD}\n`);
  const browser = await launchBrowser();
  try {
    const page = await (await browser.newContext()).newPage();
    const blocked: string[] = [];
    page.on('console', (m) => /Content Security Policy/.test(m.text()) && blocked.push(m.text()));
    await page.goto(`${t.context.base}/account/login`);
    await page.getByLabel('Username').fill('gus');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#totp_setup_password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Set up an authenticator app' }).click();
    await page.waitForURL(`${t.context.base}/account/totp`);
    const qrShown = await page.locator('img.qr').evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth > 0);
    t.true(qrShown, 'the QR code renders under the strict CSP');
    await screenshotForDocs(page, 'totp-setup');
    const secret = await page.getByLabel('Key, to type in by hand').inputValue();
    await page.getByLabel('Code from your app').fill(codeNow(secret));
    await page.getByRole('button', { name: 'Turn on' }).click();
    await page.getByRole('heading', { name: 'Your recovery codes' }).waitFor();
    t.is(await page.locator('.recovery-codes li').count(), 10);
    t.deepEqual(blocked, []);

    const operator = await (await browser.newContext()).newPage();
    await operator.goto(`${t.context.base}/admin/login`);
    await operator.fill('input[name="username"]', 'opal');
    await operator.fill('input[name="password"]', PASSWORD);
    await operator.click('button[type="submit"]');
    await operator.waitForURL(`${t.context.base}/admin/clients`);
    const id = (await t.context.gh.services.accounts.resolve('gus')).id;
    await operator.goto(`${t.context.base}/admin/users/${encodeURIComponent(id)}`);
    await operator.getByRole('button', { name: 'Reset two-factor sign-in' }).click();
    await operator.getByText('authenticator app and recovery codes are removed').waitFor();
    t.false(await enrolled(t, 'gus'));
  } finally {
    await browser.close();
  }
});

test.serial('on PostgreSQL too, one code raced five times at once is accepted once', async (t) => {
  const gh = await startLoopbackGatehouse({ database: 'pg' });
  try {
    const { totp, accounts } = gh.services;
    const user = await accounts.create({ username: 'hal', email: 'hal@example.com', password: PASSWORD });
    const setup = await totp.begin(user.id, 'hal');
    t.truthy(await totp.confirm(user.id, codeNow(setup!.secret)));
    nextWindow();
    const code = codeNow(setup!.secret);
    const checks = await Promise.all(Array.from({ length: 5 }, () => totp.verify(user.id, code)));
    t.is(checks.filter((c) => c.ok).length, 1, JSON.stringify(checks));
    t.true(checks.filter((c) => !c.ok).every((c) => !c.ok && c.reason === 'replayed'));
  } finally {
    await gh.close();
  }
});

test.serial('an operator with an authenticator app is asked for a code when signing in to /admin', async (t) => {
  await runCli(['users', 'create', '--username', 'ivy', '--email', 'ivy@example.com', '--admin', '--password-stdin'], t.context.gh.env, `${PASSWORD}\n`);
  const { secret } = await enrol(t, 'ivy');
  nextWindow();
  const agent = new UserAgent();
  const login = await agent.open(`${t.context.base}/admin/login`);
  const codePage = await agent.submit(login, /\/admin\/login$/, { username: 'ivy', password: PASSWORD });
  t.regex(codePage.html, /<h1>Enter your code<\/h1>/);
  t.regex(codePage.html, /autocomplete="one-time-code"/);
  t.is((await agent.open(`${t.context.base}/admin/clients`)).url, `${t.context.base}/admin/login`, 'no admin session before the code');
  const forged = await submitTampered(agent, codePage, /\/admin\/login\/code$/, { csrf: 'forged', code: codeNow(secret) });
  t.is(forged.status, 403);
  const wrong = await agent.submit(codePage, /\/admin\/login\/code$/, { code: codeNow(secret) === '000000' ? '111111' : '000000' });
  t.is(wrong.status, 401);
  const admin = await agent.submit(codePage, /\/admin\/login\/code$/, { code: codeNow(secret) });
  t.is(admin.url, `${t.context.base}/admin/clients`);
});
