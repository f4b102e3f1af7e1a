import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import knex from 'knex';
import { loadConfig, type Config } from '../../src/config.ts';
import { startGatehouse, type RunningGatehouse } from '../../src/server.ts';
import type { DestinationStream } from 'pino';

export const POSTGRES_ADMIN_URL = withDefaultUser(process.env.TEST_POSTGRES_URL ?? 'postgres://127.0.0.1:5432/test');

/**
 * node-postgres takes a URL without a user name from $PGUSER or $USER, and fails with "no
 * PostgreSQL user name specified" when neither is set (containers, CI); psql falls back to the
 * OS account instead. Do as psql does, so the tests run wherever psql works.
 */
function withDefaultUser(raw: string): string {
  const url = new URL(raw);
  if (url.username || process.env.PGUSER || process.env.USER) return raw;
  url.username = os.userInfo().username;
  return url.toString();
}
export const REDIS_TEST_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export type DatabaseKind = 'sqlite' | 'pg';

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

/** A fresh, empty database for one test file: a temporary SQLite file or a new PostgreSQL database. */
export async function createTestDatabase(kind: DatabaseKind): Promise<TestDatabase> {
  const name = `gh_test_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  if (kind === 'sqlite') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-'));
    return {
      url: `sqlite:${path.join(dir, `${name}.sqlite3`)}`,
      drop: async () => fs.rmSync(dir, { recursive: true, force: true }),
    };
  }
  const admin = knex({ client: 'pg', connection: POSTGRES_ADMIN_URL, pool: { min: 0, max: 1 } });
  await admin.raw(`create database ${name}`);
  await admin.destroy();
  const url = new URL(POSTGRES_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const a = knex({ client: 'pg', connection: POSTGRES_ADMIN_URL, pool: { min: 0, max: 1 } });
      await a.raw(`drop database if exists ${name} with (force)`);
      await a.destroy();
    },
  };
}

export interface TestGatehouse extends RunningGatehouse {
  config: Config;
  env: Record<string, string>;
  database: TestDatabase;
  close(): Promise<void>;
}

/**
 * A real Gatehouse listening on a free port over a fresh database. `env` holds the variables a
 * spawned CLI needs to talk to the same database.
 */
export async function startTestGatehouse(
  options: { database?: DatabaseKind; env?: Record<string, string>; logDestination?: DestinationStream } = {},
): Promise<TestGatehouse> {
  const database = await createTestDatabase(options.database ?? 'sqlite');
  const port = await freePort();
  const env: Record<string, string> = {
    PORT: String(port),
    DATABASE_URL: database.url,
    GATEHOUSE_ISSUER: `http://localhost:${port}`,
    // Quiet unless asked (TEST_LOG_LEVEL=debug npm test): the tests read answers, not logs.
    GATEHOUSE_LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    ...options.env,
  };
  const config = loadConfig(env);
  const running = await startGatehouse(config, { logDestination: options.logDestination });
  return {
    ...running,
    config,
    env,
    database,
    async close() {
      await running.stop();
      await database.drop();
    },
  };
}

export async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
    srv.once('error', reject);
  });
}

/**
 * Stops `gh` and starts a new Gatehouse on the same environment and database, as an operator
 * restarting the service does (`startGatehouse(loadConfig(env))`). The returned instance owns
 * the database: closing it drops the database; `gh` must not be closed again.
 */
export async function restartTestGatehouse(gh: TestGatehouse): Promise<TestGatehouse> {
  await gh.stop();
  // Let this process's own HTTP clients see the old server's connections close (a turn of the
  // event loop) before a new server takes the port; a pooled connection to the old one would
  // otherwise be reused and fail with "other side closed". Separate processes never race so.
  await new Promise((resolve) => setTimeout(resolve, 50));
  const config = loadConfig(gh.env);
  const running = await startGatehouse(config);
  return {
    ...running,
    config,
    env: gh.env,
    database: gh.database,
    async close() {
      await running.stop();
      await gh.database.drop();
    },
  };
}
