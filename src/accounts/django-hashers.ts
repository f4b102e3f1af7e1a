import { createHash, pbkdf2, timingSafeEqual } from 'node:crypto';
import { argon2Verify, bcryptVerify } from 'hash-wasm';

/**
 * Verifies password hashes as Django stores them, so users (and hashed DOT client secrets)
 * imported from django-oauth-toolkit keep working until they are re-hashed our way on their
 * next successful use. Formats: pbkdf2_sha256, pbkdf2_sha1, argon2, bcrypt_sha256.
 * A hash starting with "!" is Django's unusable password: nothing matches it.
 */

const PBKDF2 = /^(pbkdf2_sha256|pbkdf2_sha1)\$(\d+)\$([^$]+)\$([A-Za-z0-9+/=]+)$/;

export function isDjangoHash(stored: string): boolean {
  return PBKDF2.test(stored) || stored.startsWith('argon2$') || stored.startsWith('bcrypt_sha256$');
}

export function isUnusableDjangoPassword(stored: string): boolean {
  return stored.startsWith('!');
}

function pbkdf2Async(password: string, salt: string, iterations: number, length: number, digest: string): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    pbkdf2(Buffer.from(password, 'utf8'), Buffer.from(salt, 'utf8'), iterations, length, digest, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

export async function verifyDjangoHash(stored: string, password: string): Promise<boolean> {
  const pbkdf = PBKDF2.exec(stored);
  if (pbkdf) {
    const [, algorithm, iterations, salt, digest] = pbkdf;
    const expected = Buffer.from(digest!, 'base64');
    const hash = algorithm === 'pbkdf2_sha256' ? 'sha256' : 'sha1';
    // Django's own upper bound is far below this; a huge count in a bad row must not stall us.
    if (Number(iterations) < 1 || Number(iterations) > 10_000_000) return false;
    const actual = await pbkdf2Async(password, salt!, Number(iterations), expected.length, hash);
    return actual.length === expected.length && timingSafeEqual(actual, expected);
  }
  try {
    if (stored.startsWith('argon2$')) {
      // Django writes "argon2" + the PHC string without its leading "$".
      return await argon2Verify({ password, hash: `$${stored.slice('argon2$'.length)}` });
    }
    if (stored.startsWith('bcrypt_sha256$')) {
      // Django pre-hashes with SHA-256 (hex) so bcrypt's 72-byte limit does not cut passwords.
      const prehashed = createHash('sha256').update(password, 'utf8').digest('hex');
      return await bcryptVerify({ password: prehashed, hash: stored.slice('bcrypt_sha256$'.length) });
    }
  } catch {
    return false;
  }
  return false;
}
