import { createRequire } from 'node:module';
import type { Redis, RedisOptions } from 'ioredis';
import type { Logger } from '../observability/logger.ts';
import { parseMessage, type Channel, type InvalidationMessage, type Listening, type Receiver } from './messages.ts';

/**
 * Across hosts, through Redis pub/sub on `<GATEHOUSE_REDIS_PREFIX>invalidations`. Publishing
 * uses the process's ordinary Redis connection, which fails at once while Redis is down (no
 * offline queue): the change is made anyway and the warning says so. Listening needs a
 * connection of its own (a subscribed connection can do nothing else); it reconnects by itself,
 * and because messages sent while it was away are lost, it drops every cache once it is back.
 */
// ioredis is required by the listener itself, so that a process without Redis never loads it.
const require = createRequire(import.meta.url);

export const redisChannelName = (prefix: string) => `${prefix}invalidations`;

export class RedisChannel implements Channel {
  readonly name = 'Redis pub/sub';
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  async send(message: InvalidationMessage): Promise<void> {
    await this.redis.publish(redisChannelName(this.prefix), JSON.stringify(message));
  }

  async close(): Promise<void> {
    // The connection is the process's own; it is closed with the other stores.
  }
}

export function listenOnRedis(url: string, options: RedisOptions, prefix: string, receiver: Receiver, log: Logger): Listening {
  const channel = redisChannelName(prefix);
  const { Redis } = require('ioredis') as typeof import('ioredis');
  const subscriber = new Redis(url, {
    connectTimeout: 3000,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
    ...options,
    lazyConnect: true,
    // Subscribed here, on each 'ready', so that the moment it is back is known (see above).
    autoResubscribe: false,
    maxRetriesPerRequest: null,
  });
  let subscribedBefore = false;
  let down = false;
  let closed = false;
  const lost = (detail: string) => {
    if (down || closed) return;
    down = true;
    log.warn({ detail }, 'lost the Redis connection that hears changes from other Gatehouse processes; reconnecting (caches keep their short TTL meanwhile)');
  };
  subscriber.on('error', (err: Error) => lost(err.message));
  // A connection Redis closed cleanly (a restart, a proxy) reports no error.
  subscriber.on('close', () => subscribedBefore && lost('the connection closed'));
  subscriber.on('ready', () => {
    subscriber.subscribe(channel).then(
      () => {
        // Anything sent before this SUBSCRIBE, while this process was already serving, went unheard.
        if (subscribedBefore || down) {
          log.info('hearing changes from other Gatehouse processes through Redis again');
          receiver.missed();
        }
        subscribedBefore = true;
        down = false;
      },
      (err: Error) => log.warn({ detail: err.message }, 'could not subscribe to changes in Redis; retrying when it reconnects'),
    );
  });
  subscriber.on('message', (from: string, text: string) => {
    if (from !== channel) return;
    const message = parseMessage(text);
    if (message) receiver.receive(message);
  });
  // The first failure is reported through 'error'; ioredis keeps trying.
  subscriber.connect().catch(() => undefined);
  return {
    async close() {
      closed = true;
      subscriber.disconnect();
    },
  };
}
