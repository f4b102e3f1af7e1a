import type { Knex } from 'knex';
import { z } from 'zod';
import type { Invalidations } from '../cache/invalidation.ts';
import { GatehouseError, NotFoundError, ValidationError } from '../errors.ts';
import { audienceProblem } from './audience.ts';

/**
 * Resource servers are data: the APIs (RFC 8707 resource indicators) a client may ask an access
 * token for. Each is known by its audience, names the API scopes (rows of the scopes table) its
 * tokens may carry, and says how its tokens look: opaque (checked at /introspect) or JWT
 * (RFC 9068, checked against /jwks), with their signing algorithm and lifetime.
 */

export const TOKEN_FORMATS = ['opaque', 'jwt'] as const;
export const RESOURCE_SIGNING_ALGS = ['ES256', 'RS256'] as const;
export type TokenFormat = (typeof TOKEN_FORMATS)[number];
export type ResourceSigningAlg = (typeof RESOURCE_SIGNING_ALGS)[number];

/** How long a process may use the list as it read it; a change anywhere drops it at once by message. */
export const RESOURCES_CACHE_MS = 30_000;
export const RESOURCES_TOPIC = 'resources';
/** An access token outliving a day is a credential nobody can take back (a JWT is not looked up). */
const MAX_TTL_SECONDS = 24 * 60 * 60;

export interface Resource {
  audience: string;
  name: string;
  scopes: string[];
  tokenFormat: TokenFormat;
  signingAlg: ResourceSigningAlg;
  /** Seconds; null: Gatehouse's access token lifetime. */
  accessTokenTtl: number | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface ResourceInput {
  audience?: unknown;
  name?: unknown;
  scopes?: unknown;
  tokenFormat?: unknown;
  signingAlg?: unknown;
  accessTokenTtl?: unknown;
}

/** Refused: clients still get the resource by default. 409, naming them. */
export class ResourceInUseError extends GatehouseError {
  override name = 'ResourceInUseError';
  constructor(audience: string, clients: Array<{ clientId: string; name: string }>) {
    const named = clients.map((c) => `${c.name} (${c.clientId})`).join(', ');
    super(
      409,
      'resource_in_use',
      `resource ${audience} is the default resource of ${clients.length === 1 ? 'client' : 'clients'} ${named}: change their default resource first`,
    );
  }
}

const row = z.object({
  audience: z.string(),
  name: z.string(),
  scopes: z.string().transform((s) => z.array(z.string()).parse(JSON.parse(s))),
  token_format: z.enum(TOKEN_FORMATS),
  signing_alg: z.enum(RESOURCE_SIGNING_ALGS),
  access_token_ttl: z.union([z.number(), z.null()]),
  created_at: z.union([z.number(), z.string()]).transform((v) => new Date(Number(v))),
  updated_at: z.union([z.number(), z.string()]).transform((v) => new Date(Number(v))),
});

const toResource = (r: unknown): Resource => {
  const p = row.parse(r);
  return {
    audience: p.audience,
    name: p.name,
    scopes: p.scopes,
    tokenFormat: p.token_format,
    signingAlg: p.signing_alg,
    accessTokenTtl: p.access_token_ttl,
    createdAt: p.created_at,
    updatedAt: p.updated_at,
  };
};

const words = (v: unknown): unknown => (typeof v === 'string' ? v.split(/\s+/).filter(Boolean) : v);

/** The settings of a resource as given, checked: every field at fault named at once. */
function checkSettings(input: ResourceInput, knownScopes: readonly string[], current?: Resource): Omit<Resource, 'createdAt' | 'updatedAt'> {
  const fields: Record<string, string> = {};
  const audience = current ? current.audience : typeof input.audience === 'string' ? input.audience.trim() : '';
  if (!current) {
    const problem = input.audience !== undefined && typeof input.audience !== 'string' ? 'must be a string' : audienceProblem(audience);
    if (problem) fields.audience = problem;
  }

  let name = current?.name ?? audience;
  if (input.name !== undefined) {
    if (typeof input.name !== 'string' || !input.name.trim()) fields.name = 'must be a non-empty string: the consent page shows it';
    else if (input.name.trim().length > 200) fields.name = 'must be at most 200 characters';
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses
    else if (/[\x00-\x1F\x7F]/.test(input.name)) fields.name = 'must be one line of text';
    else name = input.name.trim();
  }

  let scopes = current?.scopes ?? [];
  const given = words(input.scopes);
  if (given !== undefined) {
    if (!Array.isArray(given) || given.some((s) => typeof s !== 'string')) fields.scopes = 'must be a list of scope names';
    else {
      const list = [...new Set((given as string[]).flatMap((s) => s.split(/\s+/)).filter(Boolean))];
      const known = new Set(knownScopes);
      const unknown = list.filter((s) => !known.has(s));
      if (unknown.length) fields.scopes = `unknown scope ${unknown.join(', ')}: create it first (scopes create --name … --description …)`;
      else scopes = list;
    }
  }
  if (!fields.scopes && scopes.length === 0) fields.scopes = 'name at least one API scope the resource accepts';

  let tokenFormat: TokenFormat = current?.tokenFormat ?? 'opaque';
  if (input.tokenFormat !== undefined) {
    if (!TOKEN_FORMATS.includes(input.tokenFormat as TokenFormat)) fields.tokenFormat = `must be ${TOKEN_FORMATS.join(' or ')}`;
    else tokenFormat = input.tokenFormat as TokenFormat;
  }
  let signingAlg: ResourceSigningAlg = current?.signingAlg ?? 'ES256';
  if (input.signingAlg !== undefined) {
    if (!RESOURCE_SIGNING_ALGS.includes(input.signingAlg as ResourceSigningAlg)) fields.signingAlg = `must be ${RESOURCE_SIGNING_ALGS.join(' or ')}`;
    else signingAlg = input.signingAlg as ResourceSigningAlg;
  }
  let accessTokenTtl = current?.accessTokenTtl ?? null;
  if (input.accessTokenTtl !== undefined) {
    const ttl = typeof input.accessTokenTtl === 'string' && /^\d+$/.test(input.accessTokenTtl) ? Number(input.accessTokenTtl) : input.accessTokenTtl;
    if (ttl === null) accessTokenTtl = null;
    else if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TTL_SECONDS)
      fields.accessTokenTtl = `must be a whole number of seconds from 1 to ${MAX_TTL_SECONDS}`;
    else accessTokenTtl = ttl;
  }
  if (Object.keys(fields).length) throw new ValidationError(fields);
  return { audience, name, scopes, tokenFormat, signingAlg, accessTokenTtl };
}

interface Snapshot {
  byAudience: ReadonlyMap<string, Resource>;
  generation: number;
  until: number;
}

export class ResourcesService {
  /**
   * Every token request naming a resource reads it, so each process keeps the list: a change here
   * or in any other process (by message, topic 'resources') drops it, and the TTL bounds how long
   * a lost message can leave it stale.
   */
  private snapshot: Snapshot | undefined;
  private generation = 0;

  constructor(
    private readonly db: Knex,
    /** The API scopes there are now (the scopes service's list). */
    private readonly knownScopes: () => Promise<readonly string[]>,
    private readonly invalidations: Pick<Invalidations, 'publish' | 'subscribe'>,
    private readonly cacheMs = RESOURCES_CACHE_MS,
  ) {
    invalidations.subscribe(RESOURCES_TOPIC, () => {
      this.generation++;
    });
  }

  async list(): Promise<Resource[]> {
    return (await this.db('resources').select('*').orderBy('audience')).map(toResource);
  }

  async get(audience: string): Promise<Resource> {
    const found = await this.db('resources').where({ audience }).first();
    if (!found) throw new NotFoundError(`resource ${audience}`);
    return toResource(found);
  }

  /** The resource known by exactly this audience, from this process's copy; undefined when there is none. */
  async find(audience: string): Promise<Resource | undefined> {
    return (await this.current()).byAudience.get(audience);
  }

  async create(input: ResourceInput): Promise<Resource> {
    const s = checkSettings(input, await this.knownScopes());
    const now = Date.now();
    const inserted = await this.db('resources')
      .insert({ ...columns(s), created_at: now, updated_at: now })
      .onConflict('audience')
      .ignore()
      .returning('audience');
    if (inserted.length === 0) throw new ValidationError({ audience: `a resource with audience ${s.audience} already exists` });
    await this.changed();
    return this.get(s.audience);
  }

  /** Changes what is given; the audience is the resource's name for good (tokens carry it). */
  async update(audience: string, changes: ResourceInput): Promise<Resource> {
    if (changes.audience !== undefined && changes.audience !== audience) {
      throw new ValidationError({ audience: 'cannot change: tokens already issued carry it; create a new resource instead' });
    }
    const current = await this.get(audience);
    const s = checkSettings(changes, await this.knownScopes(), current);
    await this.db('resources')
      .where({ audience })
      .update({ ...columns(s), updated_at: Date.now() });
    await this.changed();
    return this.get(audience);
  }

  /** Deletes a resource no client gets by default; tokens issued for it stay valid until they expire. */
  async delete(audience: string): Promise<Resource> {
    // Writes first (the row to itself), then reads and checks (see ScopesService.delete: on
    // SQLite a transaction that reads before it writes fails at once under concurrent writes).
    const deleted = await this.db.transaction(async (trx) => {
      if (!(await trx('resources').where({ audience }).update({ audience }))) throw new NotFoundError(`resource ${audience}`);
      const found = await trx('resources').where({ audience }).first();
      const holders = (await trx('clients').select('client_id', 'name', 'settings').orderBy('name'))
        .filter((c) => (JSON.parse(String(c.settings)) as { defaultResource?: unknown }).defaultResource === audience)
        .map((c) => ({ clientId: String(c.client_id), name: String(c.name) }));
      if (holders.length) throw new ResourceInUseError(audience, holders);
      await trx('resources').where({ audience }).delete();
      return toResource(found);
    });
    await this.changed();
    return deleted;
  }

  private async changed(): Promise<void> {
    this.generation++;
    await this.invalidations.publish(RESOURCES_TOPIC);
  }

  private async current(): Promise<Snapshot> {
    const s = this.snapshot;
    if (s && s.generation === this.generation && s.until > Date.now()) return s;
    const generation = this.generation;
    try {
      const byAudience = new Map((await this.list()).map((r) => [r.audience, r]));
      const fresh = { byAudience, generation, until: Date.now() + this.cacheMs };
      // A read a change overtook answers its caller but is not kept.
      if (generation === this.generation) this.snapshot = fresh;
      return fresh;
    } catch (err) {
      // The database is briefly unreachable: the last list read is still the best answer.
      if (!s) throw err;
      return s;
    }
  }
}

function columns(s: Omit<Resource, 'createdAt' | 'updatedAt'>) {
  return {
    audience: s.audience,
    name: s.name,
    scopes: JSON.stringify(s.scopes),
    token_format: s.tokenFormat,
    signing_alg: s.signingAlg,
    access_token_ttl: s.accessTokenTtl,
  };
}
