/**
 * How many checks of one kind are running in this process, per key (a username, an address):
 * a check that would go over the bound is refused at once rather than queued, so a burst costs
 * nothing but its answers. Keys are dropped when their last check ends, so the map is as large
 * as what is running.
 */
export class InFlight {
  private readonly running = new Map<string, number>();

  constructor(private readonly max: number) {}

  /** A release function when there is room for one more check under `key`, else undefined. */
  tryEnter(key: string): (() => void) | undefined {
    const count = this.running.get(key) ?? 0;
    if (count >= this.max) return undefined;
    this.running.set(key, count + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.running.get(key) ?? 1) - 1;
      if (left > 0) this.running.set(key, left);
      else this.running.delete(key);
    };
  }
}
