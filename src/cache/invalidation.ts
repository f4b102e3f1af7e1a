import cluster from 'node:cluster';
import type { Knex } from 'knex';
import type { Redis } from 'ioredis';
import type { Config } from '../config.ts';
import { createQuietLogger, type Logger } from '../observability/logger.ts';
import { ChangesFileChannel, changesFileOf, watchChangesFile } from './changes-file.ts';
import { PrimaryRelay, WorkerChannel } from './cluster.ts';
import {
  EVERY_TOPIC,
  newMessage,
  RecentIds,
  SEND_TIMEOUT_MS,
  withTimeout,
  type Channel,
  type Delivery,
  type InvalidationMessage,
  type Listening,
  type Receiver,
} from './messages.ts';
import { listenOnPostgres, PostgresChannel } from './postgres-channel.ts';
import { listenOnRedis, RedisChannel } from './redis-channel.ts';

/**
 * "This changed": how a change made in one Gatehouse process reaches the per-process caches of
 * every other one (client metadata, signing keys, scopes). A cache keeps its short
 * TTL only as the bound for a message that got lost.
 *
 * How a message travels (the paths, each in its own file):
 * - within this process: the handlers run before `publish` returns, so this process never
 *   serves what it just changed as it was;
 * - between the workers of one host (cluster.ts): a worker sends it to the primary over
 *   node:cluster IPC, the primary hands it to every other worker and answers once each has run
 *   its handlers, so `publish` in a worker returns when the whole host has let go of the old state;
 * - to every other process over the same stores, other hosts and the CLI included: Redis
 *   pub/sub when REDIS_URL is set (redis-channel.ts); otherwise PostgreSQL LISTEN/NOTIFY
 *   (postgres-channel.ts) or, for the embedded SQLite database (one host by nature), a file of
 *   changes beside the database (changes-file.ts). One process per host listens (the primary,
 *   or the process itself when there are no workers) and hands what it hears to its workers.
 * Publishing never fails the change that caused it: a path that is down is logged and the TTL
 * bounds what it would have carried.
 */
export interface Invalidations {
  /** Tells every Gatehouse process, this one included, that `key` of `topic` changed (no key: all of it). */
  publish(topic: string, key?: string): Promise<void>;
  /** Runs `handler` in this process whenever `topic` changes anywhere; returns an unsubscribe. */
  subscribe(topic: string, handler: (key: string | undefined) => void): () => void;
  close(): Promise<void>;
}

/** How long a delivery waits for an asynchronous handler (a signing key reload) to finish. */
const HANDLER_TIMEOUT_MS = 2000;

type Handler = (key: string | undefined) => unknown;

/**
 * The handlers of this process and the paths out of it. A message is delivered once however
 * many paths bring it; delivery waits for handlers that return a promise (a key reload), so an
 * answer "delivered" means the old state is gone.
 */
export class ProcessInvalidations implements Invalidations, Delivery {
  private readonly handlers = new Map<string, Set<Handler>>();
  private readonly delivered = new RecentIds<Promise<void>>();
  private readonly listenings: Listening[] = [];
  private closed = false;

  constructor(
    private readonly channels: Channel[] = [],
    private readonly log: Logger = createQuietLogger(),
  ) {}

  async publish(topic: string, key?: string): Promise<void> {
    const message = newMessage(topic, key);
    await this.deliver(message);
    if (this.closed) return;
    await Promise.all(
      this.channels.map((channel) =>
        withTimeout(channel.send(message), SEND_TIMEOUT_MS, channel.name).catch((err: Error) =>
          this.log.warn({ topic, channel: channel.name, detail: err.message }, 'could not tell the other Gatehouse processes about a change; their caches let go of it when their short TTL ends'),
        ),
      ),
    );
  }

  subscribe(topic: string, handler: (key: string | undefined) => void): () => void {
    const set = this.handlers.get(topic) ?? new Set<Handler>();
    this.handlers.set(topic, set);
    // Each subscription is its own, even of the same function twice.
    const entry: Handler = (key) => handler(key);
    set.add(entry);
    return () => {
      set.delete(entry);
    };
  }

  /** Runs this process's handlers for `message`, once per message id; resolves when they are done. */
  deliver(message: InvalidationMessage): Promise<void> {
    const earlier = this.delivered.get(message.id);
    if (earlier) return earlier;
    const running = this.runHandlers(message);
    this.delivered.add(message.id, running);
    return running;
  }

  /** Where messages heard from other processes come in. */
  readonly receiver: Receiver = {
    receive: (message) => void this.deliver(message),
    missed: () => void this.deliver(newMessage(EVERY_TOPIC)),
  };

  /** Keeps a listening path to close with this instance. */
  listenWith(listening: Listening): void {
    this.listenings.push(listening);
  }

  private async runHandlers(message: InvalidationMessage): Promise<void> {
    const handlers = message.topic === EVERY_TOPIC ? [...this.handlers.values()].flatMap((set) => [...set]) : [...(this.handlers.get(message.topic) ?? [])];
    const key = message.topic === EVERY_TOPIC ? undefined : message.key;
    await Promise.all(
      handlers.map(async (handler) => {
        try {
          await withTimeout(Promise.resolve(handler(key)), HANDLER_TIMEOUT_MS, `a ${message.topic} cache`);
        } catch (err) {
          this.log.warn({ topic: message.topic, detail: (err as Error).message }, 'a cache could not apply a change; its TTL bounds it');
        }
      }),
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    this.handlers.clear();
    await Promise.all([...this.listenings.map((l) => l.close()), ...this.channels.map((c) => c.close())]);
  }
}

export interface InvalidationsOptions {
  /** The stores this process has open; publishing uses them (no extra connection). */
  db: Knex;
  redis?: Redis | undefined;
  log?: Logger;
  /**
   * Whether this process serves requests and must hear changes made elsewhere. A cluster worker
   * hears them from its primary; any other serving process listens itself. The CLI only tells.
   */
  listen?: boolean;
}

/** The Invalidations of this process, over the paths its configuration and role call for. */
export function openInvalidations(config: Config, { db, redis, log = createQuietLogger(), listen = false }: InvalidationsOptions): Invalidations {
  const shared = sharedChannel(config, db, redis);
  const worker = cluster.isWorker && process.send ? new WorkerChannel() : undefined;
  const invalidations = new ProcessInvalidations(worker ? [worker, shared] : [shared], log);
  if (worker) invalidations.listenWith(worker.listen(invalidations));
  else if (listen) invalidations.listenWith(listenToOtherProcesses(config, invalidations.receiver, log));
  return invalidations;
}

/**
 * The primary of `npm start`: relays changes between its workers, and hands them what the host
 * hears from other processes (other hosts, the CLI). Returns what to close when it stops.
 */
export function relayInvalidationsToWorkers(config: Config, log: Logger): Listening {
  const relay = new PrimaryRelay(log);
  const listening = listenToOtherProcesses(config, relay.receiver, log);
  return {
    async close() {
      await Promise.all([relay.close(), listening.close()]);
    },
  };
}

/** The path to every other process over the same stores: Redis when configured, else the database's own. */
function sharedChannel(config: Config, db: Knex, redis: Redis | undefined): Channel {
  if (redis) return new RedisChannel(redis, config.redisPrefix);
  if (config.database.client === 'pg') return new PostgresChannel(db);
  return new ChangesFileChannel(changesFileOf(config.database.filename));
}

function listenToOtherProcesses(config: Config, receiver: Receiver, log: Logger): Listening {
  if (config.redisUrl) return listenOnRedis(config.redisUrl, config.redisOptions, config.redisPrefix, receiver, log);
  if (config.database.client === 'pg') return listenOnPostgres(config.database.connectionString, receiver, log);
  return watchChangesFile(changesFileOf(config.database.filename), receiver, log);
}

/** Only this process: for code and tests that need an Invalidations and nothing else to tell. */
export function localInvalidations(): Invalidations {
  return new ProcessInvalidations();
}
