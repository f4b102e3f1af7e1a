/**
 * "This changed": how a change made in one Gatehouse process reaches the per-process caches of
 * every other one (client metadata, signing keys, scopes, lock checks). A cache keeps its short
 * TTL only as the bound for a message that got lost.
 */
export interface Invalidations {
  /** Tells every Gatehouse process, this one included, that `key` of `topic` changed (no key: all of it). */
  publish(topic: string, key?: string): Promise<void>;
  /** Runs `handler` in this process whenever `topic` changes anywhere; returns an unsubscribe. */
  subscribe(topic: string, handler: (key: string | undefined) => void): () => void;
  close(): Promise<void>;
}

type Handler = (key: string | undefined) => void;

/**
 * The handlers of this process. `deliver` runs them at once, before `publish` returns, so a
 * change made here is never served stale by this process, whatever happens to the messages.
 */
export class LocalInvalidations implements Invalidations {
  private readonly handlers = new Map<string, Set<Handler>>();

  constructor(private readonly onHandlerError: (err: Error, topic: string) => void = () => {}) {}

  async publish(topic: string, key?: string): Promise<void> {
    this.deliver(topic, key);
  }

  subscribe(topic: string, handler: Handler): () => void {
    let set = this.handlers.get(topic);
    if (!set) this.handlers.set(topic, (set = new Set()));
    // A handler subscribed twice runs twice: each subscription is its own.
    const entry: Handler = (key) => handler(key);
    set.add(entry);
    return () => {
      set.delete(entry);
    };
  }

  /** Runs this process's handlers of `topic`; one failing handler does not stop the others. */
  deliver(topic: string, key: string | undefined): void {
    for (const handler of this.handlers.get(topic) ?? []) {
      try {
        handler(key);
      } catch (err) {
        this.onHandlerError(err as Error, topic);
      }
    }
  }

  async close(): Promise<void> {
    this.handlers.clear();
  }
}

/** Only this process: tests, and a single process with nothing else to tell. */
export function openInvalidations(): Invalidations {
  return new LocalInvalidations();
}
