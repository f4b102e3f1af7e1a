import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Encryption at rest for the secrets Gatehouse must read back (private signing keys, cookie
 * keys, the client-secret HMAC key): AES-256-GCM under a key that is not in the database, so a
 * copy of the database (a dump, a backup, a stolen file) signs nothing and forges no cookie.
 *
 * The key comes from GATEHOUSE_SECRET_KEY, or for a deployment that sets none, from a key file
 * Gatehouse creates once (0600) beside the SQLite database or in the data directory. Either is
 * any string of at least 32 characters (a key file holds 32 random bytes, base64url); the AES
 * key is derived from it with HKDF-SHA256, so a passphrase-like value and base64 of 32 bytes
 * both work.
 */

const PREFIX = 'gh-enc:v1:';
const IV_BYTES = 12;
const TAG_BYTES = 16;

export class SecretKeyError extends Error {
  override name = 'SecretKeyError';
}

export class AtRest {
  private readonly key: Buffer;

  constructor(
    secret: string,
    /** Where the key came from, for the one line a wrong key is reported with. */
    private readonly source: string,
  ) {
    this.key = Buffer.from(hkdfSync('sha256', secret, 'gatehouse', 'gatehouse at-rest encryption v1', 32));
  }

  /** Whether a stored value is sealed by this module (rows written before it are plain). */
  static isSealed(stored: string): boolean {
    return stored.startsWith(PREFIX);
  }

  /**
   * Seals `plain` for the row named by `context` (e.g. "signing_keys:<kid>"): the context is
   * authenticated, so a sealed value copied into another row does not open there.
   */
  seal(plain: string, context: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(context));
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return PREFIX + Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
  }

  /** Opens what `seal` sealed for the same context; a wrong key is a SecretKeyError saying what to fix. */
  open(sealed: string, context: string): string {
    const raw = Buffer.from(sealed.slice(PREFIX.length), 'base64url');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, IV_BYTES));
      decipher.setAAD(Buffer.from(context));
      decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      throw new SecretKeyError(
        `the secrets in the database (${context.split(':')[0]}) were encrypted with another key than ${this.source}: set GATEHOUSE_SECRET_KEY to the key they were encrypted with, or restore that key file`,
      );
    }
  }
}

/** Where the secret key comes from: the configured value, else the key file. */
export interface SecretKeySource {
  secretKey: string | undefined;
  secretKeyFile: string;
}

/**
 * The at-rest key: GATEHOUSE_SECRET_KEY, else the key file, created (0600, in a 0700
 * directory) on first use. Two processes starting at once create it once: the loser of the
 * exclusive create reads the winner's.
 */
export function loadAtRest(source: SecretKeySource): AtRest {
  if (source.secretKey) return new AtRest(source.secretKey, 'GATEHOUSE_SECRET_KEY');
  const file = source.secretKeyFile;
  const described = `the key file ${file}`;
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  try {
    fs.writeFileSync(file, `${randomBytes(32).toString('base64url')}\n`, { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  tightenMode(file, 0o600);
  const secret = fs.readFileSync(file, 'utf8').trim();
  if (secret.length < 32) throw new SecretKeyError(`${described} holds fewer than 32 characters; restore it, or set GATEHOUSE_SECRET_KEY`);
  return new AtRest(secret, described);
}

/**
 * Takes away the permission bits beyond `mode` (group and others) from a file or directory of
 * ours; leaves alone what we do not own (a shared /tmp, a mount) and what is already tighter.
 */
export function tightenMode(target: string, mode: number): void {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(target);
  } catch {
    return;
  }
  const current = stat.mode & 0o777;
  const ours = typeof process.getuid !== 'function' || stat.uid === process.getuid();
  const sticky = (stat.mode & 0o1000) !== 0;
  if (ours && !sticky && (current & ~mode) !== 0) fs.chmodSync(target, current & mode);
}
