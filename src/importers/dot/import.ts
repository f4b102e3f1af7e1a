import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import { isDjangoHash, isUnusableDjangoPassword } from '../../accounts/django-hashers.ts';
import { usernameKey } from '../../accounts/service.ts';
import { settingsColumn } from '../../clients/service.ts';
import { checkClientSettings, USER_SCOPES, type ClientSettings, type GrantType } from '../../clients/rules.ts';
import { hashClientSecret, storePlainClientSecret } from '../../clients/secrets.ts';
import type { ValidationError } from '../../errors.ts';
import type { Services } from '../../services.ts';
import { isBuiltInScope, scopeNameProblem } from '../../scopes/names.ts';
import { importRefreshToken } from '../../oidc/index.ts';
import { seedDescription } from '../../scopes/service.ts';
import { loadClientSecretKey } from '../../settings/store.ts';
import { readDotSource, type DotApplication, type DotData, type DotUser } from './source.ts';

/**
 * `import dot`: django-oauth-toolkit applications become clients with the same client_id and
 * secret, users keep their subject and password, and live refresh tokens keep working.
 * A dry run reports and writes nothing; a real run is one transaction and can be repeated:
 * what is already here is left as it is.
 */

export type Outcome = 'imported' | 'updated' | 'unchanged' | 'refused';

export interface ReportEntry {
  outcome: Outcome;
  notes: string[];
}
export interface UserReport extends ReportEntry {
  sub: string;
  username: string;
}
export interface ClientReport extends ReportEntry {
  client_id: string;
  name: string;
}
export interface ImportReport {
  source: string;
  dry_run: boolean;
  users: UserReport[];
  clients: ClientReport[];
  refresh_tokens: { imported: number; already_present: number; not_imported: Array<{ id: number; reason: string }>; notes: string[] };
  notes: string[];
  summary: Record<'users' | 'clients', Record<Outcome, number>>;
}

const GRANT_MAPPING: Record<string, { grants: GrantType[]; note?: string } | { refused: string }> = {
  'authorization-code': { grants: ['authorization_code', 'refresh_token'] },
  'client-credentials': { grants: ['client_credentials'] },
  'openid-hybrid': {
    grants: ['authorization_code', 'refresh_token'],
    note: 'openid-hybrid became authorization_code: hybrid response types (code id_token, code token) are not served; the app must use response_type=code',
  },
  implicit: {
    refused: 'the implicit grant is removed by OAuth 2.1 and the Security BCP (tokens in the URL leak); move the app to the authorization code flow with PKCE as a public client',
  },
  password: {
    refused: 'the password grant is removed by OAuth 2.1 (the app sees the password); move the app to the authorization code flow, or to client_credentials if it acts for itself',
  },
};

const splitList = (v: string | undefined) => (v ?? '').split(/\s+/).filter(Boolean);

// ---- users ----------------------------------------------------------------------------------

interface UserRow {
  id: string;
  username: string;
  username_key: string;
  email: string;
  name: string;
  is_admin: boolean;
  disabled: boolean;
}

function plannedUser(u: DotUser): { row: UserRow; passwordHash: string | null; notes: string[] } {
  const notes: string[] = [];
  let passwordHash: string | null = u.password;
  if (isUnusableDjangoPassword(u.password) || !u.password) {
    passwordHash = null;
    notes.push('has no usable password in DOT: imported as "must reset", cannot sign in until an operator sets one');
  } else if (!isDjangoHash(u.password)) {
    passwordHash = null;
    notes.push(`password hash format "${u.password.split('$')[0]}" is not supported: imported as "must reset"`);
  } else {
    notes.push('password kept (Django hash); re-hashed with scrypt at the first sign-in');
  }
  if (!u.isActive) notes.push('inactive in DOT: imported disabled; its tokens are not carried over');
  if (u.isStaff || u.isSuperuser) notes.push('staff/superuser in DOT: Gatehouse admin');
  return {
    row: {
      id: String(u.id),
      username: u.username,
      username_key: usernameKey(u.username),
      email: u.email,
      name: `${u.firstName} ${u.lastName}`.trim(),
      is_admin: u.isStaff || u.isSuperuser,
      disabled: !u.isActive,
    },
    passwordHash,
    notes,
  };
}

async function importUsers(trx: Knex, data: DotData, dryRun: boolean): Promise<UserReport[]> {
  const reports: UserReport[] = [];
  for (const u of data.users) {
    const { row, passwordHash, notes } = plannedUser(u);
    const report: UserReport = { sub: row.id, username: row.username, outcome: 'imported', notes };
    reports.push(report);
    const existing = await trx('users').where({ id: row.id }).first();
    const holder = await trx('users').where({ username_key: row.username_key }).first('id');
    if (holder && holder.id !== row.id) {
      report.outcome = 'refused';
      report.notes = [`username "${row.username}" already belongs to Gatehouse user ${holder.id}`];
      continue;
    }
    if (existing) {
      // Gatehouse owns the user now: the password (maybe upgraded), the admin flag, and a
      // disabled flag an operator set are kept. DOT can still disable, never re-enable.
      row.is_admin = Boolean(existing.is_admin);
      row.disabled = Boolean(existing.disabled) || row.disabled;
      const same = existing.username === row.username && existing.email === row.email && existing.name === row.name && Boolean(existing.disabled) === row.disabled;
      report.notes = ['already imported; its password, admin flag and disabled state in Gatehouse are kept'];
      if (same) {
        report.outcome = 'unchanged';
        continue;
      }
      report.outcome = 'updated';
      if (!dryRun) await trx('users').where({ id: row.id }).update({ ...row, updated_at: Date.now() });
      continue;
    }
    if (!dryRun) {
      const now = Date.now();
      await trx('users').insert({
        ...row,
        email_verified: false,
        password_hash: passwordHash,
        must_reset_password: passwordHash === null,
        created_at: now,
        updated_at: now,
      });
    }
  }
  return reports;
}

// ---- clients --------------------------------------------------------------------------------

interface PlannedClient {
  settings: ClientSettings;
  storedSecret: string | null;
  notes: string[];
}

function planClient(app: DotApplication, siteScopes: readonly string[], secretKey: Buffer): PlannedClient | { refused: string[] } {
  const notes: string[] = [];
  const mapping = GRANT_MAPPING[app.grantType];
  if (!mapping) return { refused: [`unknown grant type "${app.grantType}"`] };
  if ('refused' in mapping) return { refused: [`grant type ${app.grantType} refused: ${mapping.refused}`] };
  if (mapping.note) notes.push(mapping.note);

  const type = app.clientType === 'public' ? 'public' : 'confidential';
  const grantTypes = mapping.grants.filter((g) => !(type === 'public' && g === 'client_credentials'));
  const checkUris = (field: 'redirectUris' | 'postLogoutRedirectUris' | 'allowedOrigins', values: string[]) =>
    values.filter((uri) => {
      try {
        checkClientSettings({ name: 'x', type: 'public', grantTypes: ['authorization_code'], redirectUris: ['https://example.com/'], [field]: [uri] }, siteScopes);
        return true;
      } catch (err) {
        notes.push(`${field === 'redirectUris' ? 'redirect URI' : field === 'allowedOrigins' ? 'allowed origin' : 'post-logout redirect URI'} refused: ${(err as ValidationError).fields?.[field] ?? (err as Error).message}`);
        return false;
      }
    });
  const redirectUris = checkUris('redirectUris', splitList(app.redirectUris));
  const postLogoutRedirectUris = checkUris('postLogoutRedirectUris', splitList(app.postLogoutRedirectUris));
  const allowedOrigins = checkUris('allowedOrigins', splitList(app.allowedOrigins));
  if (grantTypes.includes('authorization_code') && redirectUris.length === 0) {
    return { refused: [...notes, 'no usable redirect URI is left for the authorization code grant'] };
  }

  const name = app.name.trim() || app.clientId;
  if (!app.name.trim()) notes.push('had no name: named after its client_id');

  // Scopes: sign-in scopes with the authorization code grant, and every API scope of the DOT
  // site (DOT keeps scopes site-wide, so any application could ask for any of them).
  const scope = [...(grantTypes.includes('authorization_code') ? ['openid', 'profile', 'email', 'offline_access'] : []), ...siteScopes];

  let storedSecret: string | null = null;
  let idTokenSignedResponseAlg: ClientSettings['idTokenSignedResponseAlg'] = 'RS256';
  const secretIsHashed = app.hashClientSecret === true || (app.hashClientSecret == null && isDjangoHash(app.clientSecret));
  if (app.algorithm === 'HS256') {
    if (secretIsHashed) {
      notes.push('HS256 needs the plain secret, but DOT stored it hashed: ID tokens are signed with RS256 instead');
    } else {
      idTokenSignedResponseAlg = 'HS256';
      notes.push('HS256: its secret is the HMAC key of its ID tokens, so it is kept as it is, not hashed');
    }
  } else if (app.algorithm === '' && grantTypes.includes('authorization_code')) {
    notes.push('had no OIDC algorithm in DOT: ID tokens (when openid is asked for) are signed with RS256');
  }
  if (type === 'confidential') {
    if (!app.clientSecret) return { refused: [...notes, 'a confidential application without a secret'] };
    if (idTokenSignedResponseAlg === 'HS256') storedSecret = storePlainClientSecret(app.clientSecret);
    else if (secretIsHashed) {
      storedSecret = app.clientSecret;
      notes.push('secret kept as DOT hashed it (Django PBKDF2); re-hashed our way at its first successful use');
    } else {
      storedSecret = hashClientSecret(app.clientSecret, secretKey);
      notes.push('secret kept (now stored as an HMAC)');
    }
  } else {
    notes.push('public client: authenticates with PKCE and no secret; its DOT secret is no longer used');
  }
  if (app.skipAuthorization) notes.push('skip_authorization: first-party, no consent page');

  try {
    const settings = checkClientSettings(
      {
        name,
        type,
        grantTypes,
        redirectUris,
        postLogoutRedirectUris,
        allowedOrigins,
        scope,
        skipConsent: app.skipAuthorization,
        idTokenSignedResponseAlg,
        // DOT required PKCE of public clients only when configured; we always do (OAuth 2.1).
        requirePkce: false,
      },
      siteScopes,
      { keepsPlainSecret: idTokenSignedResponseAlg === 'HS256' },
    );
    return { settings, storedSecret, notes };
  } catch (err) {
    return { refused: [...notes, (err as Error).message] };
  }
}


async function importClients(trx: Knex, data: DotData, siteScopes: readonly string[], secretKey: Buffer, dryRun: boolean): Promise<{ reports: ClientReport[]; refreshable: Set<number> }> {
  const reports: ClientReport[] = [];
  const refreshable = new Set<number>();
  for (const app of data.applications) {
    const plan = planClient(app, siteScopes, secretKey);
    const report: ClientReport = { client_id: app.clientId, name: app.name.trim() || app.clientId, outcome: 'imported', notes: [] };
    reports.push(report);
    if ('refused' in plan) {
      report.outcome = 'refused';
      report.notes = plan.refused;
      continue;
    }
    report.notes = plan.notes;
    if (plan.settings.grantTypes.includes('refresh_token')) refreshable.add(app.id);
    const existing = await trx('clients').where({ client_id: app.clientId }).first();
    const columns = { name: plan.settings.name, type: plan.settings.type, settings: settingsColumn(plan.settings) };
    if (existing) {
      // The secret is left alone: it may have been upgraded or rotated since the first import.
      report.notes = ['already imported; its secret is kept as it is now'];
      if (existing.name === columns.name && existing.type === columns.type && existing.settings === columns.settings) {
        report.outcome = 'unchanged';
        continue;
      }
      report.outcome = 'updated';
      if (!dryRun) await trx('clients').where({ client_id: app.clientId }).update({ ...columns, updated_at: Date.now() });
      continue;
    }
    if (!dryRun) {
      const now = Date.now();
      await trx('clients').insert({ client_id: app.clientId, ...columns, secret_hash: plan.storedSecret, disabled: false, created_at: now, updated_at: now });
    }
  }
  return { reports, refreshable };
}

// ---- refresh tokens -------------------------------------------------------------------------

async function importRefreshTokens(trx: Knex, data: DotData, services: Services, siteScopes: readonly string[], users: UserReport[], refreshable: Set<number>, dryRun: boolean): Promise<ImportReport['refresh_tokens']> {
  const result: ImportReport['refresh_tokens'] = { imported: 0, already_present: 0, not_imported: [], notes: [] };
  const usersById = new Map(data.users.map((u) => [u.id, u]));
  const userOutcome = new Map(users.map((u) => [u.sub, u.outcome]));
  const appsById = new Map(data.applications.map((a) => [a.id, a]));
  const known = new Set<string>([...USER_SCOPES, ...siteScopes]);
  const { refreshToken, grant } = services.config.lifetimes;

  for (const rt of data.refreshTokens) {
    if (rt.revoked) continue; // used or revoked in DOT: nothing to carry over
    const user = usersById.get(rt.userId);
    const app = appsById.get(rt.applicationId);
    const skip = (reason: string) => result.not_imported.push({ id: rt.id, reason });
    if (!user || userOutcome.get(String(user.id)) === 'refused') {
      skip('its user was not imported');
      continue;
    }
    if (!user.isActive) {
      skip(`user ${user.username} is inactive (DOT 1.7 would still honour it; Gatehouse does not)`);
      continue;
    }
    const here = await trx('users').first('disabled').where({ id: String(user.id) });
    if (here?.disabled) {
      skip(`user ${user.username} is disabled in Gatehouse`);
      continue;
    }
    if (!app || !refreshable.has(app.id)) {
      skip(`its application ${app?.name || app?.clientId || rt.applicationId} was refused or has no refresh_token grant`);
      continue;
    }
    const scopes = rt.scope.split(/\s+/).filter(Boolean);
    const unknown = scopes.filter((s) => !known.has(s));
    const scope = scopes.filter((s) => known.has(s)).join(' ');
    if (!scope) {
      skip(`its scope "${rt.scope}" has no scope Gatehouse can hold`);
      continue;
    }
    const tokenSha256 = createHash('sha256').update(rt.token).digest('hex');
    if (await trx('dot_imported_refresh_tokens').first('token_sha256').where({ token_sha256: tokenSha256 })) {
      // Imported before: whether it is still live, used or revoked is Gatehouse's business now.
      result.already_present++;
      continue;
    }
    if (unknown.length) result.notes.push(`refresh token ${rt.id}: scope ${unknown.join(' ')} dropped (not a name Gatehouse can hold)`);
    result.imported++;
    if (dryRun) continue;
    await trx('dot_imported_refresh_tokens').insert({ token_sha256: tokenSha256, imported_at: Date.now() });
    await importRefreshToken(trx, { token: rt.token, grantId: `dot-rt-${rt.id}`, accountId: String(user.id), clientId: app.clientId, scope, lifetimes: { grant, refreshToken } });
  }
  return result;
}

// ---- scopes ---------------------------------------------------------------------------------

/**
 * The DOT site's API scopes: GATEHOUSE_API_SCOPES as the operator states them for the import,
 * and every scope DOT's tokens carry. Those Gatehouse does not have yet are created, in the
 * import's transaction, with the words the consent page showed for them before.
 */
async function importScopes(trx: Knex, data: DotData, services: Services, dryRun: boolean): Promise<{ siteScopes: string[]; created: string[]; notes: string[] }> {
  const notes: string[] = [];
  const candidates = [...new Set([...services.config.apiScopes, ...data.scopesInUse])].filter((s) => !isBuiltInScope(s));
  const siteScopes = candidates.filter((name) => {
    const problem = scopeNameProblem(name);
    if (problem) notes.push(`DOT scope "${name.slice(0, 100)}" cannot be a Gatehouse scope (${problem}): not given to any client`);
    return !problem;
  });
  const existing = new Set((await trx('scopes').whereIn('name', siteScopes).select('name')).map((r) => String(r.name)));
  const created = siteScopes.filter((name) => !existing.has(name));
  if (!dryRun) await services.scopes.ensure(created, seedDescription, trx);
  if (created.length) {
    notes.push(`scope${created.length === 1 ? '' : 's'} ${created.join(' ')} ${dryRun ? 'would be' : created.length === 1 ? 'was' : 'were'} created (imported from django-oauth-toolkit; see npm run -s cli -- scopes list)`);
  }
  return { siteScopes, created, notes };
}

// ---- the run --------------------------------------------------------------------------------

const count = (entries: ReportEntry[]) => {
  const out: Record<Outcome, number> = { imported: 0, updated: 0, unchanged: 0, refused: 0 };
  for (const e of entries) out[e.outcome]++;
  return out;
};

export async function importFromDot(services: Services, source: string, { dryRun }: { dryRun: boolean }): Promise<ImportReport> {
  const secretKey = await loadClientSecretKey(services.settings);
  const data = await readDotSource(source);
  let createdScopes: string[] = [];
  const run = async (trx: Knex) => {
    const scopes = await importScopes(trx, data, services, dryRun);
    createdScopes = scopes.created;
    const users = await importUsers(trx, data, dryRun);
    const { reports: clients, refreshable } = await importClients(trx, data, scopes.siteScopes, secretKey, dryRun);
    // An HS256 application's secret is kept plain: encrypted before the transaction commits.
    if (!dryRun) await services.clients.sealPlainSecrets(trx);
    const refresh_tokens = await importRefreshTokens(trx, data, services, scopes.siteScopes, users, refreshable, dryRun);
    const notes: string[] = [...scopes.notes];
    notes.push('access tokens and authorization codes are not imported: apps get new ones by refreshing or signing in again');
    return { source, dry_run: dryRun, users, clients, refresh_tokens, notes, summary: { users: count(users), clients: count(clients) } };
  };
  if (dryRun) {
    // Read-only: the planning runs inside a transaction that is always rolled back.
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
  // Committed: every process serves the new scopes now (the clients holding them are new too).
  if (createdScopes.length) await services.scopes.announceChange();
  await services.audit.record({ label: 'cli' }, 'import.dot', `source:${source.replace(/\/\/[^@/]*@/, '//***@')}`, {
    summary: { ...report.summary, signed_in_apps_carried_over: report.refresh_tokens.imported },
    ...(createdScopes.length ? { scopes_created: createdScopes } : {}),
  });
  return report;
}
