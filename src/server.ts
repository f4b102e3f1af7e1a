import type { Server } from 'node:http';
import { createApp, type GatehouseApp } from './app.ts';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { openServices, type Services } from './services.ts';
import { sweepExpiredPayloads } from '../adapters/knex.ts';

export interface RunningGatehouse {
  server: Server;
  services: Services;
  gatehouse: GatehouseApp;
  url: string;
  stop(): Promise<void>;
}

const SWEEP_INTERVAL_MS = 60_000;

/** Opens the stores, composes the app and listens. Used by `npm start` and by the tests. */
export async function startGatehouse(config: Config): Promise<RunningGatehouse> {
  const services = await openServices(config);
  const gatehouse = await createApp(services);
  const { app } = gatehouse;
  app.on('error', (err: Error) => {
    // Only the message and stack: never request bodies or headers, which carry secrets.
    console.error(JSON.stringify({ level: 'error', msg: 'unhandled error', error: err.message, stack: err.stack }));
  });
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(config.port, () => resolve(s));
    s.once('error', reject);
  });
  const sweeper = setInterval(() => {
    sweepExpiredPayloads(services.db).catch(() => undefined);
  }, SWEEP_INTERVAL_MS);
  sweeper.unref();
  // Keys rotated by the CLI (or another process) are picked up within keysReloadSeconds.
  const keyReloader = setInterval(() => {
    gatehouse.reloadSigningKeys().catch(() => undefined);
  }, config.keysReloadSeconds * 1000);
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
      // Stop accepting, let requests in flight finish, then drop idle keep-alive connections.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await closed;
      await services.close();
    },
  };
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`gatehouse: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  let running: RunningGatehouse;
  try {
    running = await startGatehouse(config);
  } catch (err) {
    console.error(`gatehouse: could not start: ${(err as Error).message}`);
    process.exit(1);
  }
  console.log(`gatehouse: serving ${config.issuer} on port ${config.port} (${config.database.client === 'pg' ? 'PostgreSQL' : `SQLite ${config.database.filename}`})`);
  console.log(`gatehouse: discovery at ${config.issuer}/.well-known/openid-configuration`);
  const shutdown = () => {
    running.stop().then(() => process.exit(0), () => process.exit(1));
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
}
