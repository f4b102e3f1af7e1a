import anyTest, { type TestFn } from 'ava';
import { ConfigError, loadConfig } from '../src/config.ts';
import { testClock } from './support/clock.ts';
import { runCli } from './support/cli.ts';
import type { TestGatehouse } from './support/gatehouse.ts';
import { linkIn, startTestSmtp, type TestSmtp } from './support/smtp.ts';
import { authorizationRequest, createClient, oidc, REDIRECT_URI, redeem, relyingParty, startLoopbackGatehouse } from './support/relying-party.ts';
import { signInAllowingConsent, signInToAccount, UserAgent } from './support/user-agent.ts';

/**
 * A person's address is verified by following a single-use link mailed to it; the
 * email_verified claim apps receive follows. A changed address is used only once verified.
 */

const clock = testClock();
const test = anyTest as TestFn<{ gh: TestGatehouse; smtp: TestSmtp; rp: oidc.Configuration }>;
const PASSWORD = 'verify-me-passphrase';

test.before(async (t) => {
  const smtp = await startTestSmtp();
  const gh = await startLoopbackGatehouse({ env: { GATEHOUSE_SMTP_URL: smtp.url, GATEHOUSE_MAIL_FROM: 'no-reply@example.com' } });
  const app = await createClient(gh, ['--name', 'Team Wiki', '--type', 'confidential', '--grant', 'authorization_code', '--redirect-uri', REDIRECT_URI]);
  t.context = { gh, smtp, rp: await relyingParty(gh, app, 'basic') };
});

test.after.always(async (t) => {
  await t.context.gh?.close();
  await t.context.smtp?.close();
});

/** `users create … --send-verification`, as an operator runs it. */
async function createWithVerification(gh: TestGatehouse, username: string) {
  const res = await runCli(
    ['users', 'create', '--username', username, '--email', `${username}@example.com`, '--password-stdin', '--send-verification', '--json'],
    gh.env,
    `${PASSWORD}\n`,
  );
  if (res.code !== 0) throw new Error(res.stderr);
  return res.json() as { id: string; email: string; email_verified: boolean; verification_sent: boolean };
}

/** The email claims an app gets (at /userinfo) when the person signs in now. */
async function emailClaims(t: { context: { rp: oidc.Configuration } }, username: string) {
  const pending = await authorizationRequest(t.context.rp, { scope: 'openid email' });
  const { landed } = await signInAllowingConsent(new UserAgent([REDIRECT_URI]), pending.url, username, PASSWORD);
  const tokens = await redeem(t.context.rp, landed, pending);
  const claims = await oidc.fetchUserInfo(t.context.rp, tokens.access_token, tokens.claims()!.sub);
  return { email: claims.email, email_verified: claims.email_verified };
}

const verifyPrefix = (gh: TestGatehouse) => `${gh.config.issuer}/verify-email/`;

/** A person follows the link and presses Confirm on its page: the page a GET shows changes nothing by itself. */
async function confirmLink(link: string) {
  const agent = new UserAgent();
  const shown = await agent.open(link);
  if (shown.status !== 200) return shown;
  return agent.submit(shown, /\/verify-email\//, {});
}

test.serial('an operator creates a user with --send-verification; following the mailed link verifies the address, and apps see it', async (t) => {
  const { gh, smtp } = t.context;
  const created = await createWithVerification(gh, 'vera');
  t.true(created.verification_sent);
  t.false(created.email_verified);
  t.deepEqual(await emailClaims(t, 'vera'), { email: 'vera@example.com', email_verified: false });

  const mail = await smtp.next('vera@example.com');
  t.is(mail.subject, 'Confirm your email address');
  t.regex(mail.text, /within 24 hours/);
  const link = linkIn(mail, verifyPrefix(gh));
  t.true(mail.html.includes(`href="${link}"`));
  t.false(mail.raw.includes(PASSWORD), 'the mail holds no password');

  const agent = new UserAgent();
  const shown = await agent.open(link);
  t.is(shown.status, 200);
  t.regex(shown.html, /Confirm that <strong>vera@example\.com<\/strong> is the email address of the account <strong>vera<\/strong>/);
  t.false((await gh.services.accounts.get(created.id)).emailVerified, 'opening the link confirms nothing');
  const page = await agent.submit(shown, /\/verify-email\//, {});
  t.is(page.status, 200);
  t.regex(page.html, /Your address is confirmed/);
  t.regex(page.html, /<html lang="en">/);
  t.is(page.headers.get('x-frame-options'), 'DENY');
  t.is(page.headers.get('cache-control'), 'no-store');
  t.true((await gh.services.accounts.get(created.id)).emailVerified);
  t.deepEqual(await emailClaims(t, 'vera'), { email: 'vera@example.com', email_verified: true });

  const again = await confirmLink(link);
  t.is(again.status, 410, 'the link works once');
  t.regex(again.html, /This link no longer works/);
});

test.serial('a changed address is used only once its link is followed, and the old address stays until then', async (t) => {
  const { gh, smtp } = t.context;
  const created = await createWithVerification(gh, 'max');
  linkIn(await smtp.next('max@example.com'), verifyPrefix(gh));

  await gh.services.emailVerification.startChange(created.id, 'max.new@example.org');
  const changed = await smtp.next('max.new@example.org');
  t.regex(changed.text, /max\.new@example\.org is the email address of the account "max"/);
  t.is((await gh.services.accounts.get(created.id)).email, 'max@example.com', 'not used before it is verified');
  t.deepEqual(await emailClaims(t, 'max'), { email: 'max@example.com', email_verified: false });

  t.is((await confirmLink(linkIn(changed, verifyPrefix(gh)))).status, 200);
  const user = await gh.services.accounts.get(created.id);
  t.is(user.email, 'max.new@example.org');
  t.true(user.emailVerified);
  t.deepEqual(await emailClaims(t, 'max'), { email: 'max.new@example.org', email_verified: true });

  await t.throwsAsync(gh.services.emailVerification.startChange(created.id, 'not an address'), { message: /email/ });
});

test.serial('a person changes their own address on /account: a mail to the new one, and the account takes it once its link is followed', async (t) => {
  const { gh, smtp } = t.context;
  const created = await createWithVerification(gh, 'nora');
  linkIn(await smtp.next('nora@example.com'), verifyPrefix(gh));
  const agent = new UserAgent();
  const account = await signInToAccount(agent, gh.config.issuer, 'nora', PASSWORD);
  t.regex(account.html, /Now: <strong>nora@example\.com<\/strong>/);

  const bad = await agent.submit(account, /\/account\/email$/, { email: 'not an address' });
  t.is(bad.status, 400);
  t.regex(bad.html, /The address/);
  const same = await agent.submit(account, /\/account\/email$/, { email: 'NORA@example.com' });
  t.is(same.status, 400);
  t.regex(same.html, /your current address already/);

  const asked = await agent.submit(account, /\/account\/email$/, { email: 'nora@new.example.org' });
  t.is(asked.status, 200, asked.url);
  t.regex(asked.html, /A mail is on its way to the new address/);
  t.regex(asked.html, /New email address asked for/, 'the security events say so');
  t.is((await gh.services.accounts.get(created.id)).email, 'nora@example.com', 'not used before it is confirmed');

  const mail = await smtp.next('nora@new.example.org');
  t.is((await confirmLink(linkIn(mail, verifyPrefix(gh)))).status, 200);
  const user = await gh.services.accounts.get(created.id);
  t.is(user.email, 'nora@new.example.org');
  t.true(user.emailVerified);
  t.regex((await agent.open(`${gh.config.issuer}/account`)).html, /Now: <strong>nora@new\.example\.org<\/strong>/);
});

test.serial('a verification link older than 24 hours, or replaced by a newer one, changes nothing', async (t) => {
  const { gh, smtp } = t.context;
  const created = await createWithVerification(gh, 'olga');
  const first = linkIn(await smtp.next('olga@example.com'), verifyPrefix(gh));
  await gh.services.emailVerification.send(created.id);
  const second = linkIn(await smtp.next('olga@example.com'), verifyPrefix(gh));
  t.is((await confirmLink(first)).status, 410, 'only the newest link works');

  clock.advance(25 * 60 * 60_000);
  t.is((await confirmLink(second)).status, 410);
  t.false((await gh.services.accounts.get(created.id)).emailVerified);
  t.is((await new UserAgent().open(`${verifyPrefix(gh)}made-up`)).status, 410);

  // A day later the sweep removes them: nothing they say still holds.
  clock.advance(24 * 60 * 60_000);
  t.true((await gh.services.passwordResets.sweepLinks()) >= 2);
  t.is((await gh.services.db('account_links').where({ user_id: created.id })).length, 0);
});

test.serial('a mail scanner opening the link many times confirms nothing; a forged POST without the page CSRF token is refused', async (t) => {
  const { gh, smtp } = t.context;
  const created = await gh.services.accounts.create({ username: 'scan', email: 'scan@example.com', password: PASSWORD });
  // Sent in this process: its clock is the one the server reads (an earlier test moved it on).
  await gh.services.emailVerification.send(created.id);
  const link = linkIn(await smtp.next('scan@example.com'), verifyPrefix(gh));
  for (const method of ['GET', 'HEAD', 'GET', 'OPTIONS']) {
    const res = await fetch(link, { method, redirect: 'manual' });
    t.not(res.status, 500, method);
  }
  t.false((await gh.services.accounts.get(created.id)).emailVerified, 'prefetching changed nothing');
  // A cross-site page posting to the link: no CSRF cookie or field.
  const forged = await fetch(link, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'confirm=yes',
    redirect: 'manual',
  });
  t.is(forged.status, 403);
  t.regex(await forged.text(), /Your form expired/);
  t.false((await gh.services.accounts.get(created.id)).emailVerified, 'the forged post changed nothing');
  t.is((await confirmLink(link)).status, 200, 'the link still works for the person');
  t.true((await gh.services.accounts.get(created.id)).emailVerified);
});

test.serial('two Confirm presses racing with one link: one confirms, the other is told the link no longer works', async (t) => {
  const { gh, smtp } = t.context;
  await gh.services.emailVerification.send((await gh.services.accounts.create({ username: 'twice', email: 'twice@example.com', password: PASSWORD })).id);
  const link = linkIn(await smtp.next('twice@example.com'), verifyPrefix(gh));
  const agents = [new UserAgent(), new UserAgent(), new UserAgent()];
  const pages = await Promise.all(agents.map((a) => a.open(link)));
  const answers = await Promise.all(agents.map((a, i) => a.submit(pages[i]!, /\/verify-email\//, {})));
  t.deepEqual(answers.map((a) => a.status).sort(), [200, 410, 410]);
});

test.serial('without SMTP, --send-verification is refused before anyone is created', async (t) => {
  const { gh } = t.context;
  const res = await runCli(
    ['users', 'create', '--username', 'nomail', '--email', 'nomail@example.com', '--password-stdin', '--send-verification', '--json'],
    { ...gh.env, GATEHOUSE_SMTP_URL: '', GATEHOUSE_MAIL_FROM: '' },
    `${PASSWORD}\n`,
  );
  t.is(res.code, 2);
  t.regex(res.stdout + res.stderr, /GATEHOUSE_SMTP_URL/);
  t.deepEqual(await gh.services.accounts.list('nomail'), []);
});

test('a bad mail configuration stops start-up with one line naming the variable, never quoting the password', (t) => {
  for (const [env, message] of [
    [
      { GATEHOUSE_SMTP_URL: 'http://user:hunter2-secret@mail.example.com', GATEHOUSE_MAIL_FROM: 'a@example.com' },
      /^invalid GATEHOUSE_SMTP_URL: must be smtp:\/\//,
    ],
    [{ GATEHOUSE_SMTP_URL: 'smtp://user:hunter2-secret@mail.example.com:587' }, /^invalid GATEHOUSE_MAIL_FROM: required with GATEHOUSE_SMTP_URL/],
    [
      { GATEHOUSE_SMTP_URL: 'smtps://user:hunter2-secret@mail.example.com', GATEHOUSE_MAIL_FROM: 'not an address' },
      /^invalid GATEHOUSE_MAIL_FROM: must be an email address/,
    ],
  ] as const) {
    const err = t.throws(() => loadConfig(env), { instanceOf: ConfigError });
    t.regex(err!.message, message);
    t.notRegex(err!.message, /hunter2|\n/);
  }
  const ok = loadConfig({ GATEHOUSE_SMTP_URL: 'smtps://user:hunter2-secret@mail.example.com', GATEHOUSE_MAIL_FROM: 'Gatehouse <no-reply@example.com>' });
  t.is(ok.mail?.from, 'Gatehouse <no-reply@example.com>');
  t.is(loadConfig({}).mail, undefined);
});
