import { createRequire } from 'node:module';
import type Database from 'better-sqlite3';
import type { Knex } from 'knex';

const require = createRequire(import.meta.url);

interface QueryObject {
  sql?: string;
  bindings?: unknown[];
  options?: { safeIntegers?: unknown };
  response?: unknown;
  context?: { lastID: unknown; changes: number };
}

interface BetterSqlite3Dialect {
  _query(connection: Database.Database, obj: QueryObject): Promise<QueryObject>;
  _formatBindings(bindings: unknown[] | undefined): unknown[];
}

// Knex's own better-sqlite3 dialect (the package has no "exports" map, so the path resolves).
const BetterSqlite3Client = require('knex/lib/dialects/better-sqlite3/index.js') as new (config: Knex.Config) => BetterSqlite3Dialect;

/** Statements kept per connection; past this, the least recently used goes (texts built with variable `in (…)` lists). */
export const MAX_CACHED_STATEMENTS = 256;

const cached = new WeakMap<Database.Database, Map<string, Database.Statement>>();

/**
 * Knex's better-sqlite3 dialect, except that each SQL text is prepared once per connection and
 * then reused: the dialect prepares every query anew, and on Gatehouse's hot paths (client and
 * account lookups, API keys, userdata, grants) SQLite's parse and plan cost more than the query
 * (bench/NOTES.md). What Knex does with the answer is unchanged: `_query` answers as the
 * dialect's own does (rows for a statement that returns rows, else lastID and changes).
 * Queries that ask for their own integer mode are prepared for themselves, as before.
 */
export class CachedStatementsSqliteClient extends BetterSqlite3Client {
  override async _query(connection: Database.Database, obj: QueryObject): Promise<QueryObject> {
    if (!obj.sql || obj.options?.safeIntegers !== undefined || !connection) return super._query(connection, obj);
    const statement = statementFor(connection, obj.sql);
    const bindings = this._formatBindings(obj.bindings);
    if (statement.reader) {
      obj.response = statement.all(bindings);
      return obj;
    }
    const response = statement.run(bindings);
    obj.response = response;
    obj.context = { lastID: response.lastInsertRowid, changes: response.changes };
    return obj;
  }
}

function statementFor(connection: Database.Database, sql: string): Database.Statement {
  let statements = cached.get(connection);
  if (!statements) {
    statements = new Map();
    cached.set(connection, statements);
  }
  let statement = statements.get(sql);
  if (statement) {
    // Most recently used last: a Map keeps insertion order.
    statements.delete(sql);
  } else {
    statement = connection.prepare(sql);
    if (statements.size >= MAX_CACHED_STATEMENTS) statements.delete(statements.keys().next().value!);
  }
  statements.set(sql, statement);
  return statement;
}
