import type { Knex } from 'knex';
import { isBuiltInScope, scopeNameProblem } from '../../scopes/names.ts';
import { seedDescription } from '../../scopes/service.ts';
import type { Services } from '../../services.ts';
import type { DotData } from './source.ts';

/**
 * The DOT site's API scopes: GATEHOUSE_API_SCOPES as the operator states them for the import,
 * and every scope DOT's tokens carry. Those Gatehouse does not have yet are created, in the
 * import's transaction, with the words the consent page showed for them before.
 */
export async function importScopes(
  trx: Knex,
  data: DotData,
  services: Services,
  dryRun: boolean,
): Promise<{ siteScopes: string[]; created: string[]; notes: string[] }> {
  const notes: string[] = [];
  const candidates = [...new Set([...services.config.apiScopes, ...data.scopesInUse])].filter((s) => !isBuiltInScope(s));
  const siteScopes = candidates.filter((name) => {
    const problem = scopeNameProblem(name);
    if (problem) notes.push(`DOT scope "${name.slice(0, 100)}" cannot be a Gatehouse scope (${problem}): not given to any client`);
    return !problem;
  });
  const existing = new Set((await trx('scopes').whereIn('name', siteScopes).select('name')).map((r) => String(r.name)));
  const created = siteScopes.filter((name) => !existing.has(name));
  await services.scopes.ensure(created, seedDescription, trx);
  if (created.length) {
    notes.push(
      `scope${created.length === 1 ? '' : 's'} ${created.join(' ')} ${dryRun ? 'would be' : created.length === 1 ? 'was' : 'were'} created (imported from django-oauth-toolkit; see npm run -s cli -- scopes list)`,
    );
  }
  return { siteScopes, created, notes };
}
