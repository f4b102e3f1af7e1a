import anyTest, { type TestFn } from 'ava';
import createHttpError from 'http-errors';
import { errors } from 'oidc-provider';
import { asSentence, GatehouseError, LOCKS, LockedOutError, lockedDescription, NotFoundError, ValidationError } from '../src/errors.ts';
import { lockedClientError, StoreUnavailableError } from '../src/oidc/internals.ts';
import { problemOf, UNEXPECTED } from '../src/problem.ts';
import { startTestGatehouse, type TestGatehouse } from './support/gatehouse.ts';

/**
 * The one error model: every kind of error maps to one problem (status, code, what may be shown,
 * Retry-After), and every surface shows only what is meant for the caller.
 */

const test = anyTest as TestFn<{ gh: TestGatehouse; token: string }>;

// ---- the mapping ------------------------------------------------------------------------------

test('a GatehouseError is shown as it is, with its status and code', (t) => {
  t.deepEqual(problemOf(new GatehouseError(409, 'conflict', 'the name is taken')), {
    status: 409,
    code: 'conflict',
    description: 'the name is taken',
    exposed: true,
  });
  t.deepEqual(problemOf(new NotFoundError('client x')), { status: 404, code: 'not_found', description: 'client x does not exist', exposed: true });
  t.deepEqual(problemOf(new ValidationError({ name: 'is required' })), {
    status: 400,
    code: 'invalid_request',
    description: 'name: is required',
    exposed: true,
  });
});

test('our own 503 says when to try again', (t) => {
  t.like(problemOf(new GatehouseError(503, 'temporarily_unavailable', 'metrics could not be collected')), { status: 503, exposed: true, retryAfter: 5 });
});

test('a lock is one error type: 429 with Retry-After and the one wording', (t) => {
  const locked = new LockedOutError(LOCKS.apiKeys, 900);
  t.deepEqual(problemOf(locked), {
    status: 429,
    code: 'too_many_requests',
    description: 'too many wrong API keys: this address is locked for 15 minutes; try again later',
    exposed: true,
    retryAfter: 900,
  });
  t.is(lockedDescription(LOCKS.signIn, 90), 'too many failed sign-ins: sign-in is locked for 2 minutes; try again later');
  // A backoff of seconds says seconds, not "1 minute".
  t.is(
    lockedDescription(LOCKS.clientAuthentication, 4),
    'too many failed client authentications: this client (or this address) is locked for 4 seconds; try again later',
  );
  t.is(lockedDescription(LOCKS.signInsAtOnce, 1), 'too many sign-ins at once: sign-in is locked for 1 second; try again later');
  // The pages show it as a sentence: the wording the sign-in forms have always shown.
  t.is(asSentence(new LockedOutError(LOCKS.signIn, 900).description), 'Too many failed sign-ins. Sign-in is locked for 15 minutes; try again later.');
});

test('a locked client is oidc-provider’s invalid_client, answered 429 with Retry-After', (t) => {
  const locked = lockedClientError(lockedDescription(LOCKS.clientAuthentication, 600), 600);
  t.deepEqual(problemOf(locked), {
    status: 429,
    code: 'invalid_client',
    description: 'too many failed client authentications: this client (or this address) is locked for 10 minutes; try again later',
    exposed: true,
    retryAfter: 600,
  });
});

test('oidc-provider’s errors show their error_description, written for clients', (t) => {
  t.deepEqual(problemOf(new errors.InvalidGrant('grant request is invalid')), {
    status: 400,
    code: 'invalid_grant',
    description: 'grant request is invalid',
    exposed: true,
  });
  t.like(problemOf(new errors.SessionNotFound('interaction session id cookie not found')), { status: 400, code: 'invalid_request', exposed: true });
  // One it does not expose is an unexpected error.
  const hidden = new errors.InvalidRequest('secret detail');
  hidden.expose = false;
  t.deepEqual(problemOf(hidden), { status: 500, code: 'server_error', description: UNEXPECTED, exposed: false });
});

test('a store outage is 503 temporarily_unavailable with Retry-After, from our classifier or oidc-provider’s error', (t) => {
  const expected = { status: 503, code: 'temporarily_unavailable', exposed: true, retryAfter: 5 };
  t.like(problemOf(new StoreUnavailableError('redis', new Error('down'))), expected);
  t.like(problemOf(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })), expected);
  t.like(problemOf(new AggregateError([Object.assign(new Error('x'), { code: '57P01' })])), expected);
  t.notRegex(problemOf(Object.assign(new Error('connect ECONNREFUSED 10.0.0.7:5432'), { code: 'ECONNREFUSED' })).description, /10\.0\.0\.7/);
});

test('an http-error shows its message only when it says expose, and keeps its status and headers', (t) => {
  t.deepEqual(problemOf(createHttpError(413, 'request entity too large')), {
    status: 413,
    code: 'invalid_request',
    description: 'request entity too large',
    exposed: true,
  });
  t.deepEqual(problemOf(createHttpError(405, 'no', { headers: { allow: 'GET' } })), {
    status: 405,
    code: 'invalid_request',
    description: 'no',
    exposed: true,
    headers: { allow: 'GET' },
  });
  const quiet = createHttpError(400, 'internal parser state: 0x1f', { expose: false });
  t.deepEqual(problemOf(quiet), { status: 400, code: 'invalid_request', description: 'bad request', exposed: false });
  // The JSON body parser's SyntaxError carries status 400 and no expose: its message (which
  // quotes the body) is not shown.
  const syntax = Object.assign(new SyntaxError('Unexpected token } in JSON at position 9'), { status: 400 });
  t.deepEqual(problemOf(syntax), { status: 400, code: 'invalid_request', description: 'bad request', exposed: false });
});

test('a 5xx never shows its message, and anything unexpected is a 500 without details', (t) => {
  const unexpected = { status: 500, code: 'server_error', description: UNEXPECTED, exposed: false };
  t.deepEqual(problemOf(createHttpError(502, 'upstream said: password=hunter2')), unexpected);
  t.deepEqual(problemOf(new TypeError("Cannot read properties of undefined (reading 'rows')")), unexpected);
  t.deepEqual(problemOf('a string'), unexpected);
  t.deepEqual(problemOf(undefined), unexpected);
  t.deepEqual(problemOf(new errors.OIDCProviderError(500, 'server_error')), unexpected);
});

// ---- every surface ----------------------------------------------------------------------------

test.before(async (t) => {
  const gh = await startTestGatehouse();
  const { token } = await gh.services.adminTokens.create('error model');
  t.context = { gh, token };
});

test.after.always(async (t) => {
  await t.context.gh?.close();
});

const MARKER = 'zz-marker-from-the-body-zz';

test('the admin API answers bad JSON 400 invalid_request without the parser’s message, and a body over the limit 413', async (t) => {
  const { gh, token } = t.context;
  const post = (body: string) =>
    fetch(`${gh.url}/admin/api/clients`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body });
  const bad = await post(`{"client_name": "${MARKER}", ]`);
  t.is(bad.status, 400);
  const badBody = (await bad.json()) as Record<string, string>;
  t.deepEqual(badBody, { error: 'invalid_request', error_description: 'bad request' });

  const huge = await post(JSON.stringify({ client_name: 'x'.repeat(70 * 1024) }));
  t.is(huge.status, 413);
  t.deepEqual(await huge.json(), { error: 'invalid_request', error_description: 'request entity too large' });
});

test('the interaction pages answer a form over the limit with the error page, showing only the exposed message', async (t) => {
  const { gh } = t.context;
  const form = `username=${MARKER}&password=${'p'.repeat(20 * 1024)}`;
  const res = await fetch(`${gh.url}/interaction/some-uid/login`, {
    method: 'POST',
    headers: { accept: 'text/html', 'content-type': 'application/x-www-form-urlencoded' },
    body: form,
  });
  t.is(res.status, 413);
  const html = await res.text();
  t.regex(res.headers.get('content-type') ?? '', /text\/html/);
  t.regex(html, /request entity too large/);
  t.notRegex(html, new RegExp(MARKER));

  const json = await fetch(`${gh.url}/interaction/some-uid/login`, {
    method: 'POST',
    headers: { accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' },
    body: form,
  });
  t.is(json.status, 413);
  t.deepEqual(await json.json(), { error: 'invalid_request', error_description: 'request entity too large' });
});

test('the admin pages answer a form over the limit with their error page, showing only the exposed message', async (t) => {
  const { gh } = t.context;
  const res = await fetch(`${gh.url}/admin/login`, {
    method: 'POST',
    headers: { accept: 'text/html', 'content-type': 'application/x-www-form-urlencoded' },
    body: `username=${MARKER}&password=${'p'.repeat(40 * 1024)}`,
  });
  t.is(res.status, 413);
  const html = await res.text();
  t.regex(html, /Too much to send/);
  t.regex(html, /request entity too large/);
  t.notRegex(html, new RegExp(MARKER));
});

test('the userdata API answers bad JSON 400 with its own description, not the parser’s message', async (t) => {
  const { gh } = t.context;
  const res = await fetch(`${gh.url}/userdata/someone`, {
    method: 'PUT',
    headers: { 'x-api-key': 'gk_not_a_key', 'content-type': 'application/json' },
    body: `{"${MARKER}": ]`,
  });
  t.true(res.status === 400 || res.status === 401, String(res.status));
  const body = (await res.json()) as Record<string, string>;
  t.truthy(body.error);
  t.notRegex(body.error_description ?? '', /position|Unexpected token/);
});
