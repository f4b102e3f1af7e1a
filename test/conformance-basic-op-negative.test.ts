import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import type { TestGatehouse } from './support/gatehouse.ts';
import { REDIRECT_URI, startLoopbackGatehouse, type RegisteredClient } from './support/relying-party.ts';
import {
  authorizeUrl,
  codeFlow,
  pkcePair,
  random,
  registerClient,
  registerPerson,
  RP_ORIGIN,
  tokenRequest,
  userinfo,
  walk,
  type Json,
} from './support/conformance.ts';
import { UserAgent, type Page } from './support/user-agent.ts';
import { testClock } from './support/clock.ts';

/**
 * The OpenID Foundation's "Basic OP" plan, the modules where the suite expects a refusal (code
 * reuse, redirect URIs, request objects, PKCE), and the redirect-URI modules of its dynamic plan
 * done with operator-registered clients. Each test is named after the suite's module.
 */

interface Context {
  gh: TestGatehouse;
  basic: RegisteredClient;
  /** Registered with two redirect URIs (oidcc-ensure-redirect-uri-in-authorization-request). */
  twoUris: RegisteredClient;
  /** Registered with a redirect URI that has a query (oidcc-redirect-uri-query-*). */
  withQuery: RegisteredClient;
  /** A public client: PKCE is required. */
  spa: RegisteredClient;
  discovery: Json;
}

const test = anyTest as TestFn<Context>;
const PASSWORD = 'correct horse battery staple';
const SECOND_REDIRECT_URI = 'http://127.0.0.1:8765/callback-two';
const QUERY_REDIRECT_URI = 'http://127.0.0.1:8765/callback-query?dummy1=lorem&dummy2=ipsum';
const UNREGISTERED_URI = 'http://127.0.0.1:8765/not-registered';

test.before(async (t) => {
  const gh = await startLoopbackGatehouse();
  const code = { type: 'confidential', grantTypes: ['authorization_code', 'refresh_token'] };
  const [basic, twoUris, withQuery, spa] = await Promise.all([
    registerClient(gh, { name: 'Conformance negative', ...code, redirectUris: [REDIRECT_URI] }),
    registerClient(gh, { name: 'Conformance two URIs', ...code, redirectUris: [REDIRECT_URI, SECOND_REDIRECT_URI] }),
    registerClient(gh, { name: 'Conformance query URI', ...code, redirectUris: [QUERY_REDIRECT_URI] }),
    registerClient(gh, { name: 'Conformance SPA', type: 'public', grantTypes: ['authorization_code'], redirectUris: [REDIRECT_URI] }),
  ]);
  const discovery = (await (await fetch(`${gh.config.issuer}/.well-known/openid-configuration`)).json()) as Json;
  t.context = { gh, basic, twoUris, withQuery, spa, discovery };
});

test.after.always(async (t) => t.context.gh?.close());

type T = ExecutionContext<Context>;
const clock = testClock();

const open = (url: string): Promise<Page> => new UserAgent([RP_ORIGIN]).open(url);

/** The request the suite builds, for `client`, with `params` on top (undefined leaves one out). */
function request(t: T, params: Record<string, string | undefined> = {}, client: RegisteredClient = t.context.basic) {
  const state = random();
  return { state, url: authorizeUrl(t.context.gh, { response_type: 'code', client_id: client.clientId, redirect_uri: REDIRECT_URI, scope: 'openid', state, nonce: random(), ...params }) };
}

/**
 * What the suite's "placeholder" modules accept as a refusal without redirect: Gatehouse's error
 * page (an HTTP error status, HTML naming the problem), the browser still at Gatehouse.
 */
function assertErrorPage(t: T, page: Page, mentions: RegExp) {
  t.false(page.url.startsWith(RP_ORIGIN), `the browser was sent to ${page.url}`);
  t.true(page.url.startsWith(t.context.gh.config.issuer), page.url);
  t.true(page.status >= 400 && page.status < 500, `status ${page.status}`);
  t.regex(page.headers.get('content-type') ?? '', /text\/html/);
  t.regex(page.html, mentions);
}

/** A redirect to the client carrying `error` and the state, and no code. */
function assertErrorRedirect(t: T, page: Page, redirectUri: string, state: string, errors: string[]) {
  t.true(page.url.startsWith(redirectUri), `not redirected to the client: ${page.url} (${page.status}) ${page.html.slice(0, 200)}`);
  const params = new URL(page.url).searchParams;
  t.true(errors.includes(params.get('error') ?? ''), `error=${params.get('error')} (${params.get('error_description')})`);
  t.is(params.get('state'), state);
  t.false(params.has('code'));
}

const flow = async (t: T, client: RegisteredClient, params: Record<string, string | undefined> = {}, options: { redirectUri?: string; verifier?: string; auth?: 'basic' | 'none' } = {}) =>
  codeFlow(t.context.gh, new UserAgent([RP_ORIGIN]), {
    client,
    auth: options.auth,
    person: await registerPerson(t.context.gh, PASSWORD),
    password: PASSWORD,
    params,
    redirectUri: options.redirectUri ?? REDIRECT_URI,
    verifier: options.verifier,
  });

test('oidcc-response-type-missing: a request without response_type is refused with invalid_request, redirected to the registered URI with the state', async (t) => {
  const { state, url } = request(t, { response_type: undefined });
  const page = await open(url);
  assertErrorRedirect(t, page, REDIRECT_URI, state, ['invalid_request', 'unsupported_response_type']);
  t.regex(new URL(page.url).searchParams.get('error_description') ?? '', /response_type/);
});

async function codeReuse(t: T, waitMs: number) {
  const { gh, basic } = t.context;
  const first = await flow(t, basic, { scope: 'openid offline_access', prompt: 'consent' });
  t.is(typeof first.token.body.refresh_token, 'string');
  clock.advance(waitMs);
  const again = await tokenRequest(gh, basic, 'basic', { grant_type: 'authorization_code', code: first.callback.get('code')!, redirect_uri: REDIRECT_URI });
  t.is(again.status, 400);
  t.regex(again.headers.get('content-type') ?? '', /^application\/json/);
  t.is(again.body.error, 'invalid_grant');
  t.is(typeof again.body.error_description, 'string');
  t.notRegex(again.body.error_description, /[\r\n\t]/);
  // RFC 6749 4.1.2: the tokens issued from the code are revoked.
  t.is((await userinfo(gh, first.token.body.access_token)).status, 401, 'the first access token still works');
  const refreshed = await tokenRequest(gh, basic, 'basic', { grant_type: 'refresh_token', refresh_token: first.token.body.refresh_token });
  t.is(refreshed.body.error, 'invalid_grant', 'the first refresh token still works');
}

test('oidcc-codereuse: a code used twice is refused with invalid_grant and the tokens it issued are revoked', async (t) => {
  await codeReuse(t, 0);
});

// Serial: no other test's code or token is in flight while the clock jumps.
test.serial('oidcc-codereuse-30seconds: a code used again 30 seconds later is refused with invalid_grant and the tokens it issued are revoked', async (t) => {
  await codeReuse(t, 30_000);
});

test('oidcc-ensure-registered-redirect-uri: an unregistered redirect_uri gets an error page and no redirect', async (t) => {
  const page = await open(request(t, { redirect_uri: UNREGISTERED_URI }).url);
  assertErrorPage(t, page, /redirect_uri/);
});

test('oidcc-ensure-redirect-uri-in-authorization-request: a client with two redirect URIs omitting redirect_uri gets an error page', async (t) => {
  const page = await open(request(t, { redirect_uri: undefined }, t.context.twoUris).url);
  assertErrorPage(t, page, /redirect_uri/);
});

test('oidcc-redirect-uri-query-OK: the registered redirect URI with its query succeeds, and the query is kept beside code and state', async (t) => {
  const f = await flow(t, t.context.withQuery, { redirect_uri: QUERY_REDIRECT_URI }, { redirectUri: QUERY_REDIRECT_URI });
  t.is(f.callback.get('dummy1'), 'lorem');
  t.is(f.callback.get('dummy2'), 'ipsum');
  t.is(f.callback.get('state'), f.state);
  t.is(typeof f.token.body.id_token, 'string');
});

test('oidcc-redirect-uri-query-mismatch: a redirect URI whose query differs from the registered one gets an error page', async (t) => {
  const page = await open(request(t, { redirect_uri: QUERY_REDIRECT_URI.replace('ipsum', 'dolor') }, t.context.withQuery).url);
  assertErrorPage(t, page, /redirect_uri/);
});

test('oidcc-redirect-uri-query-added: a query added to a redirect URI registered without one gets an error page', async (t) => {
  const page = await open(request(t, { redirect_uri: `${REDIRECT_URI}?dummy=foo` }).url);
  assertErrorPage(t, page, /redirect_uri/);
});

test('oidcc-redirect-uri-regfrag: a redirect URI with a fragment cannot be registered', async (t) => {
  const err = await t.throwsAsync(registerClient(t.context.gh, { name: 'Fragment', type: 'confidential', grantTypes: ['authorization_code'], redirectUris: [`${REDIRECT_URI}#foo`] }));
  t.regex(err!.message + JSON.stringify((err as { fields?: unknown }).fields ?? {}), /fragment/);
});

const unsignedJwt = (payload: Json) => `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.`;

// Gatehouse does not take request objects (oidc-provider's requestObjects feature is off;
// OIDC Core 6 makes them optional). OIDC Core 3.1.2.6 names the refusal: request_not_supported.
test('oidcc-unsigned-request-object-supported-correctly-or-rejected-as-unsupported: request objects are not supported, and an unsigned one is refused with request_not_supported', async (t) => {
  const { gh, basic, discovery } = t.context;
  t.not(discovery.request_parameter_supported, true);
  t.false((discovery.request_object_signing_alg_values_supported ?? []).includes('none'));
  const state = random();
  const object = unsignedJwt({ iss: basic.clientId, aud: gh.config.issuer, response_type: 'code', client_id: basic.clientId, redirect_uri: REDIRECT_URI, scope: 'openid', state, nonce: random() });
  const page = await open(authorizeUrl(gh, { response_type: 'code', client_id: basic.clientId, redirect_uri: REDIRECT_URI, scope: 'openid', state, request: object }));
  assertErrorRedirect(t, page, REDIRECT_URI, state, ['request_not_supported']);
});

test('oidcc-ensure-request-object-with-redirect-uri: with an unregistered redirect_uri outside a request object, the refusal is an error page, never a redirect', async (t) => {
  const { gh, basic } = t.context;
  const state = random();
  const object = unsignedJwt({ iss: basic.clientId, aud: gh.config.issuer, response_type: 'code', client_id: basic.clientId, redirect_uri: REDIRECT_URI, scope: 'openid', state, nonce: random() });
  const page = await open(authorizeUrl(gh, { response_type: 'code', client_id: basic.clientId, redirect_uri: UNREGISTERED_URI, scope: 'openid', state, request: object }));
  assertErrorPage(t, page, /redirect_uri|request/);
});

test('oidcc-request-uri-unsigned-supported-correctly-or-rejected-as-unsupported: request_uri is not supported, and is refused with request_uri_not_supported', async (t) => {
  const { gh, basic, discovery } = t.context;
  t.false(discovery.request_uri_parameter_supported);
  const state = random();
  const page = await open(authorizeUrl(gh, { response_type: 'code', client_id: basic.clientId, redirect_uri: REDIRECT_URI, scope: 'openid', state, request_uri: 'https://rp.example.com/requests/unsigned.jwt' }));
  assertErrorRedirect(t, page, REDIRECT_URI, state, ['request_uri_not_supported']);
});

test('oidcc-ensure-request-with-valid-pkce-succeeds: a confidential client sending a valid S256 challenge and verifier succeeds', async (t) => {
  t.deepEqual(t.context.discovery.code_challenge_methods_supported, ['S256']);
  const { verifier, challenge } = pkcePair();
  const f = await flow(t, t.context.basic, { code_challenge: challenge, code_challenge_method: 'S256' }, { verifier });
  t.is(typeof f.token.body.id_token, 'string');
});

test('oidcc-ensure-pkce-code-verifier-required: a code issued for a challenge is refused without the verifier, and with a wrong one', async (t) => {
  const { gh, basic } = t.context;
  const { challenge } = pkcePair();
  const person = await registerPerson(gh, PASSWORD);
  const agent = new UserAgent([RP_ORIGIN]);
  for (const verifier of [undefined, pkcePair().verifier]) {
    const { url } = request(t, { code_challenge: challenge, code_challenge_method: 'S256' });
    const walked = await walk(agent, url, person.username, PASSWORD);
    const code = new URL(walked.page.url).searchParams.get('code');
    t.truthy(code, walked.page.url);
    const res = await tokenRequest(gh, basic, 'basic', { grant_type: 'authorization_code', code: code!, redirect_uri: REDIRECT_URI, code_verifier: verifier });
    t.is(res.status, 400, `verifier ${verifier === undefined ? 'missing' : 'wrong'}`);
    t.is(res.body.error, 'invalid_grant');
  }
});

test('oidcc-ensure-pkce-plain-refused: code_challenge_method=plain is refused with invalid_request', async (t) => {
  const { state, url } = request(t, { code_challenge: random(32), code_challenge_method: 'plain' });
  assertErrorRedirect(t, await open(url), REDIRECT_URI, state, ['invalid_request']);
});

test('oidcc-ensure-pkce-required-for-public-clients: a public client without a code_challenge is refused with invalid_request', async (t) => {
  const { state, url } = request(t, {}, t.context.spa);
  assertErrorRedirect(t, await open(url), REDIRECT_URI, state, ['invalid_request']);
  // And with one it succeeds, without any secret.
  const { verifier, challenge } = pkcePair();
  const f = await flow(t, t.context.spa, { code_challenge: challenge, code_challenge_method: 'S256' }, { verifier, auth: 'none' });
  t.is(typeof f.token.body.id_token, 'string');
});

// The suite runs oidcc-idtoken-unsigned only for dynamically registered clients that ask for
// alg none; Gatehouse does not offer it and refuses to register such a client.
test('oidcc-idtoken-unsigned: alg none is not offered for ID tokens, and a client cannot be registered with it', async (t) => {
  const { gh, discovery } = t.context;
  t.false(discovery.id_token_signing_alg_values_supported.includes('none'));
  t.false(discovery.userinfo_signing_alg_values_supported?.includes('none') ?? false);
  await t.throwsAsync(registerClient(gh, { name: 'Unsigned', type: 'confidential', grantTypes: ['authorization_code'], redirectUris: [REDIRECT_URI], idTokenSignedResponseAlg: 'none' }));
  const Client = gh.gatehouse.provider().Client as unknown as { validate(metadata: Json): Promise<unknown> };
  const err = await t.throwsAsync(Client.validate({ client_id: 'unsigned', client_secret: 'x'.repeat(32), redirect_uris: [REDIRECT_URI], id_token_signed_response_alg: 'none' }));
  t.is((err as { error?: string }).error, 'invalid_client_metadata');
});
