import { z } from 'zod';
import type { AccountsService, User } from '../service.ts';
import { GatehouseError, ValidationError } from '../../errors.ts';
import type { Mailer } from '../../mail/mailer.ts';
import { verificationMail } from '../../mail/messages.ts';
import type { AccountLinks } from './links.ts';

/** A verification link works once, for this long. */
export const VERIFY_LINK_HOURS = 24;

const address = z.email('must be an email address').max(254, 'must be at most 254 characters');

/**
 * Email verification: a single-use link (stored hashed) mailed to the address; following it
 * sets email_verified, which the `email_verified` claim follows. A changed address
 * (startChange) is written to the account only once its link is followed.
 */
export class EmailVerificationService {
  constructor(
    private readonly links: AccountLinks,
    private readonly accounts: AccountsService,
    private readonly issuer: string,
    private readonly mailer: Mailer | undefined,
  ) {}

  /** Mails a link confirming the user's current address. */
  async send(userId: string): Promise<{ expiresAt: Date }> {
    const user = await this.accounts.get(userId);
    return this.mailLink(user, user.email);
  }

  /**
   * Asks the person to confirm `newEmail` (their /account page calls this): the link goes to the
   * new address, and the account keeps its current one until the link is followed.
   */
  async startChange(userId: string, newEmail: string): Promise<{ expiresAt: Date }> {
    const parsed = address.safeParse(typeof newEmail === 'string' ? newEmail.trim() : newEmail);
    if (!parsed.success) throw new ValidationError({ email: parsed.error.issues[0]!.message });
    return this.mailLink(await this.accounts.get(userId), parsed.data);
  }

  /**
   * What a link would confirm (the page asking the person to confirm), using nothing: a mail
   * scanner that prefetches the link must not verify the address. Undefined for a bad link.
   */
  async check(token: string): Promise<{ username: string; email: string } | undefined> {
    const link = await this.links.peek('verify', token);
    const user = link?.email ? await this.accounts.findActive(link.userId) : undefined;
    return user && link?.email ? { username: user.username, email: link.email } : undefined;
  }

  /** Uses a link (the person pressed Confirm): the address is now verified (and, for a change, now the account's). Undefined for a bad link. */
  async confirm(token: string): Promise<User | undefined> {
    const link = await this.links.use('verify', token);
    if (!link?.email || !(await this.accounts.findActive(link.userId))) return undefined;
    return this.accounts.update(link.userId, { email: link.email, emailVerified: true });
  }

  private async mailLink(user: User, to: string): Promise<{ expiresAt: Date }> {
    if (!this.mailer) throw new GatehouseError(409, 'mail_not_configured', 'set GATEHOUSE_SMTP_URL and GATEHOUSE_MAIL_FROM to send verification mail');
    const { token, expiresAt } = await this.links.issue('verify', user.id, VERIFY_LINK_HOURS * 60 * 60_000, to);
    await this.mailer.send(verificationMail(to, user.username, `${this.issuer}/verify-email/${token}`, VERIFY_LINK_HOURS));
    return { expiresAt };
  }
}
