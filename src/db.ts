import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import knex, { type Knex } from 'knex';
import type { DatabaseConfig } from './config.ts';
import { createQuietLogger, type Logger } from './observability/logger.ts';
import { redactCredentials } from './observability/redact.ts';
import { tightenMode } from './settings/at-rest.ts';
import { CachedStatementsSqliteClient } from './stores/sqlite-knex-client.ts';

const migrationsDirectory = fileURLToPath(new URL('../migrations', import.meta.url));
// This module runs as TypeScript (tests, CLI, `npm run dev`) or compiled to dist/ (`npm start`).
const moduleExtension = path.extname(fileURLToPath(import.meta.url));

/**
 * The migrations in migrations/, as .ts sources or as the .js compiled from them. Each is
 * recorded under its source name (…_initial.ts) whichever form ran it, so a database migrated by
 * one form is current for the other.
 */
class MigrationFiles implements Knex.MigrationSource<string> {
  async getMigrations(): Promise<string[]> {
    return fs
      .readdirSync(migrationsDirectory)
      .filter((file) => file.endsWith(moduleExtension) && !file.endsWith('.d.ts'))
      .map((file) => path.basename(file, moduleExtension))
      .sort();
  }

  getMigrationName(migration: string): string {
    return `${migration}.ts`;
  }

  async getMigration(migration: string): Promise<Knex.Migration> {
    return (await import(pathToFileURL(path.join(migrationsDirectory, `${migration}${moduleExtension}`)).href)) as Knex.Migration;
  }
}

// Knex's own warnings (a dropped connection, a failed acquire) as one log line each, without
// stack traces and without the password of the database URL, should a driver quote it; requests
// report the outage themselves with a 503.
const knexLog = (log: Logger, database: DatabaseConfig): Knex.Config['log'] => {
  const describe = (m: unknown) =>
    redactCredentials(m instanceof Error ? m.message : String(m).split('\n')[0]!, [database.client === 'pg' ? database.connectionString : undefined]);
  return {
    warn: (message: unknown) => log.warn({ detail: describe(message) }, 'database'),
    error: (message: unknown) => log.error({ detail: describe(message) }, 'database'),
    deprecate: () => undefined,
    debug: () => undefined,
  };
};

export function knexConfig(database: DatabaseConfig, logger: Logger = createQuietLogger()): Knex.Config {
  const log = knexLog(logger, database);
  const migrations: Knex.MigratorConfig = {
    migrationSource: new MigrationFiles(),
    tableName: 'knex_migrations',
  };
  if (database.client === 'pg') {
    return {
      client: 'pg',
      connection: database.connectionString,
      log,
      pool: { min: 0, max: 10 },
      // Fail fast when PostgreSQL is down, so requests answer 503 instead of waiting a minute.
      acquireConnectionTimeout: 3000,
      migrations,
    };
  }
  return {
    // Knex's better-sqlite3 dialect, with each statement prepared once per connection.
    client: CachedStatementsSqliteClient as unknown as typeof Knex.Client,
    log,
    connection: { filename: database.filename },
    useNullAsDefault: true,
    migrations,
    pool: {
      afterCreate(conn: { pragma(sql: string): unknown }, done: (err: Error | null, conn: unknown) => void) {
        // WAL lets readers run beside the writer. With synchronous=NORMAL a commit is in the
        // WAL before it is acknowledged, so it survives a crash or kill -9 of Gatehouse; only
        // an OS crash or power cut can lose the last commits (FULL closes that too, at an
        // fsync per write, which blocks the event loop: about 10x fewer tokens per second).
        conn.pragma('journal_mode = WAL');
        conn.pragma(`synchronous = ${database.synchronous.toUpperCase()}`);
        conn.pragma('foreign_keys = ON');
        conn.pragma('busy_timeout = 5000');
        // The file is created by this connection: make it (and the WAL files journal_mode just
        // made) readable by Gatehouse's user only.
        tightenDatabaseFiles(database.filename);
        done(null, conn);
      },
    },
  };
}

export function openDatabase(database: DatabaseConfig, log?: Logger): Knex {
  if (database.client === 'sqlite') {
    // The directory holds the database and its key file: Gatehouse's user only, also when an
    // older Gatehouse created it 0755.
    fs.mkdirSync(path.dirname(database.filename), { recursive: true, mode: 0o700 });
    tightenMode(path.dirname(database.filename), 0o700);
    tightenDatabaseFiles(database.filename);
  }
  return knex(knexConfig(database, log));
}

/** The SQLite file and its -wal and -shm files at 0600 at most (those that exist). */
export function tightenDatabaseFiles(filename: string): void {
  for (const file of [filename, `${filename}-wal`, `${filename}-shm`]) tightenMode(file, 0o600);
}

/** Applies the migrations not applied yet; returns their names (…_initial.ts), oldest first. */
export async function migrateToLatest(db: Knex): Promise<string[]> {
  const [, applied] = (await db.migrate.latest()) as [number, string[]];
  return applied;
}
