import net from 'node:net';
import test from 'ava';
import { createTestDatabase, freePort } from './support/gatehouse.ts';
import { exitCode, spawnGatehouse } from './support/processes.ts';

/**
 * Starting Gatehouse where something already listens on its port, as `npm start` and as one
 * process: one line naming the port, exit 1, and nothing after it (no stack trace from a worker
 * still starting when the primary left: "write EPIPE").
 */

/** Lines a Node runtime other than the one oidc-provider recommends prints on import; not Gatehouse's output. */
const runtimeWarning = /^oidc-provider WARNING: Unsupported runtime/;

for (const workers of ['1', '2']) {
  test(`with GATEHOUSE_WORKERS=${workers}, a busy port stops start-up with "gatehouse: port N is already in use" and exit 1`, async (t) => {
    const port = await freePort();
    const busy = net.createServer();
    await new Promise<void>((resolve) => busy.listen(port, resolve));
    const database = await createTestDatabase('sqlite');
    try {
      const gatehouse = await spawnGatehouse(
        { PORT: String(port), DATABASE_URL: database.url, GATEHOUSE_ISSUER: `http://localhost:${port}`, GATEHOUSE_WORKERS: workers },
        { waitReady: false },
      );
      const code = await exitCode(gatehouse, 60_000).catch(async (err) => {
        await gatehouse.stop('SIGKILL');
        throw err;
      });
      t.is(code, 1);
      const lines = gatehouse.output().split('\n').filter((l) => l.trim() && !runtimeWarning.test(l));
      t.deepEqual(lines, [`gatehouse: port ${port} is already in use`], gatehouse.output());
    } finally {
      busy.close();
      await database.drop();
    }
  });
}
