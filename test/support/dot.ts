import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import knex, { type Knex } from 'knex';
import { basicAuth } from './http.ts';

/**
 * The django-oauth-toolkit fixtures (test/fixtures/dot, a copy of ../shared/fixtures/dot; see its README.md): what the
 * DOT 1.7 site holds, spelled out so tests can say what an import must carry over.
 */

export const DOT_FIXTURES = process.env.DOT_FIXTURES ?? fileURLToPath(new URL('../fixtures/dot/', import.meta.url));

/** A writable copy of a fixture file in a fresh temporary directory (the originals are read-only). */
export function copyFixture(file: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-dot-'));
  const target = path.join(dir, file);
  fs.copyFileSync(path.join(DOT_FIXTURES, file), target);
  fs.chmodSync(target, 0o600);
  return target;
}

/** One record of `manage.py dumpdata`: what a DOT dump is made of. */
export interface DumpRecord {
  model: string;
  pk: number;
  fields: Record<string, any>;
}

/**
 * A DOT dump as someone hostile (or careless) may hand it over: the real fixture's dumpdata,
 * changed by `edit`, in a fresh temporary file. Returns its path; remove its directory after.
 */
export function editedDump(edit: (records: DumpRecord[]) => void, file = 'dot17.dumpdata.json'): string {
  const records = JSON.parse(fs.readFileSync(path.join(DOT_FIXTURES, file), 'utf8')) as DumpRecord[];
  edit(records);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-dot-hostile-'));
  const target = path.join(dir, file);
  fs.writeFileSync(target, JSON.stringify(records), { mode: 0o600 });
  return target;
}

/** The record of `model` with primary key `pk` (throws when the fixture has none). */
export function dumpRecord(records: DumpRecord[], model: 'auth.user' | 'oauth2_provider.application' | 'oauth2_provider.refreshtoken' | 'oauth2_provider.accesstoken', pk: number): DumpRecord {
  const record = records.find((r) => r.model === model && r.pk === pk);
  if (!record) throw new Error(`the fixture has no ${model} #${pk}`);
  return record;
}

export interface DotFixtureUser {
  sub: string;
  username: string;
  password: string | null;
  email: string;
  name: string;
  admin: boolean;
  active: boolean;
}

export const DOT_USERS = {
  admin: { sub: '1', username: 'admin', password: 'admin-Passw0rd!', email: 'admin@acme.example', name: 'Grace Hopper', admin: true, active: true },
  alice: { sub: '2', username: 'alice', password: 'alice-Passw0rd!', email: 'alice@acme.example', name: 'Alice Liddell', admin: false, active: true },
  bob: { sub: '3', username: 'bob', password: 'bøb-Pässwörd-3', email: 'bob@acme.example', name: '', admin: false, active: true },
  carol: { sub: '4', username: 'carol', password: 'carol-Passw0rd!', email: 'carol@acme.example', name: 'Carol Núñez', admin: false, active: false },
  dave: { sub: '5', username: 'dave', password: null, email: 'dave@partner.example', name: '', admin: false, active: true },
} satisfies Record<string, DotFixtureUser>;

export const DAVE_UNUSABLE_HASH = '!n7i25q0We4Vce37KO9b0hlHQT2M2ZyLeqbNznt9K';

export interface DotFixtureApp {
  id: number;
  name: string;
  clientId: string;
  secret: string;
  type: 'confidential' | 'public';
  grant: 'authorization-code' | 'client-credentials' | 'openid-hybrid' | 'implicit' | 'password';
  redirectUris: string[];
  algorithm: '' | 'RS256' | 'HS256';
  skipAuthorization: boolean;
}

export const DOT_APPS = {
  portal: {
    id: 1,
    name: 'Acme Web Portal',
    clientId: 'HFlVfyVnY5T4xV6HCD1RY6C3c6lxV9UYMkcMznvB',
    secret: 'zV0BnBM5NqDQVGOMrf3Llo6gbB25E7g1xboHQQS4o7QxivqpoRA0nFbKjtX52kUUr1wxAwyuQHIThbBBIcS61n4Bt9SI4aHukhZyW4na7QWnMuqqPDPX5gIELK96X3Lj',
    type: 'confidential',
    grant: 'authorization-code',
    redirectUris: ['https://portal.acme.example/oauth/callback', 'https://portal.acme.example/accounts/complete/dot/'],
    algorithm: '',
    skipAuthorization: false,
  },
  mobile: {
    id: 2,
    name: 'Acme Mobile (PKCE)',
    clientId: 'Ltf1tqWojvUOY6LFwGlUynC1zVzIjfD5WdTN9PRO',
    secret: '6QXSdBAf68sMGX4HaXIo6rnlbb3n4zkZ77Qs0YTCpBlSLjX6JPHs6ZwhO98CwEvW72vUCmO6iAqPAZhWaO7pPQaIEp2bOSPHQGJJXZpCK8d2w7bhMn7nZarfQCpJhLLW',
    type: 'public',
    grant: 'authorization-code',
    redirectUris: ['http://localhost:8765/callback'],
    algorithm: '',
    skipAuthorization: false,
  },
  billing: {
    id: 3,
    name: 'Billing Service',
    clientId: 'billing-service',
    secret: 'bs-2025-06-Vh3Jr8kQ-rotate-me',
    type: 'confidential',
    grant: 'client-credentials',
    redirectUris: [],
    algorithm: '',
    skipAuthorization: false,
  },
  intranet: {
    id: 4,
    name: 'Legacy Intranet (OIDC HS256)',
    clientId: 'NeHmEpsziSYlLj5MxujJYbvYqIibWiNUIL3JbSck',
    secret: '6zCSapnZhCcjdpWeUmDcWfywik8PprQCL0OvuRhVlta3tTwgAxzRMY7fgWecAQJg41w2l1igYM9IYpbR2VKCdEtYLzn8QlStuXmPWM8e7a6tKJoLO7IIsMkUvjhI8Nc1',
    type: 'confidential',
    grant: 'authorization-code',
    redirectUris: ['https://intranet.acme.example/oidc/callback'],
    algorithm: 'HS256',
    skipAuthorization: false,
  },
  dashboard: {
    id: 5,
    name: 'Internal Dashboard',
    clientId: 'o0XiEdT2r46Err89HQ1qV3DNVWpcsOFC7B9dnV1A',
    secret: 'mxLwWlGRLd8ESzXtqPDvcVqQT7fnTeZOlAnIpTYONKjyvFkPYuxIqANOAPlbnzcxbsA3CN16Gp7kd80FFMHIbSOkyeK1a0C5zZHSTPqF4P4h1yoLeENH0NOGH0wBmQJ0',
    type: 'confidential',
    grant: 'authorization-code',
    redirectUris: ['https://dashboard.internal.acme.example/oauth/callback'],
    algorithm: '',
    skipAuthorization: true,
  },
  accounts: {
    id: 6,
    name: 'Acme Accounts (OIDC RS256)',
    clientId: 'oxA9rsMIilSrzPQSRJ2lce4fZIbrh5qch2haZtgI',
    secret: 'CjBPIzfR19pCthDnFAvXEYloE7wo9wwcR3ozhQyk0Ss0jkSXH8cIxzsqbqlg9j59Uieamddjzq2Gm8wjLs6Jad4czMi5RJfs0gFNIRfKhLARAWhr9gpjoo8eGwD132CR',
    type: 'confidential',
    grant: 'authorization-code',
    redirectUris: ['https://app.acme.example/oidc/callback'],
    algorithm: 'RS256',
    skipAuthorization: false,
  },
  spa: {
    id: 7,
    name: 'Legacy SPA (implicit)',
    clientId: 'oRvUisvbPk97aMewMh3tJ3ddnGf68USixRmW5AlG',
    secret: 't6J7z6wygmqKo1kfQAAWUKzXCR9RTykdqbODp66CizZsVfLKfoOg0RM7kVwogSl8uyRXfvPr7Aj1IuVOW7K16YbUbuvB4ogf61TJLO73TAvRPk4CDItfhlxhaioXZCfw',
    type: 'public',
    grant: 'implicit',
    redirectUris: ['https://spa.acme.example/callback'],
    algorithm: '',
    skipAuthorization: false,
  },
  hybrid: {
    id: 8,
    name: '',
    clientId: 'wptBHqOAZTcHgmY6E8PHCIdQOb7jtJR3OIf7vtxJ',
    secret: 'es0hGIaA0eeSaMdSieZBi9qti14J5y9za84tbtWpecq4CzJrUzK0Z9WI2lJJZAQfUynj0yRiUSY8cfvCf2gnWfWxFHJMx1oh8qpoTtmjz3qbEnTvxetVA2vCbi1JsBcH',
    type: 'confidential',
    grant: 'openid-hybrid',
    redirectUris: ['https://hybrid.acme.example/cb'],
    algorithm: 'RS256',
    skipAuthorization: false,
  },
  cli: {
    id: 9,
    name: "Alice's CLI",
    clientId: '82nVLn958H001yUhPSeP9vwi5VaQk2R0LOh5IaGY',
    secret: 'bLt0DeyIR0fLQwUVgGatXfhcJFdDGUQbQDl7nn62o7DW2vSvDy71H4KNW8vJbHU6gyC7G5FmTHAVhZVH66v6diJJsCHIVFGx7HG0IEG1W6LLj6viF473qjDHfjSI0GAK',
    type: 'confidential',
    grant: 'password',
    redirectUris: [],
    algorithm: '',
    skipAuthorization: false,
  },
} satisfies Record<string, DotFixtureApp>;

/** The refresh tokens of the fixture, by scenario (README "Refresh tokens"). */
export const DOT_REFRESH_TOKENS = {
  /** #1 alice, Acme Web Portal: revoked (rotated at T0). */
  aliceWebRevoked: 'FOFC2mKh2uYH2nKCmAXJRoswu3m3yM',
  /** #2 bob, Acme Mobile (public): live, scope read. */
  bobMobile: 'BPONIJsNZPQWetAQY7ksTyBF3CYmvb',
  /** #3 alice, Acme Accounts: revoked (rotated at T0). */
  aliceAccountsRevoked: '4PutDj3xyK3CR4YqPJUG7wxSgPUfzq',
  /** #4 alice, Alice's CLI (password grant): revoked by its client. */
  aliceCliRevoked: 'F3Z1EYAa5XqkxZ8KcmMEuqtMl6CQa0',
  /** #5 carol (inactive), Internal Dashboard: live in DOT. */
  carolDashboard: 'RIPllMTaR37vOxEdY3Sug2ahoVSKNf',
  /** #6 alice, Acme Web Portal: live, scope read write. */
  aliceWeb: 'cqCsiiM5Np1D86n8B5FA6gKchzBLW2',
  /** #7 alice, Acme Mobile (public): live, scope read. */
  aliceMobile: 'r8Ar906Dh8xxVfLhEq0BuASIgzjOpL',
  /** #8 alice, Acme Accounts: live, scope openid profile email. */
  aliceAccounts: 'WbQ9hTNzntXpfmLiDRLFBQGaSixuQM',
  /** #9 bob, Legacy Intranet (HS256): live, scope openid profile email. */
  bobIntranet: 'vOrrGq20kaK0EJ2aAkBuLyIymmHheM',
  /** #10 admin, Internal Dashboard: live, scope read write. */
  adminDashboard: 'mmsHMGDn5NdyRzmCaCZSHtfa0ONBD9',
  /** #11 alice, Alice's CLI (password grant, refused at import): live in DOT. */
  aliceCli: 'mKgdN97rD6bpo4qv7e1Rz9bG0A2O1T',
  /** #12 admin, Acme Accounts: live, scope openid profile email. */
  adminAccounts: '8MItPRqZyGQKZ2Vsxr2Zrb1RzfzLm6',
} as const;

// ---- HTTP as an app does it ------------------------------------------------------------------

export type ClientAuth = 'basic' | 'post' | 'none';

export interface TokenResponse {
  status: number;
  body: Record<string, any>;
}

/** A POST to the token endpoint (or another client-authenticated endpoint) with the client's credentials. */
export async function postAsClient(
  baseUrl: string,
  endpoint: string,
  params: Record<string, string>,
  client: { clientId: string; secret?: string },
  auth: ClientAuth,
): Promise<TokenResponse> {
  const body = new URLSearchParams(params);
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (auth === 'basic') headers.authorization = basicAuth(client.clientId, client.secret!);
  else {
    body.set('client_id', client.clientId);
    if (auth === 'post') body.set('client_secret', client.secret!);
  }
  const res = await fetch(`${baseUrl}${endpoint}`, { method: 'POST', headers, body });
  const text = await res.text();
  let parsed: Record<string, any>;
  try {
    parsed = text ? JSON.parse(text) : {};
  } catch {
    parsed = { raw: text.slice(0, 300) };
  }
  return { status: res.status, body: parsed };
}

export interface DecodedJwt {
  header: Record<string, any>;
  payload: Record<string, any>;
  signingInput: string;
  signature: string;
}

export function decodeJwt(jwt: string): DecodedJwt {
  const [h, p, s] = jwt.split('.');
  if (!h || !p || s === undefined) throw new Error(`not a JWS: ${jwt.slice(0, 40)}…`);
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')),
    signingInput: `${h}.${p}`,
    signature: s,
  };
}

/** Does an HS256 JWS verify with `key` (as the relying party does with its client secret)? */
export function hs256Verifies(jwt: DecodedJwt, key: string): boolean {
  return createHmac('sha256', key).update(jwt.signingInput).digest('base64url') === jwt.signature;
}

// ---- the DOT database on PostgreSQL ----------------------------------------------------------

/**
 * The fixture README's CREATE TABLE statements as Django writes them for PostgreSQL:
 * integer/bigint identity keys, boolean, timestamp with time zone, uuid, deferred foreign keys.
 */
const POSTGRES_DDL = [
  `CREATE TABLE "auth_user" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "password" varchar(128) NOT NULL, "last_login" timestamp with time zone NULL, "is_superuser" boolean NOT NULL, "username" varchar(150) NOT NULL UNIQUE, "last_name" varchar(150) NOT NULL, "email" varchar(254) NOT NULL, "is_staff" boolean NOT NULL, "is_active" boolean NOT NULL, "date_joined" timestamp with time zone NOT NULL, "first_name" varchar(150) NOT NULL)`,
  `CREATE TABLE "oauth2_provider_application" ("id" bigint NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "client_id" varchar(100) NOT NULL UNIQUE, "redirect_uris" text NOT NULL, "client_type" varchar(32) NOT NULL, "client_secret" varchar(255) NOT NULL, "name" varchar(255) NOT NULL, "user_id" integer NULL REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED, "skip_authorization" boolean NOT NULL, "created" timestamp with time zone NOT NULL, "updated" timestamp with time zone NOT NULL, "algorithm" varchar(5) NOT NULL, "authorization_grant_type" varchar(32) NOT NULL)`,
  `CREATE INDEX "oauth2_provider_application_client_secret_53133678" ON "oauth2_provider_application" ("client_secret")`,
  `CREATE TABLE "oauth2_provider_grant" ("id" bigint NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "code" varchar(255) NOT NULL UNIQUE, "expires" timestamp with time zone NOT NULL, "redirect_uri" text NOT NULL, "scope" text NOT NULL, "application_id" bigint NOT NULL REFERENCES "oauth2_provider_application" ("id") DEFERRABLE INITIALLY DEFERRED, "user_id" integer NOT NULL REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED, "created" timestamp with time zone NOT NULL, "updated" timestamp with time zone NOT NULL, "code_challenge" varchar(128) NOT NULL, "code_challenge_method" varchar(10) NOT NULL, "nonce" varchar(255) NOT NULL, "claims" text NOT NULL)`,
  `CREATE TABLE "oauth2_provider_idtoken" ("id" bigint NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "jti" uuid NOT NULL UNIQUE, "expires" timestamp with time zone NOT NULL, "scope" text NOT NULL, "created" timestamp with time zone NOT NULL, "updated" timestamp with time zone NOT NULL, "application_id" bigint NULL REFERENCES "oauth2_provider_application" ("id") DEFERRABLE INITIALLY DEFERRED, "user_id" integer NULL REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED)`,
  // accesstoken and refreshtoken point at each other: the second foreign key comes after both tables, as Django's migration does it.
  `CREATE TABLE "oauth2_provider_accesstoken" ("id" bigint NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "token" varchar(255) NOT NULL UNIQUE, "expires" timestamp with time zone NOT NULL, "scope" text NOT NULL, "application_id" bigint NULL REFERENCES "oauth2_provider_application" ("id") DEFERRABLE INITIALLY DEFERRED, "user_id" integer NULL REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED, "created" timestamp with time zone NOT NULL, "updated" timestamp with time zone NOT NULL, "source_refresh_token_id" bigint NULL UNIQUE, "id_token_id" bigint NULL UNIQUE REFERENCES "oauth2_provider_idtoken" ("id") DEFERRABLE INITIALLY DEFERRED)`,
  `CREATE TABLE "oauth2_provider_refreshtoken" ("id" bigint NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "token" varchar(255) NOT NULL, "access_token_id" bigint NULL UNIQUE REFERENCES "oauth2_provider_accesstoken" ("id") DEFERRABLE INITIALLY DEFERRED, "application_id" bigint NOT NULL REFERENCES "oauth2_provider_application" ("id") DEFERRABLE INITIALLY DEFERRED, "user_id" integer NOT NULL REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED, "created" timestamp with time zone NOT NULL, "updated" timestamp with time zone NOT NULL, "revoked" timestamp with time zone NULL, CONSTRAINT "oauth2_provider_refreshtoken_token_revoked_af8a5134_uniq" UNIQUE ("token", "revoked"))`,
  `ALTER TABLE "oauth2_provider_accesstoken" ADD CONSTRAINT "oauth2_provider_acce_source_refresh_token_e66fbc72_fk_oauth2_pr" FOREIGN KEY ("source_refresh_token_id") REFERENCES "oauth2_provider_refreshtoken" ("id") DEFERRABLE INITIALLY DEFERRED`,
];

/** In the order their foreign keys allow (accesstoken ↔ refreshtoken resolve at commit: deferred). */
const DOT_TABLES = ['auth_user', 'oauth2_provider_application', 'oauth2_provider_grant', 'oauth2_provider_idtoken', 'oauth2_provider_accesstoken', 'oauth2_provider_refreshtoken'];
const BOOLEAN_COLUMNS = new Set(['is_superuser', 'is_staff', 'is_active', 'skip_authorization']);
const DATETIME_COLUMNS = new Set(['last_login', 'date_joined', 'created', 'updated', 'expires', 'revoked']);

/**
 * Loads the rows of DOT's SQLite file into an empty PostgreSQL database, converting what
 * SQLite stores (0/1, naive UTC text, 32-hex UUIDs) into PostgreSQL's types. Returns the row
 * counts per table.
 */
export async function loadDotIntoPostgres(sqliteFile: string, postgresUrl: string): Promise<Record<string, number>> {
  const source: Knex = knex({ client: 'better-sqlite3', connection: { filename: sqliteFile, readonly: true } as Knex.Sqlite3ConnectionConfig, useNullAsDefault: true });
  const target: Knex = knex({ client: 'pg', connection: postgresUrl, pool: { min: 0, max: 1 } });
  const counts: Record<string, number> = {};
  try {
    for (const ddl of POSTGRES_DDL) await target.raw(ddl);
    await target.transaction(async (trx) => {
      for (const table of DOT_TABLES) {
        const rows: Record<string, unknown>[] = await source(table).select('*').orderBy('id');
        counts[table] = rows.length;
        if (!rows.length) continue;
        const converted = rows.map((row) =>
          Object.fromEntries(
            Object.entries(row).map(([column, value]) => {
              if (value === null) return [column, null];
              if (BOOLEAN_COLUMNS.has(column)) return [column, Boolean(value)];
              if (DATETIME_COLUMNS.has(column)) return [column, `${String(value)}+00`];
              return [column, value];
            }),
          ),
        );
        await trx(table).insert(converted);
      }
    });
  } finally {
    await source.destroy();
    await target.destroy();
  }
  return counts;
}
