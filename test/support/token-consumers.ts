/**
 * A person's tokens with an app, and every place that consumes them: introspection, /userinfo,
 * /userdata/me, POST /logout, the app's API key at /userdata/:sub, and refresh at /token. Shared
 * by the token-consumer tests (test/access-token-consumers.test.ts,
 * test/changed-upstream-refused-downstream.test.ts).
 */
import { randomBytes } from 'node:crypto';
import type { TestGatehouse } from './gatehouse.ts';
import { basicAuth, FORM_CONTENT_TYPE } from './http.ts';
import { authorizationRequest, createUserDirectly, oidc, REDIRECT_URI, relyingParty, signInAndAllow, type RegisteredClient } from './relying-party.ts';
import { UserAgent } from './user-agent.ts';

export const PERSON_PASSWORD = 'correct horse battery staple';

/** A web app signing people in with the userdata scope: its registration and its openid-client configuration. */
export async function webApp(
  gh: TestGatehouse,
  name: string,
  { type = 'confidential', clientCredentials = false }: { type?: 'confidential' | 'public'; clientCredentials?: boolean } = {},
): Promise<{ client: RegisteredClient; rp: oidc.Configuration }> {
  const { client, clientSecret } = await gh.services.clients.create({
    name,
    type,
    grantTypes: ['authorization_code', 'refresh_token', ...(clientCredentials ? (['client_credentials'] as const) : [])],
    redirectUris: [REDIRECT_URI],
    scope: ['openid', 'profile', 'userdata', ...(clientCredentials ? ['read'] : [])],
  });
  const registered: RegisteredClient = { clientId: client.clientId, ...(clientSecret ? { clientSecret } : {}) };
  return { client: registered, rp: await relyingParty(gh, registered, type === 'public' ? 'none' : 'basic') };
}

/** A person of the test's own (random username), with a browser of their own. */
export async function person(gh: TestGatehouse): Promise<{ sub: string; username: string; agent: UserAgent }> {
  const username = `p${randomBytes(5).toString('hex')}`;
  const sub = await createUserDirectly(gh, username, PERSON_PASSWORD);
  return { sub, username, agent: new UserAgent([REDIRECT_URI]) };
}

/** A new person signs in to the app (scope openid userdata) and allows it; the app redeems the code. */
export async function signedInPerson(gh: TestGatehouse, rp: oidc.Configuration, options: { DPoP?: oidc.DPoPHandle } = {}) {
  const { sub, username, agent } = await person(gh);
  const pending = await authorizationRequest(rp, { scope: 'openid userdata' });
  const landed = await signInAndAllow(agent, pending.url, username, PERSON_PASSWORD);
  const tokens = await oidc.authorizationCodeGrant(
    rp,
    new URL(landed.url),
    { pkceCodeVerifier: pending.verifier, expectedState: pending.state, expectedNonce: pending.nonce },
    undefined,
    options,
  );
  return { sub, agent, username, tokens };
}

export const basic = (c: RegisteredClient): string => basicAuth(c.clientId, c.clientSecret!);

/** One request with an Authorization header: the status, the body text and the challenge. */
export async function status(
  gh: TestGatehouse,
  method: string,
  path: string,
  authorization: string,
): Promise<{ status: number; body: string; challenge: string | null }> {
  const res = await fetch(`${gh.config.issuer}${path}`, { method, headers: { authorization } });
  return { status: res.status, body: await res.text(), challenge: res.headers.get('www-authenticate') };
}

/** A resource server (`by`, a confidential client) introspects a token. */
export async function introspect(gh: TestGatehouse, by: RegisteredClient, token: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${gh.config.issuer}/introspect`, {
    method: 'POST',
    headers: { authorization: basic(by), ...FORM_CONTENT_TYPE },
    body: new URLSearchParams({ token }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** The app refreshes at /token: with its secret (Basic) when it has one, else as a public client. */
export async function refresh(gh: TestGatehouse, client: RegisteredClient, refreshToken: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${gh.config.issuer}/token`, {
    method: 'POST',
    headers: { ...FORM_CONTENT_TYPE, ...(client.clientSecret ? { authorization: basic(client) } : {}) },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, ...(client.clientSecret ? {} : { client_id: client.clientId }) }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** The app's backend reads its document of a user with its API key. */
export async function readWithApiKey(gh: TestGatehouse, key: string, sub: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`${gh.config.issuer}/userdata/${sub}`, { headers: { 'x-api-key': key } });
  return { status: res.status, body: await res.text() };
}
