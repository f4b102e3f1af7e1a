import type { Knex } from 'knex';
import type pg from 'pg';
import type { Logger } from '../observability/logger.ts';
import { parseMessage, type Channel, type InvalidationMessage, type Listening, type Receiver } from './messages.ts';

/**
 * Across processes and hosts over PostgreSQL without Redis: NOTIFY on one channel of the
 * database, LISTEN on a connection of its own in each listening process. PostgreSQL sends a
 * notification to the listeners when the sending statement commits; a listener that was
 * disconnected misses what was sent meanwhile, so after reconnecting it drops every cache.
 */
export const POSTGRES_CHANNEL = 'gatehouse_invalidations';
const RECONNECT_MAX_MS = 5000;

export class PostgresChannel implements Channel {
  readonly name = 'PostgreSQL NOTIFY';
  constructor(private readonly db: Knex) {}

  async send(message: InvalidationMessage): Promise<void> {
    await this.db.raw('select pg_notify(?, ?)', [POSTGRES_CHANNEL, JSON.stringify(message)]);
  }

  async close(): Promise<void> {
    // Sent through the process's own pool, closed with the other stores.
  }
}

export function listenOnPostgres(connectionString: string, receiver: Receiver, log: Logger): Listening {
  let client: pg.Client | undefined;
  let closed = false;
  let listenedBefore = false;
  let attempt = 0;
  let retry: NodeJS.Timeout | undefined;

  const reconnectLater = (err: Error) => {
    if (closed || retry) return;
    if (attempt === 0) log.warn({ detail: err.message }, 'lost the PostgreSQL connection that hears changes from other Gatehouse processes; reconnecting (caches keep their short TTL meanwhile)');
    attempt++;
    client?.removeAllListeners();
    client?.on('error', () => undefined);
    client?.end().catch(() => undefined);
    client = undefined;
    retry = setTimeout(() => {
      retry = undefined;
      void connect();
    }, Math.min(attempt * 500, RECONNECT_MAX_MS));
    retry.unref();
  };

  const connect = async () => {
    // Loaded by the listener, not at start: a process over SQLite never holds pg in memory.
    const { default: pg } = await import('pg');
    const c = new pg.Client({ connectionString });
    client = c;
    c.on('error', reconnectLater);
    c.on('end', () => reconnectLater(new Error('the connection ended')));
    c.on('notification', (n) => {
      if (n.channel !== POSTGRES_CHANNEL || !n.payload) return;
      const message = parseMessage(n.payload);
      if (message) receiver.receive(message);
    });
    try {
      await c.connect();
      await c.query(`listen ${POSTGRES_CHANNEL}`);
    } catch (err) {
      return reconnectLater(err as Error);
    }
    if (closed) return void c.end().catch(() => undefined);
    // Anything sent before this LISTEN, while this process was already serving, went unheard.
    if (listenedBefore || attempt > 0) {
      log.info('hearing changes from other Gatehouse processes through PostgreSQL again');
      receiver.missed();
    }
    listenedBefore = true;
    attempt = 0;
  };
  void connect();

  return {
    async close() {
      closed = true;
      clearTimeout(retry);
      const c = client;
      client = undefined;
      if (!c) return;
      c.removeAllListeners();
      c.on('error', () => undefined);
      await Promise.race([c.end().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
    },
  };
}
