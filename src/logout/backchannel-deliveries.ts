import type { Logger } from '../observability/logger.ts';

/**
 * Delivers back-channel logout tokens (OpenID Connect Back-Channel Logout 1.0) to the apps a
 * person was signed in to, apart from the person's own logout: a logout answers at once, and
 * an app that is slow, down or answering errors is retried with growing pauses, then given up
 * on with an error in the log. Every attempt is logged and counted.
 *
 * Deliveries live in this process's memory: a restart loses the retries still waiting (each
 * app's tokens are revoked by the logout itself, so what is lost is only the app's early notice).
 */

/** One logout token for one app: `send` makes a fresh token and POSTs it, and fails unless the app answers 200 or 204. */
export interface LogoutDelivery {
  clientId: string;
  send(): Promise<void>;
}

export interface DeliveryOutcome {
  outcome: 'delivered' | 'retrying' | 'failed';
  clientId: string;
  attempt: number;
}

export interface DeliveryTimers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface BackchannelDeliveriesOptions {
  log: Logger;
  /** Counts each outcome (metrics), when metrics are on. */
  count?: (outcome: DeliveryOutcome['outcome']) => void;
  /** Attempts in all, the first included. */
  attempts?: number;
  /** The pause before attempt `n + 1` after `n` failed: 2 s, 4 s, 8 s, 16 s … by default. */
  backoffMs?: (failedAttempts: number) => number;
  /** How long one attempt may take before it counts as failed. */
  timeoutMs?: number;
  /** Injected for tests; the real ones otherwise. */
  timers?: DeliveryTimers;
}

const realTimers: DeliveryTimers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms).unref(),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export class BackchannelDeliveries {
  private readonly attempts: number;
  private readonly backoffMs: (failedAttempts: number) => number;
  private readonly timeoutMs: number;
  private readonly timers: DeliveryTimers;
  private readonly waiting = new Set<unknown>();
  private inFlight = 0;
  private idleWaiters: Array<() => void> = [];
  private closed = false;

  constructor(private readonly options: BackchannelDeliveriesOptions) {
    this.attempts = options.attempts ?? 5;
    this.backoffMs = options.backoffMs ?? ((n) => 1000 * 2 ** n);
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.timers = options.timers ?? realTimers;
  }

  /** Starts delivering and returns at once: the caller (a logout) never waits for the app. */
  enqueue(delivery: LogoutDelivery): void {
    if (this.closed) return;
    void this.attempt(delivery, 1);
  }

  /** Resolves when nothing is being sent and no retry is waiting (tests, a graceful stop). */
  idle(): Promise<void> {
    if (this.inFlight === 0 && this.waiting.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Drops the retries still waiting; what is being sent finishes. */
  close(): void {
    this.closed = true;
    for (const handle of this.waiting) this.timers.clearTimeout(handle);
    this.waiting.clear();
    this.settleIfIdle();
  }

  private async attempt(delivery: LogoutDelivery, attempt: number): Promise<void> {
    this.inFlight++;
    try {
      await this.withTimeout(delivery.send());
      this.report({ outcome: 'delivered', clientId: delivery.clientId, attempt });
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      if (attempt >= this.attempts || this.closed) {
        this.report({ outcome: 'failed', clientId: delivery.clientId, attempt }, reason);
      } else {
        const pause = this.backoffMs(attempt);
        this.report({ outcome: 'retrying', clientId: delivery.clientId, attempt }, reason, pause);
        const handle = this.timers.setTimeout(() => {
          this.waiting.delete(handle);
          void this.attempt(delivery, attempt + 1);
        }, pause);
        this.waiting.add(handle);
      }
    } finally {
      this.inFlight--;
      this.settleIfIdle();
    }
  }

  private withTimeout(sending: Promise<void>): Promise<void> {
    return new Promise((resolve, reject) => {
      const handle = this.timers.setTimeout(() => reject(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      sending.then(
        () => {
          this.timers.clearTimeout(handle);
          resolve();
        },
        (err: unknown) => {
          this.timers.clearTimeout(handle);
          reject(err);
        },
      );
    });
  }

  private report(outcome: DeliveryOutcome, reason?: string, retryInMs?: number): void {
    const fields = { event: `backchannel_logout.${outcome.outcome}`, client_id: outcome.clientId, attempt: outcome.attempt, reason, retry_in_ms: retryInMs };
    if (outcome.outcome === 'delivered') this.options.log.info(fields, 'back-channel logout delivered');
    else if (outcome.outcome === 'retrying') this.options.log.warn(fields, 'back-channel logout not delivered; retrying');
    else this.options.log.error(fields, 'back-channel logout not delivered; giving up');
    this.options.count?.(outcome.outcome);
  }

  private settleIfIdle(): void {
    if (this.inFlight > 0 || this.waiting.size > 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
