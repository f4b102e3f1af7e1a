import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Bearer credentials Gatehouse issues (API keys, admin tokens): `<prefix><id>_<secret>`. The
 * prefix lets secret scanners recognise a leaked one, the id finds its row, and only an HMAC
 * of the 256-bit secret is stored; a keyed hash is enough for that much entropy, and fast.
 */
const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

function alphanumeric(n: number): string {
  let out = '';
  // 248 is the largest multiple of 62 below 256: rejecting above it keeps the draw uniform.
  while (out.length < n) for (const b of randomBytes(n)) if (b < 248 && out.length < n) out += ALPHANUMERIC[b % 62];
  return out;
}

export interface IssuedToken {
  id: string;
  token: string;
  secretHash: string;
}

export class KeyedTokens {
  private readonly format: RegExp;

  constructor(
    private readonly prefix: string,
    private readonly hmacKey: Buffer,
  ) {
    this.format = new RegExp(`^${prefix}([A-Za-z0-9]{16})_([A-Za-z0-9_-]{43})$`);
  }

  issue(): IssuedToken {
    const id = alphanumeric(16);
    const secret = randomBytes(32).toString('base64url');
    return { id, token: `${this.prefix}${id}_${secret}`, secretHash: this.hash(secret).toString('base64url') };
  }

  /** The id a presented token names, if it has our shape; check the secret with `matches`. */
  parse(presented: string): { id: string; secret: string } | undefined {
    const m = this.format.exec(presented);
    return m ? { id: m[1]!, secret: m[2]! } : undefined;
  }

  matches(secretHash: string, secret: string): boolean {
    const expected = Buffer.from(secretHash, 'base64url');
    const actual = this.hash(secret);
    return expected.length === actual.length && timingSafeEqual(expected, actual);
  }

  private hash(secret: string): Buffer {
    return createHmac('sha256', this.hmacKey).update(secret).digest();
  }
}
