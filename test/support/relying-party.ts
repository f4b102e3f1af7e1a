import * as oidc from 'openid-client';
import { freePort, startTestGatehouse, type TestGatehouse } from './gatehouse.ts';
import { runCli } from './cli.ts';
import type { UserAgent, Page } from './user-agent.ts';

export const REDIRECT_URI = 'http://127.0.0.1:8765/callback';
export const POST_LOGOUT_URI = 'http://127.0.0.1:8765/signed-out';

export interface RegisteredClient {
  clientId: string;
  clientSecret?: string;
}

export async function createUser(gh: TestGatehouse, username: string, password: string, extra: string[] = []): Promise<string> {
  const res = await runCli(['users', 'create', '--username', username, '--email', `${username}@example.com`, '--password-stdin', '--json', ...extra], gh.env, `${password}\n`);
  if (res.code !== 0) throw new Error(res.stderr);
  return res.json().id;
}

export async function createClient(gh: TestGatehouse, args: string[]): Promise<RegisteredClient> {
  const res = await runCli(['clients', 'create', '--json', ...args], gh.env);
  if (res.code !== 0) throw new Error(res.stderr);
  const json = res.json();
  return { clientId: json.client_id, clientSecret: json.client_secret };
}

/** A web app's openid-client configuration, from discovery. */
export async function relyingParty(gh: TestGatehouse, client: RegisteredClient, auth: 'basic' | 'post' | 'none'): Promise<oidc.Configuration> {
  const method =
    auth === 'basic' ? oidc.ClientSecretBasic(client.clientSecret!) : auth === 'post' ? oidc.ClientSecretPost(client.clientSecret!) : oidc.None();
  return oidc.discovery(new URL(gh.config.issuer), client.clientId, undefined, method, { execute: [oidc.allowInsecureRequests] });
}

/** Login form, then (if asked) the consent page with Allow; returns where the browser was sent. */
export async function signInAndAllow(agent: UserAgent, authorizationUrl: string, username: string, password: string): Promise<Page> {
  let page = await agent.open(authorizationUrl);
  if (/name="password"/.test(page.html)) page = await agent.submit(page, /\/login$/, { username, password });
  if (/name="decision"/.test(page.html)) page = await agent.submit(page, /\/consent$/, { decision: 'allow' });
  return page;
}

export { oidc };

/** What a relying party keeps between sending the browser away and handling the callback. */
export interface PendingAuthorization {
  url: string;
  state: string;
  nonce: string;
  verifier?: string;
}

/**
 * An authorization request as openid-client builds it: redirect URI, scope "openid profile email"
 * unless `params` says otherwise, state and nonce, and PKCE S256 unless `pkce` is false.
 */
export async function authorizationRequest(rp: oidc.Configuration, params: Record<string, string> = {}, { pkce = true } = {}): Promise<PendingAuthorization> {
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const verifier = pkce ? oidc.randomPKCECodeVerifier() : undefined;
  const url = oidc.buildAuthorizationUrl(rp, {
    redirect_uri: REDIRECT_URI,
    scope: 'openid profile email',
    state,
    nonce,
    ...(verifier ? { code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' } : {}),
    ...params,
  });
  return { url: url.href, state, nonce, verifier };
}

/** The app's callback: redeems the code of `landed` (the page at the redirect URI) for tokens. */
export async function redeem(rp: oidc.Configuration, landed: Page, pending: PendingAuthorization) {
  if (!landed.url.startsWith(REDIRECT_URI)) throw new Error(`not at the redirect URI but at ${landed.url} (${landed.status}):\n${landed.html.slice(0, 500)}`);
  return oidc.authorizationCodeGrant(rp, new URL(landed.url), {
    pkceCodeVerifier: pending.verifier,
    expectedState: pending.state,
    expectedNonce: pending.nonce,
    idTokenExpected: true,
  });
}

/** The query of the redirect URI a page landed on (code or error, state), or undefined elsewhere. */
export function callbackParams(page: Page): URLSearchParams | undefined {
  return page.url.startsWith(REDIRECT_URI) ? new URL(page.url).searchParams : undefined;
}

/**
 * The OAuth error code a rejected openid-client call carries (`invalid_grant` …), or, for an
 * error without one (a 401 from userinfo), `http_<status>`. Fails if the call succeeds.
 */
export async function oauthError(call: Promise<unknown>): Promise<string> {
  try {
    await call;
  } catch (err) {
    if (err instanceof oidc.ResponseBodyError || err instanceof oidc.AuthorizationResponseError) return err.error;
    if (err instanceof oidc.WWWAuthenticateChallengeError) {
      return err.cause.find((c) => c.parameters.error)?.parameters.error ?? `http_${err.status}`;
    }
    throw err;
  }
  throw new Error('expected the call to fail, and it succeeded');
}

/**
 * A person with a password, created in-process through the same accounts service the CLI
 * calls (faster than a CLI process when a test needs a person of its own). Returns the sub.
 */
export async function createUserDirectly(gh: TestGatehouse, username: string, password: string): Promise<string> {
  const user = await gh.services.accounts.create({ username, email: `${username}@example.com`, password });
  return user.id;
}

/**
 * startTestGatehouse with the issuer at http://127.0.0.1:<port> instead of localhost, so that
 * the relying party and the browser connect to an IP literal without a dns.lookup. Lookups run
 * on libuv's thread pool, where scrypt hashes (a quarter second each, more on a busy machine)
 * queue too; with a dozen sign-ins at once in one test process, a lookup of "localhost" can wait
 * behind them past undici's 10 s connect timeout ("fetch failed", UND_ERR_CONNECT_TIMEOUT).
 */
export async function startLoopbackGatehouse(options: Parameters<typeof startTestGatehouse>[0] = {}): Promise<TestGatehouse> {
  const port = await freePort();
  return startTestGatehouse({ ...options, env: { PORT: String(port), GATEHOUSE_ISSUER: `http://127.0.0.1:${port}`, ...options.env } });
}
