import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { isDjangoHash, verifyDjangoHash } from '../accounts/django-hashers.ts';

/**
 * Client secrets are 256 random bits, so a keyed SHA-256 is enough to make a stolen database
 * useless for authenticating as a client, and it verifies in microseconds. A slow password
 * hash here would cap token throughput for no gain: there is nothing to brute-force.
 *
 * Stored forms, by prefix:
 * - `hmac-sha256$…`   ours.
 * - `pbkdf2_sha256$…` a hashed secret imported from django-oauth-toolkit 2+: verified as
 *                     Django does, then replaced by ours after the first success.
 * - `plain$…`         only for clients that sign ID tokens with HS256 (imported from DOT):
 *                     the HMAC key must be the secret itself, so it cannot be hashed.
 */
const HMAC_SCHEME = 'hmac-sha256$';
const PLAIN_SCHEME = 'plain$';

export const generateClientSecret = () => randomBytes(32).toString('base64url');
/**
 * base64url, but never starting with "-": operators pass client ids to the CLI as arguments,
 * and `clients show -Ab…` reads as an unknown option -A.
 */
export function generateClientId(): string {
  let id: string;
  do id = randomBytes(18).toString('base64url');
  while (id.startsWith('-'));
  return id;
}

export function hashClientSecret(secret: string, key: Buffer): string {
  return `${HMAC_SCHEME}${createHmac('sha256', key).update(secret, 'utf8').digest('base64url')}`;
}

export function storePlainClientSecret(secret: string): string {
  return `${PLAIN_SCHEME}${secret}`;
}

/** The secret itself, for the clients that keep it (HS256); undefined for hashed ones. */
export function plainClientSecret(stored: string): string | undefined {
  return stored.startsWith(PLAIN_SCHEME) ? stored.slice(PLAIN_SCHEME.length) : undefined;
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

export interface SecretCheck {
  matches: boolean;
  /** The stored form is one we replace with ours once the secret is known to be right. */
  shouldRehash: boolean;
}

export async function checkClientSecret(stored: string, presented: string, key: Buffer): Promise<SecretCheck> {
  if (stored.startsWith(HMAC_SCHEME)) {
    const expected = Buffer.from(stored.slice(HMAC_SCHEME.length), 'base64url');
    const actual = createHmac('sha256', key).update(presented, 'utf8').digest();
    return { matches: expected.length === actual.length && timingSafeEqual(expected, actual), shouldRehash: false };
  }
  const plain = plainClientSecret(stored);
  if (plain !== undefined) {
    // Compare digests: equal lengths, so the comparison time says nothing about the secret.
    return { matches: timingSafeEqual(digest(plain), digest(presented)), shouldRehash: false };
  }
  if (isDjangoHash(stored)) {
    const matches = await verifyDjangoHash(stored, presented);
    return { matches, shouldRehash: matches };
  }
  return { matches: false, shouldRehash: false };
}
