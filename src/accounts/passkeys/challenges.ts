import { createHash, randomBytes } from 'node:crypto';
import type { Knex } from 'knex';

export type ChallengePurpose = 'register' | 'sign-in';

/** How long a browser has to use a challenge: a ceremony takes seconds, a page may sit a while. */
export const CHALLENGE_TTL_MS = 5 * 60_000;

const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');

/**
 * WebAuthn challenges, each used at most once and only by what it was issued to. The table holds
 * their SHA-256 (a copy of it answers no ceremony) and what they are bound to, itself hashed:
 * the account-page session's CSRF token for a registration, the interaction for a sign-in.
 */
export class PasskeyChallenges {
  constructor(
    private readonly db: Knex,
    private readonly now: () => number = Date.now,
  ) {}

  async issue(purpose: ChallengePurpose, boundTo: string): Promise<string> {
    const now = this.now();
    await this.db('passkey_challenges').where('expires_at', '<=', now).delete();
    const challenge = randomBytes(32).toString('base64url');
    await this.db('passkey_challenges').insert({ id: sha256(challenge), purpose, bound_to: sha256(boundTo), expires_at: now + CHALLENGE_TTL_MS });
    return challenge;
  }

  /**
   * True once for a live challenge issued for this purpose to this holder. The row is deleted
   * by the same statement that checks it, so two posts of one answer cannot both succeed.
   */
  async consume(purpose: ChallengePurpose, boundTo: string, challenge: string): Promise<boolean> {
    const deleted = await this.db('passkey_challenges')
      .where({ id: sha256(challenge), purpose, bound_to: sha256(boundTo) })
      .andWhere('expires_at', '>', this.now())
      .delete();
    return deleted === 1;
  }
}
