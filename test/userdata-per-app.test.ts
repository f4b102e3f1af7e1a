import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { adminApi, type AdminApi } from './support/admin-api.ts';
import { chromiumAvailable, launchBrowser } from './support/browser.ts';
import { startTestGatehouse, type TestGatehouse } from './support/gatehouse.ts';
import { REDIRECT_URI, type RegisteredClient } from './support/relying-party.ts';
import { userdata, userWhoAuthorized, type Answer } from './support/userdata.ts';
import { UNASSIGNED_OWNER } from '../src/userdata/service.ts';

/**
 * /userdata documents belong to an app: one person signed in to two apps (Notes and Calendar),
 * each with its own API key, and a third app (Stranger) they never signed in to. Neither app
 * reads, writes or deletes the other's document, by key or by the person's token; the operator
 * sees and clears each app's document in the admin API and on the admin pages.
 * Each test works on a person of its own, so the tests run side by side.
 */

interface App extends RegisteredClient {
  name: string;
  key: string;
}

interface Context {
  gh: TestGatehouse;
  notes: App;
  calendar: App;
  stranger: App;
  api: AdminApi;
}

const test = anyTest as TestFn<Context>;

const OPERATOR = { username: 'operator', password: 'operator-keeps-the-gate-2026' };

test.before(async (t) => {
  const gh = await startTestGatehouse();
  t.context = { gh } as Context; // closed by test.after.always even if the set-up below fails
  const app = async (name: string): Promise<App> => {
    const { client, clientSecret } = await gh.services.clients.create({
      name,
      type: 'confidential',
      grantTypes: ['authorization_code'],
      redirectUris: [REDIRECT_URI],
      scope: ['openid', 'profile', 'userdata'],
    });
    const { key } = await gh.services.apiKeys.create(client.clientId, ['userdata:read', 'userdata:write']);
    return { name, clientId: client.clientId, clientSecret: clientSecret!, key };
  };
  const [notes, calendar, stranger] = [await app('Notes'), await app('Calendar'), await app('Stranger')];
  const { token } = await gh.services.adminTokens.create('per-app tests');
  await gh.services.accounts.create({ username: OPERATOR.username, email: 'operator@example.com', password: OPERATOR.password, isAdmin: true });
  t.context = { gh, notes, calendar, stranger, api: adminApi(gh, token) };
});

test.after.always(async (t) => t.context.gh?.close());

/** A person who signed in to Notes and Calendar (in that order), and both apps' tokens. */
async function personOfBothApps(t: ExecutionContext<Context>, username: string) {
  const { sub, tokens } = await userWhoAuthorized(t.context.gh, username, [t.context.notes, t.context.calendar]);
  return { sub, notesToken: tokens[0]!, calendarToken: tokens[1]! };
}

function ok(t: ExecutionContext, answer: Answer, status = 200) {
  t.is(answer.status, status, answer.text);
}

test("two apps one person signed in to each keep a document of their own, and neither reads the other's", async (t) => {
  const { gh, notes, calendar } = t.context;
  const { sub } = await personOfBothApps(t, 'two-documents');
  const byNotes = await userdata(gh, sub, { method: 'PUT', key: notes.key, body: { theme: 'dark' } });
  ok(t, byNotes);
  t.is(byNotes.headers.get('etag'), '"1"');
  // Calendar starts from an empty document of its own: Notes' write is not its version.
  const calendarFirst = await userdata(gh, sub, { key: calendar.key });
  t.deepEqual(calendarFirst.json, {});
  t.is(calendarFirst.headers.get('etag'), '"0"');
  const byCalendar = await userdata(gh, sub, { method: 'PATCH', key: calendar.key, body: { tz: 'UTC' } });
  t.deepEqual(byCalendar.json, { tz: 'UTC' }, 'the patch applies to Calendar’s document, not to Notes’');
  t.is(byCalendar.headers.get('etag'), '"1"');

  t.deepEqual((await userdata(gh, sub, { key: notes.key })).json, { theme: 'dark' });
  t.deepEqual((await userdata(gh, sub, { key: calendar.key })).json, { tz: 'UTC' });
  // Stored as two rows, one per (user, app).
  const rows = await gh.services.db('userdata').where({ sub }).orderBy('client_id');
  t.deepEqual(
    rows.map((r) => [r.client_id, JSON.parse(r.document)]).sort(),
    [[notes.clientId, { theme: 'dark' }], [calendar.clientId, { tz: 'UTC' }]].sort(),
  );
});

test("an app's DELETE and a stale If-Match touch only its own document", async (t) => {
  const { gh, notes, calendar } = t.context;
  const { sub } = await personOfBothApps(t, 'one-deletes');
  ok(t, await userdata(gh, sub, { method: 'PUT', key: notes.key, body: { keep: 'notes' } }));
  ok(t, await userdata(gh, sub, { method: 'PUT', key: notes.key, body: { keep: 'notes', v: 2 } }));
  ok(t, await userdata(gh, sub, { method: 'PUT', key: calendar.key, body: { mine: 'calendar' } }));

  // Calendar's document is at "1"; Notes' "2" is no version of it.
  t.is((await userdata(gh, sub, { method: 'PUT', key: calendar.key, body: { x: 1 }, headers: { 'if-match': '"2"' } })).status, 412);
  ok(t, await userdata(gh, sub, { method: 'DELETE', key: calendar.key, headers: { 'if-match': '"1"' } }), 204);

  const notesNow = await userdata(gh, sub, { key: notes.key });
  t.deepEqual(notesNow.json, { keep: 'notes', v: 2 });
  t.is(notesNow.headers.get('etag'), '"2"');
  const calendarNow = await userdata(gh, sub, { key: calendar.key });
  t.deepEqual(calendarNow.json, {});
  t.is(calendarNow.headers.get('etag'), '"2"');
});

test("the person's token at /userdata/me reaches the document of the app it was issued to, and no other", async (t) => {
  const { gh, notes, calendar } = t.context;
  const { sub, notesToken, calendarToken } = await personOfBothApps(t, 'by-token');
  ok(t, await userdata(gh, sub, { method: 'PUT', key: notes.key, body: { from: 'notes backend' } }));

  t.deepEqual((await userdata(gh, 'me', { token: notesToken })).json, { from: 'notes backend' });
  const calendarSees = await userdata(gh, 'me', { token: calendarToken });
  t.deepEqual(calendarSees.json, {}, 'Calendar’s token does not see Notes’ document');
  t.is(calendarSees.headers.get('etag'), '"0"');

  ok(t, await userdata(gh, 'me', { method: 'PATCH', token: calendarToken, body: { from: 'calendar app' } }));
  ok(t, await userdata(gh, 'me', { method: 'DELETE', token: notesToken }), 204);
  t.deepEqual((await userdata(gh, sub, { key: calendar.key })).json, { from: 'calendar app' }, "Notes' DELETE left Calendar's document alone");
  t.deepEqual((await userdata(gh, sub, { key: notes.key })).json, {});
  t.deepEqual((await userdata(gh, 'me', { token: calendarToken })).json, { from: 'calendar app' });
});

test('the key of an app the person never signed in to gets 403, the same as for nobody, and stores nothing', async (t) => {
  const { gh, notes, stranger } = t.context;
  const { sub } = await personOfBothApps(t, 'not-a-stranger-user');
  ok(t, await userdata(gh, sub, { method: 'PUT', key: notes.key, body: { private: true } }));
  const nobody = await userdata(gh, 'no-such-user-0000', { key: stranger.key });
  t.is(nobody.status, 403);
  for (const call of [{}, { method: 'PUT' as const, body: { stolen: true } }, { method: 'PATCH' as const, body: { stolen: true } }, { method: 'DELETE' as const }]) {
    const refused = await userdata(gh, sub, { ...call, key: stranger.key });
    t.is(refused.status, 403, `${call.method ?? 'GET'}: ${refused.text}`);
    t.is(refused.json.error, 'forbidden');
    t.is(refused.text, nobody.text);
  }
  t.deepEqual((await gh.services.db('userdata').where({ sub }).select('client_id')).map((r) => r.client_id), [notes.clientId]);
  t.deepEqual((await userdata(gh, sub, { key: notes.key })).json, { private: true });
});

test('the admin API lists, shows and clears a person’s documents per app', async (t) => {
  const { gh, api, notes, calendar } = t.context;
  const { sub } = await personOfBothApps(t, 'admin-api-person');
  ok(t, await userdata(gh, sub, { method: 'PUT', key: notes.key, body: { theme: 'dark' } }));
  ok(t, await userdata(gh, sub, { method: 'PUT', key: calendar.key, body: { tz: 'Europe/Paris', week: 'monday' } }));
  ok(t, await userdata(gh, sub, { method: 'PATCH', key: calendar.key, body: { week: null } }));

  const listed = await api('GET', `/users/${sub}/userdata`);
  t.is(listed.status, 200, listed.text);
  const byClient = new Map((listed.body as Array<Record<string, unknown>>).map((d) => [d.client_id, d]));
  t.is(byClient.size, 2);
  t.like(byClient.get(notes.clientId), { client_name: 'Notes', version: 1, bytes: JSON.stringify({ theme: 'dark' }).length });
  t.like(byClient.get(calendar.clientId), { client_name: 'Calendar', version: 2, bytes: JSON.stringify({ tz: 'Europe/Paris' }).length });
  t.false(Number.isNaN(Date.parse(String(byClient.get(notes.clientId)!.updated_at))));
  t.false(listed.text.includes('dark'), 'the list shows sizes, not contents');

  const shown = await api('GET', `/users/${sub}/userdata/${calendar.clientId}`);
  t.is(shown.status, 200, shown.text);
  t.like(shown.body, { client_id: calendar.clientId, client_name: 'Calendar', version: 2, document: { tz: 'Europe/Paris' } });

  const cleared = await api('DELETE', `/users/${sub}/userdata/${calendar.clientId}`);
  t.is(cleared.status, 204, cleared.text);
  // The app reads {} at the next version, as after its own DELETE; Notes' document is untouched.
  const calendarNow = await userdata(gh, sub, { key: calendar.key });
  t.deepEqual(calendarNow.json, {});
  t.is(calendarNow.headers.get('etag'), '"3"');
  t.deepEqual((await userdata(gh, sub, { key: notes.key })).json, { theme: 'dark' });
  t.like((await api('GET', `/users/${sub}/userdata/${notes.clientId}`)).body, { version: 1, document: { theme: 'dark' } });

  const audit = await api('GET', '/audit?limit=20');
  const entry = (audit.body as Array<Record<string, any>>).find((e) => e.action === 'userdata.clear' && e.target === `user:${sub}`);
  t.truthy(entry, audit.text);
  t.regex(entry!.actor, /^admin-token:\S+ \(per-app tests\)$/);
  t.deepEqual(entry!.details, { client: calendar.clientId, version: 3 });
});

test('the admin API answers 404 for an unknown person, an app without a document, and 401 without a token', async (t) => {
  const { api, notes, calendar } = t.context;
  const { sub } = await personOfBothApps(t, 'admin-api-404');
  await userdata(t.context.gh, sub, { method: 'PUT', key: notes.key, body: { a: 1 } });
  for (const [method, path] of [
    ['GET', '/users/no-such-user/userdata'],
    ['GET', `/users/no-such-user/userdata/${notes.clientId}`],
    ['DELETE', `/users/no-such-user/userdata/${notes.clientId}`],
    ['GET', `/users/${sub}/userdata/${calendar.clientId}`],
    ['DELETE', `/users/${sub}/userdata/${calendar.clientId}`],
    ['GET', `/users/${sub}/userdata/no-such-client`],
  ] as const) {
    const res = await api(method, path);
    t.is(res.status, 404, `${method} ${path}: ${res.text}`);
    t.is(res.body?.error, 'not_found');
  }
  t.deepEqual((await api('GET', `/users/${sub}/userdata`)).body.map((d: { client_id: string }) => d.client_id), [notes.clientId]);
  t.is((await api('GET', `/users/${sub}/userdata`, { token: null })).status, 401);
  t.is((await api('DELETE', `/users/${sub}/userdata/${notes.clientId}`, { token: null })).status, 401);
  t.deepEqual((await userdata(t.context.gh, sub, { key: notes.key })).json, { a: 1 });
});

test('a document the migration could give to no app is listed without an app, and the operator can clear it', async (t) => {
  const { gh, api } = t.context;
  const { sub } = await personOfBothApps(t, 'unassigned-doc');
  // As 20261203000000_userdata_per_client leaves a document no app wrote and no app could read.
  await gh.services.db('userdata').insert({ sub, client_id: UNASSIGNED_OWNER, document: '{"legacy":true}', version: 4, updated_at: Date.now() });
  const listed = await api('GET', `/users/${sub}/userdata`);
  t.deepEqual(listed.body.map((d: Record<string, unknown>) => [d.client_id, d.client_name, d.version]), [[UNASSIGNED_OWNER, null, 4]]);
  t.like((await api('GET', `/users/${sub}/userdata/${encodeURIComponent(UNASSIGNED_OWNER)}`)).body, { document: { legacy: true } });
  t.is((await api('DELETE', `/users/${sub}/userdata/${encodeURIComponent(UNASSIGNED_OWNER)}`)).status, 204);
  t.like((await api('GET', `/users/${sub}/userdata/${encodeURIComponent(UNASSIGNED_OWNER)}`)).body, { version: 5, document: {} });
});

test('deleting an app deletes the documents it kept, and leaves the other apps’ alone', async (t) => {
  const { gh, api, notes } = t.context;
  const { client, clientSecret } = await gh.services.clients.create({ name: 'Short-lived', type: 'confidential', grantTypes: ['authorization_code'], redirectUris: [REDIRECT_URI], scope: ['openid', 'userdata'] });
  const doomed = { clientId: client.clientId, clientSecret: clientSecret! };
  const { key } = await gh.services.apiKeys.create(doomed.clientId, ['userdata:read', 'userdata:write']);
  const { sub } = await userWhoAuthorized(gh, 'outlives-an-app', [notes, doomed]);
  ok(t, await userdata(gh, sub, { method: 'PUT', key, body: { going: 'away' } }));
  ok(t, await userdata(gh, sub, { method: 'PUT', key: notes.key, body: { staying: true } }));

  t.is((await api('DELETE', `/clients/${doomed.clientId}`)).status, 204);
  t.is((await gh.services.db('userdata').where({ client_id: doomed.clientId }).count({ n: '*' }).first())!.n as number, 0);
  t.deepEqual((await api('GET', `/users/${sub}/userdata`)).body.map((d: { client_id: string }) => d.client_id), [notes.clientId]);
  t.deepEqual((await userdata(gh, sub, { key: notes.key })).json, { staying: true });
});

test('an operator sees each app’s document on the person’s admin page, views one and clears it', async (t) => {
  if (!chromiumAvailable()) throw new Error('Debian chromium is required for the browser tests (apt-get install -y chromium)');
  const { gh, notes, calendar } = t.context;
  const { sub } = await personOfBothApps(t, 'admin-page-person');
  ok(t, await userdata(gh, sub, { method: 'PUT', key: notes.key, body: { theme: 'dark', note: '<b>not markup</b>' } }));
  ok(t, await userdata(gh, sub, { method: 'PUT', key: calendar.key, body: { tz: 'UTC' } }));

  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    await page.goto(`${gh.url}/admin/login`);
    await page.fill('input[name="username"]', OPERATOR.username);
    await page.fill('input[name="password"]', OPERATOR.password);
    await page.click('button[type="submit"]');
    await page.waitForURL(`${gh.url}/admin/clients`);

    await page.goto(`${gh.url}/admin/users/${sub}`);
    const rows = page.locator('#userdata tbody tr[data-userdata-client]');
    t.is(await rows.count(), 2);
    const notesRow = page.locator(`#userdata tr[data-userdata-client="${notes.clientId}"]`);
    const calendarRow = page.locator(`#userdata tr[data-userdata-client="${calendar.clientId}"]`);
    t.regex(await notesRow.innerText(), /Notes/);
    t.regex(await calendarRow.innerText(), /Calendar/);
    t.regex(await calendarRow.innerText(), new RegExp(`${JSON.stringify({ tz: 'UTC' }).length} bytes`));

    await notesRow.getByRole('link', { name: 'View' }).click();
    await page.waitForURL(`${gh.url}/admin/users/${sub}/userdata/${notes.clientId}`);
    t.deepEqual(JSON.parse(await page.locator('#document').innerText()), { theme: 'dark', note: '<b>not markup</b>' });
    t.is(await page.locator('#document b').count(), 0, 'the document is shown as text');

    await Promise.all([page.waitForURL(/\?notice=userdata-cleared/), page.getByRole('button', { name: 'Clear' }).click()]);
    t.regex(await page.locator('body').innerText(), /The app’s document is cleared/);
    t.regex(await notesRow.innerText(), /\b2 bytes/, 'the cleared document is {}');
  } finally {
    await browser.close();
  }
  const notesNow = await userdata(gh, sub, { key: notes.key });
  t.deepEqual(notesNow.json, {});
  t.is(notesNow.headers.get('etag'), '"2"');
  t.deepEqual((await userdata(gh, sub, { key: calendar.key })).json, { tz: 'UTC' });
});
