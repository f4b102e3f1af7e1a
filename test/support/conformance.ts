/**
 * What the OpenID Foundation's conformance suite does as a relying party, done by hand so each
 * check is visible: raw authorization URLs, raw token requests, ID token checks and signature
 * verification against the published JWKS (openid-client does not verify ID token signatures from
 * the token endpoint, and the suite does).
 */
import { randomBytes, createHash, createPublicKey, constants, verify as verifySignature, type JsonWebKey } from 'node:crypto';
import type { ClientSettingsInput } from '../../src/clients/rules.ts';
import type { TestGatehouse } from './gatehouse.ts';
import type { RegisteredClient } from './relying-party.ts';
import { isConsentPage, isLoginPage, UserAgent, type Page } from './user-agent.ts';
import { basicAuth } from './http.ts';

export type Json = Record<string, any>;

export const random = (bytes = 16): string => randomBytes(bytes).toString('base64url');

/** A PKCE S256 pair. */
export function pkcePair(): { verifier: string; challenge: string } {
  const verifier = random(32);
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

/** `${issuer}/authorize?…` with the parameters in the order given, leaving out undefined ones. */
export function authorizeUrl(gh: TestGatehouse, params: Record<string, string | undefined>): string {
  const url = new URL(`${gh.config.issuer}/authorize`);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.append(k, v);
  return url.href;
}

export interface Walk {
  page: Page;
  sawLogin: boolean;
  sawConsent: boolean;
  /** The login page's HTML, when one was shown. */
  loginHtml?: string;
}

/** Follows an authorization request as the suite's tester does: signs in and allows if asked. */
export async function walk(agent: UserAgent, start: string | Page, username: string, password: string): Promise<Walk> {
  let page = typeof start === 'string' ? await agent.open(start) : start;
  let sawLogin = false;
  let sawConsent = false;
  let loginHtml: string | undefined;
  if (isLoginPage(page)) {
    sawLogin = true;
    loginHtml = page.html;
    page = await agent.submit(page, /\/login$/, { username, password });
  }
  if (isConsentPage(page)) {
    sawConsent = true;
    page = await agent.submit(page, /\/consent$/, { decision: 'allow' });
  }
  return { page, sawLogin, sawConsent, loginHtml };
}

export interface TokenResponse {
  status: number;
  headers: Headers;
  body: Json;
}

/** A raw token endpoint request, authenticated with client_secret_basic, client_secret_post or none. */
export async function tokenRequest(gh: TestGatehouse, client: RegisteredClient, auth: 'basic' | 'post' | 'none', params: Record<string, string | undefined>): Promise<TokenResponse> {
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) body.set(k, v);
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (auth === 'basic') {
    headers.authorization = basicAuth(client.clientId, client.clientSecret!);
  } else {
    body.set('client_id', client.clientId);
    if (auth === 'post') body.set('client_secret', client.clientSecret!);
  }
  const res = await fetch(`${gh.config.issuer}/token`, { method: 'POST', headers, body });
  const text = await res.text();
  let json: Json;
  try {
    json = JSON.parse(text) as Json;
  } catch {
    json = { unparsable: text };
  }
  return { status: res.status, headers: res.headers, body: json };
}

export interface DecodedJwt {
  header: Json;
  payload: Json;
  signingInput: string;
  signature: Buffer;
}

export function decodeJwt(jwt: string): DecodedJwt {
  const parts = jwt.split('.');
  if (parts.length !== 3) throw new Error(`not a JWS compact serialization: ${parts.length} parts`);
  const [h, p, s] = parts as [string, string, string];
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as Json,
    payload: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Json,
    signingInput: `${h}.${p}`,
    signature: Buffer.from(s, 'base64url'),
  };
}

export async function fetchJwks(gh: TestGatehouse): Promise<Json[]> {
  const res = await fetch(`${gh.config.issuer}/jwks`);
  if (res.status !== 200) throw new Error(`jwks answered ${res.status}`);
  return ((await res.json()) as { keys: Json[] }).keys;
}

/**
 * Verifies a JWS against the OP's JWKS as the suite does: the header names a kid, the JWKS has
 * that key, its alg (when it states one) is the header's alg, and the signature verifies.
 * Returns what was wrong, or [] when nothing was.
 */
export function signatureProblems(jwt: string, keys: Json[]): string[] {
  const { header, signingInput, signature } = decodeJwt(jwt);
  const problems: string[] = [];
  if (typeof header.alg !== 'string' || header.alg === 'none') return [`alg is ${header.alg}`];
  if (typeof header.kid !== 'string') problems.push('no kid in the header');
  const key = keys.find((k) => k.kid === header.kid);
  if (!key) return [...problems, `no key ${header.kid} in the JWKS`];
  if (key.alg !== undefined && key.alg !== header.alg) problems.push(`key ${key.kid} is for ${key.alg}, the JWS says ${header.alg}`);
  if (key.use !== undefined && key.use !== 'sig') problems.push(`key ${key.kid} is for use ${key.use}`);
  const publicKey = createPublicKey({ key: key as JsonWebKey, format: 'jwk' });
  const input = Buffer.from(signingInput);
  let ok: boolean;
  switch (header.alg) {
    case 'RS256':
      ok = verifySignature('sha256', input, publicKey, signature);
      break;
    case 'PS256':
      ok = verifySignature('sha256', input, { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, signature);
      break;
    case 'ES256':
      ok = verifySignature('sha256', input, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature);
      break;
    default:
      return [...problems, `unexpected alg ${header.alg}`];
  }
  if (!ok) problems.push('the signature does not verify');
  return problems;
}

/** at_hash / c_hash (OIDC Core 3.1.3.6): the left half of the hash of the value, base64url. */
export function halfHash(value: string, alg: string): string {
  const bits = /(\d{3})$/.exec(alg)?.[1] ?? '256';
  const digest = createHash(`sha${bits}`).update(value, 'ascii').digest();
  return digest.subarray(0, digest.length / 2).toString('base64url');
}

export interface IdTokenExpectations {
  issuer: string;
  clientId: string;
  /** The nonce sent; undefined means none was sent, so none may come back. */
  nonce?: string;
  accessToken?: string;
}

/**
 * The ID token checks of OIDC Core 3.1.3.7 that the suite's oidcc-server runs (iss, aud, azp,
 * exp, iat, sub, nonce, auth_time, at_hash when present). Returns what was wrong, or [].
 */
export function idTokenProblems(jwt: string, expected: IdTokenExpectations): string[] {
  const { header, payload: c } = decodeJwt(jwt);
  const now = Math.floor(Date.now() / 1000);
  const problems: string[] = [];
  if (c.iss !== expected.issuer) problems.push(`iss is ${c.iss}, not ${expected.issuer}`);
  const aud = Array.isArray(c.aud) ? c.aud : [c.aud];
  if (!aud.includes(expected.clientId)) problems.push(`aud ${JSON.stringify(c.aud)} lacks the client`);
  if (aud.length > 1 && c.azp !== expected.clientId) problems.push('several audiences and azp is not the client');
  if (c.azp !== undefined && c.azp !== expected.clientId) problems.push(`azp is ${c.azp}`);
  if (typeof c.exp !== 'number' || c.exp <= now) problems.push(`exp ${c.exp} is not in the future`);
  if (typeof c.iat !== 'number' || c.iat > now + 5 || c.iat < now - 300) problems.push(`iat ${c.iat} is not now`);
  if (typeof c.sub !== 'string' || c.sub.length === 0 || c.sub.length > 255 || !/^[\x21-\x7e]+$/.test(c.sub)) problems.push(`sub ${c.sub} is not a valid subject`);
  if (expected.nonce === undefined ? c.nonce !== undefined : c.nonce !== expected.nonce) problems.push(`nonce is ${c.nonce}, expected ${expected.nonce}`);
  if (c.auth_time !== undefined && (typeof c.auth_time !== 'number' || c.auth_time > now + 5)) problems.push(`auth_time ${c.auth_time} is invalid`);
  if (c.at_hash !== undefined) {
    if (!expected.accessToken) problems.push('at_hash present but no access token to check it against');
    else if (c.at_hash !== halfHash(expected.accessToken, header.alg)) problems.push('at_hash does not match the access token');
  }
  return problems;
}

/** Where the suite's relying party lives: every redirect there ends the browser's walk. */
export const RP_ORIGIN = 'http://127.0.0.1:8765/';

/**
 * Registers a client in-process through the clients service, the one the CLI and the admin call
 * (a CLI process per client would cost seconds on a busy machine).
 */
export async function registerClient(gh: TestGatehouse, input: ClientSettingsInput): Promise<RegisteredClient> {
  const { client, clientSecret } = await gh.services.clients.create(input);
  return { clientId: client.clientId, clientSecret: clientSecret ?? undefined };
}

/** A person of a test's own (consent is remembered per person and client). */
export async function registerPerson(gh: TestGatehouse, password: string, name = 'Buffy Summers'): Promise<{ username: string; sub: string }> {
  const username = `p${randomBytes(5).toString('hex')}`;
  const user = await gh.services.accounts.create({ username, email: `${username}@example.com`, name, password, emailVerified: true });
  return { username, sub: user.id };
}

export interface CodeFlow extends Walk {
  /** The query the browser brought back to the redirect URI. */
  callback: URLSearchParams;
  state: string;
  nonce?: string;
  token: TokenResponse;
  /** The ID token's claims. */
  claims: Json;
}

/**
 * One authorization code flow as the suite's oidcc-server runs it: response_type=code, state and
 * nonce (unless `params` sets them undefined), scope=openid unless given; signs in and allows if
 * asked; redeems the code at the token endpoint. Throws if no code comes back or the exchange fails.
 */
export async function codeFlow(
  gh: TestGatehouse,
  agent: UserAgent,
  options: { client: RegisteredClient; auth?: 'basic' | 'post' | 'none'; person: { username: string }; password: string; params?: Record<string, string | undefined>; redirectUri: string; verifier?: string },
): Promise<CodeFlow> {
  const state = random();
  const nonce = random();
  const params = { response_type: 'code', client_id: options.client.clientId, redirect_uri: options.redirectUri, scope: 'openid', state, nonce, ...options.params };
  const walked = await walk(agent, authorizeUrl(gh, params), options.person.username, options.password);
  if (!walked.page.url.startsWith(options.redirectUri)) throw new Error(`not back at the redirect URI but at ${walked.page.url} (${walked.page.status}): ${walked.page.html.slice(0, 300)}`);
  const callback = new URL(walked.page.url).searchParams;
  const code = callback.get('code');
  if (!code) throw new Error(`no code at ${walked.page.url}`);
  const token = await tokenRequest(gh, options.client, options.auth ?? 'basic', { grant_type: 'authorization_code', code, redirect_uri: params.redirect_uri, code_verifier: options.verifier });
  if (token.status !== 200) throw new Error(`token endpoint answered ${token.status}: ${JSON.stringify(token.body)}`);
  return { ...walked, callback, state: params.state ?? '', nonce: params.nonce, token, claims: decodeJwt(token.body.id_token).payload };
}

export async function userinfo(gh: TestGatehouse, accessToken: string, how: 'get' | 'post-header' | 'post-body' = 'get'): Promise<{ status: number; headers: Headers; body: Json }> {
  const url = `${gh.config.issuer}/userinfo`;
  const res =
    how === 'get'
      ? await fetch(url, { headers: { authorization: `Bearer ${accessToken}` } })
      : how === 'post-header'
        ? await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${accessToken}` } })
        : await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ access_token: accessToken }) });
  const text = await res.text();
  let body: Json;
  try {
    body = JSON.parse(text) as Json;
  } catch {
    body = { unparsable: text };
  }
  return { status: res.status, headers: res.headers, body };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A browser reaching Gatehouse through a TLS-terminating proxy at `publicOrigin`: requests to
 * that origin go to `localOrigin` with X-Forwarded-Proto https and X-Forwarded-Host, as the
 * proxy would send them (for a Gatehouse started with GATEHOUSE_TRUST_PROXY=true).
 */
export class ProxiedUserAgent extends UserAgent {
  constructor(stopAt: string[], private readonly publicOrigin: string, private readonly localOrigin: string) {
    super(stopAt);
  }

  override async request(url: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (!url.startsWith(this.publicOrigin)) return super.request(url, init);
    headers.set('x-forwarded-proto', 'https');
    headers.set('x-forwarded-host', new URL(this.publicOrigin).host);
    return super.request(this.localOrigin + url.slice(this.publicOrigin.length), { ...init, headers });
  }
}
