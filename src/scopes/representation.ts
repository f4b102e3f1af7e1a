import { describeScope } from '../../interactions/scopes.ts';
import { BUILT_IN_SCOPES } from './names.ts';
import type { Scope, ScopesService } from './service.ts';

/** A scope in JSON (CLI --json and the admin API). Built-in scopes have no row, so no created_at. */
export interface ScopeJson {
  name: string;
  description: string;
  built_in: boolean;
  created_at: string | null;
}

export const scopeJson = (s: Scope): ScopeJson => ({ name: s.name, description: s.description, built_in: false, created_at: s.createdAt.toISOString() });

/** Every scope a client may hold: the built-in ones (in the consent page's words), then the API scopes. */
export async function scopesWithBuiltIns(scopes: Pick<ScopesService, 'list'>): Promise<ScopeJson[]> {
  const builtIn = BUILT_IN_SCOPES.map((name) => ({ name, description: describeScope(name), built_in: true, created_at: null }));
  return [...builtIn, ...(await scopes.list()).map(scopeJson)];
}
