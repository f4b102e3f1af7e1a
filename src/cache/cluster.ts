import cluster, { type Worker } from 'node:cluster';
import type { Logger } from '../observability/logger.ts';
import { EVERY_TOPIC, newMessage, parseMessage, RecentIds, SEND_TIMEOUT_MS, withTimeout, type Channel, type Delivery, type InvalidationMessage, type Listening, type Receiver } from './messages.ts';

/**
 * Between the workers of one host, over node:cluster IPC. A worker sends a change to the
 * primary; the primary hands it to every other worker and, once each has run its handlers,
 * answers the sender. So `publish` in a worker returns only when no worker of the host still
 * serves the old state: the next request, whichever worker takes it, sees the change.
 */

const INVALIDATE = 'gatehouse:invalidate';
const DELIVERED = 'gatehouse:invalidated';

interface IpcMessage {
  gatehouse?: unknown;
  message?: unknown;
  id?: unknown;
}

/** Less than a worker's SEND_TIMEOUT_MS, so the primary's answer (and its warning) comes first. */
const RELAY_TIMEOUT_MS = SEND_TIMEOUT_MS - 200;

/** A worker's path to the other workers of its host, through the primary. */
export class WorkerChannel implements Channel {
  readonly name = 'cluster IPC';
  private readonly waiting = new Map<string, () => void>();
  private onMessage: ((raw: IpcMessage) => void) | undefined;

  async send(message: InvalidationMessage): Promise<void> {
    const delivered = new Promise<void>((resolve) => this.waiting.set(message.id, resolve));
    try {
      await new Promise<void>((resolve, reject) => {
        process.send!({ gatehouse: INVALIDATE, message }, undefined, {}, (err) => (err ? reject(err) : resolve()));
      });
      await withTimeout(delivered, SEND_TIMEOUT_MS, 'the cluster primary');
    } finally {
      this.waiting.delete(message.id);
    }
  }

  /** Delivers what the primary hands this worker, and answers once it is delivered. */
  listen(delivery: Delivery): Listening {
    this.onMessage = (raw) => {
      if (raw?.gatehouse === DELIVERED && typeof raw.id === 'string') {
        this.waiting.get(raw.id)?.();
        return;
      }
      if (raw?.gatehouse !== INVALIDATE) return;
      const message = parseMessage(raw.message);
      if (!message) return;
      void delivery.deliver(message).then(() => {
        // The primary may be gone (the host is stopping): nothing is waiting for the answer then.
        if (process.connected) process.send!({ gatehouse: DELIVERED, id: message.id }, undefined, {}, () => undefined);
      });
    };
    process.on('message', this.onMessage);
    return { close: async () => this.close() };
  }

  async close(): Promise<void> {
    if (this.onMessage) process.off('message', this.onMessage);
    this.onMessage = undefined;
    for (const resolve of this.waiting.values()) resolve();
    this.waiting.clear();
  }
}

/**
 * The primary's part: hands each worker's change to every other worker and answers the sender
 * when they all have it; hands what the host hears from outside (`receiver`, fed by the shared
 * channel) to every worker.
 */
export class PrimaryRelay implements Listening {
  private readonly relayed = new RecentIds<true>();
  private readonly pending = new Map<string, { origin: Worker; left: Set<number>; timer: NodeJS.Timeout }>();
  /**
   * Workers that serve requests. A worker still starting is handed changes too, but not waited
   * for: until its services are open it has nothing cached and cannot answer, and after that
   * it reads everything fresh.
   */
  private readonly serving = new Set<number>();
  private readonly onListening = (worker: Worker) => void this.serving.add(worker.id);

  private readonly onMessage = (worker: Worker, raw: IpcMessage) => {
    if (raw?.gatehouse === DELIVERED && typeof raw.id === 'string') return this.confirmed(raw.id, worker.id);
    if (raw?.gatehouse !== INVALIDATE) return;
    const message = parseMessage(raw.message);
    if (!message) return;
    this.relayed.add(message.id, true);
    const left = new Set(this.handToWorkers(message, worker).map((w) => w.id).filter((id) => this.serving.has(id)));
    if (left.size === 0) return this.answer(worker, message.id);
    const timer = setTimeout(() => {
      this.log.warn({ topic: message.topic, workers: [...(this.pending.get(message.id)?.left ?? [])] }, `a worker did not confirm a change within ${RELAY_TIMEOUT_MS} ms; its cache lets go of it when its short TTL ends`);
      this.finish(message.id);
    }, RELAY_TIMEOUT_MS);
    timer.unref();
    this.pending.set(message.id, { origin: worker, left, timer });
  };

  private readonly onExit = (worker: Worker) => {
    this.serving.delete(worker.id);
    for (const id of [...this.pending.keys()]) this.confirmed(id, worker.id);
  };

  /** Changes heard from other hosts and the CLI, for every worker of this host. */
  readonly receiver: Receiver = {
    receive: (message) => {
      if (this.relayed.get(message.id)) return;
      this.relayed.add(message.id, true);
      this.handToWorkers(message);
    },
    missed: () => void this.handToWorkers(newMessage(EVERY_TOPIC)),
  };

  constructor(private readonly log: Logger) {
    cluster.on('message', this.onMessage);
    cluster.on('listening', this.onListening);
    cluster.on('exit', this.onExit);
  }

  private handToWorkers(message: InvalidationMessage, except?: Worker): Worker[] {
    const targets = Object.values(cluster.workers ?? {}).filter((w): w is Worker => Boolean(w) && w !== except && w!.isConnected());
    for (const w of targets) w.send({ gatehouse: INVALIDATE, message }, undefined, () => undefined);
    return targets;
  }

  private confirmed(id: string, workerId: number): void {
    const entry = this.pending.get(id);
    if (!entry) return;
    entry.left.delete(workerId);
    if (entry.left.size === 0) this.finish(id);
  }

  private finish(id: string): void {
    const entry = this.pending.get(id);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.pending.delete(id);
    this.answer(entry.origin, id);
  }

  private answer(worker: Worker, id: string): void {
    if (worker.isConnected()) worker.send({ gatehouse: DELIVERED, id }, undefined, () => undefined);
  }

  async close(): Promise<void> {
    cluster.off('message', this.onMessage);
    cluster.off('listening', this.onListening);
    cluster.off('exit', this.onExit);
    for (const { timer } of this.pending.values()) clearTimeout(timer);
    this.pending.clear();
  }
}
