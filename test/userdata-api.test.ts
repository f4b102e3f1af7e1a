import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { runCli } from './support/cli.ts';
import { startTestGatehouse, type TestGatehouse } from './support/gatehouse.ts';
import { REDIRECT_URI, type RegisteredClient } from './support/relying-party.ts';
import { createApiKeyWithCli, sendOnOwnConnection, userdata, userWhoAuthorized, type Answer } from './support/userdata.ts';
import { basicAuth } from './support/http.ts';

/**
 * /userdata end to end over SQLite: an app (Notes) signs people in and keeps a JSON object per
 * user, from its backend with an API key and with the user's token (the userdata scope). Two apps
 * side by side, each with its own document, are in userdata-per-app.test.ts.
 * Every test that writes works on a person of its own, so the tests run side by side.
 */

interface Context {
  gh: TestGatehouse;
  notes: RegisteredClient;
  other: RegisteredClient;
  service: RegisteredClient;
  /** `api-keys create … --json` output for Notes with read and write. */
  created: { key: string; id: string; scopes: string[] } & Record<string, unknown>;
  key: string;
  readOnlyKey: string;
  writeOnlyKey: string;
  otherKey: string;
  toRevoke: { key: string; id: string };
  /** A person who authorized Notes, with {"note": "keep me"} stored (version 1); only ever sent refused requests. */
  keeper: { sub: string; token: string };
  createdAt: number;
}

const test = anyTest as TestFn<Context>;

const KEEPER_DOC = { note: 'keep me', nested: { a: [1, 2] } };

test.before(async (t) => {
  const gh = await startTestGatehouse();
  t.context = { gh } as Context; // closed by test.after.always even if the set-up below fails
  const createdAt = Date.now();
  // Clients and most keys through the services the CLI calls, in-process (a CLI process costs
  // seconds); the key whose CLI output the tests read through `api-keys create`.
  const notesCreated = await gh.services.clients.create({
    name: 'Notes',
    type: 'confidential',
    grantTypes: ['authorization_code'],
    redirectUris: [REDIRECT_URI],
    scope: ['openid', 'profile', 'userdata'],
  });
  const notes = { clientId: notesCreated.client.clientId, clientSecret: notesCreated.clientSecret! };
  const created = await createApiKeyWithCli(gh, notes.clientId, ['userdata:read', 'userdata:write']);
  const otherCreated = await gh.services.clients.create({
    name: 'Other app',
    type: 'confidential',
    grantTypes: ['authorization_code'],
    redirectUris: [REDIRECT_URI],
    scope: ['openid', 'profile', 'userdata'],
  });
  const other = { clientId: otherCreated.client.clientId, clientSecret: otherCreated.clientSecret! };
  const serviceCreated = await gh.services.clients.create({ name: 'Billing service', type: 'confidential', grantTypes: ['client_credentials'] });
  const service = { clientId: serviceCreated.client.clientId, clientSecret: serviceCreated.clientSecret! };
  const apiKey = async (clientId: string, scopes: string[]) => (await gh.services.apiKeys.create(clientId, scopes)).key;
  const readOnlyKey = await apiKey(notes.clientId, ['userdata:read']);
  const writeOnlyKey = await apiKey(notes.clientId, ['userdata:write']);
  const otherKey = await apiKey(other.clientId, ['userdata:read', 'userdata:write']);
  const revocable = await gh.services.apiKeys.create(notes.clientId, ['userdata:read', 'userdata:write']);

  const keeperUser = await userWhoAuthorized(gh, 'keeper', [notes]);
  const stored = await userdata(gh, keeperUser.sub, { method: 'PUT', key: created.key, body: KEEPER_DOC });
  if (stored.status !== 200) throw new Error(`could not store the keeper's document: ${stored.status} ${stored.text}`);

  t.context = {
    gh,
    notes,
    other,
    service,
    created,
    key: created.key,
    readOnlyKey,
    writeOnlyKey,
    otherKey,
    toRevoke: { key: revocable.key, id: revocable.apiKey.id },
    keeper: { sub: keeperUser.sub, token: keeperUser.tokens[0]! },
    createdAt,
  };
});

test.after.always(async (t) => t.context.gh?.close());

/** A Gatehouse error: the status, and {"error", "error_description"} as strings. */
function isError(t: ExecutionContext, answer: Answer, status: number, code?: string) {
  t.is(answer.status, status, answer.text);
  t.is(typeof answer.json?.error, 'string', answer.text);
  t.true((answer.json?.error_description ?? '').length > 0, answer.text);
  if (code) t.is(answer.json.error, code);
}

/** The keeper's document is exactly as stored in test.before, at version 1. */
async function keeperUntouched(t: ExecutionContext<Context>) {
  const { gh, keeper, key } = t.context;
  const now = await userdata(gh, keeper.sub, { key });
  t.is(now.status, 200);
  t.deepEqual(now.json, KEEPER_DOC);
  t.is(now.headers.get('etag'), '"1"');
}

// ── Reading and writing ─────────────────────────────────────────────────────────────────────

test('a user who authorized the app starts with an empty document {} and ETag "0"', async (t) => {
  const { gh, notes, key } = t.context;
  const { sub } = await userWhoAuthorized(gh, 'empty', [notes]);
  const res = await userdata(gh, sub, { key });
  t.is(res.status, 200);
  t.deepEqual(res.json, {});
  t.is(res.headers.get('etag'), '"0"');
  t.regex(res.headers.get('content-type') ?? '', /^application\/json/);
  t.is(res.headers.get('cache-control'), 'no-store');
});

test('PUT replaces the whole document, and every write moves the ETag on', async (t) => {
  const { gh, notes, key } = t.context;
  const { sub } = await userWhoAuthorized(gh, 'replacer', [notes]);
  const first = await userdata(gh, sub, { method: 'PUT', key, body: { theme: 'dark', lang: 'en', panels: { left: true } } });
  t.is(first.status, 200);
  t.deepEqual(first.json, { theme: 'dark', lang: 'en', panels: { left: true } });
  t.is(first.headers.get('etag'), '"1"');

  // A charset parameter is still application/json.
  const second = await userdata(gh, sub, { method: 'PUT', key, body: JSON.stringify({ theme: 'light' }), contentType: 'application/json; charset=utf-8' });
  t.is(second.status, 200, second.text);
  t.deepEqual(second.json, { theme: 'light' });
  t.is(second.headers.get('etag'), '"2"');

  const read = await userdata(gh, sub, { key });
  t.deepEqual(read.json, { theme: 'light' }, 'PUT replaces: lang and panels are gone');
  t.is(read.headers.get('etag'), '"2"');
});

test('a merge patch merges nested objects, removes members set to null and replaces arrays', async (t) => {
  const { gh, notes, key } = t.context;
  const { sub } = await userWhoAuthorized(gh, 'patcher', [notes]);
  await userdata(gh, sub, {
    method: 'PUT',
    key,
    body: { editor: { font: 'mono', size: 12, colors: { bg: 'black', fg: 'white' } }, recent: ['a', 'b', 'c'], drop: 1, keep: 'yes' },
  });
  const patched = await userdata(gh, sub, {
    method: 'PATCH',
    key,
    body: { editor: { size: 14, colors: { fg: null, accent: 'red' } }, recent: ['z'], drop: null, added: { deep: { x: 1 } }, absent: null },
  });
  t.is(patched.status, 200, patched.text);
  const expected = { editor: { font: 'mono', size: 14, colors: { bg: 'black', accent: 'red' } }, recent: ['z'], keep: 'yes', added: { deep: { x: 1 } } };
  t.deepEqual(patched.json, expected);
  t.is(patched.headers.get('etag'), '"2"');
  t.deepEqual((await userdata(gh, sub, { key })).json, expected);

  // A member that was an object becomes a plain value when the patch says so.
  const flattened = await userdata(gh, sub, { method: 'PATCH', key, body: { editor: 'default' } });
  t.deepEqual(flattened.json, { editor: 'default', recent: ['z'], keep: 'yes', added: { deep: { x: 1 } } });
  // An empty patch changes nothing.
  const noop = await userdata(gh, sub, { method: 'PATCH', key, body: {} });
  t.is(noop.status, 200);
  t.deepEqual(noop.json, flattened.json);
  // "__proto__" is a member name like any other: stored as data, nothing polluted.
  const proto = await userdata(gh, sub, { method: 'PATCH', key, body: '{"__proto__": {"polluted": true}}' });
  t.is(proto.status, 200);
  t.true(proto.text.includes('"__proto__":{"polluted":true}'), proto.text);
  t.is(({} as Record<string, unknown>).polluted, undefined);
  t.true((await userdata(gh, sub, { key })).text.includes('"__proto__":{"polluted":true}'));
});

test('DELETE clears the document with 204, and reading it then gives {}', async (t) => {
  const { gh, notes, key } = t.context;
  const { sub } = await userWhoAuthorized(gh, 'deleter', [notes]);
  const put = await userdata(gh, sub, { method: 'PUT', key, body: { theme: 'dark' } });
  const del = await userdata(gh, sub, { method: 'DELETE', key });
  t.is(del.status, 204);
  t.is(del.text, '');
  const read = await userdata(gh, sub, { key });
  t.is(read.status, 200);
  t.deepEqual(read.json, {});
  // A cache holding the old document must not be told it is still fresh.
  t.not(read.headers.get('etag'), put.headers.get('etag'));
  const revalidate = await userdata(gh, sub, { key, headers: { 'if-none-match': put.headers.get('etag')! } });
  t.is(revalidate.status, 200);
  t.deepEqual(revalidate.json, {});
});

test('If-None-Match with the current ETag answers 304 without a body, and with an older one the document', async (t) => {
  const { gh, notes, key } = t.context;
  const { sub } = await userWhoAuthorized(gh, 'cacher', [notes]);
  await userdata(gh, sub, { method: 'PUT', key, body: { v: 1 } });
  await userdata(gh, sub, { method: 'PUT', key, body: { v: 2 } });
  const fresh = await userdata(gh, sub, { key, headers: { 'if-none-match': '"2"' } });
  t.is(fresh.status, 304);
  t.is(fresh.text, '');
  t.is(fresh.headers.get('etag'), '"2"');
  const listed = await userdata(gh, sub, { key, headers: { 'if-none-match': '"1", "2"' } });
  t.is(listed.status, 304);
  const stale = await userdata(gh, sub, { key, headers: { 'if-none-match': '"1"' } });
  t.is(stale.status, 200);
  t.deepEqual(stale.json, { v: 2 });
  t.is(stale.headers.get('etag'), '"2"');
});

test('a write with a stale If-Match answers 412 and leaves the document as it was', async (t) => {
  const { gh, notes, key } = t.context;
  const { sub } = await userWhoAuthorized(gh, 'racer', [notes]);
  await userdata(gh, sub, { method: 'PUT', key, body: { n: 1 } }); // "1"
  t.is((await userdata(gh, sub, { method: 'PUT', key, body: { n: 2 }, headers: { 'if-match': '"1"' } })).status, 200); // "2"

  for (const call of [
    { method: 'PUT' as const, body: { n: 'stale put' } },
    { method: 'PATCH' as const, body: { n: 'stale patch' } },
    { method: 'DELETE' as const },
  ]) {
    const refused = await userdata(gh, sub, { ...call, key, headers: { 'if-match': '"1"' } });
    isError(t, refused, 412);
    // A weak validator never matches If-Match (strong comparison).
    isError(t, await userdata(gh, sub, { ...call, key, headers: { 'if-match': 'W/"2"' } }), 412);
  }
  const after = await userdata(gh, sub, { key });
  t.deepEqual(after.json, { n: 2 });
  t.is(after.headers.get('etag'), '"2"');

  const current = await userdata(gh, sub, { method: 'PATCH', key, body: { m: 3 }, headers: { 'if-match': '"7", "2"' } });
  t.is(current.status, 200);
  t.deepEqual(current.json, { n: 2, m: 3 });
  t.is(current.headers.get('etag'), '"3"');
  const any = await userdata(gh, sub, { method: 'PUT', key, body: { all: 'new' }, headers: { 'if-match': '*' } });
  t.is(any.status, 200);
  t.is(any.headers.get('etag'), '"4"');
  t.is((await userdata(gh, sub, { method: 'DELETE', key, headers: { 'if-match': '"4"' } })).status, 204);
});

test("the user's own token reads and writes their document at /userdata/me", async (t) => {
  const { gh, notes, key } = t.context;
  const { sub, tokens } = await userWhoAuthorized(gh, 'self-service', [notes]);
  const token = tokens[0]!;
  const empty = await userdata(gh, 'me', { token });
  t.is(empty.status, 200);
  t.deepEqual(empty.json, {});
  t.is(empty.headers.get('etag'), '"0"');

  const put = await userdata(gh, 'me', { method: 'PUT', token, body: { theme: 'dark', lang: 'en' } });
  t.is(put.status, 200);
  t.is(put.headers.get('etag'), '"1"');
  const patched = await userdata(gh, 'me', { method: 'PATCH', token, body: { lang: null }, headers: { 'if-match': '"1"' } });
  t.deepEqual(patched.json, { theme: 'dark' });
  // The same document the app's key sees for that sub.
  t.deepEqual((await userdata(gh, sub, { key })).json, { theme: 'dark' });
  t.is((await userdata(gh, 'me', { token, headers: { 'if-none-match': '"2"' } })).status, 304);
  isError(t, await userdata(gh, 'me', { method: 'PUT', token, body: {}, headers: { 'if-match': '"1"' } }), 412);
  t.is((await userdata(gh, 'me', { method: 'DELETE', token })).status, 204);
  t.deepEqual((await userdata(gh, sub, { key })).json, {});
});

// ── API keys: scopes, revocation, unknown keys ──────────────────────────────────────────────

test('a read-only key reads the document but cannot change it', async (t) => {
  const { gh, keeper, readOnlyKey } = t.context;
  const read = await userdata(gh, keeper.sub, { key: readOnlyKey });
  t.is(read.status, 200);
  t.deepEqual(read.json, KEEPER_DOC);
  isError(t, await userdata(gh, keeper.sub, { method: 'PUT', key: readOnlyKey, body: { hijacked: true } }), 403, 'insufficient_scope');
  isError(t, await userdata(gh, keeper.sub, { method: 'PATCH', key: readOnlyKey, body: { hijacked: true } }), 403, 'insufficient_scope');
  isError(t, await userdata(gh, keeper.sub, { method: 'DELETE', key: readOnlyKey }), 403, 'insufficient_scope');
  await keeperUntouched(t);
});

test('a write-only key changes the document but cannot read it', async (t) => {
  const { gh, notes, key, writeOnlyKey } = t.context;
  const { sub } = await userWhoAuthorized(gh, 'write-only', [notes]);
  const put = await userdata(gh, sub, { method: 'PUT', key: writeOnlyKey, body: { written: 'blind' } });
  t.is(put.status, 200);
  isError(t, await userdata(gh, sub, { key: writeOnlyKey }), 403, 'insufficient_scope');
  t.deepEqual((await userdata(gh, sub, { key })).json, { written: 'blind' });
});

test('a revoked key is refused with 401', async (t) => {
  const { gh, keeper, toRevoke } = t.context;
  t.is((await userdata(gh, keeper.sub, { key: toRevoke.key })).status, 200, 'works before it is revoked');
  const revoked = await runCli(['api-keys', 'revoke', toRevoke.id, '--json'], gh.env);
  t.is(revoked.code, 0, revoked.stderr);
  t.is(revoked.json().id, toRevoke.id);
  t.truthy(revoked.json().revoked_at);
  isError(t, await userdata(gh, keeper.sub, { key: toRevoke.key }), 401);
  isError(t, await userdata(gh, keeper.sub, { method: 'PUT', key: toRevoke.key, body: { after: 'revocation' } }), 401);
  await keeperUntouched(t);
});

test('a request without a key, with a made-up key or with the wrong secret is refused with 401', async (t) => {
  const { gh, keeper, key } = t.context;
  const [, id, secret] = /^ghk_([^_]+)_(.+)$/.exec(key)!;
  const flipped = secret!.slice(0, -1) + (secret!.endsWith('A') ? 'B' : 'A');
  for (const presented of [undefined, '', 'garbage', `ghk_${'A'.repeat(16)}_${'B'.repeat(43)}`, `ghk_${id}_${flipped}`, `ghk_${id}_`, key.toUpperCase()]) {
    const res = await userdata(gh, keeper.sub, { key: presented });
    isError(t, res, 401);
    const write = await userdata(gh, keeper.sub, { method: 'PATCH', key: presented, body: { intruder: true } });
    isError(t, write, 401);
  }
  await keeperUntouched(t);
});

test("another app's key cannot reach a user who only authorized the first app, and learns nothing about whether the user exists", async (t) => {
  const { gh, keeper, otherKey } = t.context;
  const foreign = await userdata(gh, keeper.sub, { key: otherKey });
  isError(t, foreign, 403);
  const nobody = await userdata(gh, 'no-such-user-0000', { key: otherKey });
  isError(t, nobody, 403);
  t.deepEqual(foreign.json, nobody.json);
  t.is(foreign.text, nobody.text);
  isError(t, await userdata(gh, keeper.sub, { method: 'PUT', key: otherKey, body: { stolen: true } }), 403);
  isError(t, await userdata(gh, keeper.sub, { method: 'DELETE', key: otherKey }), 403);
  await keeperUntouched(t);
});

test("a disabled user's document cannot be reached, with the same answer as for a user who does not exist", async (t) => {
  const { gh, notes, key } = t.context;
  const { sub, tokens } = await userWhoAuthorized(gh, 'leaver', [notes]);
  t.is((await userdata(gh, sub, { method: 'PUT', key, body: { bye: true } })).status, 200);
  const disabled = await runCli(['users', 'disable', sub, '--json'], gh.env);
  t.is(disabled.code, 0, disabled.stderr);
  const refused = await userdata(gh, sub, { key });
  isError(t, refused, 403);
  t.is(refused.text, (await userdata(gh, 'no-such-user-0000', { key })).text);
  isError(t, await userdata(gh, sub, { method: 'PUT', key, body: { still: 'here' } }), 403);
  // Disabling revokes the user's tokens too.
  isError(t, await userdata(gh, 'me', { token: tokens[0] }), 401);
});

test('a user marked disabled while their grant still exists is refused, by key and by token', async (t) => {
  // As when the flag is set by another process whose revocation has not run yet: the flag alone must shut the door.
  const { gh, notes, key } = t.context;
  const { sub, tokens } = await userWhoAuthorized(gh, 'flagged', [notes]);
  t.is((await userdata(gh, sub, { key })).status, 200);
  await gh.services.db('users').where({ id: sub }).update({ disabled: true });
  isError(t, await userdata(gh, sub, { key }), 403);
  // The person's own token is refused as /userinfo refuses it: the one token check finds its account disabled.
  isError(t, await userdata(gh, 'me', { token: tokens[0] }), 401, 'invalid_token');
  isError(t, await userdata(gh, 'me', { method: 'PUT', token: tokens[0], body: { x: 1 } }), 401, 'invalid_token');
});

test('after the user signs out of the app with POST /logout, its key can no longer reach their data', async (t) => {
  const { gh, notes, key } = t.context;
  const { sub, tokens } = await userWhoAuthorized(gh, 'signs-out', [notes]);
  t.is((await userdata(gh, sub, { method: 'PUT', key, body: { before: 'logout' } })).status, 200);
  const logout = await sendOnOwnConnection(gh, '/logout', { method: 'POST', headers: { authorization: `Bearer ${tokens[0]}` } });
  t.is(logout.status, 204);
  const refused = await userdata(gh, sub, { key });
  isError(t, refused, 403);
  t.is(refused.text, (await userdata(gh, 'no-such-user-0000', { key })).text);
  isError(t, await userdata(gh, 'me', { token: tokens[0] }), 401);
});

// ── /userdata/me: tokens ────────────────────────────────────────────────────────────────────

test('/userdata/me without a token is refused with 401 and a WWW-Authenticate challenge', async (t) => {
  const { gh, key } = t.context;
  const bare = await userdata(gh, 'me');
  isError(t, bare, 401, 'invalid_token');
  t.regex(bare.headers.get('www-authenticate') ?? '', /^Bearer\b/);
  // An API key is no way in to /me: it names no user.
  const withKey = await userdata(gh, 'me', { key });
  t.is(withKey.status, 401);
  t.regex(withKey.headers.get('www-authenticate') ?? '', /^Bearer\b/);
  const made_up = await userdata(gh, 'me', { token: 'not-a-real-token' });
  isError(t, made_up, 401, 'invalid_token');
  t.regex(made_up.headers.get('www-authenticate') ?? '', /^Bearer\b.*error="invalid_token"/);
  const basic = await userdata(gh, 'me', { headers: { authorization: 'Basic dXNlcjpwYXNz' } });
  t.is(basic.status, 401);
  t.regex(basic.headers.get('www-authenticate') ?? '', /^Bearer\b/);
});

test('a token without the userdata scope is refused with 403 insufficient_scope', async (t) => {
  const { gh, notes } = t.context;
  // Signed in to the app, but without the userdata scope.
  const { tokens } = await userWhoAuthorized(gh, 'openid-only', [notes], 'openid profile');
  const accessToken = tokens[0]!;
  const issued = await gh.gatehouse.provider().AccessToken.find(accessToken);
  t.is(issued?.scope, 'openid profile', 'a live token, without userdata');
  for (const call of [{}, { method: 'PUT' as const, body: { x: 1 } }, { method: 'PATCH' as const, body: { x: 1 } }, { method: 'DELETE' as const }]) {
    const res = await userdata(gh, 'me', { ...call, token: accessToken });
    isError(t, res, 403, 'insufficient_scope');
    t.regex(res.headers.get('www-authenticate') ?? '', /error="insufficient_scope"/);
  }
});

test('a client credentials token cannot use /userdata/me', async (t) => {
  const { gh, service } = t.context;
  const issued = await sendOnOwnConnection(gh, '/token', {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: basicAuth(service.clientId, service.clientSecret!),
    },
    body: Buffer.from(new URLSearchParams({ grant_type: 'client_credentials' }).toString()),
  });
  t.is(issued.status, 200, issued.text);
  const access_token = issued.json.access_token as string;
  isError(t, await userdata(gh, 'me', { token: access_token }), 401);
  isError(t, await userdata(gh, 'me', { method: 'PUT', token: access_token, body: { x: 1 } }), 401);
});

// ── Bad input: refused, and the stored document untouched ─────────────────────────────────

test('a body that is not JSON is refused with 400 and the document stays as it was', async (t) => {
  const { gh, keeper, key } = t.context;
  for (const body of ['{"note": ', 'not json at all', '{"a":1}{"b":2}', new Uint8Array([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d])]) {
    isError(t, await userdata(gh, keeper.sub, { method: 'PUT', key, body }), 400);
    isError(t, await userdata(gh, keeper.sub, { method: 'PATCH', key, body }), 400);
    isError(t, await userdata(gh, 'me', { method: 'PUT', token: keeper.token, body }), 400);
  }
  isError(t, await userdata(gh, keeper.sub, { method: 'PUT', key, body: '', contentType: 'application/json' }), 400);
  await keeperUntouched(t);
});

test('a JSON value that is not an object is refused with 400 and the document stays as it was', async (t) => {
  const { gh, keeper, key } = t.context;
  for (const value of ['[1,2]', '"text"', '42', 'null', 'true', '[]']) {
    isError(t, await userdata(gh, keeper.sub, { method: 'PUT', key, body: value }), 400);
    // A merge patch that is not an object would replace the whole document with a non-object.
    isError(t, await userdata(gh, keeper.sub, { method: 'PATCH', key, body: value }), 400);
  }
  await keeperUntouched(t);
});

test('a body with the wrong content type is refused with 415 and the document stays as it was', async (t) => {
  const { gh, keeper, key } = t.context;
  const doc = JSON.stringify({ replaced: true });
  isError(t, await userdata(gh, keeper.sub, { method: 'PUT', key, body: doc, contentType: 'text/plain' }), 415);
  isError(t, await userdata(gh, keeper.sub, { method: 'PUT', key, body: doc, contentType: 'application/x-www-form-urlencoded' }), 415);
  isError(t, await userdata(gh, keeper.sub, { method: 'PUT', key, body: doc, contentType: 'application/merge-patch+json' }), 415);
  // PATCH is a merge patch: plain application/json is not one.
  isError(t, await userdata(gh, keeper.sub, { method: 'PATCH', key, body: doc, contentType: 'application/json' }), 415);
  isError(t, await userdata(gh, keeper.sub, { method: 'PATCH', key, body: doc, contentType: 'text/plain' }), 415);
  // No Content-Type at all.
  const bare = await sendOnOwnConnection(gh, `/userdata/${keeper.sub}`, { method: 'PUT', headers: { 'x-api-key': key }, body: Buffer.from(doc) });
  isError(t, bare, 415);
  await keeperUntouched(t);
});

/** A compact JSON object of exactly `bytes` bytes. */
const docOfSize = (bytes: number) => {
  const skeleton = JSON.stringify({ pad: '' });
  return JSON.stringify({ pad: 'x'.repeat(bytes - skeleton.length) });
};

test('a body over 64 KiB is refused with 413 and the document stays as it was', async (t) => {
  const { gh, keeper, key } = t.context;
  const tooBig = docOfSize(64 * 1024 + 1);
  t.is(Buffer.byteLength(tooBig), 65537);
  isError(t, await userdata(gh, keeper.sub, { method: 'PUT', key, body: tooBig }), 413);
  isError(t, await userdata(gh, keeper.sub, { method: 'PATCH', key, body: tooBig }), 413);
  isError(t, await userdata(gh, 'me', { method: 'PUT', token: keeper.token, body: tooBig }), 413);
  // Far larger, declared or sent chunked (no Content-Length: only counting the bytes catches it).
  const huge = Buffer.from(docOfSize(1024 * 1024));
  for (const chunked of [false, true]) {
    const res = await sendOnOwnConnection(gh, `/userdata/${keeper.sub}`, { method: 'PUT', headers: { 'x-api-key': key, 'content-type': 'application/json' }, body: huge, chunked });
    isError(t, res, 413);
  }
  await keeperUntouched(t);
});

test('a document of exactly 64 KiB is stored, and a patch that would grow it past 64 KiB is refused with 413', async (t) => {
  const { gh, notes, key } = t.context;
  const { sub } = await userWhoAuthorized(gh, 'big-doc', [notes]);
  const exact = docOfSize(64 * 1024);
  t.is(Buffer.byteLength(exact), 65536);
  const stored = await userdata(gh, sub, { method: 'PUT', key, body: exact });
  t.is(stored.status, 200, stored.text.slice(0, 200));
  t.is(stored.headers.get('etag'), '"1"');
  // Each patch is small; the document it would make is not.
  isError(t, await userdata(gh, sub, { method: 'PATCH', key, body: { more: 'y' } }), 413);
  const after = await userdata(gh, sub, { key });
  t.is(after.text, exact);
  t.is(after.headers.get('etag'), '"1"');
  // Shrinking it is fine.
  const shrunk = await userdata(gh, sub, { method: 'PATCH', key, body: { pad: null, small: true } });
  t.is(shrunk.status, 200);
  t.deepEqual(shrunk.json, { small: true });
});

test('an operator lowers the size limit with GATEHOUSE_USERDATA_MAX_BYTES', async (t) => {
  const gh = await startTestGatehouse({ env: { GATEHOUSE_USERDATA_MAX_BYTES: '100' } });
  try {
    const created = await gh.services.clients.create({ name: 'Small', type: 'confidential', grantTypes: ['authorization_code'], redirectUris: [REDIRECT_URI], scope: ['openid', 'userdata'] });
    const app = { clientId: created.client.clientId, clientSecret: created.clientSecret! };
    const { key } = await gh.services.apiKeys.create(app.clientId, ['userdata:read', 'userdata:write']);
    const { sub } = await userWhoAuthorized(gh, 'small', [app]);
    t.is((await userdata(gh, sub, { method: 'PUT', key, body: docOfSize(100) })).status, 200);
    isError(t, await userdata(gh, sub, { method: 'PUT', key, body: docOfSize(101) }), 413);
    t.is((await userdata(gh, sub, { key })).text, docOfSize(100));
  } finally {
    await gh.close();
  }
});

// ── api-keys on the command line ────────────────────────────────────────────────────────────

/** The secret part of a key `ghk_<id>_<secret>` (the id is alphanumeric; the secret may hold "_"). */
const secretOf = (key: string) => /^ghk_[A-Za-z0-9]+_(.+)$/.exec(key)![1]!;

test('api-keys create prints a ghk_ key once, and api-keys list shows its id, scopes and last use but never the key', async (t) => {
  const { gh, notes, created, key, keeper } = t.context;
  t.regex(created.key, /^ghk_/);
  t.truthy(created.id);
  t.true(created.key.startsWith(`ghk_${created.id}_`));
  t.deepEqual(created.scopes, ['userdata:read', 'userdata:write']);
  t.is(created.client_id, notes.clientId);
  t.is(created.last_used_at, null, 'a new key was never used');
  const secret = secretOf(created.key);
  t.true(secret.length >= 32);

  t.is((await userdata(gh, keeper.sub, { key })).status, 200);
  const listed = await runCli(['api-keys', 'list', '--client', notes.clientId, '--json'], gh.env);
  t.is(listed.code, 0, listed.stderr);
  const entry = listed.json<Array<Record<string, unknown>>>().find((k) => k.id === created.id);
  t.truthy(entry, listed.stdout);
  t.deepEqual(entry!.scopes, ['userdata:read', 'userdata:write']);
  t.is(entry!.client_id, notes.clientId);
  t.is(entry!.revoked_at, null);
  t.false('key' in entry!);
  t.false(listed.stdout.includes(secret));
  t.false(listed.stdout.includes(created.key));
  // Used in test.before (storing the keeper's document) and just now: recorded in between.
  const usedAt = Date.parse(String(entry!.last_used_at));
  t.false(Number.isNaN(usedAt), `last_used_at: ${entry!.last_used_at}`);
  t.true(usedAt >= t.context.createdAt - 1000 && usedAt <= Date.now(), `last_used_at: ${entry!.last_used_at}`);
});

test("only a keyed hash of an API key's secret is stored in the database", async (t) => {
  const { gh, created } = t.context;
  const secret = secretOf(created.key);
  const row = await gh.services.db('api_keys').where({ id: created.id }).first();
  t.truthy(row);
  t.truthy(row.secret_hash);
  t.false(String(row.secret_hash).includes(secret));
  t.not(row.secret_hash, secret);
  for (const value of Object.values(row)) {
    t.false(String(value).includes(secret));
    t.false(String(value).includes(created.key));
  }
});

test('api-keys create refuses an unknown scope and an unknown client', async (t) => {
  const { gh, notes } = t.context;
  const keysBefore = (await gh.services.apiKeys.list()).length;
  const [badScope, badClient] = await Promise.all([
    runCli(['api-keys', 'create', '--client', notes.clientId, '--scope', 'userdata:read', '--scope', 'userdata:admin', '--json'], gh.env),
    runCli(['api-keys', 'create', '--client', 'no-such-client', '--scope', 'userdata:read', '--json'], gh.env),
  ]);
  for (const res of [badScope, badClient]) {
    t.not(res.code, 0);
    t.false(res.stdout.includes('ghk_'));
    const err = JSON.parse(res.stderr.trim().split('\n').pop()!);
    t.is(typeof err.error, 'string');
    t.truthy(err.error_description);
  }
  t.regex(badScope.stderr, /userdata:admin/);
  t.regex(badClient.stderr, /no-such-client/);
  t.is((await gh.services.apiKeys.list()).length, keysBefore);
});

test('a key reaches its own document of a user who signed in to its app without asking for the userdata scope', async (t) => {
  // Signing in is the relationship: the document is the app's own data, not the user's profile.
  const { gh, notes, key } = t.context;
  const { sub } = await userWhoAuthorized(gh, 'signed-in-without-userdata', [notes], 'openid profile');
  const write = await userdata(gh, sub, { method: 'PUT', key, body: { a: 1 } });
  t.is(write.status, 200, write.text);
  const read = await userdata(gh, sub, { key });
  t.is(read.status, 200);
  t.deepEqual(read.json, { a: 1 });
});
