import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Client secrets are 256 random bits, so a keyed SHA-256 is enough to make a stolen database
 * useless for authenticating as a client, and it verifies in microseconds. A slow password
 * hash here would cap token throughput for no gain: there is nothing to brute-force.
 */
const SCHEME = 'hmac-sha256';

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
  return `${SCHEME}$${createHmac('sha256', key).update(secret, 'utf8').digest('base64url')}`;
}

export function verifyClientSecret(stored: string, presented: string, key: Buffer): boolean {
  const [scheme, digest] = stored.split('$');
  if (scheme !== SCHEME || !digest) return false;
  const expected = Buffer.from(digest, 'base64url');
  const actual = createHmac('sha256', key).update(presented, 'utf8').digest();
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}
