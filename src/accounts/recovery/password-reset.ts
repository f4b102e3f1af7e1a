import type { AccountsService, User } from '../service.ts';
import { MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, sameTypedPassword } from '../passwords.ts';
import { boundedSubject, type CredentialThrottle } from '../throttle.ts';
import type { Mailer } from '../../mail/mailer.ts';
import { passwordResetMail } from '../../mail/messages.ts';
import type { Outbox } from '../../mail/outbox.ts';
import { GatehouseError } from '../../errors.ts';
import type { AccountLinks } from './links.ts';

/** A reset link works once, for this long. */
export const RESET_LINK_MINUTES = 30;

/**
 * Reset requests counted per address and per email address (whether or not an account has it, so
 * the count tells nothing): a mailbox is not flooded, and nobody mails everyone from one place.
 */
export const RESET_THROTTLE = { perEmail: 3, perAddress: 20 } as const;

export type ResetRefusal = 'invalid_link' | 'mismatch' | 'too_short' | 'too_long';

/** The mail side of a password reset; undefined without SMTP. */
export interface ResetMail {
  mailer: Mailer;
  outbox: Outbox;
}

/**
 * Forgotten passwords: a request mails a single-use link (stored hashed) to every enabled
 * account with that address; the link's page sets a new password through AccountsService, which
 * ends the person's sessions and revokes their tokens. Without SMTP an operator hands the link over.
 */
export class PasswordResetService {
  constructor(
    private readonly links: AccountLinks,
    private readonly accounts: AccountsService,
    private readonly throttle: CredentialThrottle,
    private readonly issuer: string,
    private readonly mail: ResetMail | undefined,
  ) {}

  get canMail(): boolean {
    return this.mail !== undefined;
  }

  /** A new reset link for a user, for an operator to hand over (older ones stop working). */
  async linkFor(userId: string): Promise<{ url: string; expiresAt: Date }> {
    const user = await this.accounts.get(userId);
    const { token, expiresAt } = await this.links.issue('reset', user.id, RESET_LINK_MINUTES * 60_000);
    return { url: `${this.issuer}/password-reset/${token}`, expiresAt };
  }

  /** Mails a new reset link to the user now, waiting for the SMTP server (the CLI's --send). */
  async mailLinkTo(userId: string): Promise<{ expiresAt: Date }> {
    if (!this.mail)
      throw new GatehouseError(
        409,
        'mail_not_configured',
        'set GATEHOUSE_SMTP_URL and GATEHOUSE_MAIL_FROM to send mail; without them, hand the link over yourself',
      );
    const user = await this.accounts.get(userId);
    const { url, expiresAt } = await this.linkFor(user.id);
    await this.mail.mailer.send(passwordResetMail(user.email, user.username, url, RESET_LINK_MINUTES));
    return { expiresAt };
  }

  /**
   * "Forgot your password?": counted, then answered at once; the accounts are looked up and
   * mailed afterwards, so the answer and its timing are the same whether or not one has the address.
   */
  async request(email: string, address: string): Promise<{ ok: true } | { ok: false; retryAfterSeconds: number }> {
    const normalized = email.trim().toLowerCase();
    const reservation = await this.throttle.reserve([
      { subject: boundedSubject('reset-addr', address), lockAfter: RESET_THROTTLE.perAddress, onSuccess: 'refund' },
      { subject: boundedSubject('reset-email', normalized), lockAfter: RESET_THROTTLE.perEmail, onSuccess: 'refund' },
    ]);
    if (!reservation.ok) return { ok: false, retryAfterSeconds: reservation.retryAfterSeconds };
    // Every request counts, as a failure would: that is what the limits are for.
    await reservation.failed();
    const mail = this.mail;
    if (mail) {
      mail.outbox.later(async () => {
        const [user] = await this.accounts.activeWithEmail(normalized);
        if (!user) return undefined;
        const { url } = await this.linkFor(user.id);
        return passwordResetMail(user.email, user.username, url, RESET_LINK_MINUTES);
      });
    }
    return { ok: true };
  }

  /** Deletes mailed links (of every purpose) a day past their expiry or use. */
  sweepLinks(): Promise<number> {
    return this.links.sweep();
  }

  /** The user a link would reset, while it is unused and unexpired. */
  async check(token: string): Promise<User | undefined> {
    const link = await this.links.peek('reset', token);
    return link ? this.accounts.findActive(link.userId) : undefined;
  }

  /**
   * Sets the new password when the link is good and both fields agree: the link is used only
   * then, so a typo keeps it working. The person's sessions end, their refresh tokens are
   * revoked and their sign-in locks are lifted: they proved they read their mail.
   */
  async reset(token: string, password: string, confirmation: string): Promise<{ ok: true; user: User } | { ok: false; refused: ResetRefusal }> {
    if (!(await this.check(token))) return { ok: false, refused: 'invalid_link' };
    if (password.length < MIN_PASSWORD_LENGTH) return { ok: false, refused: 'too_short' };
    if (password.length > MAX_PASSWORD_LENGTH) return { ok: false, refused: 'too_long' };
    if (!sameTypedPassword(password, confirmation)) return { ok: false, refused: 'mismatch' };
    const link = await this.links.use('reset', token);
    const user = link && (await this.accounts.findActive(link.userId));
    if (!user) return { ok: false, refused: 'invalid_link' };
    const updated = await this.accounts.setPassword(user.id, password);
    await this.throttle.clearUsername(user.username);
    return { ok: true, user: updated };
  }
}
