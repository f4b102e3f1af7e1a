/**
 * Complete sign-ins for the benchmark, by a person's browser over plain HTTP: the tests' own
 * UserAgent (cookies, redirects, forms), driven through either provider's pages.
 */
import { basicAuth } from '../test/support/http.ts';
import { UserAgent } from '../test/support/user-agent.ts';
import { createHash, randomBytes } from 'node:crypto';

/** How a provider's sign-in pages are filled in. */
export interface SignInForms {
  authorizePath: string;
  tokenPath: string;
  /** Form action of the login page, and its fields for a username and password. */
  login: { action: RegExp; fields: (username: string, password: string) => Record<string, string> };
  /** Form action of the consent page (the Allow choice). */
  consent: { action: RegExp; fields: Record<string, string> };
}

export interface SignInClient {
  clientId: string;
  clientSecret: string;
  redirectUri: string;
  scope: string;
}

export interface SignInOutcome {
  accessToken: string;
  consented: boolean;
}

/**
 * One complete sign-in, as a web app and a person do it: authorize (PKCE S256, state, nonce) →
 * login form → consent form (if asked) → code at the redirect URI → token exchange with HTTP Basic.
 */
export async function signIn(issuer: string, forms: SignInForms, client: SignInClient, username: string, password: string): Promise<SignInOutcome> {
  const agent = new UserAgent([client.redirectUri]);
  const verifier = randomBytes(32).toString('base64url');
  const state = randomBytes(16).toString('base64url');
  const authorize = new URL(forms.authorizePath, issuer);
  authorize.search = new URLSearchParams({
    client_id: client.clientId,
    response_type: 'code',
    redirect_uri: client.redirectUri,
    scope: client.scope,
    state,
    nonce: randomBytes(16).toString('base64url'),
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  }).toString();

  let page = await agent.open(authorize.href);
  if (/name="password"/.test(page.html)) page = await agent.submit(page, forms.login.action, forms.login.fields(username, password));
  let consented = false;
  if (!page.url.startsWith(client.redirectUri) && page.html) {
    page = await agent.submit(page, forms.consent.action, forms.consent.fields);
    consented = true;
  }
  if (!page.url.startsWith(client.redirectUri)) throw new Error(`sign-in of ${username} ended at ${page.url} (${page.status}): ${page.html.replace(/\s+/g, ' ').slice(0, 300)}`);
  const params = new URL(page.url).searchParams;
  const code = params.get('code');
  if (!code || params.get('state') !== state) throw new Error(`sign-in of ${username}: no code at the redirect URI: ${page.url}`);

  const res = await fetch(new URL(forms.tokenPath, issuer), {
    method: 'POST',
    headers: { authorization: basicAuth(client.clientId, client.clientSecret), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: client.redirectUri, code_verifier: verifier }),
  });
  const body = (await res.json()) as { access_token?: string; id_token?: string };
  if (res.status !== 200 || !body.access_token || !body.id_token) throw new Error(`code exchange for ${username} failed: ${res.status} ${JSON.stringify(body)}`);
  return { accessToken: body.access_token, consented };
}
