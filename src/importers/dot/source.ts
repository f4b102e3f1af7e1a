import fs from 'node:fs';
import knex, { type Knex } from 'knex';
import { z } from 'zod';

/**
 * Reads a django-oauth-toolkit installation: its SQLite file, its PostgreSQL database, or a
 * `manage.py dumpdata auth.user oauth2_provider` JSON file, into one shape. Rows are checked
 * as they are read, so the importer can trust them.
 */

const flag = z.union([z.boolean(), z.number()]).transform(Boolean);
const text = z.string().nullable().transform((v) => v ?? '');

export const dotUser = z.object({
  id: z.coerce.number().int(),
  username: z.string(),
  password: z.string(),
  email: text,
  firstName: text,
  lastName: text,
  isActive: flag,
  isStaff: flag,
  isSuperuser: flag,
});
export type DotUser = z.output<typeof dotUser>;

export const dotApplication = z.object({
  id: z.coerce.number().int(),
  clientId: z.string(),
  name: text,
  clientType: z.string(),
  grantType: z.string(),
  clientSecret: text,
  /** DOT ≥ 2.4 says whether client_secret is hashed; older versions never hash. */
  hashClientSecret: flag.nullable().optional(),
  redirectUris: text,
  postLogoutRedirectUris: text.optional(),
  allowedOrigins: text.optional(),
  algorithm: text,
  skipAuthorization: flag,
});
export type DotApplication = z.output<typeof dotApplication>;

export const dotRefreshToken = z.object({
  id: z.coerce.number().int(),
  token: z.string(),
  userId: z.coerce.number().int(),
  applicationId: z.coerce.number().int(),
  revoked: z.unknown().transform((v) => v !== null && v !== undefined && v !== ''),
  /** The scope of the access token issued with it (DOT keeps scope on access tokens only). */
  scope: text,
});
export type DotRefreshToken = z.output<typeof dotRefreshToken>;

export interface DotData {
  users: DotUser[];
  applications: DotApplication[];
  refreshTokens: DotRefreshToken[];
  /** Every scope seen on DOT's access tokens: tells which API scopes the site used. */
  scopesInUse: string[];
}

export class DotSourceError extends Error {
  override name = 'DotSourceError';
}

type Row = Record<string, unknown>;

function fromRows(users: Row[], applications: Row[], refreshTokens: Row[], accessTokenScopes: string[]): DotData {
  const parse = <T>(schema: z.ZodType<T>, what: string, rows: Row[]) =>
    rows.map((row, i) => {
      const parsed = schema.safeParse(row);
      if (!parsed.success) throw new DotSourceError(`${what} #${i + 1} is not shaped as django-oauth-toolkit writes it: ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`);
      return parsed.data;
    });
  return {
    users: parse(dotUser, 'user', users),
    applications: parse(dotApplication, 'application', applications),
    refreshTokens: parse(dotRefreshToken, 'refresh token', refreshTokens),
    scopesInUse: [...new Set(accessTokenScopes.flatMap((s) => s.split(/\s+/)).filter(Boolean))].sort(),
  };
}

const userColumns = (r: Row): Row => ({
  id: r.id,
  username: r.username,
  password: r.password,
  email: r.email,
  firstName: r.first_name,
  lastName: r.last_name,
  isActive: r.is_active,
  isStaff: r.is_staff,
  isSuperuser: r.is_superuser,
});

const applicationColumns = (r: Row): Row => ({
  id: r.id,
  clientId: r.client_id,
  name: r.name,
  clientType: r.client_type,
  grantType: r.authorization_grant_type,
  clientSecret: r.client_secret,
  hashClientSecret: r.hash_client_secret ?? null,
  redirectUris: r.redirect_uris,
  postLogoutRedirectUris: r.post_logout_redirect_uris ?? '',
  allowedOrigins: r.allowed_origins ?? '',
  algorithm: r.algorithm ?? '',
  skipAuthorization: r.skip_authorization,
});

async function fromDatabase(db: Knex): Promise<DotData> {
  try {
    const users = await db('auth_user').select('*').orderBy('id');
    const applications = await db('oauth2_provider_application').select('*').orderBy('id');
    const refreshTokens = await db('oauth2_provider_refreshtoken as rt')
      .leftJoin('oauth2_provider_accesstoken as at', 'at.id', 'rt.access_token_id')
      .select('rt.id', 'rt.token', 'rt.user_id', 'rt.application_id', 'rt.revoked', 'at.scope')
      .orderBy('rt.id');
    const scopes = await db('oauth2_provider_accesstoken').distinct('scope');
    return fromRows(
      users.map(userColumns),
      applications.map(applicationColumns),
      refreshTokens.map((r: Row) => ({ id: r.id, token: r.token, userId: r.user_id, applicationId: r.application_id, revoked: r.revoked, scope: r.scope ?? '' })),
      scopes.map((r: Row) => String(r.scope ?? '')),
    );
  } catch (err) {
    if (err instanceof DotSourceError) throw err;
    throw new DotSourceError(`this does not look like a django-oauth-toolkit database: ${(err as Error).message}`);
  } finally {
    await db.destroy();
  }
}

function fromDumpdata(json: unknown): DotData {
  if (!Array.isArray(json)) throw new DotSourceError('a dumpdata file is a JSON list of {model, pk, fields} records');
  const byModel = (model: string) =>
    json
      .filter((r): r is { model: string; pk: unknown; fields: Row } => typeof r === 'object' && r !== null && (r as Row).model === model)
      .map((r): Row => ({ id: r.pk, ...r.fields }));
  const accessTokens = byModel('oauth2_provider.accesstoken');
  const scopeOfAccessToken = new Map(accessTokens.map((a) => [a.id, String(a.scope ?? '')]));
  return fromRows(
    byModel('auth.user').map(userColumns),
    byModel('oauth2_provider.application').map(applicationColumns),
    byModel('oauth2_provider.refreshtoken').map((r) => ({
      id: r.id,
      token: r.token,
      userId: r.user,
      applicationId: r.application,
      revoked: r.revoked,
      scope: scopeOfAccessToken.get(r.access_token) ?? '',
    })),
    [...scopeOfAccessToken.values()],
  );
}

/** Reads SOURCE: postgres://… (DOT's database), a .json dumpdata file, or a SQLite file. */
export async function readDotSource(source: string): Promise<DotData> {
  if (/^postgres(ql)?:\/\//.test(source)) {
    return fromDatabase(knex({ client: 'pg', connection: source, pool: { min: 0, max: 1 }, acquireConnectionTimeout: 5000 }));
  }
  if (!fs.existsSync(source)) throw new DotSourceError(`${source} does not exist`);
  const head = fs.readFileSync(source).subarray(0, 16).toString('latin1');
  if (head.startsWith('SQLite format 3')) {
    return fromDatabase(knex({ client: 'better-sqlite3', connection: { filename: source, readonly: true, fileMustExist: true } as Knex.Sqlite3ConnectionConfig, useNullAsDefault: true }));
  }
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(source, 'utf8'));
  } catch {
    throw new DotSourceError(`${source} is neither a SQLite database nor a dumpdata JSON file`);
  }
  return fromDumpdata(json);
}
