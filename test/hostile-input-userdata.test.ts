import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import fc from 'fast-check';
import { changedTables, fuzz, headerValue, mustBeJsonError, mustBeSafe, pct, raw, send, snapshot, stillUp, summary, violation, type HostileRequest } from './support/fuzz.ts';
import { startTestGatehouse, type TestGatehouse } from './support/gatehouse.ts';
import { BROKEN_JSON, CONTENT_TYPES, hostileJsonText, hugeString, nastyString } from './support/nasty-inputs.ts';
import { REDIRECT_URI } from './support/relying-party.ts';
import { userdata, userWhoAuthorized } from './support/userdata.ts';

/**
 * Hostile input on /userdata/:sub (a real API key with read and write) and /userdata/me (the
 * person's real access token with the userdata scope): odd methods, subs, bodies, content
 * types and preconditions. The keeper's document is only ever sent writes whose If-Match
 * cannot match, so whatever else the request holds, it must come back byte for byte.
 */

interface Context {
  gh: TestGatehouse;
  key: string;
  keeper: { sub: string; token: string };
  scratch: { sub: string; token: string };
}

const test = anyTest as TestFn<Context>;

const KEEPER_DOC = { note: 'keep me', nested: { a: [1, 2] }, '<script>': '{{7*7}}' };
const RUNS = { bySub: 500, me: 300, documents: 200 };

test.before(async (t) => {
  // Behind a (pretend) proxy: requests with wrong keys come from addresses of their own, so the
  // per-address lock on wrong API keys never locks out the real key's requests.
  const gh = await startTestGatehouse({ env: { GATEHOUSE_TRUST_PROXY: 'true' } });
  t.context = { gh } as Context;
  const created = await gh.services.clients.create({ name: 'Notes', type: 'confidential', grantTypes: ['authorization_code'], redirectUris: [REDIRECT_URI], scope: ['openid', 'profile', 'userdata'] });
  const notes = { clientId: created.client.clientId, clientSecret: created.clientSecret! };
  const key = (await gh.services.apiKeys.create(notes.clientId, ['userdata:read', 'userdata:write'])).key;
  const [keeper, scratch] = await Promise.all([userWhoAuthorized(gh, 'keeper', [notes]), userWhoAuthorized(gh, 'scratch', [notes])]);
  const stored = await userdata(gh, keeper.sub, { method: 'PUT', key, body: KEEPER_DOC });
  if (stored.status !== 200) throw new Error(`could not store the keeper's document: ${stored.status} ${stored.text}`);
  t.context = { gh, key, keeper: { sub: keeper.sub, token: keeper.tokens[0]! }, scratch: { sub: scratch.sub, token: scratch.tokens[0]! } };
});

test.after.always(async (t) => {
  if (t.context.gh) {
    console.log(`hostile-input-userdata: ${summary()}`);
    await t.context.gh.close();
  }
});

async function keeperUntouched(t: ExecutionContext<Context>) {
  const { gh, keeper, key } = t.context;
  const now = await userdata(gh, keeper.sub, { key });
  t.is(now.status, 200, now.text);
  t.deepEqual(now.json, KEEPER_DOC);
  t.is(now.headers.get('etag'), '"1"');
}

/** A request body: broken or odd JSON, a valid object, nasty text, raw bytes, or far over the 64 KiB limit. */
const hostileBody = fc.oneof(
  { weight: 6, arbitrary: hostileJsonText() },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)) },
  { weight: 1, arbitrary: fc.constantFrom(65 * 1024, 300 * 1024, 3 * 1024 * 1024).map((n) => `{"a":"${hugeString(n)}"}`) },
  { weight: 1, arbitrary: fc.constantFrom(`{"a":"${hugeString(64 * 1024 - 12)}"}`, `{"${'k'.repeat(40_000)}":1}`) },
);

/** An If-Match that never matches version 1: a non-matching strong tag is always in it. */
const nonMatchingIfMatch = fc.oneof(
  fc.constantFrom('"999"', 'W/"1", "2"', '"0"', '"1 "', '"-1", "01x"', '"9007199254740993"'),
  nastyString({ maxLength: 60 }).filter((s) => !/"1"/.test(s) && !/"0*1"/.test(s)).map((s) => `${headerValue(s).replace(/^[\s*]+$/, '')} "999"`),
);

/** Writes and reads of someone's document, as hostile as the wire allows; writes always carry a non-matching If-Match. */
function hostileUserdataRequest(sub: fc.Arbitrary<string>, auth: fc.Arbitrary<Record<string, string>>) {
  return fc.record({
    method: fc.oneof({ weight: 9, arbitrary: fc.constantFrom('GET', 'PUT', 'PUT', 'PATCH', 'PATCH', 'DELETE', 'HEAD') }, { weight: 1, arbitrary: fc.constantFrom('POST', 'OPTIONS', 'FOO') }),
    sub,
    body: fc.option(hostileBody, { freq: 6 }),
    contentType: fc.oneof({ weight: 2, arbitrary: fc.constantFrom('application/json', 'application/merge-patch+json') }, { weight: 1, arbitrary: fc.constantFrom(...CONTENT_TYPES) }),
    ifMatch: nonMatchingIfMatch,
    ifNoneMatch: fc.option(nastyString({ maxLength: 60 })),
    auth,
    chunked: fc.boolean(),
  });
}

function toRequest(input: { method: string; sub: string; body: string | Buffer | null; contentType: string | undefined; ifMatch: string; ifNoneMatch: string | null; auth: Record<string, string>; chunked: boolean }): HostileRequest {
  const headers: Record<string, string> = { ...input.auth, 'if-match': input.ifMatch };
  if (input.ifNoneMatch !== null) headers['if-none-match'] = headerValue(input.ifNoneMatch);
  if (input.body !== null && input.contentType !== undefined) headers['content-type'] = input.contentType;
  if (input.body !== null && input.chunked) headers['transfer-encoding'] = 'chunked';
  return { method: input.method, path: `/userdata/${input.sub}`, headers, body: input.body ?? undefined };
}

test(`/userdata/:sub: ${RUNS.bySub} hostile requests with a real read-write API key get JSON errors, and the keeper's document never changes`, async (t) => {
  const { gh, key, keeper } = t.context;
  const before = await snapshot(gh.services.db);
  const sub = fc.oneof(
    { weight: 5, arbitrary: fc.constant(keeper.sub) },
    { weight: 2, arbitrary: nastyString().map((s) => pct(s) || 'x') },
    { weight: 1, arbitrary: nastyString().map((s) => raw(s, '/?#') || 'x') },
    { weight: 1, arbitrary: nastyString({ maxLength: 20 }).map((s) => `${keeper.sub}${pct(s)}`) },
    { weight: 1, arbitrary: fc.constantFrom(keeper.sub.toUpperCase(), `${keeper.sub}/`, `${keeper.sub}%00`, `%2e%2e%2f${keeper.sub}`, `..%2f..%2fadmin`, 'x'.repeat(300), '%ZZ', '%E0%A4%A') },
  );
  const elsewhere = (headers: Record<string, string>) => fc.ipV4().map((ip): Record<string, string> => ({ ...headers, 'x-forwarded-for': ip }));
  const auth: fc.Arbitrary<Record<string, string>> = fc.oneof(
    { weight: 8, arbitrary: fc.constant({ 'x-api-key': key }) },
    { weight: 1, arbitrary: nastyString().chain((s) => elsewhere({ 'x-api-key': headerValue(s) })) },
    { weight: 1, arbitrary: fc.constantFrom({ 'x-api-key': `${key}x` }, { 'x-api-key': key.slice(0, -1) }, { 'x-api-key': key.toUpperCase() }, { authorization: `Bearer ${key}` }, {}).chain((h) => elsewhere(h as Record<string, string>)) },
  );
  await fuzz(
    t,
    'GET|PUT|PATCH|DELETE /userdata/:sub',
    hostileUserdataRequest(sub, auth),
    async (input) => {
      const req = toRequest(input);
      const a = await send(gh, req);
      mustBeSafe(a, req, [input.sub, typeof input.body === 'string' ? input.body : '', input.ifMatch, input.ifNoneMatch ?? '']);
      if (input.method === 'OPTIONS' && a.status < 300) {
        // The router's answer to OPTIONS: which methods the path takes.
        if (!a.headers.allow) throw violation('OPTIONS without Allow', req, a);
      } else if (a.status < 400) {
        const reading = input.method === 'GET' || input.method === 'HEAD';
        if (!reading || input.sub.replace(/\/$/, '') !== keeper.sub || input.auth['x-api-key'] !== key) throw violation('accepted', req, a);
        if (a.status === 200 && input.method === 'GET' && JSON.stringify(a.json) !== JSON.stringify(KEEPER_DOC)) throw violation("not the keeper's document", req, a);
      } else mustBeJsonError(a, req);
      return a.status;
    },
    { numRuns: RUNS.bySub, seed: 0x05ab },
  );
  await keeperUntouched(t);
  t.deepEqual(changedTables(before, await snapshot(gh.services.db)), []);
  await stillUp(t, gh);
});

test(`/userdata/me: ${RUNS.me} hostile requests with the person's real access token get JSON errors, and their document never changes`, async (t) => {
  const { gh, keeper } = t.context;
  const before = await snapshot(gh.services.db);
  const sub = fc.oneof({ weight: 6, arbitrary: fc.constant('me') }, { weight: 1, arbitrary: fc.constantFrom('ME', 'me/', 'me%00', 'm%65', '%6De', 'me.json', 'me;x', 'me%2f..%2f') });
  const auth: fc.Arbitrary<Record<string, string>> = fc.oneof(
    { weight: 8, arbitrary: fc.constant({ authorization: `Bearer ${keeper.token}` }) },
    { weight: 1, arbitrary: nastyString().map((s) => ({ authorization: headerValue(`Bearer ${s}`) })) },
    { weight: 1, arbitrary: fc.constantFrom({ authorization: `Bearer ${keeper.token}x` }, { authorization: `Basic ${keeper.token}` }, { authorization: `bearer  ${keeper.token}` }, { authorization: `Bearer ${keeper.token} ${keeper.token}` }, { 'x-api-key': keeper.token }, {}) as fc.Arbitrary<Record<string, string>> },
  );
  await fuzz(
    t,
    'GET|PUT|PATCH|DELETE /userdata/me',
    hostileUserdataRequest(sub, auth),
    async (input) => {
      const req = toRequest(input);
      const a = await send(gh, req);
      mustBeSafe(a, req, [typeof input.body === 'string' ? input.body : '', input.ifMatch, input.ifNoneMatch ?? '']);
      if (input.method === 'OPTIONS' && a.status < 300) {
        // The router's answer to OPTIONS: which methods the path takes.
        if (!a.headers.allow) throw violation('OPTIONS without Allow', req, a);
      } else if (a.status < 400) {
        const reading = input.method === 'GET' || input.method === 'HEAD';
        if (!reading || input.auth.authorization !== `Bearer ${keeper.token}`) throw violation('accepted', req, a);
        if (a.status === 200 && input.method === 'GET' && JSON.stringify(a.json) !== JSON.stringify(KEEPER_DOC)) throw violation("not the keeper's document", req, a);
      } else mustBeJsonError(a, req);
      return a.status;
    },
    { numRuns: RUNS.me, seed: 0x3e },
  );
  await keeperUntouched(t);
  t.deepEqual(changedTables(before, await snapshot(gh.services.db)), []);
  await stillUp(t, gh);
});

/** Valid JSON objects with nasty keys and values, and a few that are deep or nearly at the limit. */
const validDocument = fc.oneof(
  { weight: 6, arbitrary: fc.dictionary(nastyString({ maxLength: 40 }), fc.oneof(nastyString(), fc.jsonValue({ maxDepth: 3 })), { maxKeys: 8 }).map((o) => JSON.stringify(o)) },
  { weight: 1, arbitrary: fc.constantFrom('{"__proto__":{"admin":true},"constructor":{"prototype":{"x":1}}}', '{"a":"\\u0000","b":"\\ud800"}', '{"":""}') },
  { weight: 1, arbitrary: fc.constantFrom(...BROKEN_JSON.filter((s) => s.startsWith('{"a":') && s.length > 1000)) },
  { weight: 1, arbitrary: fc.integer({ min: 50, max: 30_000 }).map((depth) => `{"deep":${'['.repeat(depth)}${']'.repeat(depth)}}`) },
  { weight: 1, arbitrary: fc.integer({ min: 50, max: 12_000 }).map((depth) => `${'{"a":'.repeat(depth)}{}${'}'.repeat(depth)}`) },
);

// Serial (ava runs it before the others): its writes would show in their before/after comparisons.
test.serial(`/userdata: ${RUNS.documents} valid documents with nasty keys, values and depths are stored exactly as sent, or refused with a JSON error`, async (t) => {
  const { gh, key, scratch } = t.context;
  await fuzz(
    t,
    'PUT|PATCH /userdata (valid documents)',
    fc.record({ text: validDocument, patch: fc.boolean(), me: fc.boolean() }),
    async ({ text, patch, me }) => {
      const req: HostileRequest = {
        method: patch ? 'PATCH' : 'PUT',
        path: `/userdata/${me ? 'me' : scratch.sub}`,
        headers: { ...(me ? { authorization: `Bearer ${scratch.token}` } : { 'x-api-key': key }), 'content-type': patch ? 'application/merge-patch+json' : 'application/json' },
        body: text,
      };
      const a = await send(gh, req);
      mustBeSafe(a, req, [text]);
      if (a.status !== 200) {
        mustBeJsonError(a, req);
        return a.status;
      }
      const read = await send(gh, { method: 'GET', path: `/userdata/${scratch.sub}`, headers: { 'x-api-key': key } });
      if (read.status !== 200 || read.text !== a.text) throw violation(`stored ${read.text.slice(0, 200)} differs from the answer`, req, a);
      if (!patch && JSON.stringify(JSON.parse(text)) !== read.text) throw violation(`stored ${read.text.slice(0, 200)}, not the document sent`, req, a);
      return a.status;
    },
    { numRuns: RUNS.documents, seed: 0xd0c },
  );
  await keeperUntouched(t);
  await stillUp(t, gh);
});
