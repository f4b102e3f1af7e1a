import { randomBytes } from 'node:crypto';

/** One change, as it travels between processes (see invalidation.ts for the paths). */
export interface InvalidationMessage {
  /** Unique per message: a process that hears one twice (by two paths) runs its handlers once. */
  id: string;
  topic: string;
  key?: string;
}

/** The topic of a message that drops every cache: sent when messages may have been lost (a reconnect). */
export const EVERY_TOPIC = '*';

/** A path out of this process. `send` may reject; the publisher logs it and carries on. */
export interface Channel {
  readonly name: string;
  send(message: InvalidationMessage): Promise<void>;
  close(): Promise<void>;
}

/** What a listening path calls: with each message it hears, and `missed` when it may have lost some. */
export interface Receiver {
  receive(message: InvalidationMessage): void;
  missed(): void;
}

/** Runs this process's handlers for a message; resolves once they are done. */
export interface Delivery {
  deliver(message: InvalidationMessage): Promise<void>;
}

export interface Listening {
  close(): Promise<void>;
}

/** How long a publisher waits for a path before it logs a warning and lets the TTL bound it. */
export const SEND_TIMEOUT_MS = 1000;

const processTag = randomBytes(6).toString('hex');
let sequence = 0;
export const newMessage = (topic: string, key?: string): InvalidationMessage => ({ id: `${processTag}-${++sequence}`, topic, ...(key === undefined ? {} : { key }) });

/** A message as it arrived from outside (IPC, Redis, PostgreSQL, the file), or undefined when it is not one. */
export function parseMessage(value: unknown): InvalidationMessage | undefined {
  let m = value;
  if (typeof value === 'string') {
    try {
      m = JSON.parse(value);
    } catch {
      return undefined;
    }
  }
  if (!m || typeof m !== 'object') return undefined;
  const { id, topic, key } = m as Record<string, unknown>;
  if (typeof id !== 'string' || typeof topic !== 'string' || (key !== undefined && typeof key !== 'string')) return undefined;
  return { id, topic, ...(key === undefined ? {} : { key }) };
}

/** Message ids recently seen, each with a value; the oldest are forgotten first. */
export class RecentIds<V> {
  private readonly seen = new Map<string, V>();
  constructor(private readonly capacity = 10_000) {}
  get(id: string): V | undefined {
    return this.seen.get(id);
  }
  add(id: string, value: V): void {
    if (this.seen.size >= this.capacity) this.seen.delete(this.seen.keys().next().value!);
    this.seen.set(id, value);
  }
}

export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
