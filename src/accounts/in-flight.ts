/**
 * How many checks of one kind are running in this process, per key (a username, an address).
 * A check over the bound waits its turn, a few at most and not for long (one person signing in
 * from two tabs at once is served one after the other); beyond that it is refused at once, so a
 * burst costs nothing but its answers. Keys are dropped when their last check ends, so the maps
 * are as large as what is running and waiting.
 */
export class InFlight {
  private readonly running = new Map<string, number>();
  private readonly waiting = new Map<string, Array<(admitted: boolean) => void>>();

  constructor(
    private readonly max: number,
    /** Checks that may wait for a turn under one key; more are refused at once. */
    private readonly maxWaiting = 0,
    /** How long one may wait before it is refused after all. */
    private readonly maxWaitMs = 0,
  ) {}

  /** A release function when there is room for one more check under `key`, else undefined. */
  tryEnter(key: string): (() => void) | undefined {
    const count = this.running.get(key) ?? 0;
    if (count >= this.max) return undefined;
    this.running.set(key, count + 1);
    return this.releaser(key);
  }

  /** As tryEnter, but waits (within the bounds) for a check under `key` to end. */
  async enter(key: string): Promise<(() => void) | undefined> {
    const now = this.tryEnter(key);
    if (now) return now;
    const queue = this.waiting.get(key) ?? [];
    if (queue.length >= this.maxWaiting) return undefined;
    const admitted = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        const at = queue.indexOf(take);
        if (at >= 0) queue.splice(at, 1);
        if (queue.length === 0 && this.waiting.get(key) === queue) this.waiting.delete(key);
        resolve(false);
      }, this.maxWaitMs);
      const take = (ok: boolean) => {
        clearTimeout(timer);
        resolve(ok);
      };
      queue.push(take);
      this.waiting.set(key, queue);
    });
    // Admitted: the slot of the check that ended was handed over, its count unchanged.
    return admitted ? this.releaser(key) : undefined;
  }

  private releaser(key: string): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const queue = this.waiting.get(key);
      const next = queue?.shift();
      if (queue && queue.length === 0) this.waiting.delete(key);
      if (next) {
        next(true);
        return;
      }
      const left = (this.running.get(key) ?? 1) - 1;
      if (left > 0) this.running.set(key, left);
      else this.running.delete(key);
    };
  }
}
