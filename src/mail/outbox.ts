import type { Logger } from '../observability/logger.ts';
import type { Mailer, MailMessage } from './mailer.ts';

/**
 * Mail sent after the answer: the "Forgot your password?" page answers at once, the same for an
 * address with an account and one without, and an SMTP server's delay or failure shows in the
 * log, never in the answer.
 */
export class Outbox {
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly mailer: Mailer,
    private readonly log: Logger,
  ) {}

  /** Sends `message` (made by `compose`, which may look things up) in the background. */
  later(compose: () => Promise<MailMessage | undefined>): void {
    const sending = (async () => {
      const message = await compose();
      if (message) await this.mailer.send(message);
    })()
      // MailError messages are already redacted (src/mail/mailer.ts).
      .catch((err: Error) => this.log.warn({ detail: err.message }, 'a mail could not be sent'))
      .finally(() => this.pending.delete(sending));
    this.pending.add(sending);
  }

  /** Resolves when every mail on its way has been sent or has failed (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.pending.size) await Promise.all([...this.pending]);
  }
}
