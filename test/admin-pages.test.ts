import anyTest, { type TestFn } from 'ava';
import type { Browser, BrowserContext, Page, Response } from 'playwright-core';
import { CLI_ACTOR } from '../src/admin/audit.ts';
import { chromiumAvailable, launchBrowser, screenshotForDocs } from './support/browser.ts';
import { startTestGatehouse, type TestGatehouse } from './support/gatehouse.ts';
import { createUser, createUserDirectly } from './support/relying-party.ts';
import { basicAuth } from './support/http.ts';

const test = anyTest as TestFn<{ gh: TestGatehouse; browser: Browser; operator: BrowserContext }>;

const OPERATOR = { username: 'root', password: 'operator-at-the-gate-2026' };

test.before(async (t) => {
  if (!chromiumAvailable()) throw new Error('Debian chromium is required for the browser tests (apt-get install -y chromium)');
  const gh = await startTestGatehouse();
  // The operator, made the way an operator bootstraps Gatehouse: with the CLI.
  await createUser(gh, OPERATOR.username, OPERATOR.password, ['--admin']);
  const browser = await launchBrowser();
  // Most tests act as one operator, signed in once (the tests run one after the other).
  const operator = await signIn(gh, browser);
  t.context = { gh, browser, operator: operator.context };
  await operator.page.close();
});

test.after.always(async (t) => {
  await t.context.operator?.close();
  await t.context.browser?.close();
  await t.context.gh?.close();
});


async function clientCredentialsToken(gh: TestGatehouse, clientId: string, clientSecret: string) {
  const res = await fetch(`${gh.url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(clientId, clientSecret) },
    body: new URLSearchParams({ grant_type: 'client_credentials' }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** A fresh browser profile, signed in to the admin at /admin/login as a person does it. */
async function signIn(gh: TestGatehouse, browser: Browser, who = OPERATOR): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ permissions: ['clipboard-read', 'clipboard-write'] });
  const page = await context.newPage();
  await page.goto(`${gh.url}/admin/login`);
  await page.fill('input[name="username"]', who.username);
  await page.fill('input[name="password"]', who.password);
  await page.click('button[type="submit"]');
  await page.waitForURL(`${gh.url}/admin/clients`);
  return { context, page };
}

/** A new tab of the shared, signed-in operator, at `path`. */
async function operatorPage(t: { context: { gh: TestGatehouse; operator: BrowserContext } }, path = '/admin/clients'): Promise<Page> {
  const page = await t.context.operator.newPage();
  await page.goto(`${t.context.gh.url}${path}`);
  return page;
}

/** A client made in-process through the same audited operation the CLI calls (a CLI process is slow). */
async function makeClient(gh: TestGatehouse, name: string, settings: Record<string, unknown> = { grantTypes: ['client_credentials'] }) {
  const { client, clientSecret } = await gh.services.admin.createClient(CLI_ACTOR, { name, type: 'confidential', ...settings });
  return { clientId: client.clientId, clientSecret: clientSecret! };
}

/** Clicks what submits a form; returns the response to that POST once the next page has loaded. */
async function submit(page: Page, selector: string): Promise<Response> {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && r.request().isNavigationRequest()),
    page.waitForNavigation(),
    page.click(selector),
  ]);
  return response;
}

test.serial('an operator creates a service client, copies its secret once, and the secret works at the token endpoint', async (t) => {
  const { gh } = t.context;
  const page = await operatorPage(t);
  const consoleErrors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  try {
    t.is(await page.locator('#operator').textContent(), 'root');
    await page.click('text=New client');
    await page.fill('#name', 'Nightly billing');
    await page.selectOption('#type', 'confidential');
    await page.uncheck('input[name="grantTypes"][value="authorization_code"]');
    await page.check('input[name="grantTypes"][value="client_credentials"]');
    const created = await submit(page, 'button:has-text("Create client")');
    t.is(created.status(), 200);
    t.is(created.headers()['cache-control'], 'no-store');

    const clientId = (await page.locator('#client-id').textContent())!;
    const secret = (await page.locator('#client-secret').textContent())!;
    t.regex(secret, /^[\w-]{32,}$/);
    await page.click('#copy-secret');
    t.is(await page.evaluate(() => navigator.clipboard.readText()), secret);
    t.is(await page.locator('#copy-secret').textContent(), 'Copied');
    await screenshotForDocs(page, 'admin-client-secret');

    const issued = await clientCredentialsToken(gh, clientId, secret);
    t.is(issued.status, 200, JSON.stringify(issued.body));
    t.is(issued.body.token_type, 'Bearer');

    // The list shows it, with its type and grant; its page no longer shows the secret.
    await page.click('nav >> text=Clients');
    const row = page.locator(`tr[data-client-id="${clientId}"]`);
    t.regex((await row.textContent())!, /Nightly billing[\s\S]*confidential[\s\S]*client_credentials[\s\S]*active/);
    await page.fill('input[name="q"]', 'nightly');
    await page.click('button:has-text("Search")');
    t.is(await page.locator('tr[data-client-id]').count(), 1);
    await page.click('text=Nightly billing');
    t.false((await page.content()).includes(secret));
    t.deepEqual(consoleErrors, [], 'no script or style was refused by the CSP');
  } finally {
    await page.close();
  }
});

test.serial('an operator rotates a secret in the pages and the old one stops working', async (t) => {
  const { gh } = t.context;
  const service = await makeClient(gh, 'Report mailer');
  const page = await operatorPage(t, `/admin/clients/${service.clientId}`);
  try {
    t.is((await clientCredentialsToken(gh, service.clientId, service.clientSecret!)).status, 200);
    await submit(page, 'button:has-text("Rotate secret")');
    const rotated = (await page.locator('#client-secret').textContent())!;
    t.not(rotated, service.clientSecret);
    t.is(await page.locator('#client-id').textContent(), service.clientId);

    const old = await clientCredentialsToken(gh, service.clientId, service.clientSecret!);
    t.is(old.status, 401);
    t.is(old.body.error, 'invalid_client');
    t.is((await clientCredentialsToken(gh, service.clientId, rotated)).status, 200);
  } finally {
    await page.close();
  }
});

test.serial('a typo in a redirect URI is shown next to that field, what was typed stays, and the client is unchanged', async (t) => {
  const { gh } = t.context;
  const wiki = await makeClient(gh, 'Team Wiki', { grantTypes: ['authorization_code'], redirectUris: ['https://app.example.com/cb'] });
  const before = await gh.services.clients.get(wiki.clientId);
  const page = await operatorPage(t, `/admin/clients/${wiki.clientId}`);
  try {
    t.is(await page.inputValue('#redirectUris'), 'https://app.example.com/cb');
    await page.fill('#redirectUris', 'https://app.example.com/cb\nhtps//app.example.com/cb');
    await page.fill('#name', 'Team Wiki (renamed)');
    const refused = await submit(page, 'button:has-text("Save changes")');
    t.is(refused.status(), 400);

    const error = page.locator('.field:has(#redirectUris) .field-error[data-field="redirectUris"]');
    t.is(await error.count(), 1);
    t.regex((await error.textContent())!, /htps\/\/app\.example\.com\/cb/);
    t.is(await page.locator('.field-error').count(), 1, 'only the faulty field has an error');
    t.is(await page.getAttribute('#redirectUris', 'aria-invalid'), 'true');
    t.is(await page.inputValue('#redirectUris'), 'https://app.example.com/cb\nhtps//app.example.com/cb');
    t.is(await page.inputValue('#name'), 'Team Wiki (renamed)');
    await error.scrollIntoViewIfNeeded();
    await screenshotForDocs(page, 'admin-client-edit-error');

    const after = await gh.services.clients.get(wiki.clientId);
    t.deepEqual(after, before);

    // Fixed, it saves; only what changed is in the audit log.
    await page.fill('#redirectUris', 'https://app.example.com/cb\nhttps://app.example.com/cb2');
    t.is((await submit(page, 'button:has-text("Save changes")')).status(), 303);
    t.regex((await page.locator('.notice').textContent())!, /saved/);
    const saved = await gh.services.clients.get(wiki.clientId);
    t.deepEqual(saved.redirectUris, ['https://app.example.com/cb', 'https://app.example.com/cb2']);
    t.is(saved.name, 'Team Wiki (renamed)');
    const [entry] = await gh.services.audit.list({ limit: 1 });
    t.like(entry, { action: 'client.update', target: `client:${wiki.clientId}`, details: { fields: ['name', 'redirectUris'] } });
  } finally {
    await page.close();
  }
});

test.serial('an operator gives a client an API key, sees it once, and revokes it', async (t) => {
  const { gh } = t.context;
  const notes = await makeClient(gh, 'Notes backend');
  const page = await operatorPage(t, `/admin/clients/${notes.clientId}`);
  try {
    // No scope chosen: the error is next to the scopes, nothing is created.
    t.is((await submit(page, 'button:has-text("Create API key")')).status(), 400);
    t.is(await page.locator('#api-key-form .field-error[data-field="scope"]').count(), 1);
    t.deepEqual(await gh.services.apiKeys.list(notes.clientId), []);

    await page.fill('#key-name', 'nightly sync');
    await page.check('input[name="scopes"][value="userdata:read"]');
    t.is((await submit(page, 'button:has-text("Create API key")')).status(), 200);
    const key = (await page.locator('#api-key').textContent())!;
    t.truthy(await gh.services.apiKeys.verify(key));

    await page.click('text=Done: go to the client');
    const row = page.locator('#api-keys tr[data-api-key-id]');
    t.regex((await row.textContent())!, /nightly sync[\s\S]*userdata:read[\s\S]*active/);
    await submit(page, '#api-keys button:has-text("Revoke")');
    t.regex((await row.textContent())!, /revoked/);
    t.is(await gh.services.apiKeys.verify(key), undefined);
  } finally {
    await page.close();
  }
});

test.serial('a user who is not an admin cannot sign in to the admin, even with the right password', async (t) => {
  const { gh, browser } = t.context;
  await createUserDirectly(gh, 'ada', 'lovelace-analytical-1843');
  const context = await browser.newContext();
  const page = await context.newPage();
  try {
    await page.goto(`${gh.url}/admin/login`);
    await page.fill('input[name="username"]', 'ada');
    await page.fill('input[name="password"]', 'not-her-password');
    t.is((await submit(page, 'button[type="submit"]')).status(), 401);
    t.is(await page.locator('.alert').textContent(), 'The username or password is not correct.');
    await page.fill('input[name="username"]', 'nobody-at-all');
    await page.fill('input[name="password"]', 'not-her-password');
    await submit(page, 'button[type="submit"]');
    t.is(await page.locator('.alert').textContent(), 'The username or password is not correct.');

    await page.fill('input[name="username"]', 'ada');
    await page.fill('input[name="password"]', 'lovelace-analytical-1843');
    t.is((await submit(page, 'button[type="submit"]')).status(), 403);
    t.regex((await page.locator('.alert').textContent())!, /ada is not an operator.*admin flag/);
    t.false((await context.cookies()).some((c) => c.name.startsWith('gatehouse.admin')));
    await page.goto(`${gh.url}/admin/clients`);
    t.is(page.url(), `${gh.url}/admin/login`);
  } finally {
    await context.close();
  }
});

test.serial('someone without a session asking for an admin page is sent to the sign-in page', async (t) => {
  const { gh } = t.context;
  for (const path of ['/admin/clients', '/admin/users', '/admin/audit', '/admin']) {
    const res = await fetch(`${gh.url}${path}`, { redirect: 'manual' });
    t.is(res.status, 303, path);
    t.is(res.headers.get('location'), '/admin/login', path);
  }
  const post = await fetch(`${gh.url}/admin/users`, { method: 'POST', redirect: 'manual', body: new URLSearchParams({ username: 'eve', email: 'eve@example.com' }) });
  t.is(post.status, 303);
  t.is((await gh.services.accounts.list('eve')).length, 0);
});

test.serial('a change posted without the session’s CSRF token is refused with 403 and changes nothing', async (t) => {
  const { gh } = t.context;
  const target = await makeClient(gh, 'Forgery target');
  const page = await operatorPage(t);
  const context = t.context.operator;
  try {
    const disable = `${gh.url}/admin/clients/${target.clientId}/disable`;
    const missing = await context.request.post(disable, { form: { reason: 'none' }, maxRedirects: 0 });
    t.is(missing.status(), 403);
    t.regex(await missing.text(), /did not come from your admin session/);
    const wrong = await context.request.post(disable, { form: { csrf: 'x'.repeat(43) }, maxRedirects: 0 });
    t.is(wrong.status(), 403);
    t.false((await gh.services.clients.get(target.clientId)).disabled);

    // The same request with the token of the page is accepted: the cookie was there all along.
    const csrf = await page.locator('input[name="csrf"]').first().inputValue();
    const accepted = await context.request.post(disable, { form: { csrf }, maxRedirects: 0 });
    t.is(accepted.status(), 303);
    t.true((await gh.services.clients.get(target.clientId)).disabled);
  } finally {
    await page.close();
  }
});

test.serial('an operator creates a user, sees and revokes their authorized apps, and disables them', async (t) => {
  const { gh } = t.context;
  const album = await makeClient(gh, 'Photo album', { grantTypes: ['authorization_code'], redirectUris: ['https://album.example.com/cb'] });
  const page = await operatorPage(t);
  try {
    await page.click('nav >> text=Users');
    await page.click('text=New user');
    // A taken username is refused in place; what was typed stays (but never the password).
    await page.fill('#username', 'root');
    await page.fill('#email', 'lin@example.com');
    await page.fill('#password', 'a-long-enough-password');
    t.is((await submit(page, 'button:has-text("Create user")')).status(), 400);
    t.regex((await page.locator('.field-error[data-field="username"]').textContent())!, /taken/);
    t.is(await page.inputValue('#email'), 'lin@example.com');
    t.is(await page.inputValue('#password'), '');

    await page.fill('#username', 'lin');
    await page.fill('#name', 'Lin Wei');
    await page.fill('#password', 'a-long-enough-password');
    await submit(page, 'button:has-text("Create user")');
    t.regex(page.url(), /\/admin\/users\/[\w-]+\?notice=user-created$/);
    const lin = await gh.services.accounts.resolve('lin');
    t.like(lin, { email: 'lin@example.com', name: 'Lin Wei', isAdmin: false, disabled: false });
    t.is(await page.locator('#grants td.empty').textContent(), 'No authorized apps.');

    // Lin allowed the photo album (as the consent page would record it).
    const Grant = gh.gatehouse.provider().Grant;
    const grant = new Grant({ accountId: lin.id, clientId: album.clientId });
    grant.addOIDCScope('openid profile');
    const grantId = await grant.save();
    await page.reload();
    const row = page.locator(`#grants tr[data-grant-id="${grantId}"]`);
    t.regex((await row.textContent())!, /Photo album[\s\S]*openid profile/);
    await submit(page, `#grants tr[data-grant-id="${grantId}"] button:has-text("Revoke")`);
    t.is(await row.count(), 0);
    t.deepEqual(await gh.services.grants.listForUser(lin.id), []);

    await submit(page, 'button:has-text("Disable")');
    t.regex((await page.locator('h1').textContent())!, /disabled/);
    t.true((await gh.services.accounts.get(lin.id)).disabled);

    await page.click('nav >> text=Users');
    t.regex((await page.locator(`tr[data-user-id="${lin.id}"]`).textContent())!, /lin[\s\S]*Lin Wei[\s\S]*disabled/);
    t.regex((await page.locator(`tr[data-user-id]`).allTextContents()).join(' '), /root[\s\S]*admin/);
    await screenshotForDocs(page, 'admin-users');
    await page.fill('input[name="q"]', 'LIN@');
    await page.click('button:has-text("Search")');
    t.is(await page.locator('tr[data-user-id]').count(), 1);
  } finally {
    await page.close();
  }
});

test.serial('an operator following a link to a client that no longer exists gets a not-found page, not a stack trace', async (t) => {
  const page = await operatorPage(t);
  try {
    const response = (await page.goto(`${t.context.gh.url}/admin/clients/no-such-client`))!;
    t.is(response.status(), 404);
    t.is(response.headers()['content-type'], 'text/html; charset=utf-8');
    t.is(await page.locator('h1').textContent(), 'Not found');
    const text = (await page.locator('main').textContent())!;
    t.regex(text, /client no-such-client does not exist/);
    t.notRegex(text, /\bat .*\.ts:\d+/);
    t.is(await page.locator('nav a').count(), 6, 'the nav is still there (clients, users, scopes, resources, sign-in providers, audit log)');
  } finally {
    await page.close();
  }
});

test.serial('the audit log lists the changes made in the pages, newest first, with who and from where', async (t) => {
  const page = await operatorPage(t);
  const { gh } = t.context;
  try {
    await page.click('nav >> text=Audit log');
    const actions = await page.locator('#audit tr[data-action]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-action')));
    for (const action of ['client.create', 'client.rotate_secret', 'client.update', 'api_key.create', 'api_key.revoke', 'user.create', 'grant.revoke', 'user.disable']) {
      t.true(actions.includes(action), action);
    }
    t.is(actions[0], 'user.disable', 'newest first');
    const root = await gh.services.accounts.resolve('root');
    const newest = page.locator('#audit tr[data-action]').first();
    t.is(await newest.locator('td.actor').textContent(), 'root');
    t.is(await newest.locator('td.actor a').getAttribute('href'), `/admin/users/${root.id}`);
    const row = (await newest.textContent())!;
    t.regex(row, /user\.disable\s*lin\s*user:/, 'the target by name, then its id');
    t.regex(row, /(127\.0\.0\.1|::1)\s*$/, 'from where');
    t.false((await page.content()).includes('secret_hash'));
    await screenshotForDocs(page, 'admin-audit', { fullPage: true });

    // Paging: the entries before the newest.
    const newestId = await page.locator('#audit tr[data-audit-id]').first().getAttribute('data-audit-id');
    await page.goto(`${gh.url}/admin/audit?before=${newestId}`);
    t.is(await page.locator('#audit tr[data-action]').first().getAttribute('data-action'), actions[1]!);

    await page.click('nav >> text=Clients');
    await screenshotForDocs(page, 'admin-clients');
  } finally {
    await page.close();
  }
});

test.serial('after signing out, the old session cookie no longer opens the admin', async (t) => {
  const { gh, browser } = t.context;
  const { context, page } = await signIn(gh, browser);
  try {
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === 'gatehouse.admin')!;
    t.like(session, { httpOnly: true, sameSite: 'Strict', path: '/admin' });
    t.true(cookies.some((c) => c.name === 'gatehouse.admin.sig'), 'the cookie is signed');
    const header = cookies.map((c) => `${c.name}=${c.value}`).join('; ');
    const withCookie = () => fetch(`${gh.url}/admin/clients`, { headers: { cookie: header }, redirect: 'manual' });
    t.is((await withCookie()).status, 200);

    await page.click('#sign-out');
    await page.waitForURL(`${gh.url}/admin/login`);
    const replayed = await withCookie();
    t.is(replayed.status, 303);
    t.is(replayed.headers.get('location'), '/admin/login');
  } finally {
    await context.close();
  }
});

test.serial('an admin session ends after 30 idle minutes, and after 12 hours however busy', async (t) => {
  const { gh, browser } = t.context;
  const minutes = (n: number) => Date.now() - n * 60_000;
  for (const aged of [{ last_seen_at: minutes(31) }, { created_at: minutes(12 * 60 + 1), last_seen_at: Date.now() }]) {
    const signedInAt = Date.now();
    const { context, page } = await signIn(gh, browser);
    try {
      // Only this profile's session grows old (the shared operator's stays as it is).
      await gh.services.db('admin_sessions').where('created_at', '>=', signedInAt).update(aged);
      await page.goto(`${gh.url}/admin/users`);
      t.is(page.url(), `${gh.url}/admin/login`, JSON.stringify(Object.keys(aged)));
    } finally {
      await context.close();
    }
  }
});

test.serial('an operator who keeps mistyping is locked out for a while with a clear message', async (t) => {
  const { gh, browser } = t.context;
  // Counted from zero: earlier tests' mistakes from this address do not count here.
  await gh.services.db('login_failures').delete();
  const context = await browser.newContext();
  const page = await context.newPage();
  try {
    await page.goto(`${gh.url}/admin/login`);
    let last: Response | undefined;
    for (let attempt = 0; attempt < 6; attempt++) {
      await page.fill('input[name="username"]', 'mallory');
      await page.fill('input[name="password"]', `guess-number-${attempt}`);
      last = await submit(page, 'button[type="submit"]');
    }
    t.is(last!.status(), 429);
    t.regex((await page.locator('.alert').textContent())!, /Too many failed sign-ins\. Sign-in is locked for \d+ minutes?/);
    t.false((await context.cookies()).some((c) => c.name === 'gatehouse.admin'));
  } finally {
    await context.close();
    // The failures from this address would slow later sign-ins in this process.
    await gh.services.db('login_failures').delete();
  }
});
