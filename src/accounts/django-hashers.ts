import { createHash, pbkdf2, timingSafeEqual } from 'node:crypto';
import { currentHashKey, withHashSlot } from './passwords.ts';

/**
 * Verifies password hashes as Django stores them, so users (and hashed DOT client secrets)
 * imported from django-oauth-toolkit keep working until they are re-hashed our way on their
 * next successful use. Formats: pbkdf2_sha256, pbkdf2_sha1, argon2, bcrypt_sha256.
 * A hash starting with "!" is Django's unusable password: nothing matches it.
 * These hashes come from another system's database, so their cost is bounded (COST_LIMITS) and
 * they are verified in the same hash slots as ours: a row cannot make one check take minutes.
 */

const PBKDF2 = /^(pbkdf2_sha256|pbkdf2_sha1)\$(\d+)\$([^$]+)\$([A-Za-z0-9+/=]+)$/;

const ARGON2_PARAMS = /^argon2\$argon2(?:id|i|d)\$v=\d+\$m=(\d+),t=(\d+),p=(\d+)\$/;
const BCRYPT_COST = /^bcrypt_sha256\$\$2[abxy]?\$(\d{2})\$/;

/**
 * The dearest hash Gatehouse will compute for one check. Django's own defaults are far below
 * (pbkdf2_sha256 1,000,000 iterations in Django 5.2; argon2 m=102400, t=2, p=8; bcrypt cost 12),
 * so only a hostile or broken row goes over.
 */
export const COST_LIMITS = { pbkdf2Iterations: 2_000_000, argon2MemoryKiB: 262_144, argon2Passes: 16, argon2Lanes: 16, bcryptCost: 14 } as const;

export function isDjangoHash(stored: string): boolean {
  return PBKDF2.test(stored) || stored.startsWith('argon2$') || stored.startsWith('bcrypt_sha256$');
}

/** Why a Django hash is refused (too dear to compute, or not as Django writes it), or undefined. */
export function djangoHashProblem(stored: string): string | undefined {
  const pbkdf = PBKDF2.exec(stored);
  if (pbkdf) {
    const iterations = Number(pbkdf[2]);
    if (iterations < 1) return 'its iteration count is 0';
    // Django's key is one block of the digest: a longer one would multiply the work.
    if (Buffer.from(pbkdf[4]!, 'base64').length !== (pbkdf[1] === 'pbkdf2_sha256' ? 32 : 20)) return 'its key is not the length Django writes';
    if (iterations > COST_LIMITS.pbkdf2Iterations) {
      return `its ${iterations.toLocaleString('en')} PBKDF2 iterations are over the limit of ${COST_LIMITS.pbkdf2Iterations.toLocaleString('en')}`;
    }
    return undefined;
  }
  if (stored.startsWith('argon2$')) {
    const argon = ARGON2_PARAMS.exec(stored);
    if (!argon) return 'it is not an argon2 hash as Django writes it';
    const [m, t, p] = [Number(argon[1]), Number(argon[2]), Number(argon[3])];
    if (m > COST_LIMITS.argon2MemoryKiB || t > COST_LIMITS.argon2Passes || p > COST_LIMITS.argon2Lanes) {
      return `its argon2 cost (m=${m}, t=${t}, p=${p}) is over the limit of m=${COST_LIMITS.argon2MemoryKiB}, t=${COST_LIMITS.argon2Passes}, p=${COST_LIMITS.argon2Lanes}`;
    }
    return undefined;
  }
  if (stored.startsWith('bcrypt_sha256$')) {
    const bcrypt = BCRYPT_COST.exec(stored);
    if (!bcrypt) return 'it is not a bcrypt_sha256 hash as Django writes it';
    if (Number(bcrypt[1]) > COST_LIMITS.bcryptCost) return `its bcrypt cost ${Number(bcrypt[1])} is over the limit of ${COST_LIMITS.bcryptCost}`;
    return undefined;
  }
  return 'it is not a Django password hash';
}

export function isUnusableDjangoPassword(stored: string): boolean {
  return stored.startsWith('!');
}

function pbkdf2Async(password: string, salt: string, iterations: number, length: number, digest: string): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    pbkdf2(Buffer.from(password, 'utf8'), Buffer.from(salt, 'utf8'), iterations, length, digest, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/** A hash over the cost limits matches nothing, and costs nothing to refuse. */
export async function verifyDjangoHash(stored: string, password: string): Promise<boolean> {
  if (djangoHashProblem(stored) !== undefined) return false;
  return withHashSlot(currentHashKey(), () => verifyWithinLimits(stored, password));
}

async function verifyWithinLimits(stored: string, password: string): Promise<boolean> {
  const pbkdf = PBKDF2.exec(stored);
  if (pbkdf) {
    const [, algorithm, iterations, salt, digest] = pbkdf;
    const expected = Buffer.from(digest!, 'base64');
    const hash = algorithm === 'pbkdf2_sha256' ? 'sha256' : 'sha1';
    const actual = await pbkdf2Async(password, salt!, Number(iterations), expected.length, hash);
    return actual.length === expected.length && timingSafeEqual(actual, expected);
  }
  // hash-wasm (argon2 and bcrypt in WebAssembly) is loaded by the first such hash, not at start.
  const wasm = stored.startsWith('argon2$') || stored.startsWith('bcrypt_sha256$') ? await import('hash-wasm') : undefined;
  try {
    if (stored.startsWith('argon2$')) {
      // Django writes "argon2" + the PHC string without its leading "$".
      return await wasm!.argon2Verify({ password, hash: `$${stored.slice('argon2$'.length)}` });
    }
    if (stored.startsWith('bcrypt_sha256$')) {
      // Django pre-hashes with SHA-256 (hex) so bcrypt's 72-byte limit does not cut passwords.
      const prehashed = createHash('sha256').update(password, 'utf8').digest('hex');
      return await wasm!.bcryptVerify({ password: prehashed, hash: stored.slice('bcrypt_sha256$'.length) });
    }
  } catch {
    return false;
  }
  return false;
}
