import type { Knex } from 'knex';
import { NotFoundError, ValidationError } from '../errors.ts';
import { KeyedTokens } from '../settings/keyed-tokens.ts';

/** Admin API tokens (`gha_<id>_<secret>`), for scripts that manage Gatehouse. */
export interface AdminToken {
  id: string;
  name: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

const toToken = (r: Record<string, unknown>): AdminToken => ({
  id: String(r.id),
  name: String(r.name),
  createdAt: new Date(Number(r.created_at)),
  lastUsedAt: r.last_used_at == null ? null : new Date(Number(r.last_used_at)),
  revokedAt: r.revoked_at == null ? null : new Date(Number(r.revoked_at)),
});

export class AdminTokensService {
  private readonly tokens: KeyedTokens;

  constructor(
    private readonly db: Knex,
    hmacKey: Buffer,
  ) {
    this.tokens = new KeyedTokens('gha_', hmacKey);
  }

  async create(name: unknown): Promise<{ token: string; adminToken: AdminToken }> {
    if (typeof name !== 'string' || !name.trim()) throw new ValidationError({ name: 'is required' });
    if (name.length > 200) throw new ValidationError({ name: 'must be at most 200 characters' });
    const { id, token, secretHash } = this.tokens.issue();
    await this.db('admin_tokens').insert({ id, name: name.trim(), secret_hash: secretHash, created_at: Date.now(), last_used_at: null, revoked_at: null });
    return { token, adminToken: await this.get(id) };
  }

  async get(id: string): Promise<AdminToken> {
    const r = await this.db('admin_tokens').where({ id }).first();
    if (!r) throw new NotFoundError(`admin token ${id}`);
    return toToken(r);
  }

  async list(): Promise<AdminToken[]> {
    return (await this.db('admin_tokens').select('*').orderBy('created_at')).map(toToken);
  }

  async revoke(id: string): Promise<AdminToken> {
    await this.get(id);
    await this.db('admin_tokens').where({ id }).whereNull('revoked_at').update({ revoked_at: Date.now() });
    return this.get(id);
  }

  async verify(presented: string): Promise<AdminToken | undefined> {
    const named = this.tokens.parse(presented);
    if (!named) return undefined;
    const r = await this.db('admin_tokens').where({ id: named.id }).first();
    if (!r || r.revoked_at != null || !this.tokens.matches(String(r.secret_hash), named.secret)) return undefined;
    await this.db('admin_tokens').where({ id: named.id }).update({ last_used_at: Date.now() });
    return toToken(r);
  }
}
