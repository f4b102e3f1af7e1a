import anyTest, { type TestFn } from 'ava';
import { startTestGatehouse, type DatabaseKind, type TestGatehouse } from './support/gatehouse.ts';
import { REDIRECT_URI, type RegisteredClient } from './support/relying-party.ts';
import { userdata, userWhoAuthorized } from './support/userdata.ts';

/**
 * Writers at the same time on one user's document, over real HTTP, on SQLite and on
 * PostgreSQL: compare-and-set with retries, so no change is lost and If-Match picks one winner.
 */

interface Setup {
  gh: TestGatehouse;
  app: RegisteredClient;
  key: string;
}

const test = anyTest as TestFn<Partial<Record<DatabaseKind, Setup>>>;

async function setUp(kind: DatabaseKind): Promise<Setup> {
  const gh = await startTestGatehouse({ database: kind });
  try {
    const created = await gh.services.clients.create({
      name: 'Notes',
      type: 'confidential',
      grantTypes: ['authorization_code'],
      redirectUris: [REDIRECT_URI],
      scope: ['openid', 'userdata'],
    });
    const app = { clientId: created.client.clientId, clientSecret: created.clientSecret! };
    const { key } = await gh.services.apiKeys.create(app.clientId, ['userdata:read', 'userdata:write']);
    return { gh, app, key };
  } catch (err) {
    await gh.close();
    throw err;
  }
}

test.before(async (t) => {
  t.context = {};
  // Each set-up is recorded as soon as it is ready, so test.after.always closes it even if the other fails.
  await Promise.all((['sqlite', 'pg'] as const).map(async (kind) => (t.context[kind] = await setUp(kind))));
});

test.after.always(async (t) => {
  await Promise.all([t.context.sqlite?.gh.close(), t.context.pg?.gh.close()]);
});

const databases: Array<[DatabaseKind, string]> = [
  ['sqlite', 'SQLite'],
  ['pg', 'PostgreSQL'],
];

for (const [kind, label] of databases) {
  test(`50 writers patching different fields at once all land, none lost (${label})`, async (t) => {
    const { gh, app, key } = t.context[kind]!;
    const { sub, tokens } = await userWhoAuthorized(gh, `patchers-${kind}`, [app]);
    // Half through the app's key, half through the user's own token: one document either way.
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        i % 2 === 0
          ? userdata(gh, sub, { method: 'PATCH', key, body: { [`k${i}`]: i } })
          : userdata(gh, 'me', { method: 'PATCH', token: tokens[0], body: { [`k${i}`]: i } }),
      ),
    );
    t.deepEqual(
      answers.map((a) => a.status),
      Array(50).fill(200),
      answers.filter((a) => a.status !== 200).map((a) => `${a.status} ${a.text}`).join('\n'),
    );
    // Every answer is a document holding at least its own field.
    for (const [i, a] of answers.entries()) t.is(a.json?.[`k${i}`], i);

    const final = await userdata(gh, sub, { key });
    t.is(final.status, 200);
    t.deepEqual(final.json, Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`, i])));
    t.is(final.headers.get('etag'), '"50"');
    const row = await gh.services.db('userdata').where({ sub }).first();
    t.is(Number(row.version), 50);
  });

  // The answer to a write is the representation that write made (RFC 9110 §8.8, §9.3.4): its
  // document and its version, not whatever another writer stored a moment later.
  test(`each of 50 writers replacing the document at once is answered with its own document and version (${label})`, async (t) => {
    const { gh, app, key } = t.context[kind]!;
    const { sub } = await userWhoAuthorized(gh, `own-answers-${kind}`, [app]);
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => userdata(gh, sub, { method: 'PUT', key, body: { writer: i } })));
    t.deepEqual(answers.map((a) => a.status), Array(50).fill(200));
    const mismatched = answers.flatMap((a, i) => (a.json?.writer === i ? [] : [`writer ${i} was answered ${a.text} ${a.headers.get('etag')}`]));
    t.deepEqual(mismatched, []);
    const versions = answers.map((a) => Number(/^"(\d+)"$/.exec(a.headers.get('etag') ?? '')?.[1])).sort((a, b) => a - b);
    t.deepEqual(versions, Array.from({ length: 50 }, (_, i) => i + 1), 'each write made one version, and says which');
    // The last version is the document of the writer that was answered with it.
    const final = await userdata(gh, sub, { key });
    t.is(final.headers.get('etag'), '"50"');
    t.deepEqual(final.json, answers.find((a) => a.headers.get('etag') === '"50"')?.json);
  });

  test(`of 20 writers replacing the document with the same If-Match, exactly one wins and the rest get 412 (${label})`, async (t) => {
    const { gh, app, key } = t.context[kind]!;
    const { sub } = await userWhoAuthorized(gh, `replacers-${kind}`, [app]);
    const first = await userdata(gh, sub, { method: 'PUT', key, body: { writer: 'initial' } });
    t.is(first.headers.get('etag'), '"1"');

    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => userdata(gh, sub, { method: 'PUT', key, body: { writer: i }, headers: { 'if-match': '"1"' } })),
    );
    const statuses = answers.map((a) => a.status);
    const winners = answers.flatMap((a, i) => (a.status === 200 ? [i] : []));
    t.is(winners.length, 1, `statuses: ${statuses.join(' ')}`);
    t.is(statuses.filter((s) => s === 412).length, 19, `statuses: ${statuses.join(' ')}`);
    for (const a of answers.filter((x) => x.status === 412)) t.is(typeof a.json?.error, 'string');

    const final = await userdata(gh, sub, { key });
    t.deepEqual(final.json, { writer: winners[0] });
    t.is(final.headers.get('etag'), '"2"');
  });

  test(`of 20 writers creating the document with If-Match "0", exactly one wins (${label})`, async (t) => {
    const { gh, app, key } = t.context[kind]!;
    const { sub } = await userWhoAuthorized(gh, `creators-${kind}`, [app]);
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => userdata(gh, sub, { method: 'PUT', key, body: { creator: i }, headers: { 'if-match': '"0"' } })),
    );
    const statuses = answers.map((a) => a.status);
    const winners = answers.flatMap((a, i) => (a.status === 200 ? [i] : []));
    t.is(winners.length, 1, `statuses: ${statuses.join(' ')}`);
    t.is(statuses.filter((s) => s === 412).length, 19, `statuses: ${statuses.join(' ')}`);
    const final = await userdata(gh, sub, { key });
    t.deepEqual(final.json, { creator: winners[0] });
    t.is(final.headers.get('etag'), '"1"');
  });
}
