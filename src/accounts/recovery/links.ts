import { createHash, randomBytes } from 'node:crypto';
import type { Knex } from 'knex';

/** What a mailed link is for. */
export type LinkPurpose = 'reset' | 'verify';

/** A link that was valid when it was used: whose it is and (verification) the address it confirms. */
export interface UsedLink {
  userId: string;
  email: string | null;
}

/** The SHA-256 of a token, as stored: the database never holds a link that works. */
const hashOf = (token: string) => createHash('sha256').update(token, 'utf8').digest('hex');

/** 256 random bits, URL-safe: what a link carries. */
const TOKEN = /^[\w-]{43}$/;

/**
 * The single-use links mailed to people (account_links): issued with a lifetime, looked at
 * without being used (the page that asks for a new password), and used once.
 */
export class AccountLinks {
  constructor(
    private readonly db: Knex,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /** A new link's token for `userId`. Older unused links of the same purpose stop working: only the newest mail counts. */
  async issue(purpose: LinkPurpose, userId: string, ttlMs: number, email?: string): Promise<{ token: string; expiresAt: Date }> {
    const token = randomBytes(32).toString('base64url');
    const now = this.now();
    await this.db.transaction(async (trx) => {
      await trx('account_links').where({ user_id: userId, purpose }).whereNull('used_at').update({ used_at: now });
      await trx('account_links').insert({
        token_hash: hashOf(token),
        purpose,
        user_id: userId,
        email: email ?? null,
        expires_at: now + ttlMs,
        used_at: null,
        created_at: now,
      });
    });
    return { token, expiresAt: new Date(now + ttlMs) };
  }

  /** The link's owner while it is unused and unexpired, else undefined. Uses nothing. */
  async peek(purpose: LinkPurpose, token: string): Promise<UsedLink | undefined> {
    if (!TOKEN.test(token)) return undefined;
    const row = await this.db('account_links')
      .where({ token_hash: hashOf(token), purpose })
      .whereNull('used_at')
      .andWhere('expires_at', '>', this.now())
      .first('user_id', 'email');
    return row ? { userId: String(row.user_id), email: row.email === null ? null : String(row.email) } : undefined;
  }

  /**
   * Uses the link: one conditional update, so of two requests racing with one link only one
   * gets it. Undefined for an unknown, expired or already used link.
   */
  async use(purpose: LinkPurpose, token: string): Promise<UsedLink | undefined> {
    const link = await this.peek(purpose, token);
    if (!link) return undefined;
    const now = this.now();
    const changed = await this.db('account_links')
      .where({ token_hash: hashOf(token), purpose })
      .whereNull('used_at')
      .andWhere('expires_at', '>', now)
      .update({ used_at: now });
    return changed === 1 ? link : undefined;
  }

  /** Deletes links that expired or were used a day ago: nothing they say still holds. */
  async sweep(): Promise<number> {
    const dayAgo = this.now() - 24 * 60 * 60_000;
    return this.db('account_links').where('expires_at', '<', dayAgo).orWhere('used_at', '<', dayAgo).delete();
  }
}
