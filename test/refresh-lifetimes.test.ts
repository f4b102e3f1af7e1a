import { randomBytes } from 'node:crypto';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { storedId } from '../adapters/payload-row.ts';
import { ConfigError, loadConfig } from '../src/config.ts';
import { runCli } from './support/cli.ts';
import type { TestGatehouse } from './support/gatehouse.ts';
import {
  authorizationRequest,
  createClient,
  createUserDirectly,
  oauthError,
  oidc,
  redeem,
  REDIRECT_URI,
  relyingParty,
  startLoopbackGatehouse,
  signInAndAllow,
} from './support/relying-party.ts';
import { UserAgent } from './support/user-agent.ts';
import { testClock } from './support/clock.ts';

interface Context {
  gh: TestGatehouse;
  rp: oidc.Configuration;
  /** Long grants, short refresh tokens: a refresh token's own idle lifetime, far from its grant's end. */
  idle: { gh: TestGatehouse; rp: oidc.Configuration };
}

const test = anyTest as TestFn<Context>;

const PASSWORD = 'correct horse battery staple';
// Lifetimes as an operator might set them: the clock is moved, not waited for.
const GRANT_TTL = 3 * 3600;
const REFRESH_TOKEN_TTL = 2 * 3600;
const ACCESS_TOKEN_TTL = 600;
const IDLE_REFRESH_TOKEN_TTL = 1800;

const webApp = ['--name', 'Web app', '--type', 'confidential', '--grant', 'authorization_code', '--grant', 'refresh_token', '--redirect-uri', REDIRECT_URI];

test.before(async (t) => {
  const [gh, idle] = await Promise.all([
    startLoopbackGatehouse({
      env: {
        GATEHOUSE_GRANT_TTL: String(GRANT_TTL),
        GATEHOUSE_REFRESH_TOKEN_TTL: String(REFRESH_TOKEN_TTL),
        GATEHOUSE_ACCESS_TOKEN_TTL: String(ACCESS_TOKEN_TTL),
      },
    }),
    startLoopbackGatehouse({ env: { GATEHOUSE_GRANT_TTL: String(30 * 24 * 3600), GATEHOUSE_REFRESH_TOKEN_TTL: String(IDLE_REFRESH_TOKEN_TTL) } }),
  ]);
  const [web, idleWeb] = await Promise.all([createClient(gh, webApp), createClient(idle, webApp)]);
  t.context = { gh, rp: await relyingParty(gh, web, 'basic'), idle: { gh: idle, rp: await relyingParty(idle, idleWeb, 'basic') } };
});

test.after.always(async (t) => {
  await Promise.all([t.context.gh?.close(), t.context.idle?.gh.close()]);
});

const now = () => Math.floor(Date.now() / 1000);
// Every test here moves the clock, so they run one at a time.
const clock = testClock();
/** Moves the clock (the server's and the app's) on until it reads `epochSeconds` plus `extraMs`. */
const passUntil = (epochSeconds: number, extraMs = 150) => clock.advanceTo(epochSeconds * 1000 + extraMs);

/**
 * A person of the test's own signs in. Returns the tokens and, in epoch seconds, when sign-in
 * began, when the browser was back at the app (consent given: the grant exists) and when the
 * app had redeemed the code (the first refresh token exists).
 */
async function signIn(t: ExecutionContext<Context>, { gh, rp }: { gh: TestGatehouse; rp: oidc.Configuration } = t.context) {
  const username = `p${randomBytes(5).toString('hex')}`;
  await createUserDirectly(gh, username, PASSWORD);
  const startedAt = now();
  const pending = await authorizationRequest(rp);
  const landed = await signInAndAllow(new UserAgent([REDIRECT_URI]), pending.url, username, PASSWORD);
  const signedInAt = now();
  const tokens = await redeem(rp, landed, pending);
  const redeemedAt = now();
  t.truthy(tokens.refresh_token);
  return { tokens, startedAt, signedInAt, redeemedAt };
}

const between = (value: number, low: number, high: number) => value >= low && value <= high;

/** When the grant behind a refresh token ends, as the store has it. */
async function grantEnd(gh: TestGatehouse, grantId: string): Promise<number> {
  const row = await gh.services.db('oidc_payloads').where({ model: 'Grant', id: grantId }).first('expires_at');
  return Number(row.expires_at);
}

test.serial('a refresh token never outlives its grant, and refreshing fails once the grant has ended', async (t) => {
  const { gh, rp } = t.context;
  const { tokens, startedAt, signedInAt } = await signIn(t);
  const first = await oidc.tokenIntrospection(rp, tokens.refresh_token!);
  t.true(first.active);
  const grantEndsAt = await grantEnd(gh, await introspectGrantId(gh, tokens.refresh_token!));
  t.true(between(grantEndsAt, startedAt + GRANT_TTL, signedInAt + GRANT_TTL), `the grant lives GATEHOUSE_GRANT_TTL seconds from sign-in (ends ${grantEndsAt - startedAt} s after sign-in began)`);

  // Half way into a three-hour grant: a fresh two-hour refresh token would end after the grant.
  passUntil(grantEndsAt - 5400);
  const refreshed = await oidc.refreshTokenGrant(rp, tokens.refresh_token!);
  t.truthy(refreshed.refresh_token);
  const second = await oidc.tokenIntrospection(rp, refreshed.refresh_token!);
  t.true(second.active);
  t.true(second.exp! <= grantEndsAt, `the new refresh token ends ${second.exp! - grantEndsAt} s after its grant`);
  t.true(second.exp! <= signedInAt + GRANT_TTL + 1);
  t.true(second.exp! >= grantEndsAt - 1, 'but it lives as long as the grant does');

  passUntil(grantEndsAt + 1);
  t.is(await oauthError(oidc.refreshTokenGrant(rp, refreshed.refresh_token!)), 'invalid_grant');
});

test.serial('a refresh token unused for GATEHOUSE_REFRESH_TOKEN_TTL seconds expires while its grant lives on', async (t) => {
  const { gh, rp } = t.context.idle;
  const { tokens, signedInAt, redeemedAt } = await signIn(t, t.context.idle);
  const introspected = await oidc.tokenIntrospection(rp, tokens.refresh_token!);
  t.true(introspected.active);
  t.true(between(introspected.exp!, signedInAt + IDLE_REFRESH_TOKEN_TTL, redeemedAt + IDLE_REFRESH_TOKEN_TTL), `expires ${introspected.exp! - signedInAt} s after sign-in`);

  passUntil(introspected.exp!);
  t.is(await oauthError(oidc.refreshTokenGrant(rp, tokens.refresh_token!)), 'invalid_grant');
  const grantEndsAt = await grantEnd(gh, await introspectGrantId(gh, tokens.refresh_token!));
  t.true(grantEndsAt > now() + 29 * 24 * 3600, 'while the grant has most of its month left');
});

test.serial('an access token lives GATEHOUSE_ACCESS_TOKEN_TTL seconds', async (t) => {
  const { gh, rp } = t.context;
  const { tokens } = await signIn(t);
  t.is(tokens.expires_in, ACCESS_TOKEN_TTL);
  const introspected = await oidc.tokenIntrospection(rp, tokens.access_token);
  t.true(introspected.active);
  t.is(introspected.exp! - introspected.iat!, ACCESS_TOKEN_TTL);

  passUntil(introspected.exp!);
  const res = await fetch(`${gh.config.issuer}/userinfo`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
  t.is(res.status, 401);
  t.false((await oidc.tokenIntrospection(rp, tokens.access_token)).active);
});

test('a grant lifetime shorter than the refresh token lifetime is a configuration error naming GATEHOUSE_GRANT_TTL', async (t) => {
  const error = t.throws(() => loadConfig({ GATEHOUSE_GRANT_TTL: '60', GATEHOUSE_REFRESH_TOKEN_TTL: '120' }), { instanceOf: ConfigError });
  t.regex(error!.message, /GATEHOUSE_GRANT_TTL/);
  t.notThrows(() => loadConfig({ GATEHOUSE_GRANT_TTL: '120', GATEHOUSE_REFRESH_TOKEN_TTL: '120' }));
  // A refresh lifetime beyond the default grant lifetime (90 days) needs a longer grant too.
  t.throws(() => loadConfig({ GATEHOUSE_REFRESH_TOKEN_TTL: String(100 * 24 * 3600) }), { instanceOf: ConfigError, message: /GATEHOUSE_GRANT_TTL/ });
  for (const [variable, value] of [['GATEHOUSE_REFRESH_TOKEN_TTL', '0'], ['GATEHOUSE_ACCESS_TOKEN_TTL', 'an hour'], ['GATEHOUSE_GRANT_TTL', '1.5']]) {
    t.throws(() => loadConfig({ [variable]: value }), { instanceOf: ConfigError, message: new RegExp(variable) }, `${variable}=${value}`);
  }
});

test('the CLI refuses to start with a grant lifetime shorter than the refresh token lifetime, in one line', async (t) => {
  const { gh } = t.context;
  const res = await runCli(['users', 'list', '--json'], { ...gh.env, GATEHOUSE_GRANT_TTL: '3', GATEHOUSE_REFRESH_TOKEN_TTL: '4' });
  t.is(res.code, 2);
  t.is(res.stdout, '');
  const lines = res.stderr.split('\n').filter((l) => l.trim() && !/oidc-provider WARNING/.test(l));
  t.is(lines.length, 1, res.stderr);
  t.regex(lines[0]!, /GATEHOUSE_GRANT_TTL/);
});

/** The grant a token belongs to, from the store (introspection does not tell it). */
async function introspectGrantId(gh: TestGatehouse, token: string): Promise<string> {
  const row = await gh.services.db('oidc_payloads').where({ model: 'RefreshToken', id: storedId('RefreshToken', token) }).first('grant_id');
  if (!row?.grant_id) throw new Error('refresh token not found in the store');
  return row.grant_id;
}
