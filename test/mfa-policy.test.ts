import anyTest, { type TestFn } from 'ava';
import * as OTPAuth from 'otpauth';
import { loadConfig } from '../src/config.ts';
import { acrValuesAskMfa, secondFactorRequired } from '../src/accounts/mfa/policy.ts';
import { startTestGatehouse, type TestGatehouse } from './support/gatehouse.ts';
import { decodeEntities, submitTampered } from './support/http.ts';
import {
  authorizationRequest,
  callbackParams,
  createClient,
  createUserDirectly,
  type oidc,
  type PendingAuthorization,
  REDIRECT_URI,
  redeem,
  relyingParty,
  startLoopbackGatehouse,
} from './support/relying-party.ts';
import { isConsentPage, isLoginPage, signInToAccount, UserAgent, type Page } from './support/user-agent.ts';
import { testClock } from './support/clock.ts';
import { runCli } from './support/cli.ts';
import { adminApi } from './support/admin-api.ts';
import { chromiumAvailable, launchBrowser, screenshotForDocs } from './support/browser.ts';

interface Apps {
  gh: TestGatehouse;
  /** Team Wiki: asks for nothing more than the policy does. */
  wiki: oidc.Configuration;
  /** Payroll: registered with --require-mfa. */
  payroll: oidc.Configuration;
}
const test = anyTest as TestFn<{ off: Apps; admins: Apps; all: Apps }>;
const clock = testClock();
const PASSWORD = 'correct horse battery';

async function gatehouseWithApps(policy: 'off' | 'admins' | 'all'): Promise<Apps> {
  const gh = await startLoopbackGatehouse({ env: { GATEHOUSE_REQUIRE_MFA: policy } });
  const app = (name: string, extra: string[] = []) =>
    createClient(gh, ['--name', name, '--type', 'confidential', '--grant', 'authorization_code', '--redirect-uri', REDIRECT_URI, ...extra]);
  const wiki = await app('Team Wiki');
  const payroll = await app('Payroll', ['--require-mfa']);
  return { gh, wiki: await relyingParty(gh, wiki, 'basic'), payroll: await relyingParty(gh, payroll, 'basic') };
}

test.before(async (t) => {
  t.context = { off: await gatehouseWithApps('off'), admins: await gatehouseWithApps('admins'), all: await gatehouseWithApps('all') };
});

test.after.always(async (t) => {
  await Promise.all([t.context.off?.gh.close(), t.context.admins?.gh.close(), t.context.all?.gh.close()]);
});

/** The value of the read-only input `id` on a page. */
const inputValue = (page: Page, id: string) => decodeEntities(new RegExp(`id="${id}"[^>]*value="([^"]*)"`).exec(page.html)?.[1] ?? '');
/** The code an authenticator app shows now for `secret`. */
const codeNow = (secret: string) => new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), digits: 6, period: 30 }).generate();
/** Moves the clock to the start of the next 30-second window: the app shows a new code. */
const nextWindow = () => clock.advanceTo((Math.floor(Date.now() / 30_000) + 1) * 30_000 + 1000);
const recoveryCodes = (page: Page) => [...page.html.matchAll(/<li><code>([a-z0-9-]+)<\/code><\/li>/g)].map((m) => m[1]!);
const isEnrolPage = (page: Page) => /<h1>Set up an authenticator app<\/h1>/.test(page.html);
const isCodePage = (page: Page) => /<h1>Enter your code<\/h1>/.test(page.html);
const h1 = (page: Page) => /<h1>([^<]*)<\/h1>/.exec(page.html)?.[1];
/** Where "Continue" under the recovery codes leads (the sign-in is finished by then). */
const continueLink = (page: Page) => decodeEntities(/<a class="button primary" href="([^"]+)">Continue/.exec(page.html)?.[1] ?? '');

/** A person who set up an authenticator app before (through the service, as /account does); returns its secret. */
async function withAuthenticator(gh: TestGatehouse, userId: string, username: string): Promise<string> {
  const setup = await gh.services.totp.begin(userId, username);
  if (!(await gh.services.totp.confirm(userId, codeNow(setup!.secret)))) throw new Error('setup refused');
  nextWindow();
  return setup!.secret;
}

/** Allows on the consent page if one is shown, then redeems the code at the app. */
async function finishAtApp(rp: oidc.Configuration, agent: UserAgent, page: Page, pending: PendingAuthorization) {
  const landed = isConsentPage(page) ? await agent.submit(page, /\/consent$/, { decision: 'allow' }) : page;
  return redeem(rp, landed, pending);
}

/** The person opens the app and types the right password; returns the page that follows. */
async function passwordAtApp(rp: oidc.Configuration, agent: UserAgent, username: string, params: Record<string, string> = {}) {
  const pending = await authorizationRequest(rp, params);
  const login = await agent.open(pending.url);
  if (!isLoginPage(login)) throw new Error(`no login page but ${h1(login)} at ${login.url}`);
  return { pending, next: await agent.submit(login, /\/login$/, { username, password: PASSWORD }) };
}

/** Sets up the app on the enrolment page: the first code, then "Continue" under the recovery codes. */
async function enrolThere(agent: UserAgent, enrolPage: Page) {
  const secret = inputValue(enrolPage, 'otpauth-secret');
  const shown = await agent.submit(enrolPage, /\/enrol$/, { code: codeNow(secret) });
  const continued = await agent.open(new URL(continueLink(shown), enrolPage.url).href);
  return { secret, shown, continued };
}

const kindsOf = async (gh: TestGatehouse, userId: string) => (await gh.services.accountEvents.recentOf(userId)).map((e) => e.kind);

test('a bad GATEHOUSE_REQUIRE_MFA stops start-up with one line naming the variable; it is off unless set', (t) => {
  t.throws(() => loadConfig({ GATEHOUSE_REQUIRE_MFA: 'operators' }), { message: 'invalid GATEHOUSE_REQUIRE_MFA: must be one of off, admins, all' });
  t.is(loadConfig({}).requireMfa, 'off');
  t.is(loadConfig({ GATEHOUSE_REQUIRE_MFA: 'admins' }).requireMfa, 'admins');
});

test('the one rule: the policy for the person, the app, or the request asks for two factors', (t) => {
  const person = { isAdmin: false };
  const operator = { isAdmin: true };
  t.false(secondFactorRequired('off', operator));
  t.true(secondFactorRequired('off', person, { byClient: true }));
  t.true(secondFactorRequired('off', person, { byRequest: true }));
  t.false(secondFactorRequired('admins', person));
  t.true(secondFactorRequired('admins', operator));
  t.true(secondFactorRequired('all', person));
  t.true(acrValuesAskMfa('urn:gatehouse:acr:mfa'));
  t.true(acrValuesAskMfa('urn:example:gold urn:gatehouse:acr:mfa'));
  t.false(acrValuesAskMfa('urn:gatehouse:acr:pwd urn:gatehouse:acr:mfa'), 'either level is acceptable');
  t.false(acrValuesAskMfa('urn:gatehouse:acr:pwd'));
  t.false(acrValuesAskMfa(undefined));
  t.false(acrValuesAskMfa(['urn:gatehouse:acr:mfa']));
});

test.serial('a require_mfa app sends a person without a second factor to set up an authenticator app; the ID token says amr pwd+otp+mfa', async (t) => {
  const { gh, payroll } = t.context.off;
  const id = await createUserDirectly(gh, 'ann', PASSWORD);
  const agent = new UserAgent([REDIRECT_URI]);
  const { pending, next: enrolPage } = await passwordAtApp(payroll, agent, 'ann');
  t.true(isEnrolPage(enrolPage), h1(enrolPage));
  t.regex(enrolPage.html, /<strong>Payroll<\/strong> asks/);
  const uri = inputValue(enrolPage, 'otpauth-uri');
  t.true(uri.startsWith('otpauth://totp/'), uri);
  t.regex(enrolPage.html, /<img class="qr" src="data:image\/svg\+xml;base64,/);
  t.false(await gh.services.totp.isEnrolled(id), 'not on before the first code');
  const { shown, continued } = await enrolThere(agent, enrolPage);
  t.is(recoveryCodes(shown).length, 10, 'the ten recovery codes, shown once');
  t.true(await gh.services.totp.isEnrolled(id));
  const claims = (await finishAtApp(payroll, agent, continued, pending)).claims()!;
  t.deepEqual(claims.amr, ['pwd', 'otp', 'mfa']);
  t.is(claims.acr, 'urn:gatehouse:acr:mfa');
  const kinds = await kindsOf(gh, id);
  t.is(kinds.filter((k) => k === 'login.succeeded').length, 1);
  t.true(kinds.includes('account.totp_added'));
  // The next sign-in asks for a code, as for anyone with an app.
  nextWindow();
  const again = await passwordAtApp(payroll, new UserAgent([REDIRECT_URI]), 'ann');
  t.true(isCodePage(again.next));
});

test.serial('the enrolment page refuses a wrong code, letters and a forged form, and changes nothing', async (t) => {
  const { gh, payroll } = t.context.off;
  const id = await createUserDirectly(gh, 'bea', PASSWORD);
  const agent = new UserAgent([REDIRECT_URI]);
  const { next: enrolPage } = await passwordAtApp(payroll, agent, 'bea');
  const secret = inputValue(enrolPage, 'otpauth-secret');
  const right = codeNow(secret);
  const wrong = await agent.submit(enrolPage, /\/enrol$/, { code: right === '123456' ? '654321' : '123456' });
  t.is(wrong.status, 400);
  t.regex(wrong.html, /not the one your app shows/);
  t.is(inputValue(wrong, 'otpauth-secret'), secret, 'the same setup is shown again');
  const letters = await agent.submit(enrolPage, /\/enrol$/, { code: 'abcdef' });
  t.is(letters.status, 400);
  t.regex(letters.html, /Enter the six digits your app shows/);
  const forged = await submitTampered(agent, enrolPage, /\/enrol$/, { csrf: 'forged', code: right });
  t.is(forged.status, 403);
  t.regex(forged.html, /Your form expired/);
  t.false(await gh.services.totp.isEnrolled(id));
  t.false((await kindsOf(gh, id)).includes('login.succeeded'), 'not signed in');
  // The right code still works after all that, once: the same form posted again finds no setup under way.
  const copy = new UserAgent([REDIRECT_URI]);
  for (const [k, v] of agent.cookieEntries()) copy.setCookie(k, v);
  const shown = await agent.submit(enrolPage, /\/enrol$/, { code: right });
  t.is(recoveryCodes(shown).length, 10);
  t.is((await kindsOf(gh, id)).filter((k) => k === 'login.succeeded').length, 1);
  const replayed = await copy.submit(enrolPage, /\/enrol$/, { code: right });
  t.is(replayed.status, 400);
  t.is(recoveryCodes(replayed).length, 0, 'the recovery codes are shown once');
  t.is((await kindsOf(gh, id)).filter((k) => k === 'login.succeeded').length, 1, 'a replayed setup signs no one in again');
});

test.serial('enrolment cannot be skipped: not by the code step posted directly, nor by going back to the authorization endpoint', async (t) => {
  const { gh, payroll } = t.context.off;
  const id = await createUserDirectly(gh, 'cid', PASSWORD);
  const agent = new UserAgent([REDIRECT_URI]);
  const { pending, next: enrolPage } = await passwordAtApp(payroll, agent, 'cid');
  t.true(isEnrolPage(enrolPage));
  const uid = /\/interaction\/([^/]+)\/enrol/.exec(enrolPage.html)![1]!;
  const csrf = /name="csrf" value="([^"]+)"/.exec(enrolPage.html)![1]!;
  const post = (step: string, fields: Record<string, string>) =>
    agent.open(`${gh.config.issuer}/interaction/${uid}/${step}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf, ...fields }),
    });
  const guessed = await post('code', { code: '123456' });
  t.is(guessed.status, 400);
  t.regex(guessed.html, /sign in with your password first/);
  t.is(callbackParams(guessed), undefined);
  // Back at the authorization endpoint: no session was made, so the password is asked again, then the setup.
  const back = await agent.open(pending.url);
  t.true(isLoginPage(back), h1(back));
  const again = await agent.submit(back, /\/login$/, { username: 'cid', password: PASSWORD });
  t.true(isEnrolPage(again));
  t.not(inputValue(again, 'otpauth-secret'), inputValue(enrolPage, 'otpauth-secret'), 'a new secret each time');
  // A stranger with a copy of every cookie but the password step's gets nowhere either.
  const stranger = new UserAgent([REDIRECT_URI]);
  for (const [k, v] of agent.cookieEntries()) if (!k.startsWith('gh_pwd_ok')) stranger.setCookie(k, v);
  const foreign = await stranger.submit(again, /\/enrol$/, { code: codeNow(inputValue(again, 'otpauth-secret')) });
  t.is(foreign.status, 400);
  t.false(await gh.services.totp.isEnrolled(id));
  t.false((await kindsOf(gh, id)).includes('login.succeeded'));
});

test.serial('a session signed in with a password alone is asked again at a require_mfa app, for the password and then the code', async (t) => {
  const { gh, wiki, payroll } = t.context.off;
  const id = await createUserDirectly(gh, 'dan', PASSWORD);
  const agent = new UserAgent([REDIRECT_URI]);
  const first = await passwordAtApp(wiki, agent, 'dan');
  t.deepEqual((await finishAtApp(wiki, agent, first.next, first.pending)).claims()!.amr, ['pwd']);
  // Still signed in: the wiki does not ask again (the check below can tell the difference).
  const wikiAgain = await authorizationRequest(wiki);
  t.truthy(callbackParams(await agent.open(wikiAgain.url))?.get('code'));
  // prompt=none at Payroll: the app is told a sign-in is needed, not given a code.
  const silent = await authorizationRequest(payroll, { prompt: 'none' });
  t.is(callbackParams(await agent.open(silent.url))?.get('error'), 'login_required');
  const secret = await withAuthenticator(gh, id, 'dan');
  const asked = await agent.open((await authorizationRequest(payroll)).url);
  t.true(isLoginPage(asked));
  t.regex(asked.html, /Payroll asks for a second factor: sign in again/);
  const { pending, next } = await passwordAtApp(payroll, agent, 'dan');
  t.true(isCodePage(next), h1(next));
  const claims = (await finishAtApp(payroll, agent, await agent.submit(next, /\/code$/, { code: codeNow(secret) }), pending)).claims()!;
  t.deepEqual(claims.amr, ['pwd', 'otp', 'mfa']);
});

test.serial('acr_values=urn:gatehouse:acr:mfa asks a one-factor session for a second factor; the ID token then says the mfa acr', async (t) => {
  const { gh, wiki } = t.context.off;
  await createUserDirectly(gh, 'eve', PASSWORD);
  const agent = new UserAgent([REDIRECT_URI]);
  const first = await passwordAtApp(wiki, agent, 'eve');
  t.is((await finishAtApp(wiki, agent, first.next, first.pending)).claims()!.acr, 'urn:gatehouse:acr:pwd');
  const { pending, next } = await passwordAtApp(wiki, agent, 'eve', { acr_values: 'urn:gatehouse:acr:mfa' });
  t.true(isEnrolPage(next), h1(next));
  const { continued } = await enrolThere(agent, next);
  const claims = (await finishAtApp(wiki, agent, continued, pending)).claims()!;
  t.is(claims.acr, 'urn:gatehouse:acr:mfa');
  t.deepEqual(claims.amr, ['pwd', 'otp', 'mfa']);
  // Both levels named: either is acceptable, and the password alone answers.
  await createUserDirectly(gh, 'ewan', PASSWORD);
  const other = new UserAgent([REDIRECT_URI]);
  const either = await passwordAtApp(wiki, other, 'ewan', { acr_values: 'urn:gatehouse:acr:pwd urn:gatehouse:acr:mfa' });
  t.false(isEnrolPage(either.next));
  t.deepEqual((await finishAtApp(wiki, other, either.next, either.pending)).claims()!.amr, ['pwd']);
  const discovery = (await (await fetch(`${gh.config.issuer}/.well-known/openid-configuration`)).json()) as { acr_values_supported: string[] };
  t.deepEqual(discovery.acr_values_supported, ['urn:gatehouse:acr:pwd', 'urn:gatehouse:acr:mfa']);
});

test.serial('prompt=login and max_age=0 ask for the password and the code again, never the old session’s', async (t) => {
  const { gh, wiki } = t.context.off;
  const id = await createUserDirectly(gh, 'fay', PASSWORD);
  const secret = await withAuthenticator(gh, id, 'fay');
  const agent = new UserAgent([REDIRECT_URI]);
  // max_age of a day: the ID token then carries auth_time, which shows a new sign-in below.
  const first = await passwordAtApp(wiki, agent, 'fay', { max_age: '86400' });
  const firstClaims = (await finishAtApp(wiki, agent, await agent.submit(first.next, /\/code$/, { code: codeNow(secret) }), first.pending)).claims()!;
  t.deepEqual(firstClaims.amr, ['pwd', 'otp', 'mfa']);
  for (const params of [{ prompt: 'login', max_age: '86400' }, { max_age: '0' }] as Record<string, string>[]) {
    nextWindow();
    const { pending, next } = await passwordAtApp(wiki, agent, 'fay', params);
    t.true(isCodePage(next), `${JSON.stringify(params)}: ${h1(next)}`);
    const landed = await agent.submit(next, /\/code$/, { code: codeNow(secret) });
    const claims = (await finishAtApp(wiki, agent, landed, pending)).claims()!;
    t.deepEqual(claims.amr, ['pwd', 'otp', 'mfa']);
    t.true(claims.auth_time! > firstClaims.auth_time!, 'a new sign-in');
  }
});

test.serial('under GATEHOUSE_REQUIRE_MFA=admins an operator sets up an app at the /admin sign-in before any admin page', async (t) => {
  const { gh } = t.context.admins;
  const res = await runCli(
    ['users', 'create', '--username', 'opal', '--email', 'opal@example.com', '--admin', '--password-stdin', '--json'],
    gh.env,
    `${PASSWORD}\n`,
  );
  const id = res.json().id as string;
  const agent = new UserAgent();
  const login = await agent.open(`${gh.config.issuer}/admin/login`);
  const enrolPage = await agent.submit(login, /\/admin\/login$/, { username: 'opal', password: PASSWORD });
  t.true(isEnrolPage(enrolPage), h1(enrolPage));
  t.regex(enrolPage.html, /<title>Set up an authenticator app · Gatehouse admin<\/title>/);
  t.regex(enrolPage.html, /autocomplete="one-time-code"/);
  // No admin page yet: the operator is not signed in.
  t.true(isLoginPage(await agent.open(`${gh.config.issuer}/admin/clients`)));
  const forged = await submitTampered(agent, enrolPage, /\/admin\/login\/enrol$/, { csrf: 'forged', code: codeNow(inputValue(enrolPage, 'otpauth-secret')) });
  t.is(forged.status, 403);
  t.false(await gh.services.totp.isEnrolled(id));
  const skipped = await agent.open(`${gh.config.issuer}/admin/login/code`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ csrf: /name="csrf" value="([^"]+)"/.exec(enrolPage.html)![1]!, code: '123456' }),
  });
  t.true(isLoginPage(skipped), 'the code step without an app leads back to the password');
  const secret = inputValue(enrolPage, 'otpauth-secret');
  const shown = await agent.submit(enrolPage, /\/admin\/login\/enrol$/, { code: codeNow(secret) });
  t.is(recoveryCodes(shown).length, 10);
  t.is(continueLink(shown), '/admin/clients');
  const clients = await agent.open(`${gh.config.issuer}${continueLink(shown)}`);
  t.is(clients.status, 200);
  t.true(clients.url.endsWith('/admin/clients'), clients.url);
  // The next sign-in asks for the code.
  nextWindow();
  const second = new UserAgent();
  const codePage = await second.submit(await second.open(`${gh.config.issuer}/admin/login`), /\/admin\/login$/, { username: 'opal', password: PASSWORD });
  t.true(isCodePage(codePage));
});

test.serial('under admins an operator signing in to an app needs a second factor too, while a person who is no operator does not', async (t) => {
  const { gh, wiki } = t.context.admins;
  await runCli(['users', 'create', '--username', 'otto', '--email', 'otto@example.com', '--admin', '--password-stdin'], gh.env, `${PASSWORD}\n`);
  await createUserDirectly(gh, 'pia', PASSWORD);
  const person = new UserAgent([REDIRECT_URI]);
  const plain = await passwordAtApp(wiki, person, 'pia');
  t.deepEqual((await finishAtApp(wiki, person, plain.next, plain.pending)).claims()!.amr, ['pwd']);
  const operator = new UserAgent([REDIRECT_URI]);
  const { pending, next } = await passwordAtApp(wiki, operator, 'otto');
  t.true(isEnrolPage(next), h1(next));
  const { continued } = await enrolThere(operator, next);
  t.deepEqual((await finishAtApp(wiki, operator, continued, pending)).claims()!.amr, ['pwd', 'otp', 'mfa']);
  // An operator's one-factor session (from before the flag) is asked again: the check reads the flag.
  await createUserDirectly(gh, 'quin', PASSWORD);
  const agent = new UserAgent([REDIRECT_URI]);
  const before = await passwordAtApp(wiki, agent, 'quin');
  await finishAtApp(wiki, agent, before.next, before.pending);
  await runCli(['users', 'grant-admin', 'quin'], gh.env);
  const afterFlag = await authorizationRequest(wiki);
  t.true(isLoginPage(await agent.open(afterFlag.url)));
});

test.serial('under GATEHOUSE_REQUIRE_MFA=all every sign-in needs a second factor: an app’s and the account page’s', async (t) => {
  const { gh, wiki } = t.context.all;
  const id = await createUserDirectly(gh, 'rua', PASSWORD);
  const agent = new UserAgent([REDIRECT_URI]);
  const { pending, next } = await passwordAtApp(wiki, agent, 'rua');
  t.true(isEnrolPage(next));
  const { secret, continued } = await enrolThere(agent, next);
  t.deepEqual((await finishAtApp(wiki, agent, continued, pending)).claims()!.amr, ['pwd', 'otp', 'mfa']);
  t.truthy(secret);
  await createUserDirectly(gh, 'sam', PASSWORD);
  const account = new UserAgent();
  const enrolPage = await signInToAccount(account, gh.config.issuer, 'sam', PASSWORD);
  t.true(isEnrolPage(enrolPage), h1(enrolPage));
  t.regex(enrolPage.html, /Your account needs/);
  const shown = await account.submit(enrolPage, /\/account\/login\/enrol$/, { code: codeNow(inputValue(enrolPage, 'otpauth-secret')) });
  const page = await account.open(`${gh.config.issuer}${continueLink(shown)}`);
  t.regex(page.html, /You are signed in to your account/);
  t.true(await gh.services.totp.isEnrolled(id));
});

test.serial('the account history says "Signed in" only once the code step is done, not when the password was right', async (t) => {
  const { gh } = t.context.off;
  const id = await createUserDirectly(gh, 'tam', PASSWORD);
  const secret = await withAuthenticator(gh, id, 'tam');
  const agent = new UserAgent();
  const codePage = await signInToAccount(agent, gh.config.issuer, 'tam', PASSWORD);
  t.true(isCodePage(codePage));
  t.false((await kindsOf(gh, id)).includes('login.succeeded'));
  await agent.submit(codePage, /\/account\/login\/code$/, { code: codeNow(secret) });
  t.is((await kindsOf(gh, id)).filter((k) => k === 'login.succeeded').length, 1);
});

test.serial('`users unlock` lifts a lock of the code step too', async (t) => {
  const { gh, wiki } = t.context.off;
  const id = await createUserDirectly(gh, 'uma', PASSWORD);
  const secret = await withAuthenticator(gh, id, 'uma');
  const agent = new UserAgent([REDIRECT_URI]);
  const { next } = await passwordAtApp(wiki, agent, 'uma');
  const right = codeNow(secret);
  const wrongCode = right === '000000' ? '111111' : '000000';
  let last = next;
  for (let i = 0; i < 5; i++) last = await agent.submit(next, /\/code$/, { code: wrongCode });
  const locked = await agent.submit(next, /\/code$/, { code: right });
  t.is(locked.status, 429, h1(last));
  const res = await runCli(['users', 'unlock', 'uma', '--json'], gh.env);
  t.is(res.code, 0, res.stderr);
  const { pending, next: again } = await passwordAtApp(wiki, agent, 'uma');
  const landed = await agent.submit(again, /\/code$/, { code: right });
  t.deepEqual((await finishAtApp(wiki, agent, landed, pending)).claims()!.amr, ['pwd', 'otp', 'mfa']);
});

test.serial('operators set require_mfa with the CLI, the admin API and the admin form; `clients show` prints it', async (t) => {
  const { gh } = t.context.off;
  const created = await runCli(
    [
      'clients',
      'create',
      '--name',
      'Vault',
      '--type',
      'confidential',
      '--grant',
      'authorization_code',
      '--redirect-uri',
      REDIRECT_URI,
      '--require-mfa',
      '--json',
    ],
    gh.env,
  );
  t.is(created.code, 0, created.stderr);
  const clientId = created.json().client_id as string;
  t.is(created.json().require_mfa, true);
  const shown = await runCli(['clients', 'show', clientId], gh.env);
  t.regex(shown.stdout, /require MFA: +yes/);
  const off = await runCli(['clients', 'update', clientId, '--no-require-mfa', '--json'], gh.env);
  t.is(off.json().require_mfa, false);
  t.regex((await runCli(['clients', 'show', clientId], gh.env)).stdout, /require MFA: +no/);
  const token = (await runCli(['admin-tokens', 'create', '--name', 'mfa-test', '--json'], gh.env)).json().token as string;
  const api = adminApi(gh, token);
  const patched = await api('PATCH', `/clients/${encodeURIComponent(clientId)}`, { body: { require_mfa: true } });
  t.is(patched.status, 200, patched.text);
  t.is(patched.body.require_mfa, true);
  const bad = await api('PATCH', `/clients/${encodeURIComponent(clientId)}`, { body: { require_mfa: 'yes' } });
  t.is(bad.status, 400);
  t.true((await gh.services.clients.get(clientId)).requireMfa, 'a bad value changes nothing');
  // The admin form: the checkbox shows the setting, and saving it unticked turns it off.
  await runCli(['users', 'create', '--username', 'vic', '--email', 'vic@example.com', '--admin', '--password-stdin'], gh.env, `${PASSWORD}\n`);
  const operator = new UserAgent();
  await operator.submit(await operator.open(`${gh.config.issuer}/admin/login`), /\/admin\/login$/, { username: 'vic', password: PASSWORD });
  const form = await operator.open(`${gh.config.issuer}/admin/clients/${encodeURIComponent(clientId)}`);
  t.regex(form.html, /name="requireMfa" value="yes" checked/);
  const saved = await operator.submit(form, new RegExp(`/admin/clients/${encodeURIComponent(clientId)}$`), {
    name: 'Vault',
    type: 'confidential',
    grantTypes: 'authorization_code',
    redirectUris: REDIRECT_URI,
    scope: 'openid profile email',
    authMethod: 'client_secret_basic',
  });
  t.is(saved.status, 200, saved.html.match(/class="field-error[^>]*>[^<]*/g)?.join(' | '));
  t.false((await gh.services.clients.get(clientId)).requireMfa);
});

test.serial('in Chromium, the enrolment page of a sign-in: title, lang, labels, one-time-code, strict CSP, no framing; then the app', async (t) => {
  if (!chromiumAvailable()) throw new Error('Debian chromium is required for the browser tests (apt-get install -y chromium)');
  const { gh, payroll } = t.context.off;
  await createUserDirectly(gh, 'wes', PASSWORD);
  const browser = await launchBrowser();
  try {
    const page = await (await browser.newContext()).newPage();
    const blocked: string[] = [];
    page.on('console', (m) => /Content Security Policy/.test(m.text()) && blocked.push(m.text()));
    await page.route(`${REDIRECT_URI}**`, (route) => route.fulfill({ status: 200, contentType: 'text/plain', body: 'back at the app' }));
    const pending = await authorizationRequest(payroll);
    await page.goto(pending.url);
    await page.getByLabel('Username').fill('wes');
    await page.getByLabel('Password').fill(PASSWORD);
    const answer = page.waitForResponse((r) => r.url().endsWith('/login') && r.request().method() === 'POST');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    const headers = (await answer).headers();
    t.regex(headers['content-security-policy'] ?? '', /default-src 'none'; script-src 'self'.*frame-ancestors 'none'/);
    t.is(headers['x-frame-options'], 'DENY');
    t.is(headers['cache-control'], 'no-store');
    await page.getByRole('heading', { name: 'Set up an authenticator app' }).waitFor();
    t.is(await page.title(), 'Set up an authenticator app · Gatehouse');
    t.is(await page.locator('html').getAttribute('lang'), 'en');
    const qrShown = await page.locator('img.qr').evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth > 0);
    t.true(qrShown, 'the QR code renders under the strict CSP');
    const code = page.getByLabel('Code from your app');
    t.is(await code.getAttribute('autocomplete'), 'one-time-code');
    t.is(await code.getAttribute('name'), 'code');
    await screenshotForDocs(page, 'mfa-enrolment');
    const secret = await page.getByLabel('Key, to type in by hand').inputValue();
    await code.fill(codeNow(secret));
    await page.getByRole('button', { name: 'Turn on' }).click();
    await page.getByRole('heading', { name: 'Your recovery codes' }).waitFor();
    t.is(await page.locator('.recovery-codes li').count(), 10);
    await page.getByRole('link', { name: 'Continue to Payroll' }).click();
    await page.waitForSelector('button[name="decision"][value="allow"]');
    await page.click('button[name="decision"][value="allow"]');
    await page.waitForURL((u) => u.href.startsWith(REDIRECT_URI));
    const tokens = await redeem(payroll, { url: page.url(), status: 200, html: '', headers: new Headers() }, pending);
    t.deepEqual(tokens.claims()!.amr, ['pwd', 'otp', 'mfa']);
    t.deepEqual(blocked, []);
  } finally {
    await browser.close();
  }
});

test.serial('in Chromium, a passkey that checks it is you is two factors: a require_mfa app takes it alone, with no setup', async (t) => {
  if (!chromiumAvailable()) throw new Error('Debian chromium is required for the browser tests (apt-get install -y chromium)');
  // Passkeys need a host name for their relying party id, not 127.0.0.1: a Gatehouse at localhost.
  const gh = await startTestGatehouse();
  const payrollClient = await createClient(gh, [
    '--name',
    'Payroll',
    '--type',
    'confidential',
    '--grant',
    'authorization_code',
    '--redirect-uri',
    REDIRECT_URI,
    '--require-mfa',
  ]);
  const payroll = await relyingParty(gh, payrollClient, 'basic');
  const id = await createUserDirectly(gh, 'xia', PASSWORD);
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    // The button, not the autofill (a virtual authenticator would answer the autofill at once).
    await page.addInitScript({ content: "Object.defineProperty(PublicKeyCredential, 'isConditionalMediationAvailable', { value: async () => false });" });
    await page.route(`${REDIRECT_URI}**`, (route) => route.fulfill({ status: 200, contentType: 'text/plain', body: 'back at the app' }));
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: 'internal',
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    });
    await page.goto(`${gh.config.issuer}/account`);
    await page.fill('input[name="username"]', 'xia');
    await page.fill('input[name="password"]', PASSWORD);
    await page.click('button[type="submit"]');
    await page.waitForURL(/\/account\?notice=signed-in$/);
    await page.fill('#passkey-name', 'Laptop');
    await page.fill('#passkey-add-password', PASSWORD);
    await page.getByRole('button', { name: 'Add a passkey' }).click();
    await page.getByRole('button', { name: 'Create the passkey' }).click();
    await page.waitForURL(/notice=passkey-added/);

    const pending = await authorizationRequest(payroll);
    await page.goto(pending.url);
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.waitForSelector('button[name="decision"][value="allow"]');
    await page.click('button[name="decision"][value="allow"]');
    await page.waitForURL((u) => u.href.startsWith(REDIRECT_URI));
    const claims = (await redeem(payroll, { url: page.url(), status: 200, html: '', headers: new Headers() }, pending)).claims()!;
    t.deepEqual(claims.amr, ['hwk', 'mfa']);
    t.false(await gh.services.totp.isEnrolled(id), 'no authenticator app was asked for');
  } finally {
    await browser.close();
    await gh.close();
  }
});
