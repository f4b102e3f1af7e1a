import http from 'node:http';
import type { AddressInfo } from 'node:net';
import anyTest, { type TestFn } from 'ava';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { CLI_ACTOR } from '../src/admin/audit.ts';
import { testClock } from './support/clock.ts';
import type { TestGatehouse } from './support/gatehouse.ts';
import { basicAuth, FORM_CONTENT_TYPE } from './support/http.ts';
import { authorizationRequest, createUserDirectly, oauthError, oidc, REDIRECT_URI, relyingParty, startLoopbackGatehouse } from './support/relying-party.ts';
import { signInAllowingConsent, UserAgent } from './support/user-agent.ts';

/**
 * Protecting an API with Gatehouse's tokens, as the README's "Protecting an API" tells it: an
 * operator registers resource servers (RFC 8707), clients ask for a token with resource=, and
 * the API checks it: a JWT access token (RFC 9068) against /jwks with jose, exactly as the
 * README's Express example does, or an opaque one at /introspect. Over a listening Gatehouse on
 * SQLite; time moves by the test clock, not by waiting.
 */

const clock = testClock();

const INVOICES = 'https://invoices.example.com';
const REPORTS = 'https://reports.example.com';
const LEDGER = 'https://ledger.example.com';
const SHORT_LIVED = 'https://short-lived.example.com';
const INVOICES_TTL = 600;

interface Service {
  clientId: string;
  clientSecret: string;
}

interface Context {
  gh: TestGatehouse;
  /** The invoices API: checks JWT access tokens as the README's Express example does. */
  invoicesApi: string;
  /** The ledger API: checks opaque access tokens at /introspect with its own client credentials. */
  ledgerApi: string;
  /** A service allowed invoices:read and invoices:write, reports:read and ledger:read. */
  service: Service;
  servers: http.Server[];
}

const test = anyTest as TestFn<Context>;

/**
 * The README's Express example as a plain Node server: jose's createRemoteJWKSet and jwtVerify
 * checking issuer, audience, typ at+jwt and expiry, then the scope of the route.
 */
function jwtProtectedApi(issuer: string, audience: string): http.Server {
  const jwks = createRemoteJWKSet(new URL(`${issuer}/jwks`));
  return http.createServer(async (req, res) => {
    const needed = req.method === 'GET' ? 'invoices:read' : 'invoices:write';
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const answer = (status: number, body: object) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (!token) return answer(401, { error: 'invalid_token' });
    try {
      const { payload } = await jwtVerify(token, jwks, { issuer, audience, typ: 'at+jwt', algorithms: ['ES256', 'RS256'] });
      if (
        !String(payload.scope ?? '')
          .split(' ')
          .includes(needed)
      )
        return answer(403, { error: 'insufficient_scope' });
      return answer(200, { sub: payload.sub, client_id: payload.client_id });
    } catch (err) {
      return answer(401, { error: 'invalid_token', detail: (err as Error).message });
    }
  });
}

/** The README's introspection alternative: the API asks Gatehouse about each token. */
function introspectingApi(issuer: string, audience: string, api: Service): http.Server {
  return http.createServer(async (req, res) => {
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const answer = (status: number, body: object) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (!token) return answer(401, { error: 'invalid_token' });
    const r = await fetch(`${issuer}/introspect`, {
      method: 'POST',
      headers: { ...FORM_CONTENT_TYPE, authorization: basicAuth(api.clientId, api.clientSecret) },
      body: new URLSearchParams({ token }),
    });
    const info = (await r.json()) as { active: boolean; aud?: string | string[]; scope?: string };
    const audiences = Array.isArray(info.aud) ? info.aud : [info.aud];
    if (!info.active || !audiences.includes(audience)) return answer(401, { error: 'invalid_token' });
    if (
      !String(info.scope ?? '')
        .split(' ')
        .includes('ledger:read')
    )
      return answer(403, { error: 'insufficient_scope' });
    return answer(200, { ok: true });
  });
}

async function listen(server: http.Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function clientCredentials(gh: TestGatehouse, client: Service, params: Record<string, string> = {}) {
  const res = await fetch(`${gh.url}/token`, {
    method: 'POST',
    headers: { ...FORM_CONTENT_TYPE, authorization: basicAuth(client.clientId, client.clientSecret) },
    body: new URLSearchParams({ grant_type: 'client_credentials', ...params }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

async function callApi(api: string, token: string, method = 'GET') {
  const res = await fetch(`${api}/invoices`, { method, headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

async function createService(gh: TestGatehouse, name: string, scope: string, extra: { defaultResource?: string } = {}): Promise<Service> {
  const { client, clientSecret } = await gh.services.admin.createClient(CLI_ACTOR, {
    name,
    type: 'confidential',
    grantTypes: ['client_credentials'],
    scope: scope.split(' '),
    ...extra,
  });
  return { clientId: client.clientId, clientSecret: clientSecret! };
}

test.before(async (t) => {
  const gh = await startLoopbackGatehouse();
  const { admin } = gh.services;
  for (const [name, description] of [
    ['invoices:read', 'Read your invoices'],
    ['invoices:write', 'Create and change your invoices'],
    ['reports:read', 'Read your reports'],
    ['ledger:read', 'Read your ledger'],
  ] as const) {
    await admin.createScope(CLI_ACTOR, { name, description });
  }
  await admin.createResource(CLI_ACTOR, {
    audience: INVOICES,
    name: 'Invoices API',
    scopes: ['invoices:read', 'invoices:write'],
    tokenFormat: 'jwt',
    accessTokenTtl: INVOICES_TTL,
  });
  await admin.createResource(CLI_ACTOR, { audience: REPORTS, name: 'Reports API', scopes: ['reports:read'], tokenFormat: 'jwt', signingAlg: 'RS256' });
  await admin.createResource(CLI_ACTOR, { audience: LEDGER, name: 'Ledger API', scopes: ['ledger:read'] });
  await admin.createResource(CLI_ACTOR, { audience: SHORT_LIVED, scopes: ['invoices:read'], tokenFormat: 'jwt', accessTokenTtl: 60 });

  const service = await createService(gh, 'Billing service', 'invoices:read invoices:write reports:read ledger:read');
  const ledgerClient = await createService(gh, 'Ledger API itself', 'ledger:read');
  const servers = [jwtProtectedApi(gh.config.issuer, INVOICES), introspectingApi(gh.config.issuer, LEDGER, ledgerClient)];
  const [invoicesApi, ledgerApi] = await Promise.all(servers.map(listen));
  t.context = { gh, invoicesApi: invoicesApi!, ledgerApi: ledgerApi!, service, servers };
});

test.after.always(async (t) => {
  for (const server of t.context.servers ?? []) server.close();
  await t.context.gh?.close();
});

// ---- JWT access tokens (RFC 9068) checked against /jwks --------------------------------------

test('a service asks for a token for the invoices API and the API accepts it', async (t) => {
  const { gh, service, invoicesApi } = t.context;
  const token = await clientCredentials(gh, service, { resource: INVOICES });
  t.is(token.status, 200, JSON.stringify(token.body));
  t.is(token.body.token_type, 'Bearer');
  t.is(token.body.expires_in, INVOICES_TTL);
  // Only the API's own scopes: reports:read and ledger:read belong to other APIs.
  t.is(token.body.scope, 'invoices:read invoices:write');

  const header = decodeProtectedHeader(token.body.access_token);
  t.is(header.typ, 'at+jwt');
  t.is(header.alg, 'ES256');
  const claims = decodeJwt(token.body.access_token);
  t.is(claims.iss, gh.config.issuer);
  t.is(claims.aud, INVOICES);
  t.is(claims.client_id, service.clientId);
  t.is(claims.sub, service.clientId);
  t.is(claims.scope, 'invoices:read invoices:write');
  t.is(typeof claims.jti, 'string');
  t.is((claims.exp as number) - (claims.iat as number), INVOICES_TTL);

  const read = await callApi(invoicesApi, token.body.access_token);
  t.is(read.status, 200, JSON.stringify(read.body));
  t.is(read.body.client_id, service.clientId);
  t.is((await callApi(invoicesApi, token.body.access_token, 'POST')).status, 200);
});

test.serial('a JWT access token past its expiry is refused by the API', async (t) => {
  const { gh, service, invoicesApi } = t.context;
  const token = await clientCredentials(gh, service, { resource: INVOICES });
  t.is((await callApi(invoicesApi, token.body.access_token)).status, 200);
  // Serial tests run before the others start: moving time here expires no other test's token.
  clock.advance((INVOICES_TTL + 60) * 1000);
  const late = await callApi(invoicesApi, token.body.access_token);
  t.is(late.status, 401);
  t.regex(late.body.detail, /"exp" claim timestamp check failed/);
  const introspected = await fetch(`${gh.url}/introspect`, {
    method: 'POST',
    headers: { ...FORM_CONTENT_TYPE, authorization: basicAuth(service.clientId, service.clientSecret) },
    body: new URLSearchParams({ token: token.body.access_token }),
  });
  t.deepEqual(await introspected.json(), { active: false }, 'introspection says so too');
});

test('a token for another API is refused for its audience', async (t) => {
  const { gh, service, invoicesApi } = t.context;
  const reports = await clientCredentials(gh, service, { resource: REPORTS });
  t.is(reports.status, 200, JSON.stringify(reports.body));
  t.is(decodeJwt(reports.body.access_token).aud, REPORTS);
  const answer = await callApi(invoicesApi, reports.body.access_token);
  t.is(answer.status, 401);
  t.regex(answer.body.detail, /"aud" claim/);
});

test('a resource server may have its JWTs signed RS256 instead of the default ES256', async (t) => {
  const { gh, service } = t.context;
  const reports = await clientCredentials(gh, service, { resource: REPORTS });
  t.is(decodeProtectedHeader(reports.body.access_token).alg, 'RS256');
  const { payload } = await jwtVerify(reports.body.access_token, createRemoteJWKSet(new URL(`${gh.url}/jwks`)), {
    issuer: gh.config.issuer,
    audience: REPORTS,
    typ: 'at+jwt',
  });
  t.is(payload.scope, 'reports:read');
});

test('a token without the scope a route needs is refused with insufficient_scope', async (t) => {
  const { gh, service, invoicesApi } = t.context;
  const readOnly = await clientCredentials(gh, service, { resource: INVOICES, scope: 'invoices:read' });
  t.is(readOnly.body.scope, 'invoices:read');
  t.is((await callApi(invoicesApi, readOnly.body.access_token)).status, 200);
  const write = await callApi(invoicesApi, readOnly.body.access_token, 'POST');
  t.is(write.status, 403);
  t.is(write.body.error, 'insufficient_scope');
});

test('introspection answers for a JWT access token too, with its audience', async (t) => {
  const { gh, service } = t.context;
  const token = await clientCredentials(gh, service, { resource: INVOICES });
  const res = await fetch(`${gh.url}/introspect`, {
    method: 'POST',
    headers: { ...FORM_CONTENT_TYPE, authorization: basicAuth(service.clientId, service.clientSecret) },
    body: new URLSearchParams({ token: token.body.access_token }),
  });
  const info = (await res.json()) as Record<string, unknown>;
  t.is(info.active, true, JSON.stringify(info));
  t.is(info.aud, INVOICES);
  t.is(info.scope, 'invoices:read invoices:write');
  t.is(info.client_id, service.clientId);
});

test('a resource server with its own lifetime gives its tokens that lifetime', async (t) => {
  const { gh, service } = t.context;
  const token = await clientCredentials(gh, service, { resource: SHORT_LIVED });
  t.is(token.body.expires_in, 60);
  const claims = decodeJwt(token.body.access_token);
  t.is((claims.exp as number) - (claims.iat as number), 60);
});

test('revoking a JWT access token is refused: it keeps verifying until it expires, as the README says', async (t) => {
  const { gh, service, invoicesApi } = t.context;
  const token = await clientCredentials(gh, service, { resource: INVOICES });
  const revoked = await fetch(`${gh.url}/revoke`, {
    method: 'POST',
    headers: { ...FORM_CONTENT_TYPE, authorization: basicAuth(service.clientId, service.clientSecret) },
    body: new URLSearchParams({ token: token.body.access_token }),
  });
  t.is(revoked.status, 400);
  t.is(((await revoked.json()) as { error: string }).error, 'unsupported_token_type');
  t.is((await callApi(invoicesApi, token.body.access_token)).status, 200);
});

// ---- opaque access tokens, checked at /introspect --------------------------------------------

test('an opaque token is accepted by an API that introspects it, and refused once revoked', async (t) => {
  const { gh, service, ledgerApi } = t.context;
  const token = await clientCredentials(gh, service, { resource: LEDGER });
  t.is(token.status, 200, JSON.stringify(token.body));
  t.is(token.body.scope, 'ledger:read');
  t.notRegex(token.body.access_token, /^ey/, 'opaque, not a JWT');
  t.is((await callApi(ledgerApi, token.body.access_token)).status, 200);

  const revoked = await fetch(`${gh.url}/revoke`, {
    method: 'POST',
    headers: { ...FORM_CONTENT_TYPE, authorization: basicAuth(service.clientId, service.clientSecret) },
    body: new URLSearchParams({ token: token.body.access_token }),
  });
  t.is(revoked.status, 200);
  t.is((await callApi(ledgerApi, token.body.access_token)).status, 401);
});

test("an opaque token for Gatehouse itself is not accepted by another API's introspection check", async (t) => {
  const { gh, ledgerApi } = t.context;
  const plain = await createService(gh, 'No resource', 'ledger:read');
  const token = await clientCredentials(gh, plain);
  t.is(token.status, 200);
  t.is((await callApi(ledgerApi, token.body.access_token)).status, 401, 'no audience: not a token for the ledger API');
});

// ---- resource= at /token and /authorize ------------------------------------------------------

test('an unknown resource is invalid_target at /token', async (t) => {
  const { gh, service } = t.context;
  const token = await clientCredentials(gh, service, { resource: 'https://unknown.example.com' });
  t.is(token.status, 400);
  t.is(token.body.error, 'invalid_target');
});

test('a resource whose scopes the client may hold none of is invalid_target', async (t) => {
  const { gh } = t.context;
  const reportsOnly = await createService(gh, 'Reports reader', 'reports:read');
  const token = await clientCredentials(gh, reportsOnly, { resource: INVOICES });
  t.is(token.status, 400);
  t.is(token.body.error, 'invalid_target');
  t.regex(token.body.error_description, /none of the scopes/);
});

test('a client with a default resource gets tokens for it without naming it', async (t) => {
  const { gh, invoicesApi } = t.context;
  const defaulted = await createService(gh, 'Defaulted service', 'invoices:read', { defaultResource: INVOICES });
  const token = await clientCredentials(gh, defaulted);
  t.is(token.status, 200, JSON.stringify(token.body));
  t.is(decodeJwt(token.body.access_token).aud, INVOICES);
  t.is((await callApi(invoicesApi, token.body.access_token)).status, 200);
});

test('a person allows an app to use the invoices API: the consent page names it, the token is for it alone, and introspects inactive once the person is disabled', async (t) => {
  const { gh, invoicesApi } = t.context;
  const { client, clientSecret } = await gh.services.admin.createClient(CLI_ACTOR, {
    name: 'Invoice app',
    type: 'confidential',
    grantTypes: ['authorization_code'],
    redirectUris: [REDIRECT_URI],
    scope: ['openid', 'profile', 'invoices:read'],
  });
  await createUserDirectly(gh, 'ada-invoices', 'resource-indicators-2026');
  const rp = await relyingParty(gh, { clientId: client.clientId, clientSecret: clientSecret! }, 'basic');
  const pending = await authorizationRequest(rp, { scope: 'openid profile invoices:read', resource: INVOICES });
  const walk = await signInAllowingConsent(new UserAgent([REDIRECT_URI]), pending.url, 'ada-invoices', 'resource-indicators-2026');
  t.truthy(walk.consent, 'the person was asked');
  t.regex(walk.consent!.html, /Invoices API/);
  t.regex(walk.consent!.html, /https:\/\/invoices\.example\.com/);
  t.regex(walk.consent!.html, /Read your invoices/);

  const tokens = await oidc.authorizationCodeGrant(
    rp,
    new URL(walk.landed.url),
    { pkceCodeVerifier: pending.verifier, expectedState: pending.state, expectedNonce: pending.nonce, idTokenExpected: true },
    { resource: INVOICES },
  );
  const claims = decodeJwt(tokens.access_token);
  t.is(claims.aud, INVOICES);
  t.is(claims.scope, 'invoices:read', 'only the API scopes, not openid or profile');
  t.is(claims.sub, tokens.claims()!.sub);
  t.is((await callApi(invoicesApi, tokens.access_token)).status, 200);
  // A token for an API is not one for Gatehouse's own userinfo.
  t.is(await oauthError(oidc.fetchUserInfo(rp, tokens.access_token, tokens.claims()!.sub)), 'invalid_token');

  // Introspected by the API's own client, the person's JWT is active until the person is disabled.
  const { service } = t.context;
  const introspect = async () => {
    const res = await fetch(`${gh.url}/introspect`, {
      method: 'POST',
      headers: { ...FORM_CONTENT_TYPE, authorization: basicAuth(service.clientId, service.clientSecret) },
      body: new URLSearchParams({ token: tokens.access_token }),
    });
    return (await res.json()) as { active: boolean; sub?: string };
  };
  t.like(await introspect(), { active: true, sub: tokens.claims()!.sub });
  await gh.services.admin.setUserDisabled(CLI_ACTOR, tokens.claims()!.sub, true);
  t.deepEqual(await introspect(), { active: false }, "a disabled person's JWT introspects as inactive");
});

test('an app whose default resource is the invoices API gets its code flow tokens for it without naming it', async (t) => {
  const { gh, invoicesApi } = t.context;
  const { client, clientSecret } = await gh.services.admin.createClient(CLI_ACTOR, {
    name: 'Default invoice app',
    type: 'confidential',
    grantTypes: ['authorization_code'],
    redirectUris: [REDIRECT_URI],
    scope: ['openid', 'invoices:read'],
    defaultResource: INVOICES,
  });
  await createUserDirectly(gh, 'grace-invoices', 'default-resource-2026');
  const rp = await relyingParty(gh, { clientId: client.clientId, clientSecret: clientSecret! }, 'basic');
  const pending = await authorizationRequest(rp, { scope: 'openid invoices:read' });
  const walk = await signInAllowingConsent(new UserAgent([REDIRECT_URI]), pending.url, 'grace-invoices', 'default-resource-2026');
  t.regex(walk.consent?.html ?? '', /Invoices API/);
  const tokens = await oidc.authorizationCodeGrant(rp, new URL(walk.landed.url), {
    pkceCodeVerifier: pending.verifier,
    expectedState: pending.state,
    expectedNonce: pending.nonce,
    idTokenExpected: true,
  });
  t.is(decodeJwt(tokens.access_token).aud, INVOICES);
  t.is((await callApi(invoicesApi, tokens.access_token)).status, 200);
});

test('a first-party app (no consent page) gets its API token without being asked', async (t) => {
  const { gh, invoicesApi } = t.context;
  const { client, clientSecret } = await gh.services.admin.createClient(CLI_ACTOR, {
    name: 'First-party invoices',
    type: 'confidential',
    grantTypes: ['authorization_code'],
    redirectUris: [REDIRECT_URI],
    scope: ['openid', 'invoices:read'],
    skipConsent: true,
  });
  await createUserDirectly(gh, 'linus-invoices', 'first-party-2026');
  const rp = await relyingParty(gh, { clientId: client.clientId, clientSecret: clientSecret! }, 'basic');
  const pending = await authorizationRequest(rp, { scope: 'openid invoices:read', resource: INVOICES });
  const walk = await signInAllowingConsent(new UserAgent([REDIRECT_URI]), pending.url, 'linus-invoices', 'first-party-2026');
  t.is(walk.consent, undefined, 'not asked');
  const tokens = await oidc.authorizationCodeGrant(
    rp,
    new URL(walk.landed.url),
    { pkceCodeVerifier: pending.verifier, expectedState: pending.state, expectedNonce: pending.nonce, idTokenExpected: true },
    { resource: INVOICES },
  );
  t.is(decodeJwt(tokens.access_token).scope, 'invoices:read');
  t.is((await callApi(invoicesApi, tokens.access_token)).status, 200);
});

test('an unknown resource at /authorize sends the browser back with invalid_target', async (t) => {
  const { gh } = t.context;
  const { client, clientSecret } = await gh.services.admin.createClient(CLI_ACTOR, {
    name: 'Confused app',
    type: 'confidential',
    grantTypes: ['authorization_code'],
    redirectUris: [REDIRECT_URI],
    scope: ['openid', 'invoices:read'],
  });
  const rp = await relyingParty(gh, { clientId: client.clientId, clientSecret: clientSecret! }, 'basic');
  const pending = await authorizationRequest(rp, { scope: 'openid invoices:read', resource: 'https://unknown.example.com' });
  const landed = await new UserAgent([REDIRECT_URI]).open(pending.url);
  t.true(landed.url.startsWith(REDIRECT_URI), landed.url);
  t.is(new URL(landed.url).searchParams.get('error'), 'invalid_target');
});

test('discovery lists the JWKS with an ES256 key that verifies JWT access tokens, and the introspection endpoint', async (t) => {
  const { gh } = t.context;
  const discovery = (await (await fetch(`${gh.url}/.well-known/openid-configuration`)).json()) as Record<string, any>;
  t.is(new URL(discovery.introspection_endpoint).pathname, '/introspect');
  t.is(new URL(discovery.jwks_uri).pathname, '/jwks');
  const jwks = (await (await fetch(discovery.jwks_uri)).json()) as { keys: Array<{ alg?: string; kty: string; crv?: string }> };
  t.true(jwks.keys.some((k) => k.alg === 'ES256' && k.kty === 'EC' && k.crv === 'P-256'));
  t.true(jwks.keys.some((k) => k.alg === 'RS256' && k.kty === 'RSA'));
  t.true(discovery.scopes_supported.includes('invoices:read'));
});
