import { generateKeyPairSync, randomBytes, type JsonWebKey } from 'node:crypto';
import type { Knex } from 'knex';
import { z } from 'zod';
import { NotFoundError, ValidationError } from '../errors.ts';
import type { Invalidations } from '../cache/invalidation.ts';
import { AtRest } from '../settings/at-rest.ts';

/**
 * Signing keys. Each rotation adds one key per algorithm; the newest active key of an
 * algorithm signs, and keys rotated out stay published in the JWKS so tokens they signed keep
 * verifying, until an operator retires them. Private keys are stored encrypted (settings/at-rest.ts):
 * a copy of the table signs nothing.
 */

export const SIGNING_ALGS = ['RS256', 'ES256'] as const;
/**
 * The invalidation topic of the signing keys (no key): every serving process reloads its keys
 * when it hears it, and polls every GATEHOUSE_KEYS_RELOAD_SECONDS should a message be lost.
 */
export const KEYS_TOPIC = 'keys';
type SigningAlg = (typeof SIGNING_ALGS)[number];

export interface SigningKey {
  kid: string;
  alg: string;
  status: 'active' | 'rotated';
  createdAt: Date;
  rotatedAt: Date | null;
}

const keyRow = z.object({
  kid: z.string(),
  alg: z.string(),
  private_jwk: z.string(),
  status: z.enum(['active', 'rotated']),
  created_at: z.union([z.number(), z.string()]).transform((v) => new Date(Number(v))),
  rotated_at: z.union([z.number(), z.string(), z.null()]).transform((v) => (v === null ? null : new Date(Number(v)))),
});

/** base64url, but never starting with "-", which `keys retire -Ab…` would read as an option. */
export function generateKid(): string {
  let kid: string;
  do kid = randomBytes(12).toString('base64url');
  while (kid.startsWith('-'));
  return kid;
}

function generateJwk(alg: SigningAlg): JsonWebKey & { kid: string; alg: string; use: string } {
  const { privateKey } =
    alg === 'RS256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ...privateKey.export({ format: 'jwk' }), kid: generateKid(), alg, use: 'sig' };
}

/** What a sealed private key is bound to: its own row. */
const context = (kid: string) => `signing_keys:${kid}`;

export class KeysService {
  constructor(
    private readonly db: Knex,
    private readonly invalidations: Invalidations,
    private readonly atRest: AtRest,
  ) {}

  /**
   * Makes sure every algorithm has an active key (first start), and that every stored key is
   * encrypted: keys written before encryption at rest are encrypted in place, once. Opening every
   * key here also checks the configured key before a request needs one.
   */
  async ensureSigningKeys(): Promise<void> {
    for (const row of await this.db('signing_keys').select('kid', 'private_jwk')) {
      const stored = String(row.private_jwk);
      if (AtRest.isSealed(stored)) this.atRest.open(stored, context(row.kid));
      else await this.db('signing_keys').where({ kid: row.kid, private_jwk: stored }).update({ private_jwk: this.atRest.seal(stored, context(row.kid)) });
    }
    const active = new Set((await this.db('signing_keys').where({ status: 'active' }).select('alg')).map((r) => r.alg));
    for (const alg of SIGNING_ALGS) {
      if (!active.has(alg)) await this.insert(alg);
    }
  }

  /** Adds a new active key per algorithm; the previous ones move to "rotated" and stay published. */
  async rotate(): Promise<SigningKey[]> {
    await this.db.transaction(async (trx) => {
      await trx('signing_keys').where({ status: 'active' }).update({ status: 'rotated', rotated_at: Date.now() });
      for (const alg of SIGNING_ALGS) await this.insert(alg, trx);
    });
    // Resolves once this host's processes serve the new keys (other hosts: as their message arrives).
    await this.invalidations.publish(KEYS_TOPIC);
    return this.list();
  }

  /** Removes a rotated key from the JWKS: tokens it signed no longer verify. */
  async retire(kid: string): Promise<void> {
    const row = await this.db('signing_keys').where({ kid }).first();
    if (!row) throw new NotFoundError(`signing key ${kid}`);
    if (row.status === 'active') throw new ValidationError({ kid: 'an active key signs new tokens; rotate first, then retire it' });
    await this.db('signing_keys').where({ kid }).delete();
    await this.invalidations.publish(KEYS_TOPIC);
  }

  async list(): Promise<SigningKey[]> {
    const rows = (await this.orderedRows()).map((r) => keyRow.parse(r));
    return rows.map((r) => ({ kid: r.kid, alg: r.alg, status: r.status, createdAt: r.created_at, rotatedAt: r.rotated_at }));
  }

  /** Private JWKs for oidc-provider, newest active first: it signs with the first key of an alg. */
  async privateJwks(): Promise<{ keys: JsonWebKey[] }> {
    const rows = (await this.orderedRows()).map((r) => keyRow.parse(r));
    return { keys: rows.map((r) => JSON.parse(this.plainJwk(r.kid, r.private_jwk)) as JsonWebKey) };
  }

  /** A row's private JWK as JSON; a row not encrypted yet (before ensureSigningKeys ran) is read as it is. */
  private plainJwk(kid: string, stored: string): string {
    return AtRest.isSealed(stored) ? this.atRest.open(stored, context(kid)) : stored;
  }

  private orderedRows() {
    return this.db('signing_keys')
      .select('*')
      .orderByRaw("case when status = 'active' then 0 else 1 end")
      .orderBy('created_at', 'desc');
  }

  private async insert(alg: SigningAlg, trx: Knex = this.db): Promise<void> {
    const jwk = generateJwk(alg);
    await trx('signing_keys').insert({
      kid: jwk.kid,
      alg,
      private_jwk: this.atRest.seal(JSON.stringify(jwk), context(jwk.kid)),
      status: 'active',
      created_at: Date.now(),
      rotated_at: null,
    });
  }
}
