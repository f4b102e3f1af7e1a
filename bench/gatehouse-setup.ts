/**
 * Databases and data for the Gatehouse side of the benchmark: a fresh SQLite directory or
 * PostgreSQL database per configuration, the clients, users and API key the workloads use (made
 * through the same services the CLI calls), and the fast seeding of the growth database.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import knex from 'knex';
import { Redis } from 'ioredis';
import { importFrom, type Snapshot } from './snapshot.ts';

type ConfigModule = typeof import('../src/config.ts');
type ServicesModule = typeof import('../src/services.ts');
let code: { config: ConfigModule; services: ServicesModule } | undefined;

/** Gatehouse's config and services, from the run's snapshot of the code. */
export async function loadGatehouseCode(snapshot: Snapshot): Promise<void> {
  code = { config: await importFrom<ConfigModule>(snapshot, 'src/config.ts'), services: await importFrom<ServicesModule>(snapshot, 'src/services.ts') };
}

export const POSTGRES_ADMIN_URL = withDefaultUser(process.env.BENCH_POSTGRES_URL ?? 'postgres://127.0.0.1:5432/test');
export const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
export const REDIRECT_URI = 'http://127.0.0.1:8765/callback';
export const PASSWORD = 'bench-password-correct-horse';

/** node-postgres needs a user name; take the OS account's, as psql does (see test/support/gatehouse.ts). */
function withDefaultUser(raw: string): string {
  const url = new URL(raw);
  if (url.username || process.env.PGUSER || process.env.USER) return raw;
  url.username = os.userInfo().username;
  return url.toString();
}

export interface BenchDatabase {
  kind: 'sqlite' | 'pg';
  /** Environment that points Gatehouse (server, CLI, services) at it. */
  env: Record<string, string>;
  /** SQLite file, for direct seeding. */
  sqliteFile?: string;
  drop(): Promise<void>;
}

const uniqueName = () => `gh_bench_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;

/** SQLite: the embedded default (no DATABASE_URL, the file under GATEHOUSE_DATA_DIR in a temp dir). */
export async function createDatabase(kind: 'sqlite' | 'pg'): Promise<BenchDatabase> {
  if (kind === 'sqlite') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bench-'));
    return {
      kind,
      env: { GATEHOUSE_DATA_DIR: dir, DATABASE_URL: '' },
      sqliteFile: path.join(dir, 'gatehouse.sqlite3'),
      drop: async () => fs.rmSync(dir, { recursive: true, force: true }),
    };
  }
  const name = uniqueName();
  const admin = knex({ client: 'pg', connection: POSTGRES_ADMIN_URL, pool: { min: 0, max: 1 } });
  try {
    await admin.raw(`create database ${name}`);
  } finally {
    await admin.destroy();
  }
  const url = new URL(POSTGRES_ADMIN_URL);
  url.pathname = `/${name}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bench-'));
  return {
    kind,
    env: { DATABASE_URL: url.toString(), GATEHOUSE_DATA_DIR: dir },
    drop: async () => {
      fs.rmSync(dir, { recursive: true, force: true });
      const a = knex({ client: 'pg', connection: POSTGRES_ADMIN_URL, pool: { min: 0, max: 1 } });
      try {
        await a.raw(`drop database if exists ${name} with (force)`);
      } finally {
        await a.destroy();
      }
    },
  };
}

/** Deletes every Redis key under `prefix` (the bench's own). */
export async function dropRedisPrefix(prefix: string): Promise<number> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  let removed = 0;
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) removed += await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return removed;
}

export interface GatehouseFixture {
  cc: { clientId: string; clientSecret: string };
  web: { clientId: string; clientSecret: string };
  user: { id: string; username: string; password: string };
  apiKey: string;
  passwordHash: string;
  /** Users `${signInPrefix}${i}` for i < signInUsers, each with PASSWORD, for the sign-in loop. */
  signInPrefix: string;
  signInUsers: number;
}

/**
 * Migrates the database and creates, through Gatehouse's own services: a client-credentials
 * client, a web app (authorization code, client_secret_basic, scope openid profile email
 * userdata), an API key of that app, one person; then `signInUsers` people inserted directly
 * with the same scrypt hash (one hash, not thousands).
 */
export async function prepareGatehouse(env: Record<string, string>, signInUsers: number): Promise<GatehouseFixture> {
  if (!code) throw new Error('loadGatehouseCode first');
  const services = await code.services.openServices(code.config.loadConfig({ ...env, REDIS_URL: '' }));
  try {
    const cc = await services.clients.create({ name: 'Bench service', type: 'confidential', grantTypes: ['client_credentials'], authMethod: 'client_secret_basic' });
    const web = await services.clients.create({
      name: 'Bench web app',
      type: 'confidential',
      grantTypes: ['authorization_code'],
      redirectUris: [REDIRECT_URI],
      scope: ['openid', 'profile', 'email', 'userdata'],
      authMethod: 'client_secret_basic',
    });
    const { key } = await services.apiKeys.create(web.client.clientId, ['userdata:read', 'userdata:write'], 'bench');
    const user = await services.accounts.create({ username: 'bench-alice', email: 'bench-alice@example.com', name: 'Alice Bench', password: PASSWORD, emailVerified: true });
    const row = await services.db('users').where({ id: user.id }).first('password_hash');
    const passwordHash = row.password_hash as string;
    const signInPrefix = 'bench-u-';
    const now = Date.now();
    const rows = Array.from({ length: signInUsers }, (_, i) => ({
      id: randomUUID(),
      username: `${signInPrefix}${i}`,
      username_key: `${signInPrefix}${i}`,
      email: `${signInPrefix}${i}@example.com`,
      email_verified: true,
      name: `Bench User ${i}`,
      password_hash: passwordHash,
      must_reset_password: false,
      is_admin: false,
      disabled: false,
      created_at: now,
      updated_at: now,
    }));
    await services.db.batchInsert('users', rows, 500);
    return {
      cc: { clientId: cc.client.clientId, clientSecret: cc.clientSecret! },
      web: { clientId: web.client.clientId, clientSecret: web.clientSecret! },
      user: { id: user.id, username: 'bench-alice', password: PASSWORD },
      apiKey: key,
      passwordHash,
      signInPrefix,
      signInUsers,
    };
  } finally {
    await services.close();
  }
}

export interface GrowthSize {
  tokens: number;
  users: number;
  clients: number;
}

const b64 = (buf: Buffer, start: number, len: number) => buf.subarray(start, start + len).toString('base64url');

/**
 * Fills a migrated (and prepared) SQLite database the fast way: multi-row INSERTs in big
 * transactions, straight through better-sqlite3, while no server has it open. Tokens are
 * AccessToken and ClientCredentials rows with oidc-provider-shaped JSON payloads, all expiring
 * at least half an hour from now (so the expiry sweeper has nothing to do during the bench).
 */
export function seedGrowth(file: string, size: GrowthSize, passwordHash: string): { seconds: number; fileBytes: number } {
  const t0 = performance.now();
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF');
  db.pragma('cache_size = -1000000');
  const now = Date.now();
  const nowS = Math.floor(now / 1000);

  const insertMany = (table: string, columns: string[], total: number, make: (i: number) => unknown[], perStatement = 500, perTransaction = 50_000) => {
    const tuple = `(${columns.map(() => '?').join(',')})`;
    const full = db.prepare(`insert into ${table} (${columns.join(',')}) values ${Array(perStatement).fill(tuple).join(',')}`);
    for (let start = 0; start < total; start += perTransaction) {
      const end = Math.min(total, start + perTransaction);
      db.transaction(() => {
        for (let i = start; i < end; i += perStatement) {
          const n = Math.min(perStatement, end - i);
          const values: unknown[] = [];
          for (let j = 0; j < n; j++) values.push(...make(i + j));
          if (n === perStatement) full.run(values);
          else db.prepare(`insert into ${table} (${columns.join(',')}) values ${Array(n).fill(tuple).join(',')}`).run(values);
        }
      })();
    }
  };

  // Users: one precomputed scrypt hash for all.
  insertMany(
    'users',
    ['id', 'username', 'username_key', 'email', 'email_verified', 'name', 'password_hash', 'must_reset_password', 'is_admin', 'disabled', 'created_at', 'updated_at'],
    size.users,
    (i) => [randomUUID(), `growth-user-${i}`, `growth-user-${i}`, `growth-user-${i}@example.com`, 1, `Growth User ${i}`, passwordHash, 0, 0, 0, now, now],
  );
  const userIds = (db.prepare(`select id from users where username_key like 'growth-user-%' limit 5000`).all() as Array<{ id: string }>).map((r) => r.id);

  // Clients: half services (client credentials), half web apps, with HMAC-shaped secret hashes.
  const clientIds: string[] = [];
  const randomClients = randomBytes(size.clients * 18);
  insertMany('clients', ['client_id', 'name', 'type', 'secret_hash', 'settings', 'disabled', 'created_at', 'updated_at'], size.clients, (i) => {
    const id = b64(randomClients, i * 18, 18);
    if (clientIds.length < 5000) clientIds.push(id);
    const web = i % 2 === 0;
    const settings = {
      grantTypes: web ? ['authorization_code', 'refresh_token'] : ['client_credentials'],
      redirectUris: web ? [`https://app${i}.example.com/oidc/callback`] : [],
      postLogoutRedirectUris: web ? [`https://app${i}.example.com/`] : [],
      allowedOrigins: [],
      scope: web ? ['openid', 'profile', 'email', 'offline_access'] : ['read', 'write'],
      authMethod: 'client_secret_basic',
      requirePkce: false,
      skipConsent: false,
      idTokenSignedResponseAlg: 'RS256',
      logoUri: null,
      clientUri: null,
    };
    return [id, `Growth client ${i}`, 'confidential', `hmac-sha256$${randomBytes(32).toString('base64url')}`, JSON.stringify(settings), 0, now, now];
  });

  // Tokens: 60 % user access tokens, 40 % client-credentials tokens.
  const chunk = 100_000;
  let random = randomBytes(0);
  insertMany(
    'oidc_payloads',
    ['model', 'id', 'payload', 'grant_id', 'uid', 'user_code', 'account_id', 'client_id', 'expires_at', 'consumed_at'],
    size.tokens,
    (i) => {
      if (i % chunk === 0) random = randomBytes(chunk * 48);
      const o = (i % chunk) * 48;
      const jti = b64(random, o, 32);
      const clientId = clientIds[i % clientIds.length]!;
      const iat = nowS - (i % 1800);
      const exp = nowS + 1800 + (i % 3600);
      if (i % 5 < 3) {
        const accountId = userIds[i % userIds.length]!;
        const grantId = b64(random, o + 32, 16);
        const payload = {
          iat,
          exp,
          accountId,
          expiresWithSession: false,
          grantId,
          gty: 'authorization_code',
          sessionUid: b64(random, o + 8, 16),
          sid: randomUUID(),
          kind: 'AccessToken',
          jti,
          clientId,
          scope: 'openid profile email',
          claims: {},
          extra: {},
        };
        return ['AccessToken', jti, JSON.stringify(payload), grantId, null, null, accountId, clientId, exp, null];
      }
      const payload = { iat, exp, clientId, kind: 'ClientCredentials', jti, scope: 'read write', extra: {} };
      return ['ClientCredentials', jti, JSON.stringify(payload), null, null, null, null, clientId, exp, null];
    },
    500,
    100_000,
  );
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  const fileBytes = fs.statSync(file).size;
  return { seconds: (performance.now() - t0) / 1000, fileBytes };
}
