/**
 * Attacks through the browser: framing our pages (clickjacking), injecting script, leaking codes
 * through the Referer, fixing a session id before sign-in, and stealing or cross-site sending
 * cookies. Every HTML page Gatehouse serves is listed here and checked.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import type { Browser } from 'playwright-core';
import { chromiumAvailable, launchBrowser } from './support/browser.ts';
import { freePort, startTestGatehouse, type TestGatehouse } from './support/gatehouse.ts';
import {
  authorizationRequest,
  callbackParams,
  createClient,
  createUserDirectly,
  oidc,
  POST_LOGOUT_URI,
  redeem,
  REDIRECT_URI,
  relyingParty,
  signInAndAllow,
  startLoopbackGatehouse,
} from './support/relying-party.ts';
import { findForm, postForm } from './support/http.ts';
import { isConsentPage, isLoginPage, UserAgent, type Page } from './support/user-agent.ts';
import { operatorAgent, parseSetCookie, ProxiedAgent } from './support/attacks.ts';

const PASSWORD = 'correct horse battery staple';
const OPERATOR = { username: 'root', password: 'operator-at-the-gate-2026' };

interface Context {
  gh: TestGatehouse;
  rp: oidc.Configuration;
  clientId: string;
  userId: string;
}

const test = anyTest as TestFn<Context>;

test.before(async (t) => {
  const gh = await startLoopbackGatehouse();
  const [web, userId] = await Promise.all([
    createClient(gh, ['--name', 'Web app', '--type', 'confidential', '--grant', 'authorization_code', '--redirect-uri', REDIRECT_URI, '--post-logout-redirect-uri', POST_LOGOUT_URI]),
    createUserDirectly(gh, 'alice', PASSWORD),
    gh.services.accounts.create({ username: OPERATOR.username, email: 'ops@example.com', password: OPERATOR.password, isAdmin: true }),
  ]);
  t.context = { gh, rp: await relyingParty(gh, web, 'basic'), clientId: web.clientId, userId };
});

test.after.always(async (t) => t.context.gh?.close());

/** The headers every HTML page must carry, and a body that needs no inline script or style. */
function assertProtectedPage(t: ExecutionContext<Context>, what: string, page: { status: number; headers: Headers; html: string }, expectedStatus?: number) {
  if (expectedStatus !== undefined) t.is(page.status, expectedStatus, `${what}: status`);
  t.regex(page.headers.get('content-type') ?? '', /^text\/html/, `${what}: not an HTML page`);
  const csp = page.headers.get('content-security-policy') ?? '';
  t.regex(csp, /frame-ancestors 'none'/, `${what}: CSP frame-ancestors`);
  t.is(page.headers.get('x-frame-options'), 'DENY', `${what}: X-Frame-Options`);
  t.is(page.headers.get('referrer-policy'), 'no-referrer', `${what}: Referrer-Policy`);
  t.is(page.headers.get('x-content-type-options'), 'nosniff', `${what}: nosniff`);
  const scriptSrc = /script-src ([^;]*)/.exec(csp)?.[1] ?? '';
  t.truthy(scriptSrc, `${what}: no script-src`);
  t.notRegex(scriptSrc, /'unsafe-inline'|'unsafe-eval'|\*|https?:/, `${what}: script-src is not strict: ${scriptSrc}`);
  t.notRegex(csp, /default-src [^;]*'unsafe-inline'/, `${what}: default-src allows inline`);
  // Inline script would be refused by the CSP (and so be broken) unless its hash is listed.
  for (const [, body] of page.html.matchAll(/<script\b(?![^>]*\bsrc=)[^>]*>([\s\S]*?)<\/script>/g)) {
    t.true(scriptSrc.includes("'sha256-"), `${what}: an inline script without its hash in the CSP: ${body!.slice(0, 80)}`);
  }
  t.notRegex(page.html, /<[a-z][^>]*\son[a-z]+=/i, `${what}: an inline event handler`);
  t.notRegex(page.html, /\sstyle="/, `${what}: an inline style attribute (style-src 'self' refuses it)`);
}

/** A person of the test's own (consent is remembered per person). */
async function person(gh: TestGatehouse): Promise<string> {
  const username = `p${randomBytes(5).toString('hex')}`;
  await createUserDirectly(gh, username, PASSWORD);
  return username;
}

/**
 * Follows the self-submitting forms oidc-provider writes (a browser runs their script): signing
 * out a previous account before another signs in.
 */
async function asBrowser(agent: UserAgent, page: Page): Promise<Page> {
  for (let i = 0; i < 3 && /document\.forms\[0\]\.submit\(\)/.test(page.html); i++) {
    const form = findForm(page, { action: /./ });
    page = await agent.open(form.target, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.fields });
  }
  return page;
}

async function get(agent: UserAgent, url: string): Promise<Page> {
  const res = await agent.request(url);
  return { url, status: res.status, headers: res.headers, html: await res.text() };
}

test('the sign-in, consent, error and sign-out pages cannot be framed and allow no inline script', async (t) => {
  const { gh, rp } = t.context;
  const username = await person(gh);
  const agent = new UserAgent([REDIRECT_URI, POST_LOGOUT_URI]);
  const pending = await authorizationRequest(rp);
  const login = await agent.open(pending.url);
  t.true(isLoginPage(login));
  assertProtectedPage(t, 'login page', login, 200);

  const wrong = await agent.submit(login, /\/login$/, { username, password: 'not it' });
  assertProtectedPage(t, 'login page after a wrong password', wrong, 401);
  const consent = await agent.submit(wrong, /\/login$/, { username, password: PASSWORD });
  t.true(isConsentPage(consent));
  assertProtectedPage(t, 'consent page', consent, 200);
  const forged = await agent.request(findForm(consent, { action: /\/consent$/ }).target, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ decision: 'allow' }),
  });
  assertProtectedPage(t, 'consent page refusing a missing CSRF token', { status: forged.status, headers: forged.headers, html: await forged.text() }, 403);
  const landed = await agent.submit(consent, /\/consent$/, { decision: 'allow' });
  const tokens = await redeem(rp, landed, pending);

  const badRedirect = await authorizationRequest(rp, { redirect_uri: 'http://127.0.0.1:8765/evil' });
  assertProtectedPage(t, 'authorize error page', await get(new UserAgent(), badRedirect.url), 400);
  assertProtectedPage(t, 'expired interaction page', await get(new UserAgent(), `${gh.url}/interaction/no-such-interaction`), 400);

  const endSession = oidc.buildEndSessionUrl(rp, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: POST_LOGOUT_URI });
  const confirm = await agent.open(endSession.href);
  t.regex(confirm.html, /op\.logoutForm/);
  assertProtectedPage(t, 'sign-out confirmation page', confirm, 200);
  const noSession = await get(new UserAgent(), `${gh.url}/session/end?client_id=${t.context.clientId}&post_logout_redirect_uri=${encodeURIComponent(POST_LOGOUT_URI)}`);
  assertProtectedPage(t, 'sign-out without a session (self-submitting form)', noSession, 200);
  assertProtectedPage(t, 'signed-out page', await get(new UserAgent(), `${gh.url}/session/end/success`), 200);
});

test('an error page rendered after a request failed (a sign-in form too large to read) still cannot be framed', async (t) => {
  const { rp } = t.context;
  const agent = new UserAgent([REDIRECT_URI]);
  const login = await agent.open((await authorizationRequest(rp)).url);
  const target = findForm(login, { action: /\/login$/ }).target;
  const res = await agent.request(target, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' },
    body: new URLSearchParams({ username: 'alice', password: 'x'.repeat(64 * 1024) }),
  });
  const page = { status: res.status, headers: res.headers, html: await res.text() };
  t.is(page.status, 413);
  assertProtectedPage(t, 'interaction error page', page);
});

test('every admin page cannot be framed and allows no inline script', async (t) => {
  const { gh, clientId, userId } = t.context;
  const { agent, csrf } = await operatorAgent(gh, OPERATOR.username, OPERATOR.password);
  assertProtectedPage(t, 'admin sign-in page', await get(new UserAgent(), `${gh.url}/admin/login`), 200);
  for (const path of [
    '/admin/clients',
    '/admin/clients?q=web',
    '/admin/clients/new',
    `/admin/clients/${clientId}`,
    `/admin/clients/${clientId}/delete`,
    '/admin/users',
    '/admin/users/new',
    `/admin/users/${userId}`,
    '/admin/audit',
  ]) {
    assertProtectedPage(t, path, await get(agent, `${gh.url}${path}`), 200);
  }
  assertProtectedPage(t, 'admin not-found page', await get(agent, `${gh.url}/admin/clients/no-such-client`), 404);
  const refused = await agent.request(`${gh.url}/admin/clients/${clientId}/disable`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'csrf=wrong' });
  assertProtectedPage(t, 'admin CSRF refusal page', { status: refused.status, headers: refused.headers, html: await refused.text() }, 403);
  const created = await agent.request(`${gh.url}/admin/clients`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ csrf, name: 'Framed service', type: 'confidential', grantTypes: 'client_credentials' }),
  });
  const secretPage = { status: created.status, headers: created.headers, html: await created.text() };
  t.regex(secretPage.html, /client-secret/);
  assertProtectedPage(t, 'the page showing a new secret once', secretPage, 200);
  t.regex(secretPage.headers.get('cache-control') ?? '', /no-store/, 'a page with a secret is never cached');
});

test('the redirect that carries the code to the app sends no Referer and is never cached', async (t) => {
  const { rp } = t.context;
  const pending = await authorizationRequest(rp);
  const landed = await signInAndAllow(new UserAgent([REDIRECT_URI]), pending.url, 'alice', PASSWORD);
  t.truthy(callbackParams(landed)?.get('code'), landed.url);
  t.is(landed.headers.get('referrer-policy'), 'no-referrer');
  // Once consented, the code comes straight from /authorize: that redirect too.
  const again = await authorizationRequest(rp);
  const agent = new UserAgent([REDIRECT_URI]);
  await signInAndAllow(agent, (await authorizationRequest(rp)).url, 'alice', PASSWORD);
  const res = await agent.request(again.url);
  t.is(res.status, 303);
  t.truthy(new URL(res.headers.get('location')!).searchParams.get('code'));
  t.is(res.headers.get('referrer-policy'), 'no-referrer');
  t.regex(res.headers.get('cache-control') ?? '', /no-store/);
});

// A browser: the one inline script oidc-provider writes runs under our CSP, and nothing else would.

test('in a real browser, signing out without a session still carries the person back to the app (the self-submitting page is allowed by its hash)', async (t) => {
  if (!chromiumAvailable()) return t.fail('Debian chromium is required for the browser tests');
  const { gh, clientId } = t.context;
  const port = await freePort();
  const landing = `http://127.0.0.1:${port}/signed-out`;
  const received: string[] = [];
  const server = http.createServer((req, res) => {
    received.push(`${req.method} ${req.url}`);
    res.setHeader('content-type', 'text/html');
    res.end('<p>back at the app</p>');
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  await gh.services.clients.update(clientId, { postLogoutRedirectUris: [POST_LOGOUT_URI, landing] });
  let browser: Browser | undefined;
  try {
    browser = await launchBrowser();
    const page = await browser.newPage();
    const violations: string[] = [];
    page.on('console', (m) => m.text().includes('Content Security Policy') && violations.push(m.text()));
    await page.goto(`${gh.url}/session/end?client_id=${clientId}&post_logout_redirect_uri=${encodeURIComponent(landing)}&state=st-1`);
    await page.waitForURL((u) => u.href.startsWith(landing), { timeout: 10_000 }).catch(() => undefined);
    t.true(page.url().startsWith(landing), `the browser stayed at ${page.url()} (CSP: ${violations.join(' | ')})`);
    t.is(new URL(page.url()).searchParams.get('state'), 'st-1');
    t.deepEqual(violations, []);
  } finally {
    await browser?.close();
    server.close();
  }
});

// Session fixation.

test("a session cookie planted before sign-in is not adopted: the person's session gets a new id the planter does not hold", async (t) => {
  const { gh, rp } = t.context;
  // The attacker signs in as herself and plants her session cookie, and a made-up one, in the victim's browser.
  const mallory = await createUserDirectly(gh, `mallory${Date.now()}`, PASSWORD).then(async (sub) => ({ sub, username: (await gh.services.accounts.get(sub)).username }));
  const attacker = new UserAgent([REDIRECT_URI]);
  await signInAndAllow(attacker, (await authorizationRequest(rp)).url, mallory.username, PASSWORD);
  const planted = new Map(attacker.cookieEntries().filter(([name]) => name.startsWith('_session')));
  t.truthy(planted.get('_session'), 'the attacker has a session cookie to plant');

  for (const plant of [planted, new Map([['_session', 'x'.repeat(43)]])]) {
    const victim = new UserAgent([REDIRECT_URI]);
    for (const [name, value] of plant) victim.setCookie(name, value);
    const pending = await authorizationRequest(rp, { prompt: 'login' });
    let page = await asBrowser(victim, await victim.open(pending.url));
    if (isLoginPage(page)) page = await asBrowser(victim, await victim.submit(page, /\/login$/, { username: 'alice', password: PASSWORD }));
    if (isConsentPage(page)) page = await victim.submit(page, /\/consent$/, { decision: 'allow' });
    const landed = page;
    t.is((await redeem(rp, landed, pending)).claims()!.sub, t.context.userId);
    t.truthy(victim.cookie('_session'));
    t.not(victim.cookie('_session'), plant.get('_session'), 'the planted session id was kept through sign-in');
  }

  // Whatever the attacker's copy opens, it is not alice's sign-in.
  const silent = await authorizationRequest(rp, { prompt: 'none' });
  const page = await attacker.open(silent.url);
  const code = callbackParams(page)?.get('code');
  if (code) t.not((await redeem(rp, page, silent)).claims()!.sub, t.context.userId);
  else t.truthy(callbackParams(page)?.get('error'));
});

test('an admin session cookie from before sign-in is not adopted, and the earlier session stops working', async (t) => {
  const { gh } = t.context;
  const first = await operatorAgent(gh, OPERATOR.username, OPERATOR.password);
  const before = first.agent.cookie('gatehouse.admin');
  const beforeSig = first.agent.cookie('gatehouse.admin.sig');
  t.truthy(before);
  // The same browser signs in again (or someone who planted that cookie waits for it to).
  const again = await postForm(first.agent, `${gh.url}/admin/login`, { csrf: first.agent.cookie('gatehouse.csrf')!, ...OPERATOR });
  t.is(again.status, 303);
  t.is(again.location, '/admin/clients');
  t.truthy(first.agent.cookie('gatehouse.admin'));
  t.not(first.agent.cookie('gatehouse.admin'), before);

  const holder = new UserAgent();
  holder.setCookie('gatehouse.admin', before!);
  holder.setCookie('gatehouse.admin.sig', beforeSig!);
  const res = await holder.request(`${gh.url}/admin/clients`);
  t.is(res.status, 303, 'the session from before the sign-in still opens the admin');
  t.is(res.headers.get('location'), '/admin/login');

  // A made-up cookie is not adopted either.
  const planted = new UserAgent();
  planted.setCookie('gatehouse.admin', 'A'.repeat(43));
  await operatorAgent(gh, OPERATOR.username, OPERATOR.password, planted);
  t.not(planted.cookie('gatehouse.admin'), 'A'.repeat(43));
});

// Cookie flags.

const OUR_COOKIES = ['_interaction', '_interaction_resume', '_session', 'gatehouse.csrf', 'gatehouse.admin'];

/** A person signs in and out, and an operator signs in: every Set-Cookie line on the way. */
async function everyCookie(gh: TestGatehouse, rp: oidc.Configuration, agentFor: (stopAt: string[]) => UserAgent & { setCookies?: string[] }, origin: string) {
  const lines: string[] = [];
  const record = (agent: UserAgent) => {
    const original = agent.request.bind(agent);
    agent.request = async (url, init) => {
      const res = await original(url, init);
      lines.push(...res.headers.getSetCookie());
      return res;
    };
    return agent;
  };
  const person = record(agentFor([REDIRECT_URI, POST_LOGOUT_URI]));
  const pending = await authorizationRequest(rp);
  const landed = await signInAndAllow(person, pending.url.replace(gh.config.issuer, origin), 'alice', PASSWORD);
  if (!callbackParams(landed)) throw new Error(`sign-in did not reach the app: ${landed.url} (${landed.status}) ${landed.html.slice(0, 300)}`);
  const operator = record(agentFor([]));
  await operatorAgent({ ...gh, url: origin } as TestGatehouse, OPERATOR.username, OPERATOR.password, operator);
  return lines.map(parseSetCookie).filter((c) => c.attributes.get('expires') !== 'thu, 01 jan 1970 00:00:00 gmt');
}

test('every cookie is HttpOnly and SameSite, and not Secure on a plain-http issuer', async (t) => {
  const { gh, rp } = t.context;
  const cookies = await everyCookie(gh, rp, (stopAt) => new UserAgent(stopAt), gh.url);
  const names = new Set(cookies.map((c) => c.name.replace(/\.sig$/, '')));
  for (const name of OUR_COOKIES) t.true(names.has(name), `no ${name} cookie was set`);
  for (const c of cookies) {
    t.true(c.attributes.has('httponly'), `${c.name} is not HttpOnly`);
    t.regex(c.attributes.get('samesite') ?? '', /^(lax|strict)$/, `${c.name} has no SameSite`);
  }
  t.is(cookies.find((c) => c.name === 'gatehouse.admin')?.attributes.get('samesite'), 'strict');
  t.is(cookies.find((c) => c.name === 'gatehouse.csrf')?.attributes.get('samesite'), 'strict');
});

test('behind a trusted TLS proxy (GATEHOUSE_TRUST_PROXY=true, X-Forwarded-Proto: https), every cookie is also Secure', async (t) => {
  const port = await freePort();
  const origin = 'https://id.example.test';
  const gh = await startTestGatehouse({ env: { PORT: String(port), GATEHOUSE_ISSUER: origin, GATEHOUSE_TRUST_PROXY: 'true' } });
  try {
    const [client] = await Promise.all([
      createClient(gh, ['--name', 'Web app', '--type', 'confidential', '--grant', 'authorization_code', '--redirect-uri', REDIRECT_URI]),
      createUserDirectly(gh, 'alice', PASSWORD),
      gh.services.accounts.create({ username: OPERATOR.username, email: 'ops@example.com', password: OPERATOR.password, isAdmin: true }),
    ]);
    const rp = new oidc.Configuration({ issuer: origin, authorization_endpoint: `${origin}/authorize`, token_endpoint: `${origin}/token` }, client.clientId, client.clientSecret);
    const cookies = await everyCookie(gh, rp, (stopAt) => new ProxiedAgent(gh, origin, stopAt), origin);
    const names = new Set(cookies.map((c) => c.name.replace(/\.sig$/, '')));
    for (const name of OUR_COOKIES) t.true(names.has(name), `no ${name} cookie was set`);
    for (const c of cookies) {
      t.true(c.attributes.has('secure'), `${c.name} is not Secure behind https`);
      t.true(c.attributes.has('httponly'), `${c.name} is not HttpOnly`);
      t.regex(c.attributes.get('samesite') ?? '', /^(lax|strict|none)$/, `${c.name} has no SameSite`);
    }
  } finally {
    await gh.close();
  }
});
