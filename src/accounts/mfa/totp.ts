import { createHash, randomInt } from 'node:crypto';
import type { Knex } from 'knex';
import * as OTPAuth from 'otpauth';
import type { AtRest } from '../../settings/at-rest.ts';

/** RFC 6238 as every authenticator app reads it: SHA-1, 6 digits, 30 seconds. */
const TOTP_SETTINGS = { algorithm: 'SHA1', digits: 6, period: 30 } as const;
/** Codes of the step before and after now are accepted too: phones' clocks drift a little. */
const WINDOW_STEPS = 1;
export const RECOVERY_CODE_COUNT = 10;
/** Recovery codes: 10 characters of an alphabet without look-alikes (0/O, 1/l), ~50 bits each. */
const RECOVERY_ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789';

/** An authenticator being set up: what the person's app is given. */
export interface TotpSetup {
  uri: string;
  /** The secret in base32, for apps that cannot scan: typed in by hand. */
  secret: string;
  /** The QR code of `uri`, an SVG document drawn here (no outside service sees the secret). */
  qrSvg: string;
}

/** How a code was checked. `replayed`: right, but its time step was used already. */
export type CodeCheck = { ok: true; kind: 'otp' | 'recovery' } | { ok: false; reason: 'wrong' | 'replayed' | 'not_enrolled' };

interface TotpRow {
  user_id: string;
  secret_sealed: string;
  confirmed_at: unknown;
  last_step: unknown;
}

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');
/** Recovery codes are typed by people: case, spaces and dashes do not matter. */
const normalizedRecoveryCode = (code: string) => code.toLowerCase().replace(/[\s-]/g, '');
const sealContext = (userId: string) => `user_totp:${userId}`;

/**
 * Authenticator apps (TOTP, RFC 6238) and recovery codes of people: setting one up, checking
 * codes at sign-in (each accepted once), removing it. Stores the secret sealed with AtRest.
 */
export class TotpService {
  constructor(
    private readonly db: Knex,
    private readonly atRest: AtRest,
    /** The name the person's app shows the entry under (the issuer's host). */
    private readonly issuerName: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether the person has a confirmed authenticator: their sign-in asks for a code. */
  async isEnrolled(userId: string): Promise<boolean> {
    const row = await this.db('user_totp').where({ user_id: userId }).whereNotNull('confirmed_at').first('user_id');
    return row !== undefined;
  }

  /**
   * Starts (or starts again) setting up an authenticator: a new secret, not asked for at sign-in
   * until `confirm` sees a right code. Refused (undefined) while one is confirmed: it must be
   * removed first, with the password.
   */
  async begin(userId: string, label: string): Promise<TotpSetup | undefined> {
    if (await this.isEnrolled(userId)) return undefined;
    const secret = new OTPAuth.Secret({ size: 20 });
    const sealed = this.atRest.seal(secret.base32, sealContext(userId));
    await this.db('user_totp')
      .insert({ user_id: userId, secret_sealed: sealed, created_at: this.now(), confirmed_at: null, last_step: null })
      .onConflict('user_id')
      .merge(['secret_sealed', 'created_at', 'confirmed_at', 'last_step']);
    return this.describe(secret.base32, label);
  }

  /** The setup still waiting for its first code, shown again (a reload of the setup page). */
  async pending(userId: string, label: string): Promise<TotpSetup | undefined> {
    const row = (await this.db('user_totp').where({ user_id: userId }).whereNull('confirmed_at').first()) as TotpRow | undefined;
    return row ? this.describe(this.atRest.open(row.secret_sealed, sealContext(userId)), label) : undefined;
  }

  /**
   * Finishes setting up with the first code from the app: answers the ten recovery codes (shown
   * once; only their hashes are kept), or undefined for a wrong code or no setup under way.
   */
  async confirm(userId: string, code: string): Promise<string[] | undefined> {
    const row = (await this.db('user_totp').where({ user_id: userId }).whereNull('confirmed_at').first()) as TotpRow | undefined;
    if (!row) return undefined;
    const step = this.matchingStep(row, code);
    if (step === undefined) return undefined;
    const codes = Array.from({ length: RECOVERY_CODE_COUNT }, newRecoveryCode);
    return this.db.transaction(async (trx) => {
      const updated = await trx('user_totp')
        .where({ user_id: userId, secret_sealed: row.secret_sealed })
        .whereNull('confirmed_at')
        .update({ confirmed_at: this.now(), last_step: step });
      if (updated !== 1) return undefined;
      await trx('user_recovery_codes').where({ user_id: userId }).delete();
      await trx('user_recovery_codes').insert(codes.map((c) => ({ user_id: userId, code_hash: sha256(normalizedRecoveryCode(c)), used_at: null })));
      return codes;
    });
  }

  /**
   * Checks a code at sign-in: an authenticator code whose time step is later than the last one
   * accepted, or an unused recovery code. Either is taken in one conditional UPDATE, so of two
   * submissions of the same code at once exactly one succeeds.
   */
  async verify(userId: string, submitted: string): Promise<CodeCheck> {
    const row = (await this.db('user_totp').where({ user_id: userId }).whereNotNull('confirmed_at').first()) as TotpRow | undefined;
    if (!row) return { ok: false, reason: 'not_enrolled' };
    const code = submitted.replace(/\s/g, '');
    if (/^\d{6}$/.test(code)) {
      const step = this.matchingStep(row, code);
      if (step === undefined) return { ok: false, reason: 'wrong' };
      const taken = await this.db('user_totp')
        .where({ user_id: userId })
        .andWhere((w) => w.whereNull('last_step').orWhere('last_step', '<', step))
        .update({ last_step: step });
      return taken === 1 ? { ok: true, kind: 'otp' } : { ok: false, reason: 'replayed' };
    }
    const normalized = normalizedRecoveryCode(submitted);
    if (normalized.length === 0 || normalized.length > 64) return { ok: false, reason: 'wrong' };
    const used = await this.db('user_recovery_codes')
      .where({ user_id: userId, code_hash: sha256(normalized) })
      .whereNull('used_at')
      .update({ used_at: this.now() });
    return used === 1 ? { ok: true, kind: 'recovery' } : { ok: false, reason: 'wrong' };
  }

  /** Recovery codes not used yet. */
  async recoveryCodesLeft(userId: string): Promise<number> {
    const [row] = await this.db('user_recovery_codes').where({ user_id: userId }).whereNull('used_at').count({ n: '*' });
    return Number((row as { n: unknown } | undefined)?.n ?? 0);
  }

  /** Removes the authenticator and its recovery codes (the person's choice, or an operator's reset); answers whether there was one. */
  async remove(userId: string): Promise<boolean> {
    return this.db.transaction(async (trx) => {
      const removed = await trx('user_totp').where({ user_id: userId }).delete();
      const codes = await trx('user_recovery_codes').where({ user_id: userId }).delete();
      return removed + codes > 0;
    });
  }

  /** The time step `code` is right for (now, or one step either side), if any. */
  private matchingStep(row: TotpRow, code: string): number | undefined {
    const totp = this.totp(this.atRest.open(row.secret_sealed, sealContext(row.user_id)), '');
    const timestamp = this.now();
    const delta = totp.validate({ token: code, timestamp, window: WINDOW_STEPS });
    if (delta === null) return undefined;
    return OTPAuth.TOTP.counter({ period: TOTP_SETTINGS.period, timestamp }) + delta;
  }

  private totp(base32: string, label: string): OTPAuth.TOTP {
    return new OTPAuth.TOTP({ issuer: this.issuerName, label, ...TOTP_SETTINGS, secret: OTPAuth.Secret.fromBase32(base32) });
  }

  private async describe(base32: string, label: string): Promise<TotpSetup> {
    const uri = this.totp(base32, label).toString();
    // qrcode is loaded by the first setup shown, not at start.
    const { default: QRCode } = await import('qrcode');
    const qrSvg = await QRCode.toString(uri, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
    return { uri, secret: base32, qrSvg };
  }
}

/** One recovery code, shown as "xxxxx-xxxxx". */
function newRecoveryCode(): string {
  const chars = Array.from({ length: 10 }, () => RECOVERY_ALPHABET[randomInt(RECOVERY_ALPHABET.length)]);
  return `${chars.slice(0, 5).join('')}-${chars.slice(5).join('')}`;
}
