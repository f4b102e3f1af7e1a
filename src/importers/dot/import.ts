import type { Knex } from 'knex';
import { LastAdminError } from '../../accounts/service.ts';
import type { Services } from '../../services.ts';
import { loadClientSecretKey } from '../../settings/store.ts';
import { importClients } from './clients.ts';
import { redactSource, sourceLabel } from './provenance.ts';
import { importRefreshTokens } from './refresh-tokens.ts';
import { count, type ImportReport } from './report.ts';
import { importScopes } from './scopes.ts';
import { readDotSource } from './source.ts';
import { importUsers } from './users.ts';

export type { ClientReport, Collision, ImportReport, Outcome, ReportEntry, UserReport } from './report.ts';

/**
 * `import dot`: django-oauth-toolkit applications become clients with the same client_id and
 * secret, users keep their subject and password, and live refresh tokens keep working.
 * A dry run reports and writes nothing; a real run is one transaction and can be repeated.
 *
 * The source is not trusted: users and clients go through the services' rules; a client_id,
 * sub or username Gatehouse already has, but that this source did not import, is refused
 * (a collision), never merged; a row this source imported before is left as Gatehouse has it
 * now, or only tightened (consent asked again, user disabled), never loosened; refresh tokens
 * must look random and hold only scopes their client has; dear password hashes are refused.
 *
 * This module runs the steps in one transaction (scopes.ts, users.ts, clients.ts,
 * refresh-tokens.ts) and what follows its commit.
 */

export async function importFromDot(services: Services, source: string, { dryRun }: { dryRun: boolean }): Promise<ImportReport> {
  const secretKey = await loadClientSecretKey(services.settings);
  const data = await readDotSource(source);
  const label = sourceLabel(source);
  let createdScopes: string[] = [];
  let disabledUsers: string[] = [];
  let tightenedClients: string[] = [];
  // A dry run does everything a real run does, in a transaction that is always rolled back: its
  // report is the real run's, collisions within the source (two users of one username) included.
  const run = async (trx: Knex): Promise<ImportReport> => {
    const scopes = await importScopes(trx, data, services, dryRun);
    createdScopes = scopes.created;
    const users = await importUsers(trx, data, services, label);
    disabledUsers = users.disabled;
    const clients = await importClients(trx, data, services, scopes.siteScopes, secretKey, label);
    tightenedClients = clients.tightened;
    // An HS256 application's secret is kept plain: encrypted before the transaction commits.
    if (!dryRun) await services.clients.sealPlainSecrets(trx);
    const refresh_tokens = await importRefreshTokens(trx, data, services, users.reports, clients.here);
    const notes: string[] = [...scopes.notes];
    notes.push('access tokens and authorization codes are not imported: apps get new ones by refreshing or signing in again');
    const collisions = [...users.collisions, ...clients.collisions];
    if (collisions.length) {
      notes.push(`${collisions.length} user${collisions.length === 1 ? '' : 's'} or client${collisions.length === 1 ? '' : 's'} refused: they collide with what Gatehouse already has and this source did not import (see collisions)`);
    }
    const summary = { users: count(users.reports), clients: count(clients.reports) };
    return { source: redactSource(source), dry_run: dryRun, users: users.reports, clients: clients.reports, collisions, refresh_tokens, notes, summary };
  };
  if (dryRun) {
    let report: ImportReport | undefined;
    await services.db
      .transaction(async (trx) => {
        report = await run(trx);
        throw new Error('dry run');
      })
      .catch((err: Error) => {
        if (err.message !== 'dry run') throw err;
      });
    return report!;
  }
  const report = await services.db.transaction(run);
  // Committed: every process serves the new scopes and the tightened clients now.
  if (createdScopes.length) await services.scopes.announceChange();
  await services.clients.announce(tightenedClients);
  for (const id of disabledUsers) {
    // Through the service, which revokes what the user holds; it keeps the last admin enabled.
    await services.accounts.setDisabled(id, true).catch((err: unknown) => {
      if (!(err instanceof LastAdminError)) throw err;
      const entry = report.users.find((u) => u.sub === id)!;
      entry.outcome = 'unchanged';
      entry.notes.push(`not disabled after all: ${err.message}`);
    });
  }
  await services.audit.record({ label: 'cli' }, 'import.dot', `source:${redactSource(source)}`, {
    summary: { ...report.summary, signed_in_apps_carried_over: report.refresh_tokens.imported },
    ...(report.collisions.length ? { collisions: report.collisions.map((c) => `${c.kind}:${c.id}`) } : {}),
    ...(createdScopes.length ? { scopes_created: createdScopes } : {}),
  });
  return report;
}
