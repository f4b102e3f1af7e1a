import cluster from 'node:cluster';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createApp, type GatehouseApp } from './app.ts';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { openServices, prepareStores, type Services } from './services.ts';
import { relayInvalidationsToWorkers } from './cache/invalidation.ts';
import { KEYS_TOPIC } from './keys/service.ts';
import { sweepExpiredPayloads } from './oidc/index.ts';
import { createLogger, type Logger } from './observability/logger.ts';
import type { HttpMetrics } from './observability/metrics.ts';
import type { DestinationStream } from 'pino';
import { redactCredentials, redactUrl } from './observability/redact.ts';

export interface RunningGatehouse {
  server: Server;
  services: Services;
  gatehouse: GatehouseApp;
  url: string;
  stop(): Promise<void>;
}

const SWEEP_INTERVAL_MS = 60_000;
// Under the 30 s most process managers wait after SIGTERM before they SIGKILL.
const SHUTDOWN_GRACE_MS = 25_000;

/**
 * Opens the stores, composes the app and listens. Used by `npm start` and by the tests, which
 * may send the log lines somewhere to read them (`logDestination`).
 */
export async function startGatehouse(config: Config, { logDestination }: { logDestination?: DestinationStream } = {}): Promise<RunningGatehouse> {
  const log = createLogger(config.logLevel, logDestination);
  // prom-client is loaded only where metrics are on.
  const metrics: HttpMetrics | undefined = config.metrics.enabled ? new (await import('./observability/metrics.ts')).HttpMetrics() : undefined;
  const services = await openServices(config, { log, metrics, listen: true });
  // Keys rotated or retired anywhere (the admin, the CLI, another host) are reloaded as soon as
  // the message arrives; the poll every keysReloadSeconds only bounds a message that got lost.
  // Subscribed before the app first reads the keys, so a rotation landing meanwhile is not missed.
  let started: GatehouseApp | undefined;
  let keysChangedWhileStarting = false;
  const reloadKeys = () =>
    started!.reloadSigningKeys().then(
      (changed) => changed && log.info({ event: 'keys.reloaded' }, 'signing keys changed; now serving the new set'),
      (err: Error) => log.warn({ detail: err.message }, 'could not reload signing keys; retrying'),
    );
  const unsubscribeKeys = services.invalidations.subscribe(KEYS_TOPIC, () => {
    if (started) return reloadKeys();
    keysChangedWhileStarting = true;
  });
  const gatehouse = await createApp(services);
  started = gatehouse;
  if (keysChangedWhileStarting) await reloadKeys();
  const { app } = gatehouse;
  app.on('error', (err: Error) => {
    // The error itself (message, stack): never request bodies or headers, which carry secrets.
    log.error({ err }, 'unhandled error');
  });
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(config.port, () => resolve(s));
    s.once('error', reject);
  });
  // Longer than a load balancer's idle timeout (often 60 s): otherwise Node closes a kept-alive
  // connection just as the balancer reuses it, and a client sees a reset.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  // Answers being written, so that stop() can have their connections close once they are out.
  const answering = new Set<ServerResponse>();
  server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
    answering.add(res);
    res.once('close', () => answering.delete(res));
  });
  const sweeper = setInterval(() => {
    sweepExpiredPayloads(services.db).catch((err: Error) => log.warn({ detail: err.message }, 'sweeping expired tokens failed; retrying in a minute'));
    // Failure counters whose window and lock are over, so hostile sign-ins leave nothing behind.
    services.throttle.sweepExpired().catch((err: Error) => log.warn({ detail: err.message }, 'sweeping expired failure counters failed; retrying in a minute'));
    // Mailed links (reset, verification) a day past their expiry or use.
    services.passwordResets.sweepLinks().catch((err: Error) => log.warn({ detail: err.message }, 'sweeping old account links failed; retrying in a minute'));
  }, SWEEP_INTERVAL_MS);
  sweeper.unref();
  const keyReloader = setInterval(reloadKeys, config.keysReloadSeconds * 1000);
  keyReloader.unref();

  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  return {
    server,
    services,
    gatehouse,
    url: `http://localhost:${port}`,
    async stop() {
      clearInterval(sweeper);
      clearInterval(keyReloader);
      unsubscribeKeys();
      // Stop accepting and let requests in flight finish. Their answers, and any arriving on a
      // connection already open, close the connection when sent: a kept-alive client (a load
      // balancer's pool) must not hold the process open until its idle timeout. A request that
      // still has not finished after SHUTDOWN_GRACE_MS (a body trickling in forever) is cut.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const res of answering) if (!res.headersSent) res.shouldKeepAlive = false;
      server.on('request', (_req: IncomingMessage, res: ServerResponse) => (res.shouldKeepAlive = false));
      server.closeIdleConnections();
      const sweep = setInterval(() => server.closeIdleConnections(), 50);
      const deadline = setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS);
      await closed;
      clearInterval(sweep);
      clearTimeout(deadline);
      await services.close();
    },
  };
}

function readConfigOrExit(): Config {
  try {
    return loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`gatehouse: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
}

/**
 * Why Gatehouse could not start, in one line an operator can act on; never with a password of
 * the store URLs, which drivers' messages may quote.
 */
export function startupFailure(err: unknown, config: Config): string {
  const code = (err as NodeJS.ErrnoException).code;
  // A worker's listen fails in the cluster primary and reads "bind EADDRINUSE null:3300".
  if (code === 'EADDRINUSE') return `gatehouse: port ${config.port} is already in use`;
  if (code === 'EACCES') return `gatehouse: port ${config.port} needs privileges this user does not have; choose a PORT above 1023`;
  return `gatehouse: could not start: ${redactCredentials((err as Error).message, storeUrls(config))}`;
}

const storeUrls = (config: Config) => [config.database.client === 'pg' ? config.database.connectionString : undefined, config.redisUrl, config.mail?.smtpUrl];

/** What a worker tells the primary before it exits at start-up, so that the host says it once. */
const STARTUP_FAILED = 'gatehouse:startup-failed';

/** One serving process: listens, and stops cleanly on SIGTERM/SIGINT (requests in flight finish). */
async function serve(config: Config): Promise<RunningGatehouse> {
  let running: RunningGatehouse;
  try {
    running = await startGatehouse(config);
  } catch (err) {
    const reason = startupFailure(err, config);
    if (cluster.isWorker && process.connected) {
      // Every worker fails alike (a busy port): the primary prints the first reason only.
      process.send!({ gatehouse: STARTUP_FAILED, reason }, undefined, {}, () => process.exit(1));
      return new Promise<never>(() => {});
    }
    console.error(reason);
    process.exit(1);
  }
  const shutdown = (signal: NodeJS.Signals) => {
    running.services.log.info({ signal }, 'stopping: no new connections; finishing the requests in flight');
    running.stop().then(() => process.exit(0), () => process.exit(1));
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
  return running;
}

const announce = (config: Config, workers: number, log: Logger) => {
  const store = config.database.client === 'pg' ? 'PostgreSQL' : `SQLite ${config.database.filename}`;
  log.info(
    // The SMTP URL only with its password masked.
    { issuer: config.issuer, port: config.port, store, redis: Boolean(config.redisUrl), workers, metrics: config.metrics.enabled, mail: config.mail ? redactUrl(config.mail.smtpUrl) : false },
    `serving ${config.issuer} on port ${config.port} (${store}${config.redisUrl ? ' + Redis' : ''}, ${workers} worker${workers === 1 ? '' : 's'}); discovery at ${config.issuer}/.well-known/openid-configuration`,
  );
};

/**
 * `npm start`. With GATEHOUSE_WORKERS > 1 the primary prepares the stores once (migrations,
 * first signing keys and cookie keys, so workers never race to create them), then forks the
 * workers, which share the port through node:cluster and all state through the stores.
 */
async function main(): Promise<void> {
  const config = readConfigOrExit();
  if (config.workers === 1) {
    const running = await serve(config);
    announce(config, 1, running.services.log);
    return;
  }
  if (cluster.isWorker) {
    await serve(config);
    return;
  }
  try {
    await prepareStores(config);
  } catch (err) {
    console.error(startupFailure(err, config));
    process.exit(1);
  }
  const log = createLogger(config.logLevel);
  if (config.metrics.enabled) (await import('./observability/metrics.ts')).serveClusterMetrics();
  // A change made in one worker, another host or the CLI reaches every worker (cache/cluster.ts).
  relayInvalidationsToWorkers(config, log);
  let stopping = false;
  let ready = 0;
  const fork = () => cluster.fork().on('listening', () => ++ready === config.workers && announce(config, config.workers, log));
  for (let i = 0; i < config.workers; i++) fork();
  let failure: string | undefined;
  cluster.on('message', (_worker, message: { gatehouse?: unknown; reason?: unknown }) => {
    if (message?.gatehouse === STARTUP_FAILED && typeof message.reason === 'string') failure ??= message.reason;
  });
  /**
   * Stops every worker and exits once all are gone. A worker is gone when it has exited and its
   * IPC channel closed (node:cluster then drops it from cluster.workers), so what it sent has
   * arrived; and no worker still starting writes to the channel of a primary that left (EPIPE).
   */
  const stopAll = (exitCode: number, last?: () => void) => {
    stopping = true;
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
    const gone = () => {
      if (Object.keys(cluster.workers ?? {}).length) return;
      last?.();
      process.exit(exitCode);
    };
    cluster.on('exit', gone);
    cluster.on('disconnect', gone);
    gone();
  };
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return;
    // A worker that dies unexpectedly is replaced; one that fails at start-up stops everything,
    // saying why in one line.
    if (code === 1 && !signal && ready < config.workers) {
      stopAll(1, () => console.error(failure ?? 'gatehouse: a worker could not start; stopping'));
      return;
    }
    log.error({ worker_pid: worker.process.pid, exit: signal ?? code }, 'a worker exited; starting another');
    fork();
  });
  const stop = () => stopAll(0);
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
}
