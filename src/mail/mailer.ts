import type { Transporter } from 'nodemailer';
import type { MailConfig } from '../config.ts';
import { redactCredentials } from '../observability/redact.ts';

/** One mail to one person: always plain text, with a simple HTML alternative. */
export interface MailMessage {
  to: string;
  subject: string;
  text: string;
  html: string;
}

/** Sends mail. The one thing the rest of Gatehouse knows about SMTP. */
export interface Mailer {
  send(message: MailMessage): Promise<void>;
}

/** Why a mail was not sent, with the SMTP URL's password masked wherever the driver quoted it. */
export class MailError extends Error {
  override name = 'MailError';
}

/**
 * A Mailer over nodemailer's SMTP transport (GATEHOUSE_SMTP_URL). Errors never carry the SMTP
 * password: nodemailer may quote the URL or the credentials in its messages.
 */
export function smtpMailer(config: MailConfig): Mailer {
  // nodemailer is loaded by the first mail, not at start (a few MiB a process may never use).
  let transport: Promise<Transporter> | undefined;
  const transporter = () =>
    (transport ??= import('nodemailer').then(
      ({ default: nodemailer }) => nodemailer.createTransport(config.smtpUrl),
      (err: unknown) => {
        transport = undefined;
        throw err;
      },
    ));
  return {
    async send(message) {
      try {
        await (await transporter()).sendMail({ from: config.from, to: message.to, subject: message.subject, text: message.text, html: message.html });
      } catch (err) {
        throw new MailError(`sending mail failed: ${redactCredentials((err as Error).message ?? String(err), [config.smtpUrl])}`);
      }
    },
  };
}
