import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import { djangoHashProblem, isDjangoHash, isUnusableDjangoPassword } from '../../accounts/django-hashers.ts';
import { LastAdminError, usernameKey } from '../../accounts/service.ts';
import { checkClientSettings, type ClientSettings, type GrantType } from '../../clients/rules.ts';
import { hashClientSecret, storePlainClientSecret } from '../../clients/secrets.ts';
import type { Client } from '../../clients/service.ts';
import { ValidationError } from '../../errors.ts';
import type { Services } from '../../services.ts';
import { isBuiltInScope, scopeNameProblem } from '../../scopes/names.ts';
import { importRefreshToken, refreshTokenIsStored } from '../../oidc/index.ts';
import { seedDescription } from '../../scopes/service.ts';
import { loadClientSecretKey } from '../../settings/store.ts';
import { collisionReason, provenanceOf, recordImported, redactSource, sourceLabel } from './provenance.ts';
import { readDotSource, type DotApplication, type DotData, type DotUser } from './source.ts';
import { refreshTokenValueProblem } from './token-rules.ts';

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
/** A user or client of the source refused because Gatehouse has one by that name that this source did not import. */
export interface Collision {
  kind: 'user' | 'client';
  /** The sub or client_id, as the source names it. */
  id: string;
  name: string;
  reason: string;
}
export interface ImportReport {
  source: string;
  dry_run: boolean;
  users: UserReport[];
  clients: ClientReport[];
  collisions: Collision[];
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

/** Long text from the source is shown clipped: the report stays readable whatever the dump holds. */
const clip = (v: string, max = 200) => (v.length > max ? `${v.slice(0, max)}…` : v);

/** Field errors as one sentence: "username may contain letters, digits and . _ @ + - only". */
const fieldErrors = (err: ValidationError) =>
  Object.entries(err.fields)
    .map(([field, why]) => `${field} ${why}`)
    .join('; ');

interface PlannedUser {
  id: string;
  username: string;
  email: string;
  name: string;
  isAdmin: boolean;
  disabled: boolean;
  passwordHash: string | null;
  notes: string[];
}

function planUser(u: DotUser): PlannedUser {
  const notes: string[] = [];
  let passwordHash: string | null = u.password;
  const hashProblem = isDjangoHash(u.password) ? djangoHashProblem(u.password) : undefined;
  if (isUnusableDjangoPassword(u.password) || !u.password) {
    passwordHash = null;
    notes.push('has no usable password in DOT: imported as "must reset", cannot sign in until an operator sets one');
  } else if (!isDjangoHash(u.password)) {
    passwordHash = null;
    notes.push(`password hash format "${clip(u.password.split('$')[0]!, 40)}" is not supported: imported as "must reset"`);
  } else if (hashProblem) {
    passwordHash = null;
    notes.push(`password hash refused (${hashProblem}): imported as "must reset"`);
  } else {
    notes.push('password kept (Django hash); re-hashed with scrypt at the first sign-in');
  }
  if (!u.isActive) notes.push('inactive in DOT: imported disabled; its tokens are not carried over');
  if (u.isStaff || u.isSuperuser) notes.push('staff/superuser in DOT: Gatehouse admin');
  return {
    id: String(u.id),
    username: u.username,
    email: u.email,
    name: `${u.firstName} ${u.lastName}`.trim(),
    isAdmin: u.isStaff || u.isSuperuser,
    disabled: !u.isActive,
    passwordHash,
    notes,
  };
}

interface UsersOutcome {
  reports: UserReport[];
  collisions: Collision[];
  /** Users DOT made inactive since they were imported: disabled once the run is committed (which revokes their tokens). */
  disabled: string[];
}

async function importUsers(trx: Knex, data: DotData, services: Services, label: string): Promise<UsersOutcome> {
  const out: UsersOutcome = { reports: [], collisions: [], disabled: [] };
  for (const u of data.users) {
    const plan = planUser(u);
    const report: UserReport = { sub: plan.id, username: clip(plan.username), outcome: 'imported', notes: plan.notes };
    out.reports.push(report);
    const refuse = (reason: string, collision = false) => {
      report.outcome = 'refused';
      report.notes = [reason];
      if (collision) out.collisions.push({ kind: 'user', id: plan.id, name: report.username, reason });
    };

    const existing = await trx('users').where({ id: plan.id }).first();
    if (existing) {
      const provenance = await provenanceOf(trx, 'user', plan.id, label);
      if (provenance.from !== 'this source') {
        refuse(collisionReason(`sub ${plan.id} is Gatehouse user "${clip(String(existing.username))}", who`, provenance), true);
        continue;
      }
      // Imported before: Gatehouse owns the user now. Nothing the operator set is reverted
      // (username, email, name, password, admin flag, disabled); DOT can only disable.
      report.notes = ['already imported; kept as it is in Gatehouse (a re-run never loosens: it can only disable)'];
      if (existing.username !== plan.username || existing.email !== plan.email || existing.name !== plan.name) {
        report.notes.push("DOT's username, email or name differ from Gatehouse's: Gatehouse's are kept");
      }
      if (plan.disabled && !existing.disabled) {
        report.outcome = 'updated';
        report.notes.push('inactive in DOT now: disabled, and its sessions and tokens revoked');
        out.disabled.push(plan.id);
      } else {
        report.outcome = 'unchanged';
      }
      continue;
    }

    const holder = await trx('users').where({ username_key: usernameKey(plan.username) }).first('id', 'username');
    if (holder) {
      const provenance = await provenanceOf(trx, 'user', String(holder.id), label);
      const what = `username "${clip(plan.username)}" is Gatehouse user ${holder.id}, who`;
      refuse(
        provenance.from === 'this source'
          ? `collides: username "${clip(plan.username)}" is already user ${holder.id} of this source (another DOT user of the same name, ignoring case): refused`
          : collisionReason(what, provenance),
        true,
      );
      continue;
    }

    try {
      await services.accounts.createImported(trx, plan);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      refuse(`refused: ${fieldErrors(err)} (the rules of users create)`);
      continue;
    }
    await recordImported(trx, 'user', plan.id, label);
  }
  return out;
}

// ---- clients --------------------------------------------------------------------------------

interface PlannedClient {
  settings: ClientSettings;
  storedSecret: string | null;
  notes: string[];
}

function planClient(app: DotApplication, siteScopes: readonly string[], secretKey: Buffer): PlannedClient | { refused: string[] } {
  const notes: string[] = [];
  // Own keys only: a grant type named "constructor" is unknown, not Object's constructor.
  const mapping = Object.hasOwn(GRANT_MAPPING, app.grantType) ? GRANT_MAPPING[app.grantType] : undefined;
  if (!mapping) return { refused: [`unknown grant type "${clip(app.grantType, 100)}"`] };
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
      const hashProblem = djangoHashProblem(app.clientSecret);
      if (hashProblem) return { refused: [...notes, `secret hash refused: ${hashProblem}`] };
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


/** What a client of this import is in Gatehouse once the run is through: refresh tokens are checked against it. */
interface ClientHere {
  clientId: string;
  scope: string[];
  grantTypes: GrantType[];
  disabled: boolean;
}

interface ClientsOutcome {
  reports: ClientReport[];
  collisions: Collision[];
  /** By DOT application id: the clients this source owns (imported now or before). */
  here: Map<number, ClientHere>;
  /** Clients this run changed that existed before: every process must drop its copy once committed. */
  tightened: string[];
}

const readClient = async (trx: Knex, services: Services, clientId: string): Promise<ClientHere> => {
  const c = await services.clients.get(clientId, trx);
  return { clientId, scope: c.scope, grantTypes: c.grantTypes, disabled: c.disabled };
};

/**
 * What a re-run says about a client this source imported before, and the one change it may
 * make: asking for consent again when DOT stopped skipping it. Everything else stays as the
 * operator has it; what DOT would add is reported, not applied.
 */
function reRunNotes(current: Client, planned: ClientSettings): { notes: string[]; requireConsent: boolean } {
  const notes = ['already imported; kept as it is in Gatehouse (a re-run never loosens: it can only ask for consent again)'];
  const fields = [
    ['redirect URI', 'redirectUris'],
    ['post-logout redirect URI', 'postLogoutRedirectUris'],
    ['allowed origin', 'allowedOrigins'],
  ] as const;
  for (const [words, field] of fields) {
    const added = planned[field].filter((uri) => !current[field].includes(uri));
    if (added.length) notes.push(`DOT lists ${words}${added.length === 1 ? '' : 's'} ${added.map((u) => clip(u, 100)).join(' ')} that Gatehouse does not: not added (add ${added.length === 1 ? 'it' : 'them'} with clients update if wanted)`);
  }
  if (current.disabled) notes.push('disabled in Gatehouse: stays disabled, and no refresh token is carried over to it');
  const requireConsent = current.skipConsent && !planned.skipConsent;
  if (requireConsent) notes.push('DOT no longer skips authorization: people are asked for consent again');
  else if (planned.skipConsent && !current.skipConsent) notes.push('DOT skips authorization but Gatehouse asks for consent: consent is still asked');
  return { notes, requireConsent };
}

async function importClients(trx: Knex, data: DotData, services: Services, siteScopes: readonly string[], secretKey: Buffer, label: string): Promise<ClientsOutcome> {
  const out: ClientsOutcome = { reports: [], collisions: [], here: new Map(), tightened: [] };
  for (const app of data.applications) {
    const plan = planClient(app, siteScopes, secretKey);
    const report: ClientReport = { client_id: clip(app.clientId), name: clip(app.name.trim() || app.clientId), outcome: 'imported', notes: [] };
    out.reports.push(report);
    if ('refused' in plan) {
      report.outcome = 'refused';
      report.notes = plan.refused;
      continue;
    }
    report.notes = plan.notes;
    const existing = await services.clients.find(app.clientId, trx);
    if (existing) {
      const provenance = await provenanceOf(trx, 'client', app.clientId, label);
      if (provenance.from !== 'this source') {
        const reason = collisionReason(`client_id ${clip(app.clientId)} is Gatehouse client "${clip(existing.name)}", which`, provenance);
        report.outcome = 'refused';
        report.notes = [reason];
        out.collisions.push({ kind: 'client', id: report.client_id, name: report.name, reason });
        continue;
      }
      // Its secret is left alone too: it may have been upgraded or rotated since the first import.
      const { notes, requireConsent } = reRunNotes(existing, plan.settings);
      report.notes = notes;
      report.outcome = requireConsent ? 'updated' : 'unchanged';
      if (requireConsent) {
        await services.clients.requireConsent(trx, app.clientId);
        out.tightened.push(app.clientId);
      }
    } else {
      try {
        await services.clients.createImported(trx, app.clientId, plan.settings, plan.storedSecret);
      } catch (err) {
        if (!(err instanceof ValidationError)) throw err;
        report.outcome = 'refused';
        report.notes = [`refused: ${fieldErrors(err)}`];
        continue;
      }
      await recordImported(trx, 'client', app.clientId, label);
    }
    out.here.set(app.id, await readClient(trx, services, app.clientId));
  }
  return out;
}

// ---- refresh tokens -------------------------------------------------------------------------

async function importRefreshTokens(trx: Knex, data: DotData, services: Services, users: UserReport[], clients: Map<number, ClientHere>): Promise<ImportReport['refresh_tokens']> {
  const result: ImportReport['refresh_tokens'] = { imported: 0, already_present: 0, not_imported: [], notes: [] };
  const usersById = new Map(data.users.map((u) => [u.id, u]));
  const userOutcome = new Map(users.map((u) => [u.sub, u.outcome]));
  const appsById = new Map(data.applications.map((a) => [a.id, a]));
  const { refreshToken, grant } = services.config.lifetimes;

  for (const rt of data.refreshTokens) {
    if (rt.revoked) continue; // used or revoked in DOT: nothing to carry over
    const user = usersById.get(rt.userId);
    const app = appsById.get(rt.applicationId);
    const client = clients.get(rt.applicationId);
    const skip = (reason: string) => result.not_imported.push({ id: rt.id, reason });
    if (!user || userOutcome.get(String(user.id)) === 'refused') {
      skip('its user was not imported');
      continue;
    }
    if (!user.isActive) {
      skip(`user ${clip(user.username)} is inactive (DOT 1.7 would still honour it; Gatehouse does not)`);
      continue;
    }
    const here = await trx('users').first('disabled').where({ id: String(user.id) });
    if (here?.disabled) {
      skip(`user ${clip(user.username)} is disabled in Gatehouse`);
      continue;
    }
    if (!client?.grantTypes.includes('refresh_token')) {
      skip(`its application ${clip(app?.name || app?.clientId || String(rt.applicationId))} was refused or has no refresh_token grant`);
      continue;
    }
    if (client.disabled) {
      skip(`its client ${clip(client.clientId)} is disabled in Gatehouse`);
      continue;
    }
    const valueProblem = refreshTokenValueProblem(rt.token);
    if (valueProblem) {
      skip(`refused: ${valueProblem}`);
      continue;
    }
    // Only what the client may hold in Gatehouse now: the dump does not choose the grant's scope.
    const scopes = [...new Set(rt.scope.split(/\s+/).filter(Boolean))];
    const dropped = scopes.filter((s) => !client.scope.includes(s));
    const scope = scopes.filter((s) => client.scope.includes(s)).join(' ');
    if (!scope) {
      skip(`its scope "${clip(rt.scope, 100)}" holds no scope its client ${clip(client.clientId)} has`);
      continue;
    }
    const tokenSha256 = createHash('sha256').update(rt.token).digest('hex');
    if (await trx('dot_imported_refresh_tokens').first('token_sha256').where({ token_sha256: tokenSha256 })) {
      // Imported before: whether it is still live, used or revoked is Gatehouse's business now.
      result.already_present++;
      continue;
    }
    if (await refreshTokenIsStored(trx, rt.token)) {
      skip('refused: a refresh token of this value is already live in Gatehouse');
      continue;
    }
    if (dropped.length) result.notes.push(`refresh token ${rt.id}: scope ${dropped.map((s) => clip(s, 100)).join(' ')} dropped (not in the scope of its client ${clip(client.clientId)})`);
    result.imported++;
    await trx('dot_imported_refresh_tokens').insert({ token_sha256: tokenSha256, imported_at: Date.now() });
    // The grant is named after the token, so two sources' token #6 never share (and overwrite) one.
    const grantId = `dot-rt-${tokenSha256.slice(0, 32)}`;
    await importRefreshToken(trx, { token: rt.token, grantId, accountId: String(user.id), clientId: client.clientId, scope, lifetimes: { grant, refreshToken } });
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
  await services.scopes.ensure(created, seedDescription, trx);
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
