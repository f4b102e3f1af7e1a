import type { Knex } from 'knex';
import { z } from 'zod';
import { NotFoundError, ValidationError } from '../errors.ts';
import { KeyedTokens } from '../settings/keyed-tokens.ts';

/** API keys let a client's backend reach /userdata: `ghk_<id>_<secret>` (see KeyedTokens). */
export const API_KEY_SCOPES = ['userdata:read', 'userdata:write'] as const;
export type ApiKeyScope = (typeof API_KEY_SCOPES)[number];
export const API_KEY_PREFIX = 'ghk_';

// Recording every use would turn each read into a write; a minute's precision is enough.
const LAST_USED_PRECISION_MS = 60_000;

export interface ApiKey {
  id: string;
  clientId: string;
  name: string;
  scopes: ApiKeyScope[];
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

const epoch = z.union([z.number(), z.string()]).transform((v) => new Date(Number(v)));
const row = z.object({
  id: z.string(),
  client_id: z.string(),
  secret_hash: z.string(),
  scopes: z.string().transform((s) => z.array(z.enum(API_KEY_SCOPES)).parse(JSON.parse(s))),
  name: z.string(),
  created_at: epoch,
  last_used_at: epoch.nullable(),
  revoked_at: epoch.nullable(),
});

const toApiKey = (r: z.output<typeof row>): ApiKey => ({
  id: r.id,
  clientId: r.client_id,
  name: r.name,
  scopes: r.scopes,
  createdAt: r.created_at,
  lastUsedAt: r.last_used_at,
  revokedAt: r.revoked_at,
});

export class ApiKeysService {
  private readonly tokens: KeyedTokens;

  constructor(
    private readonly db: Knex,
    secretKey: Buffer,
    private readonly clientExists: (clientId: string) => Promise<boolean>,
  ) {
    this.tokens = new KeyedTokens(API_KEY_PREFIX, secretKey);
  }

  async create(clientId: string, scopes: unknown[], name = ''): Promise<{ key: string; apiKey: ApiKey }> {
    const fields: Record<string, string> = {};
    if (!(await this.clientExists(clientId))) throw new NotFoundError(`client ${clientId}`);
    const unique = [...new Set(scopes)];
    if (unique.length === 0) fields.scope = `choose at least one of ${API_KEY_SCOPES.join(', ')}`;
    const unknown = unique.filter((s) => !API_KEY_SCOPES.includes(s as ApiKeyScope));
    if (unknown.length) fields.scope = `unknown scope ${unknown.join(', ')}; API keys take ${API_KEY_SCOPES.join(', ')}`;
    if (typeof name !== 'string' || name.length > 200) fields.name = 'must be at most 200 characters';
    if (Object.keys(fields).length) throw new ValidationError(fields);

    const { id, token, secretHash } = this.tokens.issue();
    await this.db('api_keys').insert({
      id,
      client_id: clientId,
      secret_hash: secretHash,
      scopes: JSON.stringify(API_KEY_SCOPES.filter((s) => unique.includes(s))),
      name: name.trim(),
      created_at: Date.now(),
      last_used_at: null,
      revoked_at: null,
    });
    return { key: token, apiKey: await this.get(id) };
  }

  async get(id: string): Promise<ApiKey> {
    const r = await this.db('api_keys').where({ id }).first();
    if (!r) throw new NotFoundError(`API key ${id}`);
    return toApiKey(row.parse(r));
  }

  async list(clientId?: string): Promise<ApiKey[]> {
    const q = this.db('api_keys').select('*').orderBy('created_at', 'asc');
    if (clientId) q.where({ client_id: clientId });
    return (await q).map((r) => toApiKey(row.parse(r)));
  }

  async revoke(id: string): Promise<ApiKey> {
    const changed = await this.db('api_keys').where({ id }).whereNull('revoked_at').update({ revoked_at: Date.now() });
    if (!changed) await this.get(id); // 404 for an unknown id; revoking twice is fine
    return this.get(id);
  }

  /** The live key a presented string stands for, or undefined (unknown, malformed or revoked). */
  async verify(presented: string): Promise<ApiKey | undefined> {
    const named = this.tokens.parse(presented);
    if (!named) return undefined;
    const r = await this.db('api_keys').where({ id: named.id }).first();
    if (!r) return undefined;
    const parsed = row.parse(r);
    if (!this.tokens.matches(parsed.secret_hash, named.secret) || parsed.revoked_at) return undefined;
    // A disabled client's keys stop working with it.
    const client = await this.db('clients').first('disabled').where({ client_id: parsed.client_id });
    if (!client || client.disabled) return undefined;
    const now = Date.now();
    if (!parsed.last_used_at || now - parsed.last_used_at.getTime() > LAST_USED_PRECISION_MS) {
      await this.db('api_keys').where({ id: named.id }).update({ last_used_at: now });
      parsed.last_used_at = new Date(now);
    }
    return toApiKey(parsed);
  }
}
