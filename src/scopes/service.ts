import type { Knex } from 'knex';
import type { Invalidations } from '../cache/invalidation.ts';
import { GatehouseError, NotFoundError, ValidationError } from '../errors.ts';
import { isBuiltInScope, scopeNameProblem } from './names.ts';

/**
 * API scopes are data: rows of the scopes table, created and deleted by operators (CLI, admin
 * pages, admin API) and by the DOT importer; GATEHOUSE_API_SCOPES only seeds them.
 */

/** How long a process may use the list as it read it; a change anywhere drops it at once by message. */
export const SCOPES_CACHE_MS = 30_000;
/** After a failed read, how long the last list is served before the database is asked again. */
const RETRY_AFTER_FAILURE_MS = 1_000;
export const INVALIDATION_TOPIC = 'scopes';
const DESCRIPTION_MAX = 200;

export interface Scope {
  name: string;
  description: string;
  createdAt: Date;
}

/** Who holds a scope: a client whose registered or default scope names it. */
export interface ScopeHolder {
  clientId: string;
  name: string;
}

/** Refused: clients still hold the scope. 409, naming them, so the operator knows what to change. */
export class ScopeInUseError extends GatehouseError {
  override name = 'ScopeInUseError';
  constructor(
    readonly scope: string,
    readonly clients: ScopeHolder[],
  ) {
    const named = clients.map((c) => `${c.name} (${c.clientId})`).join(', ');
    const one = clients.length === 1;
    super(409, 'scope_in_use', `scope ${scope} is used by ${one ? 'client' : 'clients'} ${named}: remove it from ${one ? 'its' : 'their'} scope first`);
  }
}

/** The words a seeded scope starts with (an operator creating one writes their own). */
const SEED_WORDS: Record<string, string> = { read: 'Read data on your behalf', write: 'Change data on your behalf' };
// Object.hasOwn: a scope may be named "constructor" or "toString", which a plain lookup finds on the prototype.
export const seedDescription = (name: string) => (Object.hasOwn(SEED_WORDS, name) ? SEED_WORDS[name] : undefined) ?? `Use the "${name}" permission on your behalf`;

interface Snapshot {
  names: readonly string[];
  descriptions: ReadonlyMap<string, string>;
  generation: number;
  until: number;
}

const toScope = (row: { name: string; description: string; created_at: number | string }): Scope => ({
  name: row.name,
  description: row.description,
  createdAt: new Date(Number(row.created_at)),
});

/** A client's scopes as its settings column stores them (scope, and a default scope when set). */
function scopesHeldBy(settings: string): string[] {
  const parsed = JSON.parse(settings) as Record<string, unknown>;
  const words = (v: unknown) => (Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : typeof v === 'string' ? v.split(/\s+/) : []);
  return [...words(parsed.scope), ...words(parsed.defaultScope)];
}

export class ScopesService {
  /**
   * Every client check, consent page and the provider's configuration read the list, so each
   * process keeps it: a change here or in any other process (by message) drops it, and
   * SCOPES_CACHE_MS bounds how long a lost message can leave it stale.
   */
  private snapshot: Snapshot | undefined;
  /** Bumped by every change: a copy read before the latest change is not served. */
  private generation = 0;
  private reading: { generation: number; promise: Promise<Snapshot> } | undefined;

  constructor(
    private readonly db: Knex,
    private readonly invalidations: Pick<Invalidations, 'publish' | 'subscribe'>,
    private readonly cacheMs = SCOPES_CACHE_MS,
  ) {
    invalidations.subscribe(INVALIDATION_TOPIC, () => this.forget());
  }

  /** The API scopes, by name (never the built-in ones), as the database has them now. */
  async list(): Promise<Scope[]> {
    return (await this.db('scopes').select('name', 'description', 'created_at').orderBy('name')).map(toScope);
  }

  /** The API scope names: what clients may hold beyond the built-in scopes. The same array while unchanged. */
  async names(): Promise<readonly string[]> {
    return (await this.current()).names;
  }

  /** The stored description of each API scope, for the consent page. */
  async descriptions(): Promise<ReadonlyMap<string, string>> {
    return (await this.current()).descriptions;
  }

  async get(name: string): Promise<Scope> {
    const row = await this.db('scopes').where({ name }).first();
    if (!row) throw new NotFoundError(`scope ${name}`);
    return toScope(row);
  }

  async create(input: { name?: unknown; description?: unknown }): Promise<Scope> {
    const fields: Record<string, string> = {};
    const name = typeof input.name === 'string' ? input.name.trim() : '';
    const description = typeof input.description === 'string' ? input.description.trim() : '';
    const nameProblem = input.name !== undefined && typeof input.name !== 'string' ? 'must be a string' : scopeNameProblem(name);
    if (nameProblem) fields.name = nameProblem;
    if (input.description !== undefined && typeof input.description !== 'string') fields.description = 'must be a string';
    else if (!description) fields.description = 'is required: the consent page shows it to people asked to allow the scope';
    else if (description.length > DESCRIPTION_MAX) fields.description = `must be at most ${DESCRIPTION_MAX} characters`;
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses
    else if (/[\x00-\x1F\x7F]/.test(description)) fields.description = 'must be one line of text';
    if (Object.keys(fields).length) throw new ValidationError(fields);

    const inserted = await this.db('scopes').insert({ name, description, created_at: Date.now() }).onConflict('name').ignore().returning('name');
    if (inserted.length === 0) throw new ValidationError({ name: `scope ${name} already exists` });
    await this.changed();
    return this.get(name);
  }

  /** Deletes an API scope no client holds; refused with the clients named while any does. */
  async delete(name: string): Promise<Scope> {
    if (isBuiltInScope(name)) throw new GatehouseError(400, 'invalid_request', `${name} is a built-in scope and cannot be deleted`);
    // Writes first (the row to itself), then reads and checks: on SQLite a transaction that
    // reads before it writes fails at once ("database is locked"; busy_timeout does not apply)
    // when another process wrote in between, while one that starts with a write waits for the
    // lock and then reads what is current. On PostgreSQL the same write locks the row.
    const deleted = await this.db.transaction(async (trx) => {
      if (!(await trx('scopes').where({ name }).update({ name }))) throw new NotFoundError(`scope ${name}`);
      const row = await trx('scopes').where({ name }).first();
      const holders: ScopeHolder[] = (await trx('clients').select('client_id', 'name', 'settings').orderBy('name'))
        .filter((c) => scopesHeldBy(String(c.settings)).includes(name))
        .map((c) => ({ clientId: String(c.client_id), name: String(c.name) }));
      if (holders.length) throw new ScopeInUseError(name, holders);
      // A resource server's tokens carry its scopes: deleting one would leave it naming a ghost.
      const resources = (await trx('resources').select('audience', 'scopes').orderBy('audience'))
        .filter((r) => (JSON.parse(String(r.scopes)) as string[]).includes(name))
        .map((r) => String(r.audience));
      if (resources.length) {
        throw new GatehouseError(409, 'scope_in_use', `scope ${name} is accepted by resource ${resources.join(', ')}: remove it from the resource's scopes first`);
      }
      await trx('scopes').where({ name }).delete();
      return toScope(row);
    });
    await this.changed();
    return deleted;
  }

  /**
   * Creates those of `names` that do not exist yet, in `db` (the importer passes its
   * transaction); returns the ones it created. Tell every process with `announceChange` once
   * the transaction is committed.
   */
  async ensure(names: readonly string[], description: (name: string) => string, db: Knex = this.db): Promise<string[]> {
    const created: string[] = [];
    const now = Date.now();
    for (const name of [...new Set(names)]) {
      if (scopeNameProblem(name)) continue;
      const inserted = await db('scopes').insert({ name, description: description(name), created_at: now }).onConflict('name').ignore().returning('name');
      if (inserted.length) created.push(name);
    }
    if (db === this.db && created.length) await this.changed();
    return created;
  }

  /**
   * GATEHOUSE_API_SCOPES at start-up: each name is seeded once. A name seeded before is left
   * alone, so a seeded scope an operator deleted stays deleted; existing scopes count as seeded.
   */
  async seed(names: readonly string[]): Promise<string[]> {
    const seeded = new Set((await this.db('scope_seeds').select('name')).map((r) => String(r.name)));
    const fresh = names.filter((n) => !seeded.has(n) && !scopeNameProblem(n));
    if (fresh.length === 0) return [];
    const created = await this.db.transaction(async (trx) => {
      const made = await this.ensure(fresh, seedDescription, trx);
      await trx('scope_seeds').insert(fresh.map((name) => ({ name, seeded_at: Date.now() }))).onConflict('name').ignore();
      return made;
    });
    if (created.length) await this.changed();
    return created;
  }

  /** Tells every process (this one included) that the list changed. */
  async announceChange(): Promise<void> {
    await this.changed();
  }

  /** Drops this process's copy of the list: the next read asks the database. */
  forget(): void {
    this.generation++;
  }

  private async changed(): Promise<void> {
    this.forget();
    await this.invalidations.publish(INVALIDATION_TOPIC);
  }

  private async current(): Promise<Snapshot> {
    const s = this.snapshot;
    if (s && s.generation === this.generation && s.until > Date.now()) return s;
    // One read at a time per generation: a burst of requests after a change asks the database once.
    if (this.reading?.generation !== this.generation) {
      const generation = this.generation;
      const promise = this.read(generation);
      this.reading = { generation, promise };
      void promise.finally(() => {
        if (this.reading?.promise === promise) this.reading = undefined;
      }).catch(() => undefined);
    }
    return this.reading!.promise;
  }

  private async read(generation: number): Promise<Snapshot> {
    const previous = this.snapshot;
    try {
      const scopes = await this.list();
      const names = scopes.map((s) => s.name);
      const snapshot: Snapshot = {
        // Unchanged, the same array: the provider compares it to know whether to rebuild.
        names: previous && previous.names.join(' ') === names.join(' ') ? previous.names : names,
        descriptions: new Map(scopes.map((s) => [s.name, s.description])),
        generation,
        until: Date.now() + this.cacheMs,
      };
      // A change announced while this read was under way may not be in it: such a read answers
      // its callers but is not kept (its generation is behind).
      if (!this.snapshot || this.snapshot.generation <= generation) this.snapshot = snapshot;
      return snapshot;
    } catch (err) {
      // The database is briefly unreachable: the last list read is still the best answer.
      if (!previous) throw err;
      this.snapshot = { ...previous, generation: this.generation, until: Date.now() + RETRY_AFTER_FAILURE_MS };
      return this.snapshot;
    }
  }
}
