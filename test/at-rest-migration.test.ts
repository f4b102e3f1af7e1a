import fs from 'node:fs';
import anyTest, { type TestFn } from 'ava';
import { storedId } from '../adapters/payload-row.ts';
import { loadConfig } from '../src/config.ts';
import { openDatabase } from '../src/db.ts';
import { startGatehouse } from '../src/server.ts';
import { AtRest, loadAtRest } from '../src/settings/at-rest.ts';
import { runCli } from './support/cli.ts';
import type { DatabaseKind } from './support/gatehouse.ts';
import {
  authorizationRequest,
  callbackParams,
  createClient,
  createUser,
  REDIRECT_URI,
  redeem,
  relyingParty,
  signInAndAllow,
  startLoopbackGatehouse,
} from './support/relying-party.ts';
import { UserAgent } from './support/user-agent.ts';

/**
 * Upgrading to hashed artifact ids and encrypted keys keeps people signed in: a Gatehouse whose
 * database has the layout from before (raw ids, jti in payloads, plain private keys and cookie
 * keys, no key file) starts on the new code, migrates in place, and the cookie a browser holds
 * and the refresh token an app holds keep working; ID tokens keep verifying with the same keys.
 */

const test = anyTest as TestFn;
const PASSWORD = 'migration-tests-correct-horse';
const HASHING_MIGRATION = '20261204010000_hashed_artifacts.ts';

const upgradeKeepsPeopleSignedIn = test.macro({
  async exec(t, kind: DatabaseKind) {
    // PostgreSQL deployments share one database between hosts: they set GATEHOUSE_SECRET_KEY.
    const env: Record<string, string> = kind === 'pg' ? { GATEHOUSE_SECRET_KEY: 'set-by-the-operator-when-upgrading-0123456789' } : {};
    const gh = await startLoopbackGatehouse({ database: kind, env });
    const [, app] = await Promise.all([
      createUser(gh, 'alice', PASSWORD),
      createClient(gh, [
        '--name',
        'Phone app',
        '--type',
        'public',
        '--grant',
        'authorization_code',
        '--grant',
        'refresh_token',
        '--redirect-uri',
        REDIRECT_URI,
      ]),
    ]);
    const rp = await relyingParty(gh, app, 'none');
    const browser = new UserAgent([REDIRECT_URI]);
    const pending = await authorizationRequest(rp, { scope: 'openid offline_access', prompt: 'consent' });
    const tokens = await redeem(rp, await signInAndAllow(browser, pending.url, 'alice', PASSWORD), pending);
    const sessionCookie = browser.cookie('_session')!;
    const refreshToken = tokens.refresh_token!;
    const jwksBefore = await (await fetch(`${gh.url}/jwks`)).json();
    await gh.stop();

    // Back to the layout from before: what the previous release wrote.
    const db = openDatabase(gh.config.database);
    try {
      const atRest = loadAtRest(gh.config);
      for (const row of await db('signing_keys').select('kid', 'private_jwk')) {
        await db('signing_keys')
          .where({ kid: row.kid })
          .update({ private_jwk: atRest.open(row.private_jwk, `signing_keys:${row.kid}`) });
      }
      for (const row of await db('settings').select('name', 'value')) {
        await db('settings')
          .where({ name: row.name })
          .update({ value: atRest.open(row.value, `settings:${row.name}`) });
      }
      const raw: Record<string, string> = { Session: sessionCookie, RefreshToken: refreshToken };
      for (const [model, id] of Object.entries(raw)) {
        const row = await db('oidc_payloads')
          .where({ model, id: storedId(model, id) })
          .first('payload');
        t.truthy(row, `the ${model} is stored`);
        await db('oidc_payloads')
          .where({ model, id: storedId(model, id) })
          .update({ id, payload: JSON.stringify({ ...JSON.parse(row.payload), jti: id }) });
      }
      await db('oidc_payloads').whereNotIn('model', ['Grant', 'Session', 'RefreshToken']).delete();
      await db('knex_migrations').where({ name: HASHING_MIGRATION }).delete();
      if (kind === 'sqlite') fs.rmSync(gh.config.secretKeyFile);
      t.regex((await db('signing_keys').first('private_jwk')).private_jwk, /^\{/, 'the old layout holds plain private keys');
    } finally {
      await db.destroy();
    }

    // The new release starts on it.
    const upgraded = await startGatehouse(loadConfig(gh.env));
    try {
      const silent = await authorizationRequest(rp, { scope: 'openid', prompt: 'none' });
      t.true(callbackParams(await browser.open(silent.url))?.has('code'), 'the browser is still signed in with the cookie it held');
      const refreshed = await fetch(`${gh.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: app.clientId }),
      });
      t.is(refreshed.status, 200, 'the app refreshes with the token it held');
      t.deepEqual(await (await fetch(`${gh.url}/jwks`)).json(), jwksBefore, 'the same signing keys');

      const rows = await upgraded.services.db('oidc_payloads').select('id', 'payload');
      const everything = JSON.stringify(rows);
      t.false(everything.includes(sessionCookie), 'the session cookie value is still in the database');
      t.false(everything.includes(refreshToken), 'the refresh token is still in the database');
      for (const row of await upgraded.services.db('signing_keys').select('private_jwk')) t.true(AtRest.isSealed(row.private_jwk));
      for (const row of await upgraded.services.db('settings').select('value')) t.true(AtRest.isSealed(row.value));
    } finally {
      await upgraded.stop();
      await gh.database.drop();
    }
  },
  title: (_, kind) =>
    `upgrading a ${kind === 'pg' ? 'PostgreSQL' : 'SQLite'} Gatehouse: the same cookie stays signed in, the same refresh token redeems, keys get encrypted`,
});

test('sqlite', upgradeKeepsPeopleSignedIn, 'sqlite');
test('pg', upgradeKeepsPeopleSignedIn, 'pg');

test('a Gatehouse started with another GATEHOUSE_SECRET_KEY than its keys were encrypted with refuses to start, in one line', async (t) => {
  const gh = await startLoopbackGatehouse({ env: { GATEHOUSE_SECRET_KEY: 'the-key-the-keys-were-encrypted-with-0123' } });
  await gh.stop();
  try {
    const wrong = { ...gh.env, GATEHOUSE_SECRET_KEY: 'another-key-of-at-least-thirty-two-chars' };
    const err = await t.throwsAsync(startGatehouse(loadConfig(wrong)));
    t.regex(err!.message, /encrypted with another key than GATEHOUSE_SECRET_KEY/);

    const cli = await runCli(['keys', 'list'], wrong);
    t.not(cli.code, 0);
    const lines = cli.stderr.split('\n').filter((l) => l.trim() && !/oidc-provider WARNING/.test(l));
    t.is(lines.length, 1, cli.stderr);
    t.regex(lines[0]!, /GATEHOUSE_SECRET_KEY/);

    // Without the variable, the key file beside the database is not the key either.
    const missing = { ...gh.env, GATEHOUSE_SECRET_KEY: '' };
    await t.throwsAsync(startGatehouse(loadConfig(missing)), { message: /encrypted with another key than the key file/ });
  } finally {
    await gh.database.drop();
  }
});

test('GATEHOUSE_SECRET_KEY shorter than 32 characters is a configuration error naming it', (t) => {
  t.throws(() => loadConfig({ GATEHOUSE_SECRET_KEY: 'too-short' }), { message: /^invalid GATEHOUSE_SECRET_KEY: must be at least 32 characters/ });
});

test('a data directory and database an older Gatehouse left readable by others are made private at start-up', async (t) => {
  const gh = await startLoopbackGatehouse();
  const file = gh.config.database.client === 'sqlite' ? gh.config.database.filename : '';
  const dir = gh.config.secretKeyFile.replace(/\/[^/]+$/, '');
  await gh.stop();
  try {
    fs.chmodSync(dir, 0o755);
    fs.chmodSync(file, 0o644);
    fs.chmodSync(gh.config.secretKeyFile, 0o644);
    const again = await startGatehouse(loadConfig(gh.env));
    await again.stop();
    const mode = (p: string) => (fs.statSync(p).mode & 0o777).toString(8);
    t.is(mode(dir), '700');
    t.is(mode(file), '600');
    t.is(mode(gh.config.secretKeyFile), '600');
  } finally {
    await gh.database.drop();
  }
});

test('a plain client secret an older Gatehouse kept in the clear (an HS256 client from DOT) is encrypted at start-up and still authenticates', async (t) => {
  const gh = await startLoopbackGatehouse();
  const service = await createClient(gh, ['--name', 'Signs with HS256', '--type', 'confidential', '--grant', 'client_credentials']);
  const secret = 'an-hs256-secret-imported-from-django-oauth-toolkit';
  await gh.services
    .db('clients')
    .where({ client_id: service.clientId })
    .update({ secret_hash: `plain$${secret}` });
  await gh.stop();
  const again = await startGatehouse(loadConfig(gh.env));
  try {
    const stored = String((await again.services.db('clients').where({ client_id: service.clientId }).first('secret_hash')).secret_hash);
    t.false(stored.includes(secret), 'the secret is still in the clear');
    t.regex(stored, /^plain\$gh-enc:v1:/);
    const res = await fetch(`${gh.url}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${service.clientId}:${secret}`).toString('base64')}`,
      },
      body: new URLSearchParams({ grant_type: 'client_credentials' }),
    });
    t.is(res.status, 200, await res.text());
  } finally {
    await again.stop();
    await gh.database.drop();
  }
});
