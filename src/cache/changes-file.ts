import fs from 'node:fs';
import type { Logger } from '../observability/logger.ts';
import { parseMessage, type Channel, type InvalidationMessage, type Listening, type Receiver } from './messages.ts';

/**
 * Across processes over the embedded SQLite database, without Redis: a file of changes beside
 * the database (`gatehouse.sqlite3.changes`). SQLite has no notifications of its own, and a
 * SQLite database is one host by nature, so a file every process on it can reach is enough.
 *
 * Each change is appended as one JSON line (one small O_APPEND write: lines of concurrent
 * writers never interleave). A listening process (the primary of `npm start`, or the only
 * process) watches the file (inotify through fs.watch, answered with a synchronous read of the
 * new bytes, so workers hear a change before any connection accepted after it) and, as a
 * fallback where file events do not arrive (network and some container file systems), looks
 * at its size every POLL_MS: a stat, never a database query, and never on a request's path.
 *
 * The file never grows past about ROTATE_AT_BYTES: a writer that finds it larger empties it
 * first. A listener that finds the file shorter than what it had read, or a line it cannot
 * read, cannot know what it missed, so it drops every cache (`missed`); that happens once every
 * few hundred changes.
 */
export const changesFileOf = (databaseFile: string) => `${databaseFile}.changes`;
const ROTATE_AT_BYTES = 64 * 1024;
const POLL_MS = 2000;
const NEWLINE = 0x0a;

export class ChangesFileChannel implements Channel {
  readonly name = 'changes file';
  constructor(private readonly path: string) {}

  async send(message: InvalidationMessage): Promise<void> {
    const size = await fs.promises.stat(this.path).then(
      (s) => s.size,
      () => 0,
    );
    if (size > ROTATE_AT_BYTES) await fs.promises.truncate(this.path, 0).catch(() => undefined);
    await fs.promises.appendFile(this.path, `${JSON.stringify(message)}\n`, { mode: 0o600 });
  }

  async close(): Promise<void> {}
}

export function watchChangesFile(path: string, receiver: Receiver, log: Logger): Listening {
  const sizeNow = () => {
    // Created private to the service's user, as the database itself is.
    fs.closeSync(fs.openSync(path, 'a', 0o600));
    return fs.statSync(path).size;
  };
  let offset = sizeNow();
  let watcher: fs.FSWatcher | undefined;
  let closed = false;

  const readNew = () => {
    if (closed) return;
    let size: number;
    try {
      size = fs.statSync(path).size;
    } catch {
      // Removed (by hand, or a backup tool): start over on a new file.
      offset = sizeNow();
      receiver.missed();
      return watch();
    }
    if (size < offset) {
      offset = 0;
      receiver.missed();
    }
    if (size === offset) return;
    if (size - offset > 4 * ROTATE_AT_BYTES) {
      offset = size;
      return receiver.missed();
    }
    const bytes = Buffer.alloc(size - offset);
    const fd = fs.openSync(path, 'r');
    let read: number;
    try {
      read = fs.readSync(fd, bytes, 0, bytes.length, offset);
    } finally {
      fs.closeSync(fd);
    }
    // Only whole lines: a line being written is read with the next event.
    const end = bytes.subarray(0, read).lastIndexOf(NEWLINE);
    if (end < 0) return;
    offset += end + 1;
    let unreadable = false;
    for (const line of bytes.subarray(0, end).toString('utf8').split('\n')) {
      const message = parseMessage(line);
      if (message) receiver.receive(message);
      else unreadable = true;
    }
    if (unreadable) receiver.missed();
  };

  const safely = () => {
    try {
      readNew();
    } catch (err) {
      log.warn({ detail: (err as Error).message, file: path }, 'could not read the file of changes; caches keep their short TTL meanwhile');
    }
  };

  function watch() {
    watcher?.close();
    if (closed) return;
    try {
      watcher = fs.watch(path, { persistent: false }, (event) => {
        // A rename means the file itself was replaced or removed: follow the new one.
        if (event === 'rename') {
          setImmediate(() => {
            safely();
            watch();
          });
        } else safely();
      });
      watcher.on('error', () => setImmediate(watch));
    } catch (err) {
      watcher = undefined;
      log.warn({ detail: (err as Error).message, file: path }, 'cannot watch the file of changes; looking at it every 2 seconds instead');
    }
  }
  watch();
  const poll = setInterval(safely, POLL_MS);
  poll.unref();

  return {
    async close() {
      closed = true;
      clearInterval(poll);
      watcher?.close();
    },
  };
}
