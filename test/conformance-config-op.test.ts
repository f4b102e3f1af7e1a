import { createPublicKey, type JsonWebKey } from 'node:crypto';
import anyTest, { type TestFn } from 'ava';
import type { TestGatehouse } from './support/gatehouse.ts';
import { REDIRECT_URI, startLoopbackGatehouse } from './support/relying-party.ts';
import { codeFlow, registerClient, registerPerson, RP_ORIGIN, type Json } from './support/conformance.ts';
import { UserAgent } from './support/user-agent.ts';

/**
 * The OpenID Foundation's "Config OP" certification plan (oidcc-config-certification-test-plan):
 * oidcc-discovery-endpoint-verification and the checks it is made of (issuer, endpoints, https,
 * the JWKS), as a relying party reads them, on a plain local Gatehouse and on one behind its
 * trusted TLS proxy as it runs in production.
 */

const PUBLIC_ORIGIN = 'https://id.example.com';
const FORWARDED = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'id.example.com' };

interface Context {
  /** A local Gatehouse at http://127.0.0.1:<port>. */
  gh: TestGatehouse;
  /** GATEHOUSE_TRUST_PROXY=true, GATEHOUSE_ISSUER=https://id.example.com. */
  proxied: TestGatehouse;
}

const test = anyTest as TestFn<Context>;

test.before(async (t) => {
  const [gh, proxied] = await Promise.all([
    startLoopbackGatehouse(),
    startLoopbackGatehouse({ env: { GATEHOUSE_TRUST_PROXY: 'true', GATEHOUSE_ISSUER: PUBLIC_ORIGIN } }),
  ]);
  t.context = { gh, proxied };
});

test.after.always(async (t) => {
  await Promise.all([t.context.gh?.close(), t.context.proxied?.close()]);
});

/** A request to a public https URL of the proxied Gatehouse, as its TLS proxy forwards it. */
function viaProxy(proxied: TestGatehouse, publicUrl: string, init: RequestInit = {}): Promise<Response> {
  if (!publicUrl.startsWith(`${PUBLIC_ORIGIN}/`)) throw new Error(`${publicUrl} is not at ${PUBLIC_ORIGIN}`);
  const local = proxied.url.replace('localhost', '127.0.0.1');
  return fetch(local + publicUrl.slice(PUBLIC_ORIGIN.length), { ...init, headers: { ...FORWARDED, ...(init.headers as Record<string, string>) }, redirect: 'manual' });
}

const WELL_KNOWN = '/.well-known/openid-configuration';

/**
 * The conditions oidcc-discovery-endpoint-verification runs on the document (OIDC Discovery 3,
 * RFC 8414 2), for a document fetched from `issuer + WELL_KNOWN`. Returns what was wrong, or [].
 */
function discoveryProblems(doc: Json, issuer: string): string[] {
  const p: string[] = [];
  const isArrayOfStrings = (v: unknown) => Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string');
  // CheckDiscEndpointIssuer, CheckDiscEndpointIssuerIsValidUrl: the location the document came from.
  if (doc.issuer !== issuer) p.push(`issuer ${doc.issuer} is not ${issuer}`);
  try {
    const u = new URL(doc.issuer);
    if (u.search || u.hash || doc.issuer.endsWith('/')) p.push('issuer has a query, fragment or trailing slash');
  } catch {
    p.push('issuer is not a URL');
  }
  for (const field of ['authorization_endpoint', 'token_endpoint', 'jwks_uri', 'userinfo_endpoint']) {
    if (typeof doc[field] !== 'string') p.push(`${field} is missing`);
    else if (!doc[field].startsWith(`${issuer}/`)) p.push(`${field} ${doc[field]} is not under the issuer`);
  }
  // OIDCCCheckDiscEndpointResponseTypesSupported, CheckDiscEndpointSubjectTypesSupported, OIDCCCheckDiscEndpointIdTokenSigningAlgValuesSupported.
  if (!isArrayOfStrings(doc.response_types_supported) || !doc.response_types_supported.includes('code')) p.push('response_types_supported lacks code');
  if (!isArrayOfStrings(doc.subject_types_supported) || !doc.subject_types_supported.some((s: string) => s === 'public' || s === 'pairwise')) p.push('subject_types_supported lacks public and pairwise');
  if (!isArrayOfStrings(doc.id_token_signing_alg_values_supported) || !doc.id_token_signing_alg_values_supported.includes('RS256')) p.push('id_token_signing_alg_values_supported lacks RS256');
  if (doc.id_token_signing_alg_values_supported?.includes('none')) p.push('alg none is offered for ID tokens');
  // CheckDiscEndpointScopesSupportedSyntax (RFC 6749 3.3 scope-token) and openid in it.
  if (!isArrayOfStrings(doc.scopes_supported) || !doc.scopes_supported.includes('openid')) p.push('scopes_supported lacks openid');
  for (const s of doc.scopes_supported ?? []) if (!/^[\x21\x23-\x5b\x5d-\x7e]+$/.test(s)) p.push(`scope ${s} is not a scope-token`);
  // OIDCCCheckDiscEndpointClaimsSupported (a WARNING in the suite when missing).
  if (!isArrayOfStrings(doc.claims_supported) || !doc.claims_supported.includes('sub')) p.push('claims_supported lacks sub');
  // OIDCCCheckDiscEndpointGrantTypesSupported: absent, or a non-empty array.
  if (doc.grant_types_supported !== undefined && !isArrayOfStrings(doc.grant_types_supported)) p.push('grant_types_supported is not a non-empty array');
  if (!doc.grant_types_supported?.includes('authorization_code')) p.push('grant_types_supported lacks authorization_code');
  // EnsureServerConfigurationCodeChallengeMethodsSupportedIsAnArray.
  if (doc.code_challenge_methods_supported !== undefined && !Array.isArray(doc.code_challenge_methods_supported)) p.push('code_challenge_methods_supported is not an array');
  for (const flag of ['claims_parameter_supported', 'request_parameter_supported', 'request_uri_parameter_supported']) {
    if (doc[flag] !== undefined && typeof doc[flag] !== 'boolean') p.push(`${flag} is not a boolean`);
  }
  // CheckDiscEndpointLocalesSyntax (BCP 47, roughly).
  for (const field of ['ui_locales_supported', 'claims_locales_supported']) {
    for (const l of doc[field] ?? []) if (!/^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$/.test(l)) p.push(`${field} has ${l}`);
  }
  return p;
}

/** Every URL a relying party would call: the *_endpoint members (CheckDiscEndpointAllEndpointsAreHttps) and jwks_uri. */
const listedUrls = (doc: Json): [string, string][] =>
  Object.entries(doc).filter(([k, v]) => (k.endsWith('_endpoint') || k === 'jwks_uri') && typeof v === 'string') as [string, string][];

test('oidcc-discovery-endpoint-verification: the document at issuer + /.well-known/openid-configuration has every required member, well-formed', async (t) => {
  const { gh } = t.context;
  const res = await fetch(`${gh.config.issuer}${WELL_KNOWN}`);
  t.is(res.status, 200);
  t.regex(res.headers.get('content-type') ?? '', /^application\/json/);
  const doc = (await res.json()) as Json;
  t.deepEqual(discoveryProblems(doc, gh.config.issuer), []);
  t.true(listedUrls(doc).length >= 7);
});

test('oidcc-discovery-endpoint-verification (behind the trusted proxy, X-Forwarded-Proto https): issuer exact and every endpoint https at the public origin', async (t) => {
  const { proxied } = t.context;
  const res = await viaProxy(proxied, `${PUBLIC_ORIGIN}${WELL_KNOWN}`);
  t.is(res.status, 200);
  const doc = (await res.json()) as Json;
  t.is(doc.issuer, PUBLIC_ORIGIN);
  t.deepEqual(discoveryProblems(doc, PUBLIC_ORIGIN), []);
  const urls = listedUrls(doc);
  t.true(urls.length >= 7, `only ${urls.length} URLs listed`);
  for (const [name, url] of urls) t.true(url.startsWith(`${PUBLIC_ORIGIN}/`), `${name} is ${url}`);
  // CheckEndpoint: the listed URLs answer through the proxy.
  t.is((await viaProxy(proxied, doc.jwks_uri)).status, 200);
  const token = await viaProxy(proxied, doc.token_endpoint, { method: 'POST', body: new URLSearchParams({ grant_type: 'authorization_code' }) });
  t.is(token.status, 400);
  t.is(((await token.json()) as Json).error, 'invalid_request');
  const userinfo = await viaProxy(proxied, doc.userinfo_endpoint);
  t.is(userinfo.status, 401);
});

test('oidcc-discovery-issuer-not-matching-config: the issuer stays the configured one whatever Host a request names, and ID tokens carry exactly it', async (t) => {
  const { gh, proxied } = t.context;
  // Without proxy trust, a forged Host or X-Forwarded-Host changes nothing.
  const forged = (await (await fetch(`${gh.url.replace('localhost', '127.0.0.1')}${WELL_KNOWN}`, { headers: { host: 'evil.example', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' } })).json()) as Json;
  t.is(forged.issuer, gh.config.issuer);
  for (const [name, url] of listedUrls(forged)) t.true(url.startsWith(`${gh.config.issuer}/`), `${name} is ${url}`);
  // Behind the proxy, the issuer is the configured https one, not the proxy's view of the host.
  const viaOtherHost = (await (await viaProxy(proxied, `${PUBLIC_ORIGIN}${WELL_KNOWN}`, { headers: { 'x-forwarded-host': 'other.example.com' } })).json()) as Json;
  t.is(viaOtherHost.issuer, PUBLIC_ORIGIN);

  // IdToken.verify (config profile): the discovered issuer is the ID token's iss.
  const client = await registerClient(gh, { name: 'Config OP', type: 'confidential', grantTypes: ['authorization_code'], redirectUris: [REDIRECT_URI] });
  const password = 'correct horse battery staple';
  const person = await registerPerson(gh, password);
  const f = await codeFlow(gh, new UserAgent([RP_ORIGIN]), { client, person, password, redirectUri: REDIRECT_URI });
  const discovered = (await (await fetch(`${gh.config.issuer}${WELL_KNOWN}`)).json()) as Json;
  t.is(f.claims.iss, discovered.issuer);
});

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

test('oidcc-discovery-endpoint-verification (ValidateServerJWKs): every JWKS key has a unique kid, use sig, an alg, public parts only, and parses', async (t) => {
  const { gh, proxied } = t.context;
  const doc = (await (await fetch(`${gh.config.issuer}${WELL_KNOWN}`)).json()) as Json;
  const res = await fetch(doc.jwks_uri);
  t.is(res.status, 200);
  t.regex(res.headers.get('content-type') ?? '', /^application\/(jwk-set\+)?json/);
  const { keys } = (await res.json()) as { keys: Json[] };
  t.true(keys.length >= 1);
  t.is(new Set(keys.map((k) => k.kid)).size, keys.length, 'two keys share a kid');
  for (const key of keys) {
    t.is(typeof key.kid, 'string', 'a key without kid');
    t.is(key.use, 'sig', `${key.kid} use`);
    t.true(doc.id_token_signing_alg_values_supported.includes(key.alg), `${key.kid} alg ${key.alg} is not an offered ID token alg`);
    for (const member of PRIVATE_MEMBERS) t.false(member in key, `${key.kid} publishes its private member ${member}`);
    const parsed = createPublicKey({ key: key as JsonWebKey, format: 'jwk' });
    t.is(parsed.type, 'public');
    if (key.kty === 'RSA') t.true(parsed.asymmetricKeyDetails!.modulusLength! >= 2048, `${key.kid} is shorter than 2048 bits`);
    if (key.kty === 'EC') t.is(key.crv, 'P-256');
  }
  t.true(keys.some((k) => k.alg === 'RS256'), 'no RS256 key, which OIDC requires');
  // The same keys behind the proxy, at the https jwks_uri.
  const proxiedDoc = (await (await viaProxy(proxied, `${PUBLIC_ORIGIN}${WELL_KNOWN}`)).json()) as Json;
  const proxiedKeys = ((await (await viaProxy(proxied, proxiedDoc.jwks_uri)).json()) as { keys: Json[] }).keys;
  for (const key of proxiedKeys) for (const member of PRIVATE_MEMBERS) t.false(member in key, `${key.kid} publishes ${member}`);
});
