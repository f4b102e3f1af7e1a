import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import type { Browser } from 'playwright-core';
import { chromiumAvailable, launchBrowser, screenshotForDocs } from './support/browser.ts';
import { testClock } from './support/clock.ts';
import { runCli } from './support/cli.ts';
import { adminApi } from './support/admin-api.ts';
import { operatorAgent } from './support/attacks.ts';
import type { TestGatehouse } from './support/gatehouse.ts';
import { FORM_CONTENT_TYPE, findForm } from './support/http.ts';
import { linkIn, startTestSmtp, type TestSmtp } from './support/smtp.ts';
import {
  authorizationRequest,
  createClient,
  createUserDirectly,
  REDIRECT_URI,
  redeem,
  relyingParty,
  startLoopbackGatehouse,
  type oidc,
} from './support/relying-party.ts';
import { isLoginPage, signInAllowingConsent, UserAgent, type Page } from './support/user-agent.ts';

/**
 * A person who forgot their password asks for a link on the sign-in page, gets it by mail from
 * a real SMTP server the test runs, and chooses a new password; an operator can hand a link
 * over instead (CLI, admin API, admin page). Every bad request changes nothing and says why.
 */

const clock = testClock();
const test = anyTest as TestFn<{ gh: TestGatehouse; smtp: TestSmtp; logs: string[]; rp: oidc.Configuration; browser: Browser; adminToken: string }>;
const OPERATOR = { username: 'ops', password: 'operator-passphrase-1' };

test.before(async (t) => {
  if (!chromiumAvailable()) throw new Error('Debian chromium is required for the browser tests (apt-get install -y chromium)');
  const smtp = await startTestSmtp();
  const logs: string[] = [];
  const gh = await startLoopbackGatehouse({
    // One trusted proxy: a test can come from another address (X-Forwarded-For) to show the per-address limit.
    env: { GATEHOUSE_SMTP_URL: smtp.url, GATEHOUSE_MAIL_FROM: 'Gatehouse <no-reply@example.com>', GATEHOUSE_LOG_LEVEL: 'info', GATEHOUSE_TRUST_PROXY: '1' },
    logDestination: { write: (line: string) => void logs.push(line) },
  });
  const app = await createClient(gh, ['--name', 'Team Wiki', '--type', 'confidential', '--grant', 'authorization_code', '--redirect-uri', REDIRECT_URI]);
  await gh.services.accounts.create({ username: OPERATOR.username, email: 'ops@example.com', password: OPERATOR.password, isAdmin: true });
  const token = await runCli(['admin-tokens', 'create', '--name', 'ci', '--json'], gh.env);
  t.context = { gh, smtp, logs, rp: await relyingParty(gh, app, 'basic'), browser: await launchBrowser(), adminToken: token.json().token };
});

test.after.always(async (t) => {
  await t.context.browser?.close();
  await t.context.gh?.close();
  await t.context.smtp?.close();
});

let people = 0;
/** A person of the test's own, with a password and an address nobody else has. */
async function person(gh: TestGatehouse, password = 'the-old-passphrase-1') {
  const username = `reader${++people}`;
  const id = await createUserDirectly(gh, username, password);
  return { id, username, email: `${username}@example.com`, password };
}

/** Whether `password` signs `username` in to the app now (a fresh browser). */
async function signsIn(t: ExecutionContext<{ gh: TestGatehouse; rp: oidc.Configuration }>, username: string, password: string): Promise<boolean> {
  const { landed } = await signInAllowingConsent(new UserAgent([REDIRECT_URI]), (await authorizationRequest(t.context.rp)).url, username, password);
  return landed.url.startsWith(REDIRECT_URI);
}

/** Asks for a reset link for `email` on the "Forgot your password?" page, as a browser does. */
async function askForLink(gh: TestGatehouse, email: string, headers: Record<string, string> = {}, agent = new UserAgent()): Promise<Page> {
  const form = await agent.open(`${gh.url}/password-reset`, { headers });
  const fields = findForm(form, { action: /\/password-reset$/ }).fields;
  fields.set('email', email);
  return agent.open(`${gh.url}/password-reset`, { method: 'POST', headers: { ...FORM_CONTENT_TYPE, ...headers }, body: fields });
}

/**
 * A reset link from the admin API, served by this process: after the test clock moved, a CLI
 * process (on the real clock) would issue links this server already sees as expired.
 */
async function handedOverLink(t: ExecutionContext<{ gh: TestGatehouse; adminToken: string }>, userId: string): Promise<string> {
  const res = await adminApi(t.context.gh, t.context.adminToken)('POST', `/users/${userId}/reset-link`);
  if (res.status !== 200) throw new Error(`reset-link: ${res.status} ${res.text}`);
  return res.body.url;
}

/** Posts the reset form on `page` (from a reset link) with both fields. */
const submitReset = (agent: UserAgent, page: Page, password: string, confirm = password) =>
  agent.submit(page, /\/password-reset\/[\w-]+$/, { password, password_confirm: confirm });

/** The page checks every page of Gatehouse passes: language, title, labelled inputs, no framing, strict CSP, no inline script. */
function assertAccessiblePage(t: ExecutionContext, what: string, page: Page) {
  t.regex(page.html, /<html lang="en">/, `${what}: lang`);
  t.regex(page.html, /<title>[^<]+ · Gatehouse<\/title>/, `${what}: title`);
  for (const [, attrs] of page.html.matchAll(/<input\b([^>]*)>/g)) {
    if (/type="hidden"/.test(attrs!)) continue;
    const id = /\bid="([^"]+)"/.exec(attrs!)?.[1];
    t.truthy(id && page.html.includes(`<label for="${id}">`), `${what}: an input without a label: ${attrs}`);
  }
  t.is(page.headers.get('x-frame-options'), 'DENY', `${what}: X-Frame-Options`);
  const csp = page.headers.get('content-security-policy') ?? '';
  t.regex(csp, /frame-ancestors 'none'/, `${what}: frame-ancestors`);
  t.regex(csp, /script-src 'self'(;|$)/, `${what}: strict script-src`);
  t.notRegex(page.html, /<script\b(?![^>]*\bsrc=)/, `${what}: inline script`);
  t.notRegex(page.html, /\sstyle="|<[a-z][^>]*\son[a-z]+=/i, `${what}: inline style or handler`);
  t.is(page.headers.get('cache-control'), 'no-store', `${what}: cache-control`);
}

test.serial('a person who forgot their password follows the mailed link in a real browser, and only the new password signs them in', async (t) => {
  const { gh, smtp, browser, rp } = t.context;
  const p = await person(gh);
  const pending = await authorizationRequest(rp);
  const page = await browser.newPage();
  try {
    await page.goto(pending.url);
    await page.click('text=Forgot your password?');
    t.is(await page.locator('h1').textContent(), 'Forgot your password?');
    await page.fill('input[name="email"]', p.email);
    await page.click('button[type="submit"]');
    await page.waitForSelector('[role="status"]');
    t.regex((await page.textContent('main'))!, /If an account has the address/);

    const mail = await smtp.next(p.email);
    t.is(mail.subject, 'Reset your password');
    t.regex(mail.raw, /^From: Gatehouse <no-reply@example\.com>/m);
    const link = linkIn(mail, `${gh.config.issuer}/password-reset/`);
    t.true(mail.html.includes(`href="${link}"`), 'the HTML part links to the same page');
    t.regex(mail.text, /within 30 minutes/);
    t.false(mail.raw.includes(p.password), 'the mail holds no password');

    await page.goto(link);
    t.is(await page.locator('h1').textContent(), 'Choose a new password');
    t.is(await page.getAttribute('input[name="password"]', 'autocomplete'), 'new-password');
    t.is(await page.getAttribute('input[name="password_confirm"]', 'autocomplete'), 'new-password');
    await page.fill('input[name="password"]', 'a-new-passphrase-2');
    await page.fill('input[name="password_confirm"]', 'a-new-passphrase-2');
    await screenshotForDocs(page, 'password-reset');
    await page.click('button[type="submit"]');
    await page.waitForSelector('text=Your password is changed');
  } finally {
    await page.close();
  }
  t.false(await signsIn(t, p.username, p.password), 'the old password is refused');
  t.true(await signsIn(t, p.username, 'a-new-passphrase-2'), 'the new one signs in');
  const stored = await gh.services.db('account_links').where({ user_id: p.id }).first();
  t.regex(stored.token_hash, /^[0-9a-f]{64}$/, 'the link is stored as its SHA-256, never as itself');
});

test.serial('an operator hands over a reset link from the CLI, the admin API or the admin page, and each is audited', async (t) => {
  const { gh, smtp, adminToken } = t.context;
  const p = await person(gh);
  const cli = await runCli(['users', 'reset-link', '--username', p.username, '--json'], gh.env);
  t.is(cli.code, 0, cli.stderr);
  t.regex(cli.json().url, new RegExp(`^${gh.config.issuer}/password-reset/[\\w-]{43}$`));

  const api = await adminApi(gh, adminToken)('POST', `/users/${p.id}/reset-link`);
  t.is(api.status, 200, api.text);
  t.regex(api.body.url, /\/password-reset\/[\w-]{43}$/);
  t.is((await new UserAgent().open(cli.json().url)).status, 410, 'a newer link replaces the older one');

  const { agent } = await operatorAgent(gh, OPERATOR.username, OPERATOR.password);
  const userPage = await agent.open(`${gh.url}/admin/users/${p.id}`);
  const shown = await agent.submit(userPage, new RegExp(`/admin/users/${p.id}/reset-link$`), {});
  t.is(shown.status, 200);
  const url = /id="reset-link-url"[^>]*value="([^"]+)"/.exec(shown.html)?.[1];
  t.truthy(url, 'the page shows the link');
  t.is((await new UserAgent().open(url!)).status, 200);

  const sent = await runCli(['users', 'reset-link', '--username', p.username, '--send', '--json'], gh.env);
  t.is(sent.code, 0, sent.stderr);
  t.true(sent.json().sent);
  t.regex(linkIn(await smtp.next(p.email), `${gh.config.issuer}/password-reset/`), /[\w-]{43}$/);

  const audited = await gh.services
    .db('audit_log')
    .where({ action: 'user.reset_link', target: `user:${p.id}` })
    .select('actor', 'details');
  t.is(audited.length, 4);
  t.deepEqual(
    audited.map((a) => a.actor.split(':')[0]).sort(),
    ['admin-token', 'cli', 'cli', audited.find((a) => a.actor.includes(OPERATOR.username))?.actor.split(':')[0]].sort(),
  );
  t.false(JSON.stringify(audited).includes('password-reset/'), 'the audit log holds no link');
});

test.serial('an address with no account gets the same page, and no mail goes anywhere', async (t) => {
  const { gh, smtp } = t.context;
  const p = await person(gh);
  const started = [performance.now()];
  const known = await askForLink(gh, p.email);
  started.push(performance.now());
  const unknown = await askForLink(gh, 'nobody-here@example.com');
  started.push(performance.now());
  t.log(
    `answered in ${(started[1]! - started[0]!).toFixed(0)} ms (account) and ${(started[2]! - started[1]!).toFixed(0)} ms (none), each including the GET of the form`,
  );
  t.is(known.status, 200);
  t.is(unknown.status, 200);
  const strip = (page: Page, email: string) => page.html.replaceAll(email, 'EMAIL').replace(/name="csrf" value="[^"]*"/g, '');
  t.is(strip(unknown, 'nobody-here@example.com'), strip(known, p.email));
  await gh.services.outbox!.idle();
  t.is(smtp.countTo(p.email), 1);
  t.is(smtp.countTo('nobody-here@example.com'), 0);
  assertAccessiblePage(t, 'the "Forgot your password?" answer', known);
  assertAccessiblePage(t, 'the "Forgot your password?" form', await new UserAgent().open(`${gh.url}/password-reset`));
});

test.serial('a link followed after 30 minutes, or a second time, gets a clear page and changes nothing', async (t) => {
  const { gh, smtp } = t.context;
  const p = await person(gh);
  await askForLink(gh, p.email);
  const link = linkIn(await smtp.next(p.email), `${gh.config.issuer}/password-reset/`);
  const agent = new UserAgent();
  const form = await agent.open(link);
  assertAccessiblePage(t, 'the reset page', form);

  clock.advance(31 * 60_000);
  const expired = await submitReset(agent, form, 'too-late-passphrase');
  t.is(expired.status, 410);
  t.regex(expired.html, /This link no longer works/);
  t.is((await agent.open(link)).status, 410);
  t.true(await signsIn(t, p.username, p.password), 'the password did not change');

  // A fresh link works once.
  await askForLink(gh, p.email);
  const fresh = linkIn(await smtp.next(p.email), `${gh.config.issuer}/password-reset/`);
  const page = await agent.open(fresh);
  t.is((await submitReset(agent, page, 'the-second-passphrase')).status, 200);
  const again = await submitReset(agent, page, 'a-third-passphrase-3');
  t.is(again.status, 410);
  t.regex(again.html, /works once/);
  assertAccessiblePage(t, 'the expired link page', again);
  t.true(await signsIn(t, p.username, 'the-second-passphrase'), 'the reused link changed nothing');
  t.is((await agent.open(`${gh.url}/password-reset/not-a-real-token`)).status, 410);
});

test.serial('a forged form, two different passwords or a too short one are refused with a clear message, and the link still works', async (t) => {
  const { gh } = t.context;
  const p = await person(gh);
  const url = await handedOverLink(t, p.id);
  const agent = new UserAgent();
  const page = await agent.open(url);

  const forged = await agent.open(url, {
    method: 'POST',
    headers: FORM_CONTENT_TYPE,
    body: new URLSearchParams({ password: 'forged-passphrase-1', password_confirm: 'forged-passphrase-1' }),
  });
  t.is(forged.status, 403);
  t.regex(forged.html, /Your form expired/);
  const otherBrowser = new UserAgent();
  const crossSite = await otherBrowser.open(url, { method: 'POST', headers: FORM_CONTENT_TYPE, body: findForm(page, { action: /password-reset/ }).fields });
  t.is(crossSite.status, 403, "another browser's post with this page's token is refused (no cookie)");

  const mismatch = await submitReset(agent, page, 'one-passphrase-here', 'another-passphrase');
  t.is(mismatch.status, 400);
  t.regex(mismatch.html, /The two passwords are not the same/);
  assertAccessiblePage(t, 'the reset page with an error', mismatch);
  const short = await submitReset(agent, page, 'short');
  t.is(short.status, 400);
  t.regex(short.html, /at least 8 characters/);
  t.true(await signsIn(t, p.username, p.password), 'nothing changed');

  t.is((await submitReset(agent, page, 'finally-a-good-one')).status, 200);
  t.true(await signsIn(t, p.username, 'finally-a-good-one'));
});

test.serial('asking again and again is throttled per address asked for and per address asking from', async (t) => {
  const { gh, smtp } = t.context;
  const p = await person(gh);
  for (let i = 0; i < 3; i++) t.is((await askForLink(gh, p.email)).status, 200);
  const fourth = await askForLink(gh, p.email);
  t.is(fourth.status, 429);
  t.regex(fourth.html, /Too many reset requests\. Try again in \d+ minutes?\./);
  t.truthy(fourth.headers.get('retry-after'));
  await gh.services.outbox!.idle();
  t.is(smtp.countTo(p.email), 3, 'no fourth mail');

  // One address asking for many: refused after 20, whoever they are.
  const from = { 'x-forwarded-for': '203.0.113.9' };
  for (let i = 0; i < 20; i++) t.is((await askForLink(gh, `someone${i}@example.net`, from)).status, 200);
  t.is((await askForLink(gh, 'one-more@example.net', from)).status, 429);
  t.is((await askForLink(gh, 'one-more@example.net', { 'x-forwarded-for': '203.0.113.10' })).status, 200, 'another address is not held back');

  // Half an hour later the mailbox can ask again.
  clock.advance(31 * 60_000);
  t.is((await askForLink(gh, p.email)).status, 200);
});

test.serial('a reset signs the person out of the sessions they had', async (t) => {
  const { gh, rp } = t.context;
  const p = await person(gh);
  const signedIn = new UserAgent([REDIRECT_URI]);
  const pending = await authorizationRequest(rp);
  const { landed } = await signInAllowingConsent(signedIn, pending.url, p.username, p.password);
  await redeem(rp, landed, pending);
  const before = await signedIn.open((await authorizationRequest(rp)).url);
  t.true(before.url.startsWith(REDIRECT_URI), 'signed in: no login page');

  const url = await handedOverLink(t, p.id);
  const agent = new UserAgent();
  t.is((await submitReset(agent, await agent.open(url), 'after-the-reset-1')).status, 200);
  t.true(isLoginPage(await signedIn.open((await authorizationRequest(rp)).url)), 'the old session asks to sign in again');
});

test.serial('the SMTP password and the links never reach the log, nor an error', async (t) => {
  const { gh, smtp, logs } = t.context;
  const p = await person(gh);
  await askForLink(gh, p.email);
  const link = linkIn(await smtp.next(p.email), `${gh.config.issuer}/password-reset/`);
  await new UserAgent().open(link);

  // A mail server that refuses: the failure is logged, without the password.
  const broken = await startLoopbackGatehouse({
    env: {
      GATEHOUSE_SMTP_URL: smtp.url.replace(encodeURIComponent(smtp.password), encodeURIComponent(`${smtp.password}-wrong`)),
      GATEHOUSE_MAIL_FROM: 'no-reply@example.com',
      GATEHOUSE_LOG_LEVEL: 'info',
    },
    logDestination: { write: (line: string) => void logs.push(line) },
  });
  try {
    await broken.services.accounts.create({ username: 'unlucky', email: 'unlucky@example.com', password: 'unlucky-passphrase' });
    await askForLink(broken, 'unlucky@example.com');
    await broken.services.outbox!.idle();
    t.true(
      logs.some((l) => l.includes('a mail could not be sent')),
      'the failure is logged',
    );
    const cli = await runCli(['users', 'reset-link', '--username', 'unlucky', '--send', '--json'], broken.env);
    t.is(cli.code, 1);
    t.regex(cli.stdout + cli.stderr, /sending mail failed/);
    for (const secret of [smtp.password, encodeURIComponent(smtp.password)]) t.false((cli.stdout + cli.stderr).includes(secret), 'not in the CLI error');
  } finally {
    await broken.close();
  }
  const all = logs.join('');
  for (const secret of [smtp.password, encodeURIComponent(smtp.password), link.split('/').at(-1)!])
    t.false(all.includes(secret), `never logged: ${secret.slice(0, 6)}…`);
  t.true(all.includes('/password-reset/:token'), 'the access log shows the link as a placeholder');
});

test.serial('odd links, methods and bodies get a clear answer, never a 500', async (t) => {
  const { gh } = t.context;
  const ask = async (path: string, init: RequestInit = {}) => (await fetch(`${gh.url}${path}`, { redirect: 'manual', ...init })).status;
  t.is(await ask('/password-reset/%E0%A4%A'), 410);
  t.is(await ask(`/password-reset/${'a'.repeat(4000)}`), 410);
  t.is(await ask('/verify-email/%ZZ'), 410);
  t.is(await ask('/password-reset', { method: 'PUT' }), 405);
  t.is(await ask('/verify-email/abc', { method: 'POST' }), 410);
  t.is(await ask('/verify-email/abc', { method: 'PUT' }), 405);
  t.is(await ask('/password-reset', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"email":"a@example.com"}' }), 403);
  t.is(await ask('/password-reset', { method: 'POST', headers: FORM_CONTENT_TYPE, body: `email=${'a'.repeat(20_000)}` }), 413);
  t.is(await ask('/password-reset', { method: 'POST', headers: FORM_CONTENT_TYPE, body: 'email=a@example.com&email=b@example.com' }), 403);
});

test.serial('without SMTP, "Forgot your password?" says to ask the operators, who hand over a link', async (t) => {
  const plain = await startLoopbackGatehouse();
  try {
    const page = await new UserAgent().open(`${plain.url}/password-reset`);
    t.is(page.status, 200);
    t.regex(page.html, /does not send mail\. Ask the people who run it/);
    t.notRegex(page.html, /name="email"/);
    const p = await person(plain);
    const cli = await runCli(['users', 'reset-link', '--username', p.username, '--json'], plain.env);
    t.regex(cli.json().url, /\/password-reset\/[\w-]{43}$/);
    const sent = await runCli(['users', 'reset-link', '--username', p.username, '--send', '--json'], plain.env);
    t.is(sent.code, 1);
    t.regex(sent.stderr, /mail_not_configured/);
  } finally {
    await plain.close();
  }
});

test.serial('one link submitted twice at once sets one password: the other submission gets the used-link page', async (t) => {
  const { gh } = t.context;
  const p = await person(gh);
  const url = await handedOverLink(t, p.id);
  const agent = new UserAgent();
  const page = await agent.open(url);
  const answers = await Promise.all([submitReset(agent, page, 'first-of-two-passphrases'), submitReset(agent, page, 'second-of-two-passphrases')]);
  t.deepEqual(answers.map((a) => a.status).sort(), [200, 410]);
  const winner = answers[0]!.status === 200 ? 'first-of-two-passphrases' : 'second-of-two-passphrases';
  t.true(await signsIn(t, p.username, winner));
});
