import anyTest, { type TestFn } from 'ava';
import { REDIS_TEST_URL, type TestGatehouse } from './support/gatehouse.ts';
import { authorizationRequest, oidc, startLoopbackGatehouse, type RegisteredClient } from './support/relying-party.ts';
import { runCli } from './support/cli.ts';
import { adminApi, type AdminApi } from './support/admin-api.ts';
import { operatorAgent } from './support/attacks.ts';
import { basicAuth, FORM_CONTENT_TYPE } from './support/http.ts';
import { isLoginPage, UserAgent } from './support/user-agent.ts';
import { CLIENTS_TOPIC } from '../src/clients/service.ts';
import { introspect, readWithApiKey, refresh, signedInPerson, status, webApp } from './support/token-consumers.ts';

/**
 * Changed upstream, refused downstream: when an operator changes a credential (an app's secret,
 * its being enabled, a person's password, their being enabled, a grant), everything that
 * credential handed out stops working at every place that accepts it. Each row is one change;
 * each column one consumer; each cell what the consumer must answer afterwards.
 *
 * Run over the embedded default (SQLite, every artifact in the database) and over PostgreSQL
 * with Redis (access and client credentials tokens in Redis).
 */

type Outcome = 'refused' | 'accepted' | 'bound';

const CONSUMERS = [
  'introspect the access token',
  'introspect the app’s client credentials token',
  '/userinfo',
  '/userdata/me',
  'the app’s API key at /userdata/:sub',
  'the person’s Gatehouse session',
  'refresh at /token',
  'POST /logout',
] as const;
type Consumer = (typeof CONSUMERS)[number];

/** What a row starts from: a person signed in to an app, and the app's own credentials and tokens. */
interface Before {
  app: RegisteredClient;
  sub: string;
  username: string;
  agent: UserAgent;
  accessToken: string;
  refreshToken: string;
  clientCredentialsToken?: string;
  apiKey: string;
}

interface World {
  gh: TestGatehouse;
  /** A resource server introspecting the app's tokens. */
  api: RegisteredClient;
  admin: AdminApi;
  operator: { username: string; password: string };
  /** Another app, whose authorization request shows whether the person is still signed in to Gatehouse. */
  otherApp: oidc.Configuration;
}

interface Row {
  change: string;
  /** The app is public and signs in with DPoP (its tokens, refresh token included, are bound to a key). */
  dpop?: boolean;
  /** Makes the change; a change of the app's credentials (a new secret) is kept in `before.app`. */
  make(w: World, before: Before): Promise<void>;
  expected: Partial<Record<Consumer, Outcome>>;
}

const ALL_REFUSED: Record<Consumer, Outcome> = Object.fromEntries(CONSUMERS.map((c) => [c, 'refused'])) as Record<Consumer, Outcome>;
/** A change to the app: its tokens and key die; the person's session at Gatehouse is not the app's. */
const APP_CHANGED = { ...ALL_REFUSED, 'the person’s Gatehouse session': 'accepted' } as const;
/** A change to the person: their tokens and sessions die; the app's own credentials live on. */
const PERSON_CHANGED = {
  ...ALL_REFUSED,
  'introspect the app’s client credentials token': 'accepted',
  'the app’s API key at /userdata/:sub': 'accepted',
} as const;

const NEW_PASSWORD = 'a brand new passphrase, set by an operator';

async function cli(w: World, args: string[], stdin?: string): Promise<Record<string, unknown>> {
  const res = await runCli([...args, '--json'], w.gh.env, stdin);
  if (res.code !== 0) throw new Error(`${args.join(' ')}: ${res.stderr}`);
  return res.json();
}

async function api(w: World, method: string, path: string, body?: unknown): Promise<void> {
  const res = await w.admin(method, path, body === undefined ? {} : { body });
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${res.text}`);
}

/** An operator on the admin pages submits one of the forms of the person's page. */
async function onUserPage(w: World, sub: string, form: 'password' | 'disable', fields: Record<string, string> = {}): Promise<void> {
  const { agent } = await operatorAgent(w.gh, w.operator.username, w.operator.password);
  const page = await agent.open(`${w.gh.url}/admin/users/${sub}`);
  const done = await agent.submit(page, new RegExp(`/admin/users/${sub}/${form}$`), fields);
  if (!/notice=/.test(done.url)) throw new Error(`the ${form} form was not accepted: ${done.url} (${done.status})\n${done.html.slice(0, 500)}`);
}

const ROWS: Row[] = [
  {
    change: 'an operator disables the app (CLI)',
    make: async (w, b) => {
      await cli(w, ['clients', 'update', b.app.clientId, '--disable']);
    },
    expected: APP_CHANGED,
  },
  {
    change: 'an operator disables the app and enables it again (CLI)',
    make: async (w, b) => {
      await cli(w, ['clients', 'update', b.app.clientId, '--disable']);
      await cli(w, ['clients', 'update', b.app.clientId, '--enable']);
    },
    // What it issued stays dead; its API key is its own credential, and the person's consent stands.
    expected: { ...APP_CHANGED, 'the app’s API key at /userdata/:sub': 'accepted' },
  },
  {
    change: 'an operator deletes the app (admin API)',
    make: async (w, b) => {
      await api(w, 'DELETE', `/clients/${b.app.clientId}`);
    },
    expected: APP_CHANGED,
  },
  {
    // What a revocation that failed half-way, or a restore of an old backup, can leave: tokens of
    // an app that no longer exists. They are refused for want of the app (never a 500).
    change: 'the app’s row vanishes with its tokens left behind (deleted straight from the database)',
    make: async (w, b) => {
      await w.gh.services.db('clients').where({ client_id: b.app.clientId }).delete();
      await w.gh.services.invalidations.publish(CLIENTS_TOPIC, b.app.clientId);
    },
    expected: APP_CHANGED,
  },
  {
    change: 'an operator rotates the app’s secret (CLI); the app refreshes with the new one',
    make: async (w, b) => {
      b.app = { clientId: b.app.clientId, clientSecret: String((await cli(w, ['clients', 'rotate-secret', b.app.clientId])).client_secret) };
    },
    expected: { ...APP_CHANGED, 'the app’s API key at /userdata/:sub': 'accepted' },
  },
  {
    change: 'an operator sets the person’s password (CLI users set-password)',
    make: async (w, b) => {
      await cli(w, ['users', 'set-password', b.username, '--password-stdin'], `${NEW_PASSWORD}\n`);
    },
    expected: PERSON_CHANGED,
  },
  {
    change: 'the person sets a new password with a reset link, in another browser (CLI users reset-link)',
    make: async (w, b) => {
      const { url } = (await cli(w, ['users', 'reset-link', '--username', b.username])) as { url: string };
      const browser = new UserAgent();
      const form = await browser.open(url);
      const done = await browser.submit(form, /\/password-reset\//, { password: NEW_PASSWORD, password_confirm: NEW_PASSWORD });
      if (done.status !== 200 || !/Your password is changed/.test(done.html))
        throw new Error(`the reset was not accepted (${done.status}):\n${done.html.slice(0, 500)}`);
    },
    expected: PERSON_CHANGED,
  },
  {
    change: 'an operator sets the person’s password (admin API)',
    make: async (w, b) => {
      await api(w, 'POST', `/users/${b.sub}/password`, { password: NEW_PASSWORD });
    },
    expected: PERSON_CHANGED,
  },
  {
    change: 'an operator sets the person’s password (admin pages)',
    make: async (w, b) => {
      await onUserPage(w, b.sub, 'password', { password: NEW_PASSWORD });
    },
    expected: PERSON_CHANGED,
  },
  {
    change: 'an operator disables the person (admin pages)',
    make: async (w, b) => {
      await onUserPage(w, b.sub, 'disable');
    },
    // The app's key reaches no disabled person's document.
    expected: { ...PERSON_CHANGED, 'the app’s API key at /userdata/:sub': 'refused' },
  },
  {
    // A token issued while the person was being disabled can escape the revocation: every
    // consumer also asks whether the person is still enabled.
    change: 'the person is disabled with their tokens left behind (straight in the database)',
    make: async (w, b) => {
      await w.gh.services.db('users').where({ id: b.sub }).update({ disabled: true });
    },
    expected: { ...PERSON_CHANGED, 'the app’s API key at /userdata/:sub': 'refused' },
  },
  {
    change: 'an operator revokes the person’s grant to the app (admin API)',
    make: async (w, b) => {
      const grants = await w.admin('GET', `/users/${b.sub}/grants`);
      for (const grant of grants.body as Array<{ grant_id: string; client_id: string }>) {
        if (grant.client_id === b.app.clientId) await api(w, 'DELETE', `/users/${b.sub}/grants/${grant.grant_id}`);
      }
    },
    // Revoking one app's grant signs the person out of that app, not out of Gatehouse.
    expected: { ...PERSON_CHANGED, 'the app’s API key at /userdata/:sub': 'refused', 'the person’s Gatehouse session': 'accepted' },
  },
  {
    change: 'a public app’s DPoP-bound tokens are presented as plain Bearer tokens',
    dpop: true,
    make: async () => {},
    // Introspection says the token is bound (cnf.jkt), so an API asks for the proof.
    expected: {
      'introspect the access token': 'bound',
      '/userinfo': 'refused',
      '/userdata/me': 'refused',
      'the app’s API key at /userdata/:sub': 'accepted',
      'the person’s Gatehouse session': 'accepted',
      'refresh at /token': 'refused',
      'POST /logout': 'refused',
    },
  },
];

/** What each consumer answers now, and the answer itself for the failure message. */
const consume: Record<Consumer, (w: World, b: Before) => Promise<{ outcome: Outcome | string; detail: string }>> = {
  'introspect the access token': async (w, b) => introspected(await introspect(w.gh, w.api, b.accessToken)),
  'introspect the app’s client credentials token': async (w, b) => introspected(await introspect(w.gh, w.api, b.clientCredentialsToken!)),
  '/userinfo': async (w, b) => answered(await status(w.gh, 'GET', '/userinfo', `Bearer ${b.accessToken}`), 200),
  '/userdata/me': async (w, b) => answered(await status(w.gh, 'GET', '/userdata/me', `Bearer ${b.accessToken}`), 200),
  'the app’s API key at /userdata/:sub': async (w, b) => answered(await readWithApiKey(w.gh, b.apiKey, b.sub), 200),
  'the person’s Gatehouse session': async (w, b) => {
    // Single sign-on: another app's sign-in goes past the login page while the session lives.
    const page = await b.agent.open((await authorizationRequest(w.otherApp, { scope: 'openid' })).url);
    return { outcome: isLoginPage(page) ? 'refused' : 'accepted', detail: `${page.status} ${page.url}` };
  },
  'refresh at /token': async (w, b) => {
    const res = await refresh(w.gh, b.app, b.refreshToken);
    return answered({ status: res.status, body: JSON.stringify(res.body) }, 200);
  },
  'POST /logout': async (w, b) => answered(await status(w.gh, 'POST', '/logout', `Bearer ${b.accessToken}`), 204),
};

function introspected(res: { status: number; body: Record<string, unknown> }): { outcome: Outcome | string; detail: string } {
  const detail = `${res.status} ${JSON.stringify(res.body)}`;
  if (res.status !== 200) return { outcome: `answered ${res.status}`, detail };
  if (res.body.active !== true) return { outcome: 'refused', detail };
  return { outcome: (res.body.cnf as { jkt?: string } | undefined)?.jkt ? 'bound' : 'accepted', detail };
}

/** Accepted with the success status; refused with 400, 401 or 403 (never a 500). */
function answered(res: { status: number; body: string }, success: number): { outcome: Outcome | string; detail: string } {
  const detail = `${res.status} ${res.body.slice(0, 300)}`;
  if (res.status === success) return { outcome: 'accepted', detail };
  return { outcome: [400, 401, 403].includes(res.status) ? 'refused' : `answered ${res.status}`, detail };
}

/** A person signs in to a new app of the row's kind; the app gets its own token and an API key. */
async function before(w: World, row: Row): Promise<Before> {
  const { gh } = w;
  const { client, rp } = await webApp(gh, `App for: ${row.change}`, row.dpop ? { type: 'public' } : { clientCredentials: true });
  const DPoP = row.dpop ? oidc.getDPoPHandle(rp, await oidc.randomDPoPKeyPair()) : undefined;
  const { sub, username, agent, tokens } = await signedInPerson(gh, rp, DPoP ? { DPoP } : {});
  const { key } = await gh.services.apiKeys.create(client.clientId, ['userdata:read']);
  let clientCredentialsToken: string | undefined;
  if (client.clientSecret) {
    const res = await fetch(`${gh.config.issuer}/token`, {
      method: 'POST',
      headers: { ...FORM_CONTENT_TYPE, authorization: basicAuth(client.clientId, client.clientSecret) },
      body: new URLSearchParams({ grant_type: 'client_credentials' }),
    });
    clientCredentialsToken = ((await res.json()) as { access_token: string }).access_token;
  }
  return { app: client, sub, username, agent, accessToken: tokens.access_token, refreshToken: tokens.refresh_token!, clientCredentialsToken, apiKey: key };
}

const STORES = {
  'the embedded default (SQLite)': {},
  'PostgreSQL with Redis': { database: 'pg', env: { REDIS_URL: REDIS_TEST_URL, GATEHOUSE_REDIS_PREFIX: `changed-upstream-${process.pid}:` } },
} as const;

const test = anyTest as TestFn<Record<string, World>>;

test.before(async (t) => {
  t.context = {};
  for (const [name, options] of Object.entries(STORES)) {
    const gh = await startLoopbackGatehouse(options as Parameters<typeof startLoopbackGatehouse>[0]);
    const { client, clientSecret } = await gh.services.clients.create({ name: 'Resource server', type: 'confidential', grantTypes: ['client_credentials'] });
    const operator = { username: 'operator', password: 'operator passphrase, long enough' };
    await gh.services.accounts.create({ username: operator.username, email: 'ops@example.com', password: operator.password, isAdmin: true });
    const { token } = await gh.services.adminTokens.create('changed-upstream');
    const other = await webApp(gh, 'Another app of the same person');
    t.context[name] = { gh, api: { clientId: client.clientId, clientSecret: clientSecret! }, admin: adminApi(gh, token), operator, otherApp: other.rp };
  }
});

test.after.always(async (t) => {
  for (const w of Object.values(t.context ?? {})) await w.gh.close();
});

for (const storeName of Object.keys(STORES)) {
  for (const row of ROWS) {
    // One row at a time: each signs a person in and may run the CLI, which the machine feels.
    test.serial(`${storeName}: ${row.change}, and every consumer answers as it must`, async (t) => {
      t.timeout(120_000);
      const w = t.context[storeName]!;
      const b = await before(w, row);
      // Everything works before the change (the refresh token and logout are left for after).
      for (const consumer of ['introspect the access token', '/userdata/me', 'the app’s API key at /userdata/:sub'] as const) {
        const { outcome, detail } = await consume[consumer](w, b);
        t.is(
          outcome,
          row.dpop && consumer === 'introspect the access token' ? 'bound' : row.dpop && consumer === '/userdata/me' ? 'refused' : 'accepted',
          `before: ${consumer}: ${detail}`,
        );
      }

      await row.make(w, b);

      for (const consumer of CONSUMERS) {
        const expected = row.expected[consumer];
        if (expected === undefined) continue;
        const { outcome, detail } = await consume[consumer](w, b);
        t.is(outcome, expected, `${consumer}: ${detail}`);
      }
    });
  }
}

for (const [how, change] of [
  ['sets their password', (w: World, sub: string) => api(w, 'POST', `/users/${sub}/password`, { password: NEW_PASSWORD })],
  ['disables them', (w: World, sub: string) => api(w, 'PATCH', `/users/${sub}`, { disabled: true })],
] as const) {
  test.serial(`an operator signed in to the admin pages is signed out there when another operator ${how}`, async (t) => {
    const w = t.context['the embedded default (SQLite)']!;
    const username = `second-operator-${how.split(' ')[0]}`;
    const password = 'second operator passphrase';
    const user = await w.gh.services.accounts.create({ username, email: `${username}@example.com`, password, isAdmin: true });
    const { agent } = await operatorAgent(w.gh, username, password);
    t.regex((await agent.open(`${w.gh.url}/admin/users`)).url, /\/admin\/users$/, 'signed in before');

    await change(w, user.id);

    const after = await agent.open(`${w.gh.url}/admin/users`);
    t.regex(after.url, /\/admin\/login/, `${after.status} ${after.url}`);
  });
}
