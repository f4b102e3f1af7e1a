import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';
import type { Knex } from 'knex';
import { SqliteGroupCommit } from './sqlite-group-commit.ts';

/** What a statement answered: the rows it returned (a select, or `… returning`), and the rows it changed. */
export interface PreparedResult {
  rows: Array<Record<string, unknown>>;
  changes: number;
}

/** Fixed SQL with `?` placeholders, run as a statement prepared once per connection. */
export type PreparedQuery = (text: string, params: readonly unknown[]) => Promise<PreparedResult>;

/**
 * Runs fixed SQL through Knex's own pool (so it waits for a transaction holding the connection,
 * as any Knex query would) but prepares each text once per connection, instead of once per call
 * as `knex.raw` does: on SQLite, preparing the counter upserts of every client authentication
 * cost more than running them (bench/NOTES.md). PostgreSQL gets named prepared statements
 * (parsed and planned once per connection by the server).
 *
 * For statements on hot paths whose text is one of a few fixed strings; values only as
 * parameters, never in the text (each text is kept for the life of the connection).
 */
export function preparedQueries(db: Knex): PreparedQuery {
  const client = db.client as KnexClient;
  if (client.config.client === 'pg') return withConnection(client, pgQuery);
  return groupCommitted(client);
}

interface KnexClient {
  config: { client: unknown };
  acquireConnection(): Promise<unknown>;
  releaseConnection(connection: unknown): Promise<unknown>;
}

function withConnection<C>(
  client: KnexClient,
  run: (connection: C, text: string, params: unknown[]) => PreparedResult | Promise<PreparedResult>,
): PreparedQuery {
  return async (text, params) => {
    const connection = (await client.acquireConnection()) as C;
    try {
      return await run(connection, text, params.map(bindable));
    } finally {
      await client.releaseConnection(connection);
    }
  };
}

function groupCommitted(client: KnexClient): PreparedQuery {
  const group = new SqliteGroupCommit(async (use) => {
    const connection = (await client.acquireConnection()) as Database.Database;
    try {
      use(connection);
    } finally {
      await client.releaseConnection(connection);
    }
  });
  return (text, params) => {
    const bound = params.map(bindable);
    return group.run((connection) => sqliteQuery(connection, text, bound));
  };
}

// As Knex binds them: better-sqlite3 takes neither booleans nor Dates.
const bindable = (value: unknown) => (typeof value === 'boolean' ? Number(value) : value instanceof Date ? value.valueOf() : value);

const sqliteStatements = new WeakMap<Database.Database, Map<string, Database.Statement>>();

function sqliteQuery(connection: Database.Database, text: string, params: unknown[]): PreparedResult {
  let statements = sqliteStatements.get(connection);
  if (!statements) {
    statements = new Map();
    sqliteStatements.set(connection, statements);
  }
  let statement = statements.get(text);
  if (!statement) {
    statement = connection.prepare(fixedText(text));
    statements.set(text, statement);
  }
  if (statement.reader) return { rows: statement.all(...params) as Array<Record<string, unknown>>, changes: 0 };
  return { rows: [], changes: statement.run(...params).changes };
}

/** Each text is kept per connection (and names the statement on PostgreSQL): values belong in parameters. */
function fixedText(text: string): string {
  if (text.includes('??') || text.includes("'")) throw new Error('prepared SQL takes values as parameters only, never in its text');
  return text;
}

interface PgConnection {
  query(config: { name: string; text: string; values: unknown[] }): Promise<{ rows: Array<Record<string, unknown>>; rowCount: number | null }>;
}

const pgTexts = new Map<string, { name: string; text: string }>();

async function pgQuery(connection: PgConnection, text: string, params: unknown[]): Promise<PreparedResult> {
  let named = pgTexts.get(text);
  if (!named) {
    let n = 0;
    // The name is the text's digest: the same on every connection, and never two texts under one name.
    named = { name: `gh_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`, text: fixedText(text).replace(/\?/g, () => `$${++n}`) };
    pgTexts.set(text, named);
  }
  const result = await connection.query({ name: named.name, text: named.text, values: params });
  return { rows: result.rows, changes: result.rowCount ?? 0 };
}
