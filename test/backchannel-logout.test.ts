import { randomBytes } from 'node:crypto';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { runCli } from './support/cli.ts';
import { LOGOUT_EVENT, LogoutReceiver, type ReceivedLogout } from './support/logout-receiver.ts';
import { freePort, restartTestGatehouse, type TestGatehouse } from './support/gatehouse.ts';
import { submitFormById } from './support/http.ts';
import {
  authorizationRequest,
  createClient,
  createUserDirectly,
  oidc,
  POST_LOGOUT_URI,
  redeem,
  REDIRECT_URI,
  relyingParty,
  signInAndAllow,
  startLoopbackGatehouse,
} from './support/relying-party.ts';
import { UserAgent } from './support/user-agent.ts';
import { waitFor } from './support/wait.ts';

/**
 * OpenID Connect Back-Channel Logout 1.0: an app registered with a back-channel logout URI is
 * sent a signed logout token whenever a person's sign-in to it ends: RP-initiated logout, the
 * app's own POST /logout, an operator disabling the person or setting their password. The
 * receiver here checks each token as an app must (§2.6), and can hold its answers, to show that
 * the person's logout never waits for it.
 */

const PASSWORD = 'correct horse battery staple';

interface Context {
  gh: TestGatehouse;
  rp: oidc.Configuration;
  receiver: LogoutReceiver;
}

const test = anyTest as TestFn<Context>;

test.before(async (t) => {
  const gh = await startLoopbackGatehouse();
  const receiver = new LogoutReceiver();
  let clientId = '';
  await receiver.start(gh.config.issuer, () => clientId);
  const app = await createClient(gh, [
    '--name',
    'Team wiki',
    '--type',
    'confidential',
    '--grant',
    'authorization_code',
    '--redirect-uri',
    REDIRECT_URI,
    '--post-logout-redirect-uri',
    POST_LOGOUT_URI,
    '--backchannel-logout-uri',
    receiver.url,
    '--backchannel-logout-session-required',
  ]);
  clientId = app.clientId;
  t.context = { gh, rp: await relyingParty(gh, app, 'basic'), receiver };
});

test.after.always((t) => {
  t.context.receiver?.close();
  return t.context.gh?.close();
});

/** A person of the test's own, signed in to the wiki in their own browser. */
async function signedIn(t: ExecutionContext<Context>) {
  const { gh, rp } = t.context;
  const username = `p${randomBytes(5).toString('hex')}`;
  const sub = await createUserDirectly(gh, username, PASSWORD);
  const agent = new UserAgent([REDIRECT_URI, POST_LOGOUT_URI]);
  const pending = await authorizationRequest(rp);
  const tokens = await redeem(rp, await signInAndAllow(agent, pending.url, username, PASSWORD), pending);
  const sid = tokens.claims()!.sid;
  t.is(typeof sid, 'string', 'the ID token names the session, as back-channel logout needs');
  return { username, sub, sid: sid as string, agent, tokens };
}

/** What every logout token must be (Back-Channel Logout 1.0 §2.4, §2.6). */
function assertLogoutToken(t: ExecutionContext<Context>, received: ReceivedLogout, sub: string, sid: string) {
  t.is(received.typ, 'logout+jwt');
  t.deepEqual(received.claims.events, { [LOGOUT_EVENT]: {} });
  t.is(received.claims.sub, sub);
  t.is(received.claims.sid, sid);
  t.false('nonce' in received.claims, 'a logout token never carries a nonce');
  t.is(typeof received.claims.jti, 'string');
  t.is(typeof received.claims.iat, 'number');
}

test('signing out at Gatehouse (RP-initiated logout) sends the app a logout token for that session, and the person does not wait for the app', async (t) => {
  const { rp, receiver } = t.context;
  const me = await signedIn(t);
  let release!: () => void;
  receiver.hold = new Promise<void>((resolve) => {
    release = resolve;
  });
  try {
    const endSession = oidc.buildEndSessionUrl(rp, { id_token_hint: me.tokens.id_token!, post_logout_redirect_uri: POST_LOGOUT_URI });
    const confirm = await me.agent.open(endSession.href);
    const back = await submitFormById(me.agent, confirm, 'op.logoutForm', { logout: 'yes' });
    t.true(back.url.startsWith(POST_LOGOUT_URI), `back at the app: ${back.url}`);
    // The person is back at the app while the app has not answered its logout token yet.
    const received = await receiver.tokenFor(me.sub);
    assertLogoutToken(t, received, me.sub, me.sid);
  } finally {
    release();
    receiver.hold = undefined;
  }
});

test("the app's own POST /logout sends it a logout token for that session too", async (t) => {
  const { gh, receiver } = t.context;
  const me = await signedIn(t);
  const res = await fetch(`${gh.config.issuer}/logout`, { method: 'POST', headers: { authorization: `Bearer ${me.tokens.access_token}` } });
  t.is(res.status, 204);
  assertLogoutToken(t, await receiver.tokenFor(me.sub), me.sub, me.sid);
});

test('an operator disabling the person (CLI) sends the app a logout token for each of their sessions', async (t) => {
  const { gh, receiver } = t.context;
  const me = await signedIn(t);
  const res = await runCli(['users', 'disable', me.username], gh.env);
  t.is(res.code, 0, res.stderr);
  assertLogoutToken(t, await receiver.tokenFor(me.sub), me.sub, me.sid);
});

test('an operator setting the password (admin API) signs the person out of the app over the back channel', async (t) => {
  const { gh, receiver } = t.context;
  const me = await signedIn(t);
  await gh.services.admin.setUserPassword({ label: 'test' }, me.sub, 'a brand new password 1');
  assertLogoutToken(t, await receiver.tokenFor(me.sub), me.sub, me.sid);
});

test('discovery says back-channel logout is supported, with sessions, and the client shows its URI', async (t) => {
  const { gh, receiver, rp } = t.context;
  const discovery = (await (await fetch(`${gh.config.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
  t.true(discovery.backchannel_logout_supported);
  t.true(discovery.backchannel_logout_session_supported);
  const shown = await runCli(['clients', 'show', rp.clientMetadata().client_id, '--json'], gh.env);
  t.like(shown.json(), { backchannel_logout_uri: receiver.url, backchannel_logout_session_required: true });
});

test('a back-channel logout URI must be https (or http on loopback) without a fragment', async (t) => {
  const { gh } = t.context;
  for (const uri of ['http://wiki.example.com/logout', 'https://wiki.example.com/logout#x', 'not a url']) {
    const res = await runCli(
      [
        'clients',
        'create',
        '--name',
        'Bad',
        '--type',
        'confidential',
        '--grant',
        'authorization_code',
        '--redirect-uri',
        REDIRECT_URI,
        '--backchannel-logout-uri',
        uri,
      ],
      gh.env,
    );
    t.is(res.code, 1, uri);
    t.regex(res.stderr, /--backchannel-logout-uri/, uri);
  }
});

test('a logout whose app is down when Gatehouse stops is delivered after the next start, once the app is back', async (t) => {
  let gh = await startLoopbackGatehouse();
  const receiver = new LogoutReceiver();
  try {
    // The app registers its URI, and is down: nothing listens there yet.
    const appPort = await freePort();
    const app = await createClient(gh, [
      ...['--name', 'Down wiki', '--type', 'confidential', '--grant', 'authorization_code', '--redirect-uri', REDIRECT_URI],
      ...['--backchannel-logout-uri', `http://127.0.0.1:${appPort}/backchannel-logout`, '--backchannel-logout-session-required'],
    ]);
    const rp = await relyingParty(gh, app, 'basic');
    const username = `p${randomBytes(5).toString('hex')}`;
    const sub = await createUserDirectly(gh, username, PASSWORD);
    const agent = new UserAgent([REDIRECT_URI]);
    const pending = await authorizationRequest(rp);
    const tokens = await redeem(rp, await signInAndAllow(agent, pending.url, username, PASSWORD), pending);
    const res = await fetch(`${gh.config.issuer}/logout`, { method: 'POST', headers: { authorization: `Bearer ${tokens.access_token}` } });
    t.is(res.status, 204);
    const db = gh.services.db;
    t.true(
      await waitFor(async () => (await db('backchannel_deliveries').where({ client_id: app.clientId }).first())?.attempts === 1, 10_000),
      'the first attempt failed',
    );

    gh = await restartTestGatehouse(gh);
    await receiver.start(gh.config.issuer, () => app.clientId, appPort);
    const received = await receiver.tokenFor(sub);
    t.is(received.claims.sid, tokens.claims()!.sid);
    t.is(received.typ, 'logout+jwt');
    t.true(
      await waitFor(async () => (await gh.services.db('backchannel_deliveries').where({ client_id: app.clientId })).length === 0, 5000),
      'delivered: removed',
    );
    t.is(receiver.received.length, 1, 'sent once');
  } finally {
    receiver.close();
    await gh.close();
  }
});
