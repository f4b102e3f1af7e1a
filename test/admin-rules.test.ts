import { randomBytes } from 'node:crypto';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { CLI_ACTOR } from '../src/admin/audit.ts';
import { adminApi, type AdminApi, type ApiResponse } from './support/admin-api.ts';
import { operatorAgent } from './support/attacks.ts';
import { runCli, type CliResult } from './support/cli.ts';
import { startTestGatehouse, type TestGatehouse } from './support/gatehouse.ts';
import { postForm } from './support/http.ts';

/**
 * The rules the admin applies hold whichever door an operator uses: the admin pages, the admin
 * API and the CLI all go through AdminOperations, so "keep at least one enabled admin", "not
 * yourself" and "only what changed is audited" are one rule each. Serial: the last-admin tests
 * count every admin of the database.
 */

interface Context {
  gh: TestGatehouse;
  api: AdminApi;
}

const test = anyTest as TestFn<Context>;

const PASSWORD = 'operator-at-the-gate-2026';
const tag = () => randomBytes(4).toString('hex');

test.before(async (t) => {
  const gh = await startTestGatehouse();
  const { token } = await gh.services.admin.createAdminToken(CLI_ACTOR, 'rules');
  t.context = { gh, api: adminApi(gh, token) };
});

test.after.always(async (t) => t.context.gh?.close());

/** Leaves no enabled admin behind, so each test starts from the admins it makes. */
test.beforeEach(async (t) => {
  await t.context.gh.services.db('users').update({ is_admin: false });
});

async function newAdmin(t: ExecutionContext<Context>, prefix = 'op'): Promise<{ id: string; username: string }> {
  const username = `${prefix}-${tag()}`;
  const user = await t.context.gh.services.accounts.create({ username, email: `${username}@example.com`, password: PASSWORD, isAdmin: true });
  return { id: user.id, username };
}

const users = (t: ExecutionContext<Context>, args: string[]) => runCli(['users', ...args, '--json'], t.context.gh.env);

function isLastAdminApiError(t: ExecutionContext<Context>, res: ApiResponse, doing: string) {
  t.is(res.status, 409, `${doing}: ${res.text}`);
  t.is(res.body?.error, 'last_admin', doing);
  t.regex(res.body?.error_description ?? '', /only enabled admin/, doing);
}

function isLastAdminCliError(t: ExecutionContext<Context>, res: CliResult, doing: string) {
  t.is(res.code, 1, `${doing}: ${res.stderr}`);
  // The CLI's own line, after whatever warnings the libraries it loads print.
  const line =
    res.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .at(-1) ?? res.stderr;
  t.like(JSON.parse(line), { error: 'last_admin' }, doing);
}

test.serial('the only enabled admin cannot be disabled or lose the admin flag, through the admin API or the CLI', async (t) => {
  const { gh, api } = t.context;
  const only = await newAdmin(t);

  isLastAdminApiError(t, await api('PATCH', `/users/${only.id}`, { body: { disabled: true } }), 'API disable');
  isLastAdminApiError(t, await api('PATCH', `/users/${only.id}`, { body: { admin: false } }), 'API demote');
  isLastAdminCliError(t, await users(t, ['disable', only.username]), 'CLI disable');
  isLastAdminCliError(t, await users(t, ['remove-admin', only.username]), 'CLI remove-admin');

  const after = await gh.services.accounts.get(only.id);
  t.true(after.isAdmin, 'still an admin');
  t.false(after.disabled, 'still enabled');
  const audited = (await gh.services.audit.list({ limit: 20 })).filter((e) => e.target === `user:${only.id}`);
  t.deepEqual(
    audited.map((e) => e.action),
    [],
    'a refused change is not audited',
  );
});

test.serial('with a second enabled admin, either can be disabled or demoted, and then the other is the last', async (t) => {
  const { gh, api } = t.context;
  const first = await newAdmin(t);
  const second = await newAdmin(t);

  const demoted = await api('PATCH', `/users/${first.id}`, { body: { admin: false } });
  t.is(demoted.status, 200, demoted.text);
  t.false(demoted.body.admin);
  isLastAdminCliError(t, await users(t, ['disable', second.username]), 'the second is now the last');

  const granted = await users(t, ['grant-admin', first.username]);
  t.is(granted.code, 0, granted.stderr);
  const disabled = await users(t, ['disable', second.username]);
  t.is(disabled.code, 0, disabled.stderr);
  t.true(disabled.json().disabled);

  // A disabled admin cannot sign in to the admin, so they do not count as the one kept.
  isLastAdminApiError(t, await api('PATCH', `/users/${first.id}`, { body: { disabled: true } }), 'the other admin is disabled');
  t.true((await gh.services.accounts.get(first.id)).isAdmin);
  // Enabling, and taking the flag from a disabled admin, never leaves fewer enabled admins.
  const demotedDisabled = await users(t, ['remove-admin', second.username]);
  t.is(demotedDisabled.code, 0, demotedDisabled.stderr);
  t.false(demotedDisabled.json().admin);
});

test.serial('two operators demoting the last two admins at the same moment leave one of them an admin (SQLite and PostgreSQL)', async (t) => {
  const pg = await startTestGatehouse({ database: 'pg' });
  try {
    const { token } = await pg.services.admin.createAdminToken(CLI_ACTOR, 'race');
    for (const gh of [t.context.gh, pg]) {
      const api = gh === pg ? adminApi(pg, token) : t.context.api;
      for (let round = 0; round < 10; round++) {
        await gh.services.db('users').update({ is_admin: false });
        const pair = await Promise.all(
          [0, 1].map(async () => (await gh.services.accounts.create({ username: `race-${tag()}`, email: `r${tag()}@example.com`, isAdmin: true })).id),
        );
        const answers = await Promise.all(pair.map((id, i) => api('PATCH', `/users/${id}`, { body: i === 0 ? { admin: false } : { disabled: true } })));
        const where = `${gh.config.database.client}, round ${round}`;
        t.deepEqual(answers.map((a) => a.status).sort(), [200, 409], `${where}: ${answers.map((a) => a.text).join(' | ')}`);
        const left = await gh.services.db('users').whereIn('id', pair).andWhere({ is_admin: true, disabled: false }).count({ n: '*' });
        t.is(Number(left[0]!.n), 1, `${where}: one enabled admin is left`);
      }
    }
  } finally {
    await pg.close();
  }
});

test.serial('an operator cannot disable themself or remove their own admin flag on the pages; another operator can', async (t) => {
  const { gh } = t.context;
  const me = await newAdmin(t, 'me');
  const other = await newAdmin(t, 'other');
  const mine = await operatorAgent(gh, me.username, PASSWORD);

  for (const action of ['disable', 'remove-admin']) {
    const refused = await postForm(mine.agent, `${gh.url}/admin/users/${me.id}/${action}`, { csrf: mine.csrf });
    t.is(refused.status, 400, action);
    t.regex(refused.html, /You cannot disable yourself or remove your own admin flag\. Ask another operator\./, action);
  }
  t.like(await gh.services.accounts.get(me.id), { isAdmin: true, disabled: false });

  const theirs = await operatorAgent(gh, other.username, PASSWORD);
  const removed = await postForm(theirs.agent, `${gh.url}/admin/users/${me.id}/remove-admin`, { csrf: theirs.csrf });
  t.is(removed.status, 303, removed.html);
  t.false((await gh.services.accounts.get(me.id)).isAdmin);
});

test.serial('an update through the admin API or the CLI audits only the fields it changes, and one that changes nothing is not audited', async (t) => {
  const { gh, api } = t.context;
  const created = await api('POST', '/clients', {
    body: { client_name: `Audited ${tag()}`, grant_types: ['authorization_code'], redirect_uris: ['https://app.example.com/cb'], scope: 'openid profile' },
  });
  t.is(created.status, 201, created.text);
  const id = created.body.client_id;
  const target = `client:${id}`;
  const updates = async () => (await gh.services.audit.list({ limit: 50 })).filter((e) => e.target === target && e.action === 'client.update');

  // The client's settings sent back with one of them changed: only that one is named.
  const renamed = await api('PATCH', `/clients/${id}`, {
    body: { client_name: 'Audited (renamed)', grant_types: ['authorization_code'], redirect_uris: ['https://app.example.com/cb'], scope: 'openid profile' },
  });
  t.is(renamed.status, 200, renamed.text);
  t.deepEqual(
    (await updates()).map((e) => e.details),
    [{ fields: ['name'] }],
  );

  const same = await api('PATCH', `/clients/${id}`, { body: { client_name: 'Audited (renamed)', scope: 'openid profile' } });
  t.is(same.status, 200, same.text);
  t.is(same.body.client_name, 'Audited (renamed)');
  t.is((await updates()).length, 1, 'a PATCH that changes nothing is not audited');

  const cliSame = await runCli(['clients', 'update', id, '--name', 'Audited (renamed)', '--json'], gh.env);
  t.is(cliSame.code, 0, cliSame.stderr);
  t.is((await updates()).length, 1, 'nor is a CLI update that changes nothing');
  const cliChanged = await runCli(['clients', 'update', id, '--name', 'Audited (renamed)', '--redirect-uri', 'https://app.example.com/cb2', '--json'], gh.env);
  t.is(cliChanged.code, 0, cliChanged.stderr);
  t.deepEqual((await updates())[0]!.details, { fields: ['redirectUris'] });
});

test.serial("client search and a user's grants with client names come from one place: the API answers what the pages show", async (t) => {
  const { gh, api } = t.context;
  const family = tag();
  const a = await gh.services.admin.createClient(CLI_ACTOR, { name: `Billing ${family}`, type: 'confidential', grantTypes: ['client_credentials'] });
  await gh.services.admin.createClient(CLI_ACTOR, { name: `Wiki ${family}`, type: 'confidential', grantTypes: ['client_credentials'] });
  const viaApi = (await api('GET', `/clients?search=${encodeURIComponent(` BILLING ${family} `)}`)).body.map((c: { client_id: string }) => c.client_id);
  const viaOperations = (await gh.services.admin.searchClients(` BILLING ${family} `)).clients.map((c) => c.clientId);
  t.deepEqual(viaApi, [a.client.clientId]);
  t.deepEqual(viaOperations, viaApi);

  const me = await newAdmin(t);
  const grants = await api('GET', `/users/${me.id}/grants`);
  t.is(grants.status, 200);
  t.deepEqual(grants.body, [], 'a user who signed in nowhere has no grants');
  t.deepEqual(await gh.services.admin.userGrants(me.id), []);
  t.is((await api('GET', `/users/nobody-${tag()}/grants`)).status, 404);
});
