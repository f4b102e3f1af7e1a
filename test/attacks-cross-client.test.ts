/**
 * Credentials of one app used by another: refresh tokens, access tokens at introspection and
 * revocation, and API keys at /userdata. (A code of one app redeemed by another is in
 * sign-in-attacks.test.ts; another app's key reaching a user who never authorized it is in
 * userdata-api.test.ts.)
 *
 * Introspection policy (RFC 7662 §2.1 requires authenticating the caller, §4 leaves what each
 * caller may see to the server): any confidential client may introspect access tokens, since
 * resource servers check tokens issued to other clients (README: "An API checks such a token
 * by introspection, authenticating as any confidential client"). A public client sees only its
 * own tokens, and a refresh token is only ever its own client's business.
 */
import { randomBytes } from 'node:crypto';
import anyTest, { type TestFn } from 'ava';
import { CLI_ACTOR } from '../src/admin/audit.ts';
import { basicAuth } from './support/http.ts';
import type { TestGatehouse } from './support/gatehouse.ts';
import {
  authorizationRequest,
  createUserDirectly,
  oauthError,
  oidc,
  redeem,
  REDIRECT_URI,
  relyingParty,
  signInAndAllow,
  startLoopbackGatehouse,
  type RegisteredClient,
} from './support/relying-party.ts';
import { UserAgent } from './support/user-agent.ts';
import { userdata } from './support/userdata.ts';

const PASSWORD = 'correct horse battery staple';

interface Context {
  gh: TestGatehouse;
  clients: { web: RegisteredClient; notes: RegisteredClient; spa: RegisteredClient; api: RegisteredClient };
  rp: { web: oidc.Configuration; notes: oidc.Configuration; spa: oidc.Configuration; api: oidc.Configuration };
}

const test = anyTest as TestFn<Context>;

async function client(gh: TestGatehouse, name: string, settings: Record<string, unknown>): Promise<RegisteredClient> {
  const { client: c, clientSecret } = await gh.services.admin.createClient(CLI_ACTOR, { name, ...settings });
  return { clientId: c.clientId, clientSecret: clientSecret ?? undefined };
}

test.before(async (t) => {
  const gh = await startLoopbackGatehouse();
  const signIn = { grantTypes: ['authorization_code', 'refresh_token'], redirectUris: [REDIRECT_URI], scope: ['openid', 'profile', 'offline_access', 'userdata'] };
  const [web, notes, spa, api] = await Promise.all([
    client(gh, 'Web app', { type: 'confidential', ...signIn }),
    client(gh, 'Notes app', { type: 'confidential', ...signIn }),
    client(gh, 'Single-page app', { type: 'public', ...signIn }),
    client(gh, 'Resource server', { type: 'confidential', grantTypes: ['client_credentials'] }),
  ]);
  t.context = {
    gh,
    clients: { web, notes, spa, api },
    rp: {
      web: await relyingParty(gh, web, 'basic'),
      notes: await relyingParty(gh, notes, 'basic'),
      spa: await relyingParty(gh, spa, 'none'),
      api: await relyingParty(gh, api, 'basic'),
    },
  };
});

test.after.always(async (t) => t.context.gh?.close());

/** A person of the test's own signs in to `rp` and allows it; the app's tokens. */
async function signedIn(t: { context: Context }, rp: oidc.Configuration, username = `p${randomBytes(5).toString('hex')}`, scope = 'openid profile userdata') {
  const { gh } = t.context;
  const existing = await gh.services.accounts.list(username);
  const sub = existing.find((u) => u.username === username)?.id ?? (await createUserDirectly(gh, username, PASSWORD));
  const pending = await authorizationRequest(rp, { scope });
  const tokens = await redeem(rp, await signInAndAllow(new UserAgent([REDIRECT_URI]), pending.url, username, PASSWORD), pending);
  return { sub, username, tokens };
}

async function userinfoStatus(gh: TestGatehouse, accessToken: string): Promise<number> {
  const res = await fetch(`${gh.config.issuer}/userinfo`, { headers: { authorization: `Bearer ${accessToken}` } });
  await res.arrayBuffer();
  return res.status;
}

/** POST /revoke as `by`: the status (RFC 7009 answers 200 whether or not anything was revoked). */
async function revokeAs(gh: TestGatehouse, by: RegisteredClient, token: string): Promise<number> {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  const body = new URLSearchParams({ token });
  if (by.clientSecret) headers.authorization = basicAuth(by.clientId, by.clientSecret);
  else body.set('client_id', by.clientId);
  const res = await fetch(`${gh.config.issuer}/revoke`, { method: 'POST', headers, body });
  await res.arrayBuffer();
  return res.status;
}

test("one app's refresh token is refused to another app, and still works for its own", async (t) => {
  const { rp } = t.context;
  const { tokens } = await signedIn(t, rp.web);
  t.truthy(tokens.refresh_token);
  t.is(await oauthError(oidc.refreshTokenGrant(rp.notes, tokens.refresh_token!)), 'invalid_grant');
  t.is(await oauthError(oidc.refreshTokenGrant(rp.spa, tokens.refresh_token!)), 'invalid_grant');
  // The thief's attempts neither used it up nor revoked it.
  const refreshed = await oidc.refreshTokenGrant(rp.web, tokens.refresh_token!);
  t.truthy(refreshed.access_token);
});

test("another app cannot revoke one app's access or refresh token", async (t) => {
  const { gh, rp, clients } = t.context;
  const { tokens } = await signedIn(t, rp.web);
  for (const by of [clients.notes, clients.spa, clients.api]) {
    t.is(await revokeAs(gh, by, tokens.access_token), 200);
    t.is(await revokeAs(gh, by, tokens.refresh_token!), 200);
  }
  t.is(await userinfoStatus(gh, tokens.access_token), 200, 'the access token was revoked by another app');
  t.true((await oidc.tokenIntrospection(rp.web, tokens.access_token)).active);
  t.truthy((await oidc.refreshTokenGrant(rp.web, tokens.refresh_token!)).access_token, 'the refresh token was revoked by another app');
  // Its own app can.
  const own = await signedIn(t, rp.web);
  t.is(await revokeAs(gh, clients.web, own.tokens.access_token), 200);
  t.is(await userinfoStatus(gh, own.tokens.access_token), 401);
});

test("a public app learns nothing by introspecting another app's tokens", async (t) => {
  const { rp, gh, clients } = t.context;
  const { tokens } = await signedIn(t, rp.web);
  const service = await fetch(`${gh.config.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(clients.api.clientId, clients.api.clientSecret!) },
    body: new URLSearchParams({ grant_type: 'client_credentials' }),
  }).then((r) => r.json() as Promise<{ access_token: string }>);
  for (const token of [tokens.access_token, tokens.refresh_token!, service.access_token]) {
    const seen = await oidc.tokenIntrospection(rp.spa, token);
    t.deepEqual(seen, { active: false });
  }
  // Its own tokens it may introspect.
  const own = await signedIn(t, rp.spa);
  t.true((await oidc.tokenIntrospection(rp.spa, own.tokens.access_token)).active);
});

test("a resource server introspects an app's access token (as documented), but never its refresh token", async (t) => {
  const { rp } = t.context;
  const { sub, tokens } = await signedIn(t, rp.web);
  const access = await oidc.tokenIntrospection(rp.api, tokens.access_token);
  t.true(access.active);
  t.is(access.sub, sub);
  t.is(access.client_id, t.context.clients.web.clientId);

  for (const other of [rp.api, rp.notes]) t.deepEqual(await oidc.tokenIntrospection(other, tokens.refresh_token!), { active: false });
  // The app itself may introspect its refresh token.
  const own = await oidc.tokenIntrospection(rp.web, tokens.refresh_token!);
  t.true(own.active);
  t.is(own.sub, sub);
});

test("an app's API key stops reaching a person once that app's grant is revoked, while the other app's key still does", async (t) => {
  const { gh, rp, clients } = t.context;
  const username = `p${randomBytes(5).toString('hex')}`;
  const atWeb = await signedIn(t, rp.web, username);
  const atNotes = await signedIn(t, rp.notes, username);
  const [webKey, notesKey] = await Promise.all([
    gh.services.apiKeys.create(clients.web.clientId, ['userdata:read', 'userdata:write']),
    gh.services.apiKeys.create(clients.notes.clientId, ['userdata:read', 'userdata:write']),
  ]);
  t.is((await userdata(gh, atWeb.sub, { key: webKey.key })).status, 200);
  t.is((await userdata(gh, atWeb.sub, { key: notesKey.key })).status, 200);

  // The person removes Notes app (an operator revokes that grant for them).
  const grants = await gh.services.grants.listForUser(atWeb.sub);
  const notesGrant = grants.find((g) => g.clientId === clients.notes.clientId)!;
  await gh.services.admin.revokeUserGrant(CLI_ACTOR, atWeb.sub, notesGrant.grantId);

  t.is((await userdata(gh, atWeb.sub, { key: notesKey.key })).status, 403);
  t.is((await userdata(gh, atWeb.sub, { method: 'PUT', key: notesKey.key, body: { stolen: true } })).status, 403);
  t.is((await userdata(gh, 'me', { token: atNotes.tokens.access_token })).status, 401, "Notes app's user token died with its grant");
  // Web app is untouched.
  t.is((await userdata(gh, atWeb.sub, { key: webKey.key })).status, 200);
  t.is((await userdata(gh, 'me', { token: atWeb.tokens.access_token })).status, 200);
  t.deepEqual((await userdata(gh, atWeb.sub, { key: webKey.key })).json, {});
});
