import net from 'node:net';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import fc from 'fast-check';
import { basicAuth, rawBasicAuth } from './support/http.ts';
import { changedTables, formEncode, pct, fuzz, headerValue, mustBeJsonError, mustBeOidcError, mustBeRefusedMethod, mustBeSafe, send, snapshot, stillUp, summary, violation, type Encoding, type HostileRequest } from './support/fuzz.ts';
import type { TestGatehouse } from './support/gatehouse.ts';
import { CONTENT_TYPES, hugeString, METHODS, nastyString, UNKNOWN_METHODS } from './support/nasty-inputs.ts';
import { authorizationRequest, createUserDirectly, POST_LOGOUT_URI, redeem, REDIRECT_URI, relyingParty, signInAndAllow, startLoopbackGatehouse, type RegisteredClient } from './support/relying-party.ts';
import { UserAgent } from './support/user-agent.ts';

/**
 * Hostile input on the protocol endpoints oidc-provider serves (discovery, JWKS, /authorize,
 * /token, /introspect, /revoke, /userinfo, /session/end) and on Gatehouse's POST /logout:
 * fast-check inputs with a fixed seed per property, and the corpus in support/nasty-inputs.ts.
 * Requests carry real credentials (a real client secret, a real access token and ID token) so
 * they reach past client authentication. Every answer: no 5xx, no internal detail, the error
 * format of the route; afterwards the server is up and no stored row has changed.
 */

interface Context {
  gh: TestGatehouse;
  web: RegisteredClient;
  service: RegisteredClient;
  spa: RegisteredClient;
  sub: string;
  accessToken: string;
  idToken: string;
}

const test = anyTest as TestFn<Context>;

const RUNS = {
  discovery: 250,
  authorize: 400,
  token: 500,
  introspect: 300,
  revoke: 300,
  userinfo: 300,
  endSession: 300,
  logout: 300,
};

test.before(async (t) => {
  const gh = await startLoopbackGatehouse();
  t.context = { gh } as Context;
  const made = async (input: Parameters<typeof gh.services.clients.create>[0]) => {
    const { client, clientSecret } = await gh.services.clients.create(input);
    return { clientId: client.clientId, clientSecret: clientSecret ?? undefined };
  };
  const web = await made({ name: 'Web app', type: 'confidential', grantTypes: ['authorization_code', 'refresh_token'], redirectUris: [REDIRECT_URI], postLogoutRedirectUris: [POST_LOGOUT_URI] });
  const service = await made({ name: 'Billing service', type: 'confidential', grantTypes: ['client_credentials'] });
  const spa = await made({ name: 'Single-page app', type: 'public', grantTypes: ['authorization_code'], redirectUris: [REDIRECT_URI] });
  const sub = await createUserDirectly(gh, 'mallory', 'correct horse battery staple');
  const rp = await relyingParty(gh, web, 'basic');
  const pending = await authorizationRequest(rp);
  const landed = await signInAndAllow(new UserAgent([REDIRECT_URI]), pending.url, 'mallory', 'correct horse battery staple');
  const tokens = await redeem(rp, landed, pending);
  t.context = { gh, web, service, spa, sub, accessToken: tokens.access_token, idToken: tokens.id_token! };
});

test.after.always(async (t) => {
  if (t.context.gh) {
    console.log(`hostile-input-protocol: ${summary()}`);
    await t.context.gh.close();
  }
});

/** Runs `body` between a snapshot of the stored data and a comparison, then checks /healthz. */
async function unchangedAfter(t: ExecutionContext<Context>, body: () => Promise<unknown>) {
  const before = await snapshot(t.context.gh.services.db);
  await body();
  t.deepEqual(changedTables(before, await snapshot(t.context.gh.services.db)), [], 'stored data changed');
  await stillUp(t, t.context.gh);
}

// ── Generators ──────────────────────────────────────────────────────────────────────────────

const encoding = fc.constantFrom<Encoding>('pct', 'pct', 'raw');

/** A parameter list built from `valid`: each value kept, made nasty, dropped or sent twice, plus nasty extras. */
function mutatedParams(valid: Record<string, string>, extraNames: string[] = []) {
  const keys = Object.keys(valid);
  const fate = fc.constantFrom('keep', 'keep', 'nasty', 'drop', 'twice', 'twice-nasty');
  return fc
    .record({
      fates: fc.array(fate, { minLength: keys.length, maxLength: keys.length }),
      nasty: fc.array(nastyString(), { minLength: keys.length, maxLength: keys.length }),
      extras: fc.array(fc.tuple(fc.oneof(fc.constantFrom(...extraNames, ...keys), nastyString({ maxLength: 30 })), nastyString()), { maxLength: 3 }),
    })
    .map(({ fates, nasty, extras }) => {
      const pairs: Array<[string, string]> = [];
      keys.forEach((k, i) => {
        const f = fates[i]!;
        if (f === 'keep') pairs.push([k, valid[k]!]);
        else if (f === 'nasty') pairs.push([k, nasty[i]!]);
        else if (f === 'twice') pairs.push([k, valid[k]!], [k, valid[k]!]);
        else if (f === 'twice-nasty') pairs.push([k, valid[k]!], [k, nasty[i]!]);
      });
      return [...pairs, ...extras];
    });
}

const count = (pairs: Array<[string, string]>, name: string) => pairs.filter(([k]) => k === name).length;

/** A body for a form endpoint: the form itself under a content type, or something else entirely. */
function formRequestBody(pairs: fc.Arbitrary<Array<[string, string]>>) {
  return fc.oneof(
    { weight: 6, arbitrary: fc.tuple(pairs, encoding).map(([p, how]) => ({ pairs: p, body: formEncode(p, how), query: formEncode(p, how), contentType: 'application/x-www-form-urlencoded' as string | undefined })) },
    { weight: 2, arbitrary: fc.tuple(pairs, fc.constantFrom(...CONTENT_TYPES), encoding).map(([p, ct, how]) => ({ pairs: p, body: formEncode(p, how), query: formEncode(p, how), contentType: ct })) },
    { weight: 1, arbitrary: fc.tuple(pairs).map(([p]) => ({ pairs: p, body: JSON.stringify(Object.fromEntries(p)), query: formEncode(p), contentType: 'application/json' as string | undefined })) },
    { weight: 1, arbitrary: fc.tuple(pairs, fc.constantFrom(60 * 1024, 200 * 1024, 2 * 1024 * 1024)).map(([p, n]) => ({ pairs: p, body: `${formEncode(p)}&pad=${hugeString(n)}`, query: `${formEncode(p)}&pad=${hugeString(Math.min(n, 64 * 1024))}`, contentType: 'application/x-www-form-urlencoded' as string | undefined })) },
  );
}

/** Client authentication: the real secret (Basic or in the body), none, or nonsense. */
function clientAuth(client: () => RegisteredClient) {
  return fc.oneof(
    { weight: 6, arbitrary: fc.constant({ kind: 'basic' as const }) },
    { weight: 2, arbitrary: fc.constant({ kind: 'post' as const }) },
    { weight: 1, arbitrary: fc.constant({ kind: 'none' as const }) },
    { weight: 1, arbitrary: fc.tuple(nastyString(), nastyString()).map(([id, secret]) => ({ kind: 'nasty-basic' as const, id, secret })) },
    { weight: 1, arbitrary: nastyString().map((header) => ({ kind: 'nasty-header' as const, header })) },
    { weight: 1, arbitrary: nastyString().map((secret) => ({ kind: 'wrong-secret' as const, secret, client: client() })) },
  );
}

type Auth = { kind: 'basic' | 'post' | 'none' } | { kind: 'nasty-basic'; id: string; secret: string } | { kind: 'nasty-header'; header: string } | { kind: 'wrong-secret'; secret: string };

function applyAuth(auth: Auth, client: RegisteredClient, headers: Record<string, string>, pairs: Array<[string, string]>): boolean {
  switch (auth.kind) {
    case 'basic':
      headers.authorization = basicAuth(client.clientId, client.clientSecret!);
      return true;
    case 'post':
      pairs.push(['client_id', client.clientId], ['client_secret', client.clientSecret!]);
      return true;
    case 'nasty-basic':
      headers.authorization = headerValue(rawBasicAuth(auth.id, auth.secret));
      return false;
    case 'nasty-header':
      headers.authorization = headerValue(auth.header);
      return false;
    case 'wrong-secret':
      headers.authorization = rawBasicAuth(client.clientId, `${client.clientSecret}${pct(auth.secret)}x`);
      return false;
    default:
      return false;
  }
}

// ── Discovery and JWKS ──────────────────────────────────────────────────────────────────────

test(`discovery and JWKS: ${RUNS.discovery} requests with odd methods, queries and headers never break them`, async (t) => {
  const { gh } = t.context;
  await unchangedAfter(t, () =>
    fuzz(
      t,
      'discovery + GET /jwks',
      fc.record({
        path: fc.constantFrom('/.well-known/openid-configuration', '/jwks', '/.well-known/openid-configuration/', '/jwks/..%2f..%2fetc%2fpasswd', '/.well-known/../jwks'),
        method: fc.constantFrom(...METHODS),
        query: fc.array(fc.tuple(nastyString({ maxLength: 40 }), nastyString()), { maxLength: 4 }),
        how: encoding,
        accept: fc.option(nastyString({ maxLength: 80 })),
        body: fc.option(nastyString()),
        contentType: fc.constantFrom(...CONTENT_TYPES),
      }),
      async (input) => {
        const headers: Record<string, string> = {};
        if (input.accept !== null) headers.accept = headerValue(input.accept);
        if (input.contentType !== undefined && input.body !== null) headers['content-type'] = input.contentType;
        const q = formEncode(input.query, input.how);
        const req: HostileRequest = { method: input.method, path: `${input.path}${q ? `?${q}` : ''}`, headers, body: input.body ?? undefined };
        const a = await send(gh, req);
        mustBeSafe(a, req, [...input.query.flat(), input.accept ?? '', input.body ?? '']);
        const canonical = input.path === '/jwks' || input.path === '/.well-known/openid-configuration';
        if ((input.method === 'GET' || input.method === 'HEAD') && canonical) {
          if (a.status !== 200) throw violation('discovery must answer', req, a);
          if (input.method === 'GET' && !(a.json?.issuer || a.json?.keys)) throw violation('not discovery nor a JWKS', req, a);
        } else if (input.method === 'OPTIONS' && canonical) {
          // A preflight (without Origin and Access-Control-Request-Method, oidc-provider passes it on: 404).
          if (a.status >= 300 && a.status !== 404) throw violation('a preflight answered oddly', req, a);
        } else if ((input.method === 'GET' || input.method === 'HEAD') && a.status === 200) {
          // oidc-provider's router takes a trailing slash: still discovery.
          if (input.method === 'GET' && !(a.json?.issuer || a.json?.keys)) throw violation('not discovery nor a JWKS', req, a);
        } else mustBeRefusedMethod(a, req); // another method, or a path that is not discovery's
        return a.status;
      },
      { numRuns: RUNS.discovery, seed: 0x0d15c0 },
    ),
  );
});

// ── /authorize ──────────────────────────────────────────────────────────────────────────────

test(`/authorize: ${RUNS.authorize} mangled authorization requests get an error page or an error at the registered redirect URI, never elsewhere`, async (t) => {
  const { gh, web } = t.context;
  const valid = {
    client_id: web.clientId,
    redirect_uri: REDIRECT_URI,
    response_type: 'code',
    scope: 'openid profile',
    state: 'st4te',
    nonce: 'n0nce',
    code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
    code_challenge_method: 'S256',
  };
  const extraNames = ['prompt', 'max_age', 'claims', 'request', 'request_uri', 'response_mode', 'login_hint', 'ui_locales', 'id_token_hint', 'acr_values', 'resource', 'registration', 'display'];
  await unchangedAfter(t, () =>
    fuzz(
      t,
      'GET|POST /authorize',
      fc.record({ method: fc.oneof({ weight: 8, arbitrary: fc.constant('GET') }, { weight: 1, arbitrary: fc.constantFrom('POST', 'PUT', 'DELETE') }), form: formRequestBody(mutatedParams(valid, extraNames)) }),
      async ({ method, form }) => {
        const req: HostileRequest =
          method === 'GET'
            ? { method, path: `/authorize?${form.query}` }
            : { method, path: '/authorize', headers: form.contentType === undefined ? {} : { 'content-type': form.contentType }, body: form.body };
        const a = await send(gh, req);
        mustBeSafe(a, req, form.pairs.flat());
        const location = a.headers.location;
        if (a.status >= 300 && a.status < 400) {
          if (!location) throw violation('a redirect without a Location', req, a);
          const target = new URL(location, gh.url);
          const ours = target.origin === new URL(gh.url).origin && (target.pathname.startsWith('/interaction/') || target.pathname.startsWith('/authorize'));
          if (!ours && `${target.origin}${target.pathname}` !== REDIRECT_URI) throw violation('redirected to an unregistered place', req, a);
          if (!ours && target.searchParams.has('code')) throw violation('a code without a signed-in person', req, a);
          if (!ours && !target.searchParams.has('error')) throw violation('sent back to the app without an error', req, a);
        } else if (method !== 'GET') {
          // POST /authorize is off (oidc-provider's enableHttpPostMethods), like PUT and DELETE.
          mustBeRefusedMethod(a, req);
        } else {
          if (location) throw violation('a Location on an error page', req, a);
          mustBeOidcError(a, req);
        }
        return a.status;
      },
      { numRuns: RUNS.authorize, seed: 0xa07 },
    ),
  );
});

// ── /token ──────────────────────────────────────────────────────────────────────────────────

test(`/token: ${RUNS.token} hostile token requests with a real client secret get OAuth errors, and tokens only for a real client_credentials request`, async (t) => {
  const { gh, service } = t.context;
  const valid = { grant_type: 'client_credentials', scope: '', code: 'c0de', refresh_token: 'r3fresh', code_verifier: 'v'.repeat(43), redirect_uri: REDIRECT_URI };
  const grantTypes = fc.constantFrom('client_credentials', 'authorization_code', 'refresh_token', 'password', 'implicit', 'urn:ietf:params:oauth:grant-type:device_code', 'urn:ietf:params:oauth:grant-type:jwt-bearer', 'urn:openid:params:grant-type:ciba', 'CLIENT_CREDENTIALS');
  await unchangedAfter(t, () =>
    fuzz(
      t,
      'POST /token',
      fc.record({
        method: fc.oneof({ weight: 8, arbitrary: fc.constant('POST') }, { weight: 1, arbitrary: fc.constantFrom('GET', 'PUT', 'DELETE', 'PATCH', 'HEAD') }),
        grantType: fc.oneof(grantTypes, nastyString()),
        form: formRequestBody(mutatedParams(valid, ['resource', 'audience', 'client_assertion', 'client_assertion_type', 'device_code', 'username', 'password'])),
        auth: clientAuth(() => service),
      }),
      async ({ method, grantType, form, auth }) => {
        const pairs: Array<[string, string]> = [['grant_type', grantType], ...form.pairs];
        const headers: Record<string, string> = form.contentType === undefined ? {} : { 'content-type': form.contentType };
        const authenticated = applyAuth(auth as Auth, service, headers, pairs);
        const body = form.body.length > 56 * 1024 ? `${formEncode(pairs)}&pad=${hugeString(form.body.length)}` : formEncode(pairs);
        const req: HostileRequest = { method, path: '/token', headers, body };
        const a = await send(gh, req);
        mustBeSafe(a, req, pairs.flat());
        if (a.status === 200) {
          // oidc-provider ignores parameters the grant does not use (code, redirect_uri …), even repeated.
          if (!(authenticated && method === 'POST' && count(pairs, 'grant_type') === 1 && grantType === 'client_credentials' && count(pairs, 'scope') <= 1 && typeof a.json?.access_token === 'string')) {
            throw violation('a token for a request that is not a valid client_credentials request', req, a);
          }
        } else if (method !== 'POST') mustBeRefusedMethod(a, req);
        else mustBeJsonError(a, req);
        return a.status;
      },
      { numRuns: RUNS.token, seed: 0x70c3 },
    ),
  );
});

// ── /introspect and /revoke ─────────────────────────────────────────────────────────────────

for (const [path, runs, seed] of [['/introspect', RUNS.introspect, 0x1a7], ['/revoke', RUNS.revoke, 0x4e7]] as const) {
  test(`${path}: ${runs} hostile requests with a real client secret are refused or say the token is not active`, async (t) => {
    const { gh, service, web } = t.context;
    const valid = { token: 'not-a-token', token_type_hint: 'access_token' };
    await unchangedAfter(t, () =>
      fuzz(
        t,
        `POST ${path}`,
        fc.record({
          method: fc.oneof({ weight: 8, arbitrary: fc.constant('POST') }, { weight: 1, arbitrary: fc.constantFrom('GET', 'PUT', 'DELETE', 'PATCH', 'HEAD') }),
          token: nastyString(),
          form: formRequestBody(mutatedParams(valid, ['token', 'token_type_hint'])),
          auth: clientAuth(() => web),
          asWeb: fc.boolean(),
        }),
        async ({ method, token, form, auth, asWeb }) => {
          const client = asWeb ? web : service;
          const pairs: Array<[string, string]> = [['token', token], ...form.pairs];
          const headers: Record<string, string> = form.contentType === undefined ? {} : { 'content-type': form.contentType };
          const authenticated = applyAuth(auth as Auth, client, headers, pairs);
          const body = form.body.length > 56 * 1024 ? `${formEncode(pairs)}&pad=${hugeString(form.body.length)}` : formEncode(pairs);
          const req: HostileRequest = { method, path, headers, body };
          const a = await send(gh, req);
          mustBeSafe(a, req, pairs.flat());
          if (a.status === 200) {
            if (!authenticated || method !== 'POST') throw violation('answered without client authentication', req, a);
            if (path === '/introspect' && a.json?.active !== false) throw violation('a nasty token introspected as active', req, a);
            if (path === '/revoke' && a.text !== '') throw violation('revocation answers an empty 200', req, a);
          } else if (method !== 'POST') mustBeRefusedMethod(a, req);
          else mustBeJsonError(a, req);
          return a.status;
        },
        { numRuns: runs, seed },
      ),
    );
  });
}

// ── /userinfo ───────────────────────────────────────────────────────────────────────────────

test(`/userinfo: ${RUNS.userinfo} requests with nasty bearer tokens, or the real token and nasty extras, get 401/400 or the user's own claims`, async (t) => {
  const { gh, accessToken, sub } = t.context;
  await unchangedAfter(t, () =>
    fuzz(
      t,
      'GET|POST /userinfo',
      fc.record({
        method: fc.oneof({ weight: 8, arbitrary: fc.constantFrom('GET', 'POST') }, { weight: 1, arbitrary: fc.constantFrom('PUT', 'DELETE', 'OPTIONS', 'PATCH') }),
        token: fc.oneof(fc.constant(accessToken), nastyString(), fc.constant(`${accessToken}x`), fc.constant(accessToken.slice(0, -1))),
        how: fc.constantFrom('header', 'header', 'query', 'body', 'header+query', 'header+body', 'scheme'),
        scheme: fc.constantFrom('Bearer', 'bearer', 'BEARER', 'Basic', 'DPoP', 'Bearer  ', ''),
        extra: fc.array(fc.tuple(nastyString({ maxLength: 30 }), nastyString()), { maxLength: 3 }),
        contentType: fc.constantFrom('application/x-www-form-urlencoded', ...CONTENT_TYPES),
        how2: encoding,
      }),
      async (input) => {
        const headers: Record<string, string> = {};
        const query: Array<[string, string]> = [...input.extra];
        const form: Array<[string, string]> = [];
        if (input.how.includes('header')) headers.authorization = headerValue(`Bearer ${input.token}`);
        if (input.how === 'scheme') headers.authorization = headerValue(`${input.scheme} ${input.token}`);
        if (input.how.includes('query')) query.push(['access_token', input.token]);
        if (input.how.includes('body')) form.push(['access_token', input.token]);
        const q = formEncode(query, input.how2);
        const req: HostileRequest = { method: input.method, path: `/userinfo${q ? `?${q}` : ''}`, headers };
        if (form.length) {
          req.body = formEncode(form);
          if (input.contentType !== undefined) headers['content-type'] = input.contentType;
        }
        const a = await send(gh, req);
        mustBeSafe(a, req, [...query.flat(), input.token]);
        if (a.status === 200) {
          if (input.token !== accessToken) throw violation('claims for a token that is not the real one', req, a);
          if (a.json?.sub !== sub) throw violation('claims of someone else', req, a);
        } else if (input.method === 'OPTIONS') {
          // A CORS preflight (without an Origin oidc-provider answers an empty 400).
          if (a.status >= 300 && a.status !== 400 && a.status !== 404) throw violation('a preflight answered oddly', req, a);
        } else if (input.method !== 'GET' && input.method !== 'POST') mustBeRefusedMethod(a, req);
        else mustBeJsonError(a, req);
        return a.status;
      },
      { numRuns: RUNS.userinfo, seed: 0x5e1f },
    ),
  );
});

// ── /session/end ────────────────────────────────────────────────────────────────────────────

test(`/session/end: ${RUNS.endSession} mangled logout requests get a page or an error page, and never a redirect to an unregistered URI`, async (t) => {
  const { gh, web, idToken } = t.context;
  const valid = { id_token_hint: idToken, post_logout_redirect_uri: POST_LOGOUT_URI, state: 'st4te', client_id: web.clientId };
  await unchangedAfter(t, () =>
    fuzz(
      t,
      'GET|POST /session/end (+ /confirm)',
      fc.record({
        confirm: fc.boolean(),
        wrongMethod: fc.oneof({ weight: 8, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH') }),
        form: formRequestBody(mutatedParams(valid, ['ui_locales', 'logout_hint', 'xsrf', 'logout'])),
        confirmFields: fc.array(fc.tuple(fc.constantFrom('xsrf', 'logout', 'abort'), nastyString()), { maxLength: 3 }),
      }),
      async ({ wrongMethod, confirm, form, confirmFields }) => {
        // GET /session/end and POST /session/end/confirm, now and then another method.
        const method = wrongMethod ?? (confirm ? 'POST' : 'GET');
        let req: HostileRequest;
        if (confirm) req = { method, path: '/session/end/confirm', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: formEncode(confirmFields) };
        else if (method === 'GET') req = { method, path: `/session/end?${form.query}` };
        else req = { method, path: '/session/end', headers: form.contentType === undefined ? {} : { 'content-type': form.contentType }, body: form.body };
        const a = await send(gh, req);
        mustBeSafe(a, req, [...form.pairs.flat(), ...confirmFields.flat()]);
        if (a.status >= 300 && a.status < 400) {
          const target = new URL(String(a.headers.location), gh.url);
          const ours = target.origin === new URL(gh.url).origin;
          if (!ours && `${target.origin}${target.pathname}` !== POST_LOGOUT_URI) throw violation('redirected to an unregistered place', req, a);
        } else if (a.status === 200) {
          if (!/^text\/html/.test(String(a.headers['content-type']))) throw violation('not a page', req, a);
        } else if (confirm ? method !== 'POST' : method !== 'GET') {
          // POST /session/end is off (oidc-provider's enableHttpPostMethods); /confirm takes POST only.
          mustBeRefusedMethod(a, req);
        } else mustBeOidcError(a, req);
        return a.status;
      },
      { numRuns: RUNS.endSession, seed: 0xe5d },
    ),
  );
});

// ── POST /logout ────────────────────────────────────────────────────────────────────────────

test(`POST /logout: ${RUNS.logout} requests with nasty bearer tokens get 401 invalid_token and revoke nothing`, async (t) => {
  const { gh, accessToken } = t.context;
  await unchangedAfter(t, () =>
    fuzz(
      t,
      'POST /logout',
      fc.record({
        method: fc.oneof({ weight: 8, arbitrary: fc.constant('POST') }, { weight: 1, arbitrary: fc.constantFrom('GET', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS') }),
        authorization: fc.oneof(
          nastyString().map((s) => `Bearer ${s}`),
          nastyString(),
          fc.constant(`Bearer ${accessToken}x`),
          fc.constant(`Bearer ${accessToken.slice(1)}`),
          fc.constant(`Basic ${accessToken}`),
          fc.constant(`Bearer ${hugeString(8 * 1024)}`),
          fc.constant(''),
        ),
        body: fc.option(nastyString()),
        contentType: fc.constantFrom(...CONTENT_TYPES),
      }),
      async (input) => {
        const headers: Record<string, string> = { authorization: headerValue(input.authorization) };
        if (input.body !== null && input.contentType !== undefined) headers['content-type'] = input.contentType;
        const req: HostileRequest = { method: input.method, path: '/logout', headers, body: input.body ?? undefined };
        const a = await send(gh, req);
        mustBeSafe(a, req, [input.authorization, input.body ?? '']);
        if (input.method === 'POST') mustBeJsonError(a, req, [401]);
        else mustBeJsonError(a, req);
        return a.status;
      },
      { numRuns: RUNS.logout, seed: 0x10607 },
    ),
  );
  // The real token still works: none of the above revoked its grant.
  const res = await fetch(`${gh.config.issuer}/userinfo`, { headers: { authorization: `Bearer ${accessToken}` } });
  t.is(res.status, 200, await res.text());
});

// ── The HTTP layer itself ──────────────────────────────────────────────────────────────────

/** Bytes no HTTP client library would send: CRLF in the request line, NUL and bare CR in headers, lies about lengths. */
const RAW_REQUESTS: string[] = [
  'GET /authorize?x=1\r\nSet-Cookie: injected=1 HTTP/1.1\r\nHost: x\r\n\r\n',
  'GET /userinfo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\rb\r\n\r\n',
  'GET /userinfo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\0b\r\n\r\n',
  'GET /jwks HTTP/1.1\r\nHost: x\r\nX-Evil: a\nSet-Cookie: injected=1\r\n\r\n',
  'POST /token HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nContent-Length: 20\r\n\r\n0123456789',
  'POST /token HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n',
  'POST /token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n',
  'POST /token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n',
  'GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n',
  'GET /jwks HTTP/9.9\r\nHost: x\r\n\r\n',
  `GET /jwks HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
  `GET /jwks HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 3000 }, (_, i) => `X-H${i}: v`).join('\r\n')}\r\n\r\n`,
  `GET /${'a/'.repeat(40_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
  'BREW /coffee HTCPCP/1.0\r\n\r\n',
  '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03',
];

test(`raw HTTP: ${RAW_REQUESTS.length} malformed requests (CRLF and NUL in headers, conflicting lengths) are refused and the server stays up`, async (t) => {
  const { gh } = t.context;
  const port = Number(new URL(gh.url).port);
  await unchangedAfter(t, async () => {
    for (const raw of RAW_REQUESTS) {
      const answer = await new Promise<string>((resolve) => {
        const socket = net.connect(port, '127.0.0.1', () => socket.end(Buffer.from(raw, 'latin1')));
        let got = '';
        socket.setEncoding('latin1');
        socket.on('data', (d) => (got += d));
        socket.on('close', () => resolve(got));
        socket.on('error', () => resolve(got));
        socket.setTimeout(10_000, () => socket.destroy());
      });
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(answer)?.[1] ?? 0);
      // 0: the server closed the connection without an answer, as Node does for bytes that are not HTTP.
      t.true(status === 0 || (status >= 400 && status < 500), `${JSON.stringify(raw.slice(0, 80))} → ${answer.slice(0, 200)}`);
      t.false(/set-cookie: injected/i.test(answer), 'no injected header');
      t.is(/at .*\.[tj]s:\d+|node_modules/.exec(answer), null);
    }
    t.log(`fuzz: raw HTTP ${RAW_REQUESTS.length} inputs`);
  });
});

/**
 * An HTTP method no route serves (TRACE, PROPFIND …) is the client's error: 405 with the JSON
 * error, on every path, never @koa/router's 501 Not Implemented.
 */
test(`an HTTP method the server does not implement (${UNKNOWN_METHODS.join(', ')}) gets a 4xx, not 501, on every route`, async (t) => {
  const { gh } = t.context;
  const paths = ['/jwks', '/token', '/authorize', '/userinfo', '/logout', '/userdata/me', '/admin/api/clients', '/admin/clients', '/interaction/x', '/healthz', '/nowhere'];
  const wrong: string[] = [];
  for (const method of UNKNOWN_METHODS) {
    for (const path of paths) {
      const a = await send(gh, { method, path });
      mustBeSafe(a);
      if (a.status >= 500) wrong.push(`${method} ${path} → ${a.status}`);
    }
  }
  t.log(`fuzz: unknown methods ${UNKNOWN_METHODS.length * paths.length} inputs`);
  t.deepEqual(wrong, []);
});
