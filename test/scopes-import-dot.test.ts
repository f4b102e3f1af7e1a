import fs from 'node:fs';
import path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import type { ImportReport } from '../src/importers/dot/import.ts';
import { runCli } from './support/cli.ts';
import { copyFixture, DOT_APPS, postAsClient } from './support/dot.ts';
import { restartTestGatehouse, startTestGatehouse, type TestGatehouse } from './support/gatehouse.ts';

/**
 * Issue 13 part 6, as it was reported: a django-oauth-toolkit site whose service holds an API
 * scope (`invoices:read`) is imported, and the server then starts without the
 * GATEHOUSE_API_SCOPES the import ran with. The importer makes the scopes it needs rows, so the
 * service keeps getting tokens.
 */

const test = anyTest as TestFn<{ source: string }>;

test.before((t) => {
  t.context = { source: copyFixture('dot17.sqlite3') };
});

test.after.always((t) => {
  if (t.context.source) fs.rmSync(path.dirname(t.context.source), { recursive: true, force: true });
});

async function importDot(env: Record<string, string>, source: string): Promise<ImportReport> {
  const res = await runCli(['import', 'dot', '--from', source, '--json'], env);
  if (res.code !== 0) throw new Error(`import dot exited ${res.code}: ${res.stderr}`);
  return res.json<ImportReport>();
}

const invoicesToken = (gh: TestGatehouse) => postAsClient(gh.url, '/token', { grant_type: 'client_credentials', scope: 'invoices:read' }, DOT_APPS.billing, 'basic');

test('imported with GATEHOUSE_API_SCOPES naming invoices:read, billing-service still gets invoices:read tokens after a restart without it', async (t) => {
  let gh = await startTestGatehouse();
  try {
    // The CLI seeds GATEHOUSE_API_SCOPES as it opens the database, before the import runs.
    await importDot({ ...gh.env, GATEHOUSE_API_SCOPES: 'read write invoices:read' }, t.context.source);
    t.true((await gh.services.scopes.list()).some((s) => s.name === 'invoices:read'));

    // The running server (started without the variable) serves the new scope at once.
    const now = await invoicesToken(gh);
    t.is(now.status, 200, JSON.stringify(now.body));
    t.is(now.body.scope, 'invoices:read');

    gh = await restartTestGatehouse(gh);
    t.false('GATEHOUSE_API_SCOPES' in gh.env, 'restarted without GATEHOUSE_API_SCOPES');
    const after = await invoicesToken(gh);
    t.is(after.status, 200, JSON.stringify(after.body));
    t.is(after.body.scope, 'invoices:read');
    t.like(await gh.services.scopes.get('invoices:read'), { description: 'Use the "invoices:read" permission on your behalf' });
  } finally {
    await gh.close();
  }
});

test('imported without GATEHOUSE_API_SCOPES at all, the scopes DOT\'s tokens carried are created and given to the applications', async (t) => {
  const gh = await startTestGatehouse();
  try {
    await importDot(gh.env, t.context.source);
    t.deepEqual((await gh.services.scopes.list()).map((s) => s.name), ['invoices:read', 'read', 'write']);
    const billing = await gh.services.clients.get(DOT_APPS.billing.clientId);
    t.true(billing.scope.includes('invoices:read'));
    const res = await invoicesToken(gh);
    t.is(res.status, 200, JSON.stringify(res.body));

    const audit = await gh.services.audit.list({ limit: 5 });
    t.deepEqual(audit.find((e) => e.action === 'import.dot')?.details.scopes_created, ['invoices:read']);
    t.regex((await runCli(['scopes', 'delete', 'invoices:read'], gh.env)).stderr, /used by clients .*Billing Service \(billing-service\)/);
  } finally {
    await gh.close();
  }
});
