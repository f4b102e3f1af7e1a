import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import type { TestGatehouse } from './support/gatehouse.ts';
import { authorizationRequest, oidc, REDIRECT_URI, signInAndAllow, startLoopbackGatehouse, type RegisteredClient } from './support/relying-party.ts';
import { runCli } from './support/cli.ts';
import { basic, introspect as introspectBy, PERSON_PASSWORD as PASSWORD, person, signedInPerson, status, webApp } from './support/token-consumers.ts';

/**
 * Gatehouse's own token consumers (/userdata/me, POST /logout) check an access token as
 * oidc-provider does at /userinfo: sender constraints, the client, the grant.
 */

interface Context {
  gh: TestGatehouse;
  /** A resource server: introspects other clients' tokens. */
  api: RegisteredClient;
}

const test = anyTest as TestFn<Context>;

test.before(async (t) => {
  const gh = await startLoopbackGatehouse();
  t.context = { gh } as Context;
  const { client, clientSecret } = await gh.services.clients.create({ name: 'Resource server', type: 'confidential', grantTypes: ['client_credentials'] });
  t.context.api = { clientId: client.clientId, clientSecret: clientSecret! };
});

test.after.always(async (t) => t.context.gh?.close());

const signIn = (t: ExecutionContext<Context>, rp: oidc.Configuration, options: { DPoP?: oidc.DPoPHandle } = {}) => signedInPerson(t.context.gh, rp, options);
const introspect = (t: ExecutionContext<Context>, token: string) => introspectBy(t.context.gh, t.context.api, token);

test('a DPoP-bound access token is refused as a plain Bearer token at /userdata/me and POST /logout, and accepted with its proof', async (t) => {
  const { gh } = t.context;
  const { rp } = await webApp(gh, 'DPoP app');
  const DPoP = oidc.getDPoPHandle(rp, await oidc.randomDPoPKeyPair());
  const { tokens } = await signIn(t, rp, { DPoP });
  t.is(tokens.token_type, 'dpop');
  const at = tokens.access_token;

  for (const [method, path] of [
    ['GET', '/userdata/me'],
    ['POST', '/logout'],
  ] as const) {
    const plain = await status(gh, method, path, `Bearer ${at}`);
    t.is(plain.status, 401, `${method} ${path}: ${plain.body}`);
    t.is(JSON.parse(plain.body).error, 'invalid_token');
    t.regex(JSON.parse(plain.body).error_description, /DPoP/);
    t.regex(plain.challenge ?? '', /error="invalid_token"/);
    // The DPoP scheme without a proof is refused too.
    t.is((await status(gh, method, path, `DPoP ${at}`)).status, 400, `${method} ${path} without a proof`);
  }
  t.is((await status(gh, 'GET', '/userinfo', `Bearer ${at}`)).status, 401, 'as at /userinfo');

  const read = await oidc.fetchProtectedResource(rp, at, new URL(`${gh.config.issuer}/userdata/me`), 'GET', undefined, undefined, { DPoP });
  t.is(read.status, 200, await read.clone().text());
  t.deepEqual(await read.json(), {});
  const logout = await oidc.fetchProtectedResource(rp, at, new URL(`${gh.config.issuer}/logout`), 'POST', undefined, undefined, { DPoP });
  t.is(logout.status, 204, await logout.clone().text());
  const after = await t.throwsAsync(oidc.fetchProtectedResource(rp, at, new URL(`${gh.config.issuer}/userdata/me`), 'GET', undefined, undefined, { DPoP }), {
    instanceOf: oidc.WWWAuthenticateChallengeError,
  });
  t.is(after?.status, 401, 'signed out: the token is revoked');
});

test('a DPoP proof for another URL or method is refused at /userdata/me', async (t) => {
  const { gh } = t.context;
  const { rp } = await webApp(gh, 'DPoP app 2');
  const keys = await oidc.randomDPoPKeyPair();
  const DPoP = oidc.getDPoPHandle(rp, keys);
  const { tokens } = await signIn(t, rp, { DPoP });
  // A proof made for /userinfo is sent to /userdata/me.
  let proof = '';
  const capture: oidc.CustomFetch = async (_url, init) => {
    proof = new Headers(init.headers).get('dpop') ?? '';
    return new Response('{}', { status: 200, headers: { 'content-type': 'application/json' } });
  };
  rp[oidc.customFetch] = capture;
  await oidc.fetchProtectedResource(rp, tokens.access_token, new URL(`${gh.config.issuer}/userinfo`), 'GET', undefined, undefined, { DPoP });
  delete rp[oidc.customFetch];
  t.truthy(proof);
  const res = await fetch(`${gh.config.issuer}/userdata/me`, { headers: { authorization: `DPoP ${tokens.access_token}`, dpop: proof } });
  t.is(res.status, 401);
  t.is(((await res.json()) as Record<string, string>).error, 'invalid_dpop_proof');
});

for (const how of ['disabled', 'deleted'] as const) {
  test(`a ${how} client's tokens are refused at /userinfo, /userdata/me and POST /logout, and introspect as inactive`, async (t) => {
    const { gh } = t.context;
    const { client, rp } = await webApp(gh, `Soon ${how}`);
    const { tokens } = await signIn(t, rp);
    const at = tokens.access_token;
    t.is((await status(gh, 'GET', '/userdata/me', `Bearer ${at}`)).status, 200, 'works before');
    t.true((await introspect(t, at)).body.active);

    const changed = await runCli(
      how === 'disabled' ? ['clients', 'update', client.clientId, '--disable', '--json'] : ['clients', 'delete', client.clientId, '--json'],
      gh.env,
    );
    t.is(changed.code, 0, changed.stderr);

    for (const [method, path] of [
      ['GET', '/userinfo'],
      ['GET', '/userdata/me'],
      ['POST', '/logout'],
    ] as const) {
      const res = await status(gh, method, path, `Bearer ${at}`);
      t.is(res.status, 401, `${method} ${path}: ${res.body}`);
      t.regex(res.challenge ?? '', /invalid_token/);
    }
    const inspected = await introspect(t, at);
    t.is(inspected.status, 200);
    t.deepEqual(inspected.body, { active: false });
  });
}

test('two redemptions of one code racing each other leave no token of that code working (50 rounds)', async (t) => {
  t.timeout(240_000);
  const { gh } = t.context;
  const { client, rp } = await webApp(gh, 'Racing app');
  const { username, agent } = await person(gh);
  const redeemRaw = (code: string, verifier: string) =>
    fetch(`${gh.config.issuer}/token`, {
      method: 'POST',
      headers: { authorization: basic(client), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier }),
    }).then(async (res) => ({ status: res.status, body: (await res.json()) as Record<string, string> }));

  // Both redemptions are held after finding the code until both have found it, so both pass
  // oidc-provider's `consumed` check and race on the adapter's atomic consume.
  const Code = gh.gatehouse.provider().AuthorizationCode as unknown as { find: (...args: unknown[]) => Promise<unknown> };
  const find = Code.find;
  let held: Array<() => void> = [];
  Code.find = async function heldFind(this: unknown, ...args: unknown[]) {
    const found = await find.apply(this, args);
    await new Promise<void>((resolve) => {
      held.push(resolve);
      const release = () => {
        for (const go of held) go();
        held = [];
      };
      if (held.length === 2) release();
      else setTimeout(release, 2000);
    });
    return found;
  };
  t.teardown(() => {
    Code.find = find;
  });

  let bothAnswered = 0;
  for (let round = 0; round < 50; round++) {
    const pending = await authorizationRequest(rp, { scope: 'openid userdata' });
    const landed = await signInAndAllow(agent, pending.url, username, PASSWORD);
    const code = new URL(landed.url).searchParams.get('code');
    t.truthy(code, `round ${round}: landed at ${landed.url}`);
    const answers = await Promise.all([redeemRaw(code!, pending.verifier!), redeemRaw(code!, pending.verifier!)]);
    const won = answers.filter((a) => a.status === 200);
    t.true(won.length <= 1, `round ${round}: both redemptions got tokens`);
    for (const lost of answers.filter((a) => a.status !== 200)) t.is(lost.body.error, 'invalid_grant', `round ${round}`);
    if (won.length === 1 && answers.some((a) => a.status !== 200)) bothAnswered++;
    for (const { body } of won) {
      t.is((await status(gh, 'GET', '/userinfo', `Bearer ${body.access_token}`)).status, 401, `round ${round}: the access token still works at /userinfo`);
      t.is(
        (await status(gh, 'GET', '/userdata/me', `Bearer ${body.access_token}`)).status,
        401,
        `round ${round}: the access token still works at /userdata/me`,
      );
      t.deepEqual((await introspect(t, body.access_token!)).body, { active: false }, `round ${round}: the access token introspects as active`);
      if (body.refresh_token) {
        const refreshed = await fetch(`${gh.config.issuer}/token`, {
          method: 'POST',
          headers: { authorization: basic(client), 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: body.refresh_token }),
        });
        t.is(refreshed.status, 400, `round ${round}: the refresh token still works`);
      }
    }
  }
  t.is(bothAnswered, 50, 'every round had one winner and one loser');
});
