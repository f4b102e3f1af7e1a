import anyTest, { type TestFn } from 'ava';
import { REDIS_TEST_URL, type TestGatehouse } from './support/gatehouse.ts';
import { findForm, FORM_CONTENT_TYPE, postForm } from './support/http.ts';
import {
  authorizationRequest,
  createClient,
  createUserDirectly,
  oauthError,
  oidc,
  REDIRECT_URI,
  redeem,
  relyingParty,
  signInAndAllow,
  startLoopbackGatehouse,
} from './support/relying-party.ts';
import { isLoginPage, signInToAccount, UserAgent, type Page } from './support/user-agent.ts';
import { AccountEvents } from '../src/account/events.ts';
import { LOGOUT_EVENT, LogoutReceiver } from './support/logout-receiver.ts';
import { chromiumAvailable, launchBrowser, screenshotForDocs } from './support/browser.ts';

const test = anyTest as TestFn<{ gh: TestGatehouse; rp: oidc.Configuration; base: string }>;

test.before(async (t) => {
  const gh = await startLoopbackGatehouse();
  const client = await createClient(gh, [
    '--name',
    'Team Wiki',
    '--type',
    'confidential',
    '--grant',
    'authorization_code',
    '--grant',
    'refresh_token',
    '--redirect-uri',
    REDIRECT_URI,
  ]);
  t.context = { gh, rp: await relyingParty(gh, client, 'basic'), base: gh.config.issuer };
});

test.after.always(async (t) => {
  await t.context.gh?.close();
});

/** The same person signs in to Team Wiki in `agent` (a browser of its own): the app gets its tokens. */
async function signInToApp(t: { context: { rp: oidc.Configuration } }, agent: UserAgent, username: string, password: string) {
  const pending = await authorizationRequest(t.context.rp);
  const landed = await signInAndAllow(agent, pending.url, username, password);
  return redeem(t.context.rp, landed, pending);
}

const userinfoStatus = async (base: string, accessToken: string) =>
  (await fetch(`${base}/userinfo`, { headers: { authorization: `Bearer ${accessToken}` } })).status;

/** Posts the form whose action matches `action` on `page` as it is, with `fields` changed or `omit` left out. */
async function post(agent: UserAgent, page: Page, action: RegExp, fields: Record<string, string> = {}, omit: string[] = []): Promise<Page> {
  const form = findForm(page, { action });
  for (const [k, v] of Object.entries(fields)) form.fields.set(k, v);
  for (const name of omit) form.fields.delete(name);
  return agent.open(form.target, { method: 'POST', headers: FORM_CONTENT_TYPE, body: form.fields });
}

/** The page checks every page of Gatehouse passes: a title, a language, labelled fields, strict CSP, no framing, no inline script. */
function checkPage(
  t: {
    is: (a: unknown, b: unknown, m?: string) => void;
    regex: (s: string, r: RegExp, m?: string) => void;
    notRegex: (s: string, r: RegExp, m?: string) => void;
    true: (v: boolean, m?: string) => void;
  },
  page: Page,
  title: RegExp,
) {
  t.regex(page.html, /<html lang="en">/);
  t.regex(/<title>([^<]*)<\/title>/.exec(page.html)?.[1] ?? '', title);
  t.regex(page.headers.get('content-security-policy') ?? '', /default-src 'none'; script-src 'self'.*frame-ancestors 'none'/);
  t.is(page.headers.get('x-frame-options'), 'DENY');
  t.regex(page.headers.get('cache-control') ?? '', /no-store/);
  t.notRegex(page.html, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script');
  for (const input of page.html.matchAll(/<input\b([^>]*)>/g)) {
    const attrs = input[1]!;
    if (/type="hidden"/.test(attrs)) continue;
    const id = /\bid="([^"]+)"/.exec(attrs)?.[1];
    t.true(id !== undefined && page.html.includes(`<label for="${id}">`), `the field ${attrs.trim()} has a label`);
    t.regex(attrs, /autocomplete="[^"]+"/, `the field ${id} says what it holds (autocomplete)`);
  }
}

test('a person signs in to /account without any app; a wrong password is refused there, and both show as events with their address', async (t) => {
  const { gh, base } = t.context;
  await createUserDirectly(gh, 'ada', 'analytical-engine-1843');
  const agent = new UserAgent();

  const login = await agent.open(`${base}/account`);
  t.is(new URL(login.url).pathname, '/account/login', 'the account page sends a stranger to its sign-in form');
  t.is(login.status, 200);
  checkPage(t, login, /^Sign in to your account · Gatehouse$/);
  t.regex(login.html, /autocomplete="current-password"/);

  const forgedLogin = await post(agent, login, /\/account\/login$/, { username: 'ada', password: 'analytical-engine-1843' }, ['csrf']);
  t.is(forgedLogin.status, 403);
  t.regex(forgedLogin.html, /Your form expired/);
  const empty = await post(agent, login, /\/account\/login$/, { username: 'ada', password: '' });
  t.is(empty.status, 400);
  t.regex(empty.html, /Enter your username and password/);
  t.false(agent.cookieNames().includes('gatehouse.account'), 'neither signed in');

  const wrong = await agent.submit(login, /\/account\/login$/, { username: 'ada', password: 'difference-engine' });
  t.is(wrong.status, 401);
  t.regex(wrong.html, /role="alert">The username or password is not correct/);

  const account = await agent.submit(wrong, /\/account\/login$/, { username: 'ada', password: 'analytical-engine-1843' });
  t.is(new URL(account.url).pathname, '/account');
  t.is(account.status, 200);
  checkPage(t, account, /^Your account · Gatehouse$/);
  t.regex(account.html, /Signed in as <strong>ada<\/strong>/);
  t.regex(account.html, /value="ada@example.com"[^>]*readonly/, 'without mail, the address is shown, not editable here');
  t.regex(account.html, /You have not allowed any app yet/);
  t.regex(account.html, /autocomplete="new-password"/);
  t.true(agent.cookieNames().includes('gatehouse.account'));
  t.false(agent.cookieNames().includes('_session'), 'no app session was opened for it');

  const events = account.html.slice(account.html.indexOf('Recent security events'));
  t.regex(events, /Signed in<\/td><td><code>127\.0\.0\.1<\/code>/);
  t.regex(events, /Wrong password typed<\/td><td><code>127\.0\.0\.1<\/code>/);
  t.true(events.indexOf('Signed in') < events.indexOf('Wrong password typed'), 'newest first');

  const forgedLogout = await post(agent, account, /\/account\/logout$/, {}, ['csrf']);
  t.is(forgedLogout.status, 403, 'another site cannot sign the person out either');
  t.is((await agent.open(`${base}/account`)).status, 200);
  const signedOut = await post(agent, account, /\/account\/logout$/);
  t.is(new URL(signedOut.url).pathname, '/account/login');
  t.true(isLoginPage(await agent.open(`${base}/account`)), 'signed out of the account page');
});

test('a person changes their name; an invalid name or a form without its CSRF token changes nothing', async (t) => {
  const { gh, base } = t.context;
  const sub = await createUserDirectly(gh, 'grace', 'hopper-rules-1906');
  const agent = new UserAgent();
  const account = await signInToAccount(agent, base, 'grace', 'hopper-rules-1906');

  const saved = await post(agent, account, /\/account\/name$/, { name: 'Grace Hopper' });
  t.is(saved.status, 200);
  t.regex(saved.html, /Your name is saved/);
  t.regex(saved.html, /id="name"[^>]*value="Grace Hopper"/);
  t.is((await gh.services.accounts.get(sub)).name, 'Grace Hopper');
  t.regex(saved.html, /Name changed/);

  const tooLong = await post(agent, saved, /\/account\/name$/, { name: 'G'.repeat(301) });
  t.is(tooLong.status, 400);
  t.regex(tooLong.html, /role="alert">Your name must be at most 300 characters/);
  const withBreak = await post(agent, saved, /\/account\/name$/, { name: 'Grace\r\nSet-Cookie: x' });
  t.is(withBreak.status, 400);
  t.regex(withBreak.html, /cannot contain line breaks/);
  const forged = await post(agent, saved, /\/account\/name$/, { name: 'Mallory' }, ['csrf']);
  t.is(forged.status, 403);
  t.regex(forged.html, /did not come from your account page/);
  const otherToken = await post(agent, saved, /\/account\/name$/, { name: 'Mallory', csrf: 'x'.repeat(43) });
  t.is(otherToken.status, 403);
  t.is((await gh.services.accounts.get(sub)).name, 'Grace Hopper', 'nothing changed');

  const stranger = await postForm(new UserAgent(), `${base}/account/name`, { name: 'Mallory' });
  t.is(stranger.status, 303);
  t.is(stranger.location, '/account/login', 'a form without a session goes to sign-in');
  t.is((await gh.services.accounts.get(sub)).name, 'Grace Hopper');
});

test('a person changes their password: the current one is required; their other sessions and refresh tokens end, this page stays signed in', async (t) => {
  const { gh, base, rp } = t.context;
  await createUserDirectly(gh, 'linus', 'old-password-1991');
  const laptop = new UserAgent([REDIRECT_URI]);
  const phone = new UserAgent([REDIRECT_URI]);
  const tokens = await signInToApp(t, phone, 'linus', 'old-password-1991');
  const otherAccountPage = new UserAgent();
  await signInToAccount(otherAccountPage, base, 'linus', 'old-password-1991');
  const account = await signInToAccount(laptop, base, 'linus', 'old-password-1991');
  t.regex(account.html, /Team Wiki/);

  const wrongCurrent = await post(laptop, account, /\/account\/password$/, {
    current_password: 'guess-guess',
    password: 'new-password-2026',
    password_confirm: 'new-password-2026',
  });
  t.is(wrongCurrent.status, 401);
  t.regex(wrongCurrent.html, /Your current password is not correct\. Nothing was changed/);
  const differ = await post(laptop, account, /\/account\/password$/, {
    current_password: 'old-password-1991',
    password: 'new-password-2026',
    password_confirm: 'new-password-2027',
  });
  t.is(differ.status, 400);
  t.regex(differ.html, /differ/);
  const short = await post(laptop, account, /\/account\/password$/, { current_password: 'old-password-1991', password: 'short', password_confirm: 'short' });
  t.is(short.status, 400);
  t.regex(short.html, /at least 8 characters/);
  const empty = await post(laptop, account, /\/account\/password$/, { current_password: '', password: '', password_confirm: '' });
  t.is(empty.status, 400);
  const forged = await post(
    laptop,
    account,
    /\/account\/password$/,
    { current_password: 'old-password-1991', password: 'new-password-2026', password_confirm: 'new-password-2026' },
    ['csrf'],
  );
  t.is(forged.status, 403);
  t.truthy(await gh.services.accounts.verifyCredentials('linus', 'old-password-1991'), 'the password is unchanged so far');
  t.truthy(await oidc.refreshTokenGrant(rp, tokens.refresh_token!), 'and the app still refreshes');

  const changed = await post(laptop, account, /\/account\/password$/, {
    current_password: 'old-password-1991',
    password: 'new-password-2026',
    password_confirm: 'new-password-2026',
  });
  t.is(new URL(changed.url).pathname, '/account');
  t.regex(changed.html, /Your password is changed/);
  t.regex(changed.html, /Password changed/);
  t.regex(changed.html, /No app session is open/, 'the app sessions ended');
  t.true(isLoginPage(await otherAccountPage.open(`${base}/account`)), 'the account page on another device is signed out');
  t.is((await laptop.open(`${base}/account`)).status, 200, 'this one stays signed in');
  t.is(await oauthError(oidc.refreshTokenGrant(rp, tokens.refresh_token!)), 'invalid_grant');
  t.true(isLoginPage(await phone.open((await authorizationRequest(rp)).url)), 'the app asks the phone to sign in again');
  t.falsy(await gh.services.accounts.verifyCredentials('linus', 'old-password-1991'));
  t.truthy(await gh.services.accounts.verifyCredentials('linus', 'new-password-2026'));
});

test('a person removes an app’s access: its access and refresh tokens stop working, and the page lists it no more', async (t) => {
  const { gh, base, rp } = t.context;
  await createUserDirectly(gh, 'margaret', 'apollo-guidance-1969');
  const agent = new UserAgent([REDIRECT_URI]);
  const tokens = await signInToApp(t, agent, 'margaret', 'apollo-guidance-1969');
  t.is(await userinfoStatus(base, tokens.access_token), 200);
  const account = await signInToAccount(agent, base, 'margaret', 'apollo-guidance-1969');
  const apps = account.html.slice(account.html.indexOf('Apps you allowed'), account.html.indexOf('Where you are signed in'));
  t.regex(apps, /<strong>Team Wiki<\/strong>/);
  for (const scope of ['openid', 'profile', 'email']) t.regex(apps, new RegExp(`<code>${scope}</code>`));

  const unknown = await post(agent, account, /\/account\/apps\/remove$/, { grant: 'not-a-grant-of-hers' });
  t.is(unknown.status, 404);
  t.regex(unknown.html, /removed already, or is not yours\. Nothing was changed/);
  const forged = await post(agent, account, /\/account\/apps\/remove$/, {}, ['csrf']);
  t.is(forged.status, 403);
  t.is(await userinfoStatus(base, tokens.access_token), 200, 'nothing changed');

  const removed = await post(agent, account, /\/account\/apps\/remove$/);
  t.regex(removed.html, /The app’s access is removed/);
  t.regex(removed.html, /You have not allowed any app yet/);
  t.regex(removed.html, /An app’s access removed/);
  t.is(await userinfoStatus(base, tokens.access_token), 401);
  t.is(await oauthError(oidc.refreshTokenGrant(rp, tokens.refresh_token!)), 'invalid_grant');
});

test('a person ends one session, then every session; the account page and the apps sign out separately', async (t) => {
  const { gh, base, rp } = t.context;
  const sub = await createUserDirectly(gh, 'barbara', 'liskov-substitution-87');
  const desk = new UserAgent([REDIRECT_URI]);
  const tablet = new UserAgent([REDIRECT_URI]);
  const deskTokens = await signInToApp(t, desk, 'barbara', 'liskov-substitution-87');
  await signInToApp(t, tablet, 'barbara', 'liskov-substitution-87');
  const otherAccountPage = new UserAgent();
  await signInToAccount(otherAccountPage, base, 'barbara', 'liskov-substitution-87');
  const account = await signInToAccount(desk, base, 'barbara', 'liskov-substitution-87');
  t.is((account.html.match(/action="\/account\/sessions\/end"/g) ?? []).length, 2, 'two app sessions listed');

  // Signing out of the account page leaves the app signed in, and the app's logout leaves the page signed in.
  const out = await post(desk, account, /\/account\/logout$/);
  t.true(isLoginPage(out));
  t.true((await desk.open((await authorizationRequest(rp)).url)).url.startsWith(REDIRECT_URI), 'the desk is still signed in to the app');
  await signInToAccount(desk, base, 'barbara', 'liskov-substitution-87');
  const logout = await fetch(`${base}/logout`, { method: 'POST', headers: { authorization: `Bearer ${deskTokens.access_token}` } });
  t.true(logout.ok, `app logout answered ${logout.status}`);
  t.is((await desk.open(`${base}/account`)).status, 200, 'the account page is still signed in');
  // POST /logout signs the person out of that app everywhere: both browsers sign in to it again.
  await signInToApp(t, desk, 'barbara', 'liskov-substitution-87');
  await signInToApp(t, tablet, 'barbara', 'liskov-substitution-87');

  const listed = await desk.open(`${base}/account`);
  const sessions = await gh.services.grants.sessionsOf(sub);
  t.is(sessions.length, 2);
  const unknown = await post(desk, listed, /\/account\/sessions\/end$/, { session: 'no-such-session' });
  t.is(unknown.status, 404);
  t.regex(unknown.html, /has ended already, or is not yours/);
  const forged = await post(desk, listed, /\/account\/sessions\/end$/, {}, ['csrf']);
  t.is(forged.status, 403);
  t.is((await gh.services.grants.sessionsOf(sub)).length, 2, 'nothing changed');

  const ended = await post(desk, listed, /\/account\/sessions\/end$/, { session: sessions[1]!.handle });
  t.regex(ended.html, /That session is signed out/);
  t.regex(ended.html, /A session signed out/);
  t.deepEqual(
    (await gh.services.grants.sessionsOf(sub)).map((s) => s.handle),
    [sessions[0]!.handle],
  );

  const forgedAll = await post(desk, ended, /\/account\/sessions\/end-all$/, {}, ['csrf']);
  t.is(forgedAll.status, 403);
  const all = await post(desk, ended, /\/account\/sessions\/end-all$/);
  t.regex(all.html, /You are signed out everywhere else/);
  t.regex(all.html, /No app session is open/);
  t.is((await gh.services.grants.sessionsOf(sub)).length, 0);
  t.true(isLoginPage(await tablet.open((await authorizationRequest(rp)).url)), 'the tablet must sign in to the app again');
  t.true(isLoginPage(await desk.open((await authorizationRequest(rp)).url)), 'and so must the desk');
  t.true(isLoginPage(await otherAccountPage.open(`${base}/account`)), 'the account page elsewhere is signed out');
  t.is((await desk.open(`${base}/account`)).status, 200, 'this page stays signed in');
});

for (const database of ['sqlite', 'pg'] as const) {
  test(`the account events are kept bounded: the newest thirty per person (${database})`, async (t) => {
    const gh = database === 'sqlite' ? t.context.gh : await startLoopbackGatehouse({ database });
    t.teardown(() => (gh === t.context.gh ? undefined : gh.close()));
    const sub = await createUserDirectly(gh, 'edsger', 'goto-considered-1968');
    let now = Date.UTC(2026, 11, 1);
    const events = new AccountEvents(
      gh.services.db,
      async () => undefined,
      (err) => t.fail(String(err)),
      () => now++,
    );
    for (let i = 0; i < 45; i++) await events.record(sub, i === 44 ? 'account.name_changed' : 'login.failed', '192.0.2.7');
    const kept = await events.recentOf(sub);
    t.is(kept.length, AccountEvents.KEEP);
    t.is(kept[0]!.text, 'Name changed');
    t.is(Number((await gh.services.db('account_events').where({ user_id: sub }).count({ n: '*' }))[0]!.n), AccountEvents.KEEP);

    // And the page shows them, from the database the server runs on.
    const account = await signInToAccount(new UserAgent(), gh.config.issuer, 'edsger', 'goto-considered-1968');
    t.is((account.html.match(/<tr><td><time/g) ?? []).length, AccountEvents.KEEP);
    t.regex(account.html, /<td>Signed in<\/td>/);
  });
}

test('in a real browser, a person signs in at /account, renames themself and removes an app’s access by clicking', async (t) => {
  if (!chromiumAvailable()) throw new Error('Debian chromium is required for the browser tests (apt-get install -y chromium)');
  const { gh, base } = t.context;
  await createUserDirectly(gh, 'katherine', 'orbital-mechanics-62');
  const tokens = await signInToApp(t, new UserAgent([REDIRECT_URI]), 'katherine', 'orbital-mechanics-62');
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    const blocked: string[] = [];
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) blocked.push(m.text());
    });
    await page.goto(`${base}/account`);
    t.is(await page.locator('h1').textContent(), 'Sign in to your account');
    await page.getByLabel('Username').fill('katherine');
    await page.getByLabel('Password').fill('wrong-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    t.regex((await page.getByRole('alert').textContent())!, /not correct/);
    await page.getByLabel('Password').fill('orbital-mechanics-62');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${base}/account?notice=signed-in`);

    await page.getByLabel('Name', { exact: true }).fill('Katherine Johnson');
    await page.getByRole('button', { name: 'Save name' }).click();
    await page.waitForURL(/notice=name-saved/);
    t.is(await page.getByLabel('Name', { exact: true }).inputValue(), 'Katherine Johnson');
    t.false(await page.getByLabel('Email', { exact: true }).isEditable(), 'the address is read-only');
    t.is(await page.getByLabel('Current password').getAttribute('autocomplete'), 'current-password');
    t.is(await page.getByLabel('New password', { exact: true }).getAttribute('autocomplete'), 'new-password');
    t.true(await page.getByRole('button', { name: 'Remove access of Team Wiki' }).isVisible());
    t.true(await page.getByRole('row', { name: /Wrong password typed/ }).isVisible());
    await screenshotForDocs(page, 'account', { fullPage: true });

    await page.getByRole('button', { name: 'Remove access of Team Wiki' }).click();
    await page.waitForURL(/notice=access-removed/);
    t.regex((await page.getByRole('status').textContent())!, /access is removed/);
    t.is(await userinfoStatus(base, tokens.access_token), 401);
    t.deepEqual(blocked, [], 'nothing on the page is blocked by the CSP');
  } finally {
    await browser.close();
  }
});

test('wrong passwords at /account are throttled with the same counters as the apps’ sign-in page', async (t) => {
  const { gh, base, rp } = t.context;
  await createUserDirectly(gh, 'alan', 'enigma-machine-1939');
  const agent = new UserAgent([REDIRECT_URI]);
  let page = await agent.open(`${base}/account/login`);
  for (let i = 0; i < 5; i++) {
    page = await agent.submit(page, /\/account\/login$/, { username: 'alan', password: `wrong-${i}` });
    t.is(page.status, 401);
  }
  const locked = await agent.submit(page, /\/account\/login$/, { username: 'alan', password: 'enigma-machine-1939' });
  t.is(locked.status, 429, 'even the right password waits out the lock');
  t.truthy(locked.headers.get('retry-after'));
  t.regex(locked.html, /role="alert">/);
  t.false(agent.cookieNames().includes('gatehouse.account'));

  const appLogin = await agent.open((await authorizationRequest(rp)).url);
  const atApp = await agent.submit(appLogin, /\/login$/, { username: 'alan', password: 'enigma-machine-1939' });
  t.is(atApp.status, 429, 'the app’s sign-in page is locked for alan from here too');
});

test('an app with a back-channel logout URI hears when its session is signed out from /account', async (t) => {
  const { gh, base } = t.context;
  const receiver = new LogoutReceiver();
  let clientId = '';
  await receiver.start(gh.config.issuer, () => clientId);
  t.teardown(() => receiver.close());
  const app = await createClient(gh, [
    '--name',
    'Chat',
    '--type',
    'confidential',
    '--grant',
    'authorization_code',
    '--redirect-uri',
    REDIRECT_URI,
    '--backchannel-logout-uri',
    receiver.url,
    '--backchannel-logout-session-required',
  ]);
  clientId = app.clientId;
  const chat = await relyingParty(gh, app, 'basic');
  const sub = await createUserDirectly(gh, 'hedy', 'frequency-hopping-42');
  const agent = new UserAgent([REDIRECT_URI]);
  const pending = await authorizationRequest(chat);
  const tokens = await redeem(chat, await signInAndAllow(agent, pending.url, 'hedy', 'frequency-hopping-42'), pending);

  const account = await signInToAccount(agent, base, 'hedy', 'frequency-hopping-42');
  t.regex(account.html, /<span class="muted">Apps:<\/span> Chat/);
  await post(agent, account, /\/account\/sessions\/end$/);
  const logout = await receiver.tokenFor(sub);
  t.is(logout.claims.sid, tokens.claims()!.sid);
  t.truthy((logout.claims.events as Record<string, unknown>)[LOGOUT_EVENT]);
});

test('a person an operator disables is signed out of /account at their next request', async (t) => {
  const { gh, base } = t.context;
  const sub = await createUserDirectly(gh, 'frances', 'compiler-optimizer-1966');
  const agent = new UserAgent();
  const account = await signInToAccount(agent, base, 'frances', 'compiler-optimizer-1966');
  t.is(account.status, 200);
  await gh.services.accounts.setDisabled(sub, true);
  t.true(isLoginPage(await agent.open(`${base}/account`)));
  const after = await postForm(agent, `${base}/account/name`, { name: 'Someone else', csrf: 'x'.repeat(43) });
  t.is(after.location, '/account/login');
  t.is((await gh.services.accounts.get(sub)).name, '');
});

test('a form’s address opened as a page shows the account page; an unknown address under /account is a 404 page', async (t) => {
  const { gh, base } = t.context;
  await createUserDirectly(gh, 'john', 'lisp-machine-1958');
  const agent = new UserAgent();
  await signInToAccount(agent, base, 'john', 'lisp-machine-1958');
  const back = await agent.open(`${base}/account/password`);
  t.is(new URL(back.url).pathname, '/account');
  t.is(back.status, 200);
  const unknown = await agent.open(`${base}/account/nothing-here`, { headers: { accept: 'text/html' } });
  t.is(unknown.status, 404);
  t.regex(unknown.html, /<html lang="en">/);
  const stranger = await new UserAgent().open(`${base}/account/nothing-here`);
  t.is(new URL(stranger.url).pathname, '/account/login', 'a stranger learns nothing of what is there');
});

test('on PostgreSQL with Redis, Remove access ends the app’s access tokens (kept in Redis) and refresh tokens too', async (t) => {
  const gh = await startLoopbackGatehouse({ database: 'pg', env: { REDIS_URL: REDIS_TEST_URL, GATEHOUSE_REDIS_PREFIX: `account-page-${process.pid}:` } });
  t.teardown(() => gh.close());
  const client = await createClient(gh, [
    '--name',
    'Team Wiki',
    '--type',
    'confidential',
    '--grant',
    'authorization_code',
    '--grant',
    'refresh_token',
    '--redirect-uri',
    REDIRECT_URI,
  ]);
  const rp = await relyingParty(gh, client, 'basic');
  await createUserDirectly(gh, 'radia', 'spanning-tree-1985');
  const agent = new UserAgent([REDIRECT_URI]);
  const tokens = await signInToApp({ context: { rp } }, agent, 'radia', 'spanning-tree-1985');
  const base = gh.config.issuer;
  t.is(await userinfoStatus(base, tokens.access_token), 200);
  const account = await signInToAccount(agent, base, 'radia', 'spanning-tree-1985');
  t.regex(account.html, /<strong>Team Wiki<\/strong>/);
  const removed = await post(agent, account, /\/account\/apps\/remove$/);
  t.regex(removed.html, /The app’s access is removed/);
  t.is(await userinfoStatus(base, tokens.access_token), 401);
  t.is(await oauthError(oidc.refreshTokenGrant(rp, tokens.refresh_token!)), 'invalid_grant');
  const ended = await post(agent, removed, /\/account\/sessions\/end-all$/);
  t.regex(ended.html, /No app session is open/);
});
