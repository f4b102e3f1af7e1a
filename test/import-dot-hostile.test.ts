import { pbkdf2Sync } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { CLI_ACTOR } from '../src/admin/audit.ts';
import { verifyDjangoHash } from '../src/accounts/django-hashers.ts';
import { verifyPassword, withHashSlot } from '../src/accounts/passwords.ts';
import { importFromDot, type ImportReport } from '../src/importers/dot/import.ts';
import { runCli } from './support/cli.ts';
import { DOT_APPS, DOT_REFRESH_TOKENS, DOT_USERS, dumpRecord, editedDump, postAsClient, type DotFixtureApp, type DumpRecord } from './support/dot.ts';
import { startTestGatehouse, type TestGatehouse } from './support/gatehouse.ts';
import { authorizationRequest, createClient, REDIRECT_URI, redeem, relyingParty, signInAndAllow, startLoopbackGatehouse } from './support/relying-party.ts';
import { UserAgent } from './support/user-agent.ts';

/**
 * Issue 15 item 6: a DOT dump is someone else's data. Each story starts from the real fixture
 * (../shared/fixtures/dot) changed as a hostile or careless dump would be, and imports it into a
 * Gatehouse that already has clients, users or tightened settings of its own.
 */

const test = anyTest as TestFn;

/** Servers and dump files, undone after the tests. */
const cleanups: Array<() => Promise<unknown> | unknown> = [];
test.after.always(async () => {
  for (const undo of cleanups.reverse()) await Promise.resolve(undo()).catch(() => undefined);
});

async function gatehouse(start: () => Promise<TestGatehouse> = () => startTestGatehouse()): Promise<TestGatehouse> {
  const gh = await start();
  cleanups.push(() => gh.close());
  return gh;
}

function hostileDump(edit: (records: DumpRecord[]) => void, file?: string): string {
  const dump = editedDump(edit, file);
  cleanups.push(() => fs.rmSync(path.dirname(dump), { recursive: true, force: true }));
  return dump;
}

const importDot = (gh: TestGatehouse, source: string) => importFromDot(gh.services, source, { dryRun: false });

const refresh = (gh: TestGatehouse, app: DotFixtureApp, token: string, auth: 'basic' | 'none' = 'basic') =>
  postAsClient(gh.url, '/token', { grant_type: 'refresh_token', refresh_token: token }, app, auth);

const userReport = (r: ImportReport, sub: string) => r.users.find((u) => u.sub === sub)!;
const clientReport = (r: ImportReport, clientId: string) => r.clients.find((c) => c.client_id === clientId)!;
const notImported = (r: ImportReport, id: number) => r.refresh_tokens.not_imported.find((n) => n.id === id)?.reason ?? '(carried over)';

/** A Django pbkdf2_sha256 hash of `password`, as Django writes it, with as many iterations as asked. */
const djangoHash = (password: string, iterations: number, salt = 'hostileSalt2026') =>
  `pbkdf2_sha256$${iterations}$${salt}$${pbkdf2Sync(password, salt, iterations, 32, 'sha256').toString('base64')}`;

// ---- collisions with what Gatehouse already has ---------------------------------------------

test("a dump naming a Gatehouse client's client_id is refused as a collision, shown by the CLI, and the client is left as it was", async (t) => {
  const gh = await gatehouse();
  const { client: team } = await gh.services.admin.createClient(CLI_ACTOR, {
    name: 'Team wiki',
    type: 'confidential',
    grantTypes: ['authorization_code', 'refresh_token'],
    redirectUris: ['https://wiki.example.com/callback'],
  });
  // The dump's web portal takes the wiki's client_id, with its own redirect URI and no consent.
  const dump = hostileDump((records) => {
    const portal = dumpRecord(records, 'oauth2_provider.application', DOT_APPS.portal.id);
    portal.fields.client_id = team.clientId;
    portal.fields.redirect_uris = 'https://attacker.example/cb';
    portal.fields.skip_authorization = true;
  });

  const json = await runCli(['import', 'dot', '--from', dump, '--json'], gh.env);
  t.is(json.code, 0, json.stderr);
  const report = json.json<ImportReport>();
  const entry = clientReport(report, team.clientId);
  t.is(entry.outcome, 'refused');
  t.regex(entry.notes.join(' '), /collides: client_id .* is Gatehouse client "Team wiki", which was made in Gatehouse, not by an import of this source/);
  t.deepEqual(
    report.collisions.map((c) => [c.kind, c.id]),
    [['client', team.clientId]],
  );
  t.deepEqual(report.summary.clients, { imported: 6, updated: 0, unchanged: 0, refused: 3 });
  t.regex(notImported(report, 6), /refused/, "alice's portal token is not handed to the wiki");

  const after = await gh.services.clients.get(team.clientId);
  t.deepEqual(after, team, 'not a field of the wiki changed');

  // Run again as an operator reads it: the collision is said apart, with what to do.
  const text = await runCli(['import', 'dot', '--from', dump], gh.env);
  t.is(text.code, 0, text.stderr);
  t.regex(text.stdout, /Collisions \(refused, nothing of them changed\): 1\n {2}client .* \(Acme Web Portal\): collides: .*rename one of them/);
  t.deepEqual(await gh.services.clients.get(team.clientId), team);
});

test('a DOT user whose username a Gatehouse person has is refused as a collision; she keeps her password and the DOT one does not sign in', async (t) => {
  const gh = await gatehouse();
  const native = await gh.services.admin.createUser(CLI_ACTOR, { username: 'Alice', email: 'alice@gatehouse.example', password: 'gatehouse-alice-1' });
  const report = await importDot(
    gh,
    hostileDump(() => {}),
  );

  const entry = userReport(report, DOT_USERS.alice.sub);
  t.is(entry.outcome, 'refused');
  t.regex(entry.notes.join(' '), new RegExp(`collides: username "alice" is Gatehouse user ${native.id}, who was made in Gatehouse`));
  t.deepEqual(
    report.collisions.map((c) => [c.kind, c.id]),
    [['user', DOT_USERS.alice.sub]],
  );
  t.is(await gh.services.db('users').where({ id: DOT_USERS.alice.sub }).first(), undefined);
  t.is((await gh.services.accounts.verifyCredentials('alice', 'gatehouse-alice-1'))?.id, native.id);
  t.is(await gh.services.accounts.verifyCredentials('alice', DOT_USERS.alice.password), undefined);
  t.regex(notImported(report, 6), /its user was not imported/);
});

test('a second source naming the subs and client_ids a first source imported is refused, and changes none of them (Gatehouse on PostgreSQL)', async (t) => {
  const gh = await gatehouse(() => startTestGatehouse({ database: 'pg' }));
  await importDot(
    gh,
    hostileDump(() => {}),
  );
  const before = { alice: await gh.services.accounts.get(DOT_USERS.alice.sub), portal: await gh.services.clients.get(DOT_APPS.portal.clientId) };

  const other = hostileDump((records) => {
    const alice = dumpRecord(records, 'auth.user', Number(DOT_USERS.alice.sub));
    alice.fields.username = 'alicia';
    alice.fields.email = 'alicia@attacker.example';
    const portal = dumpRecord(records, 'oauth2_provider.application', DOT_APPS.portal.id);
    portal.fields.redirect_uris = 'https://attacker.example/cb';
  });
  const report = await importDot(gh, other);
  t.is(userReport(report, DOT_USERS.alice.sub).outcome, 'refused');
  t.regex(userReport(report, DOT_USERS.alice.sub).notes.join(' '), /was imported from another source/);
  t.is(clientReport(report, DOT_APPS.portal.clientId).outcome, 'refused');
  t.is(report.collisions.length, 5 + 7, 'every user and every client the first source brought');
  t.deepEqual(await gh.services.accounts.get(DOT_USERS.alice.sub), before.alice);
  t.deepEqual(await gh.services.clients.get(DOT_APPS.portal.clientId), before.portal);
});

// ---- re-runs never loosen -------------------------------------------------------------------

test('importing again keeps what an operator tightened: a redirect URI removed, consent turned on, a client disabled, an email changed', async (t) => {
  const gh = await gatehouse();
  const source = hostileDump(() => {});
  await importDot(gh, source);
  const [firstUri] = DOT_APPS.portal.redirectUris;
  await gh.services.admin.updateClient(CLI_ACTOR, DOT_APPS.portal.clientId, { redirectUris: [firstUri] });
  await gh.services.admin.updateClient(CLI_ACTOR, DOT_APPS.dashboard.clientId, { skipConsent: false });
  await gh.services.admin.updateClient(CLI_ACTOR, DOT_APPS.accounts.clientId, { disabled: true });
  await gh.services.admin.updateUser(CLI_ACTOR, DOT_USERS.bob.sub, { email: 'bob@new.example' });

  const report = await importDot(gh, source);
  t.deepEqual((await gh.services.clients.get(DOT_APPS.portal.clientId)).redirectUris, [firstUri], 'the removed redirect URI stays removed');
  t.regex(
    clientReport(report, DOT_APPS.portal.clientId).notes.join(' '),
    /DOT lists redirect URI https:\/\/portal\.acme\.example\/accounts\/complete\/dot\/ that Gatehouse does not: not added/,
  );
  t.false((await gh.services.clients.get(DOT_APPS.dashboard.clientId)).skipConsent, 'consent stays on');
  t.regex(clientReport(report, DOT_APPS.dashboard.clientId).notes.join(' '), /consent is still asked/);
  t.true((await gh.services.clients.get(DOT_APPS.accounts.clientId)).disabled, 'the client stays disabled');
  t.is((await gh.services.accounts.get(DOT_USERS.bob.sub)).email, 'bob@new.example');
  t.deepEqual(report.summary.clients, { imported: 0, updated: 0, unchanged: 7, refused: 2 });
  t.deepEqual(report.summary.users, { imported: 0, updated: 0, unchanged: 5, refused: 0 });
});

test('importing again only tightens: DOT stopped skipping consent and made bob inactive, so consent is asked and bob is out, tokens included', async (t) => {
  const gh = await gatehouse();
  const source = hostileDump(() => {});
  await importDot(gh, source);
  // The same DOT site, a week on: rewritten in place, as a fresh dump of it would be.
  fs.copyFileSync(
    hostileDump((records) => {
      dumpRecord(records, 'oauth2_provider.application', DOT_APPS.dashboard.id).fields.skip_authorization = false;
      dumpRecord(records, 'auth.user', Number(DOT_USERS.bob.sub)).fields.is_active = false;
    }),
    source,
  );
  const report = await importDot(gh, source);
  t.is(clientReport(report, DOT_APPS.dashboard.clientId).outcome, 'updated');
  t.false((await gh.services.clients.get(DOT_APPS.dashboard.clientId)).skipConsent);
  t.is(userReport(report, DOT_USERS.bob.sub).outcome, 'updated');
  t.true((await gh.services.accounts.get(DOT_USERS.bob.sub)).disabled);
  const res = await refresh(gh, DOT_APPS.mobile, DOT_REFRESH_TOKENS.bobMobile, 'none');
  t.is(res.status, 400, `bob's imported token still works: ${JSON.stringify(res.body)}`);
  t.is(res.body.error, 'invalid_grant');

  // Revoked, not merely refused while he is disabled: an operator who lets him back in later
  // does not bring back what he held.
  await gh.services.admin.setUserDisabled(CLI_ACTOR, DOT_USERS.bob.sub, false);
  const later = await refresh(gh, DOT_APPS.mobile, DOT_REFRESH_TOKENS.bobMobile, 'none');
  t.is(later.status, 400, `bob's DOT token came back with him: ${JSON.stringify(later.body)}`);
});

test('a database imported into before sources were recorded knows its imported rows once migrated: importing again is no collision', async (t) => {
  const gh = await gatehouse();
  const { client: native } = await gh.services.admin.createClient(CLI_ACTOR, { name: 'Team wiki', type: 'confidential', grantTypes: ['client_credentials'] });
  const person = await gh.services.admin.createUser(CLI_ACTOR, { username: 'zoe', email: 'zoe@example.com' });
  await importDot(
    gh,
    hostileDump(() => {}),
  );
  // Back to before the migration that records where rows came from, then forward again.
  const db = gh.services.db;
  await db.migrate.down({ name: '20261204040000_dot_import_trust.ts' });
  t.false(await db.schema.hasTable('dot_import_rows'));
  await db.migrate.latest();

  const recorded = await db('dot_import_rows').select('kind', 'key', 'source');
  const keys = recorded.map((r) => `${r.kind}:${r.key}`).sort();
  const expected = [
    ...Object.values(DOT_USERS).map((u) => `user:${u.sub}`),
    ...['portal', 'mobile', 'billing', 'intranet', 'dashboard', 'accounts', 'hybrid'].map((a) => `client:${DOT_APPS[a as keyof typeof DOT_APPS].clientId}`),
  ];
  t.deepEqual(keys, expected.sort(), 'the imported users and clients, not the wiki nor zoe');
  t.false(keys.includes(`client:${native.clientId}`) || keys.includes(`user:${person.id}`));
  t.true(
    recorded.every((r) => r.source === '*'),
    'any source may go on updating them: which one brought them is not known',
  );

  // Imported again, even from a copy somewhere else: left as they are, nothing refused.
  const report = await importDot(
    gh,
    hostileDump(() => {}),
  );
  t.deepEqual(report.collisions, []);
  t.deepEqual(report.summary.users, { imported: 0, updated: 0, unchanged: 5, refused: 0 });
  t.deepEqual(report.summary.clients, { imported: 0, updated: 0, unchanged: 7, refused: 2 });
});

// ---- users under the rules of `users create` -------------------------------------------------

test("usernames and emails that `users create` refuses are refused by the import, each with the service's reason", async (t) => {
  const gh = await gatehouse();
  const people: Array<[pk: number, username: string, email: string]> = [
    [20, 'eve smith', 'eve@acme.example'],
    [21, 'mallory<script>', 'mallory@acme.example'],
    [22, 'x'.repeat(15_000), 'long@acme.example'],
    [23, 'trent', 'not-an-email'],
    [24, 'peggy', ''],
    [25, 'ALICE', 'other-alice@acme.example'],
    [26, 'frank', 'frank@acme.example'],
  ];
  const report = await importDot(
    gh,
    hostileDump((records) => {
      const template = dumpRecord(records, 'auth.user', Number(DOT_USERS.bob.sub));
      for (const [pk, username, email] of people)
        records.push({ ...template, pk, fields: { ...template.fields, username, email, is_staff: false, is_superuser: false } });
    }),
  );

  // What the service says about each, as an operator typing `users create` would hear it.
  const serviceSays = async (username: string, email: string) =>
    gh.services.accounts.create({ username, email }).then(
      () => 'accepted',
      (err: { fields: Record<string, string> }) => Object.entries(err.fields).map(([f, why]) => `${f} ${why}`)[0]!,
    );
  for (const [pk, username, email] of people.slice(0, 5)) {
    const entry = userReport(report, String(pk));
    t.is(entry.outcome, 'refused', `${username.slice(0, 20)} <${email}>`);
    t.true(entry.notes[0]!.includes(await serviceSays(`${username}`, email)), `${entry.notes[0]} gives the service's reason`);
    t.is(
      await gh.services
        .db('users')
        .where({ id: String(pk) })
        .first(),
      undefined,
    );
  }
  t.true(userReport(report, '22').username.length <= 201, 'the report clips a 15,000-character username');
  t.regex(userReport(report, '25').notes[0]!, /collides: username "ALICE" is already user 2 of this source/);
  t.is(userReport(report, '26').outcome, 'imported');
  t.is((await gh.services.accounts.get('26')).username, 'frank');
});

test('applications of grant types named like JavaScript properties are refused as unknown, and the rest imports', async (t) => {
  const gh = await gatehouse();
  const report = await importDot(
    gh,
    hostileDump((records) => {
      dumpRecord(records, 'oauth2_provider.application', DOT_APPS.portal.id).fields.authorization_grant_type = 'constructor';
      dumpRecord(records, 'oauth2_provider.application', DOT_APPS.mobile.id).fields.authorization_grant_type = '__proto__';
    }),
  );
  t.deepEqual(clientReport(report, DOT_APPS.portal.clientId).notes, ['unknown grant type "constructor"']);
  t.deepEqual(clientReport(report, DOT_APPS.mobile.clientId).notes, ['unknown grant type "__proto__"']);
  t.deepEqual(report.summary.clients, { imported: 5, updated: 0, unchanged: 0, refused: 4 });
});

// ---- dear hashes -----------------------------------------------------------------------------

test('a password hash of more than 2,000,000 PBKDF2 iterations is not imported: the person must reset, and her password does not sign her in', async (t) => {
  const gh = await gatehouse();
  // A correct hash of alice's password, one iteration over the limit; bob's is ten million.
  const aliceHash = djangoHash(DOT_USERS.alice.password, 2_000_001);
  const report = await importDot(
    gh,
    hostileDump((records) => {
      dumpRecord(records, 'auth.user', Number(DOT_USERS.alice.sub)).fields.password = aliceHash;
      dumpRecord(records, 'auth.user', Number(DOT_USERS.bob.sub)).fields.password = `pbkdf2_sha256$10000000$salt$${Buffer.alloc(32).toString('base64')}`;
    }),
  );
  for (const [who, iterations] of [
    ['alice', '2,000,001'],
    ['bob', '10,000,000'],
  ] as const) {
    const entry = userReport(report, DOT_USERS[who].sub);
    t.is(entry.outcome, 'imported');
    t.true(
      entry.notes.some((n) => n.includes(`its ${iterations} PBKDF2 iterations are over the limit of 2,000,000`) && n.includes('must reset')),
      entry.notes.join('\n'),
    );
    t.like(await gh.services.accounts.get(DOT_USERS[who].sub), { mustResetPassword: true, hasPassword: false });
  }
  t.is(await gh.services.accounts.verifyCredentials('alice', DOT_USERS.alice.password), undefined);
});

test('a DOT 2.x client secret hashed with 10,000,000 iterations is refused at import', async (t) => {
  const gh = await gatehouse();
  const report = await importDot(
    gh,
    hostileDump((records) => {
      const billing = dumpRecord(records, 'oauth2_provider.application', DOT_APPS.billing.id);
      billing.fields.client_secret = billing.fields.client_secret.replace(/^pbkdf2_sha256\$\d+\$/, 'pbkdf2_sha256$10000000$');
    }, 'dot-hashed.dumpdata.json'),
  );
  const entry = clientReport(report, DOT_APPS.billing.clientId);
  t.is(entry.outcome, 'refused');
  t.regex(entry.notes.join(' '), /secret hash refused: its 10,000,000 PBKDF2 iterations are over the limit of 2,000,000/);
  t.false(await gh.services.clients.exists(DOT_APPS.billing.clientId));
});

test('a stored Django hash over the limit never matches, even the right password (a row imported before the limit)', async (t) => {
  const stored = djangoHash('right-password', 2_000_001);
  t.false(await verifyPassword(stored, 'right-password'));
  t.true(await verifyPassword(djangoHash('right-password', 2_000_000), 'right-password'), 'at the limit it still verifies');
});

test('Django hashes are verified in the hash slots: while every slot is taken, a check waits its turn', async (t) => {
  const stored = djangoHash('right-password', 1);
  let release!: () => void;
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  // More holders than there can be slots: the check queues behind them.
  const holders = Array.from({ length: 8 }, (_, i) => withHashSlot(`holder-${i}`, () => held));
  let settled = false;
  const check = verifyDjangoHash(stored, 'right-password').then((v) => {
    settled = true;
    return v;
  });
  // A one-iteration PBKDF2 takes well under a millisecond: outside the slots it would be done.
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.false(settled, 'verified beside the slots, not in them');
  release();
  await Promise.all(holders);
  t.true(await check);
});

// ---- refresh tokens the dump chooses --------------------------------------------------------

test("refresh tokens the dump chose are refused when short, repetitive or malformed, and their scope is cut to the client's", async (t) => {
  const gh = await gatehouse();
  const report = await importDot(
    gh,
    hostileDump((records) => {
      dumpRecord(records, 'oauth2_provider.refreshtoken', 6).fields.token = 'a'.repeat(30); // alice, Acme Web Portal
      dumpRecord(records, 'oauth2_provider.refreshtoken', 7).fields.token = 'short-but-random-Xq9'; // alice, Acme Mobile
      dumpRecord(records, 'oauth2_provider.refreshtoken', 8).fields.token = 'WbQ9hTNzntXpfmLiDRLFBQ "or 1=1'; // alice, Acme Accounts
      // bob's Acme Mobile token came with an access token the dump says held userdata too.
      dumpRecord(records, 'oauth2_provider.accesstoken', 3).fields.scope = 'read userdata';
    }),
  );
  t.regex(notImported(report, 6), /repeats a few characters/);
  t.regex(notImported(report, 7), /20 characters long: at least 30/);
  t.regex(notImported(report, 8), /holds characters a token does not/);
  for (const [app, token] of [
    [DOT_APPS.portal, 'a'.repeat(30)],
    [DOT_APPS.accounts, 'WbQ9hTNzntXpfmLiDRLFBQ "or 1=1'],
  ] as const) {
    const res = await refresh(gh, app, token);
    t.is(res.status, 400, `${token}: ${JSON.stringify(res.body)}`);
  }
  t.true(
    report.refresh_tokens.notes.some((n) => /refresh token 2: scope userdata dropped \(not in the scope of its client/.test(n)),
    report.refresh_tokens.notes.join('\n'),
  );
  const bob = await refresh(gh, DOT_APPS.mobile, DOT_REFRESH_TOKENS.bobMobile, 'none');
  t.is(bob.status, 200, JSON.stringify(bob.body));
  t.is(bob.body.scope, 'read', 'the client was never given userdata');
});

test('a dump naming a live Gatehouse refresh token as its own does not take it over', async (t) => {
  const gh = await gatehouse(() => startLoopbackGatehouse());
  // A person signed in to a Gatehouse app, which holds her refresh token.
  const person = await gh.services.admin.createUser(CLI_ACTOR, { username: 'zoe', email: 'zoe@example.com', password: 'zoe-Passw0rd!' });
  const app = await createClient(gh, [
    '--name',
    'Notes',
    '--type',
    'confidential',
    '--redirect-uri',
    REDIRECT_URI,
    '--grant',
    'authorization_code',
    '--grant',
    'refresh_token',
    '--scope',
    'openid offline_access',
  ]);
  const rp = await relyingParty(gh, app, 'basic');
  const pending = await authorizationRequest(rp, { scope: 'openid offline_access', prompt: 'consent' });
  const landed = await signInAndAllow(new UserAgent([REDIRECT_URI]), pending.url, 'zoe', 'zoe-Passw0rd!');
  const tokens = await redeem(rp, landed, pending);
  t.truthy(tokens.refresh_token);

  // The dump hands that value to the DOT admin at the Web Portal.
  const report = await importDot(
    gh,
    hostileDump((records) => {
      const rt = dumpRecord(records, 'oauth2_provider.refreshtoken', 6);
      rt.fields.token = tokens.refresh_token;
      rt.fields.user = Number(DOT_USERS.admin.sub);
    }),
  );
  t.regex(notImported(report, 6), /already live in Gatehouse/);
  const res = await postAsClient(
    gh.url,
    '/token',
    { grant_type: 'refresh_token', refresh_token: tokens.refresh_token! },
    { clientId: app.clientId, secret: app.clientSecret },
    'basic',
  );
  t.is(res.status, 200, `zoe's app lost her token: ${JSON.stringify(res.body)}`);
  const info = await fetch(`${gh.url}/userinfo`, { headers: { authorization: `Bearer ${res.body.access_token}` } });
  t.is((await info.json()).sub, person.id);
});
