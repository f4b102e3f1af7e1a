import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { freePort } from './gatehouse.ts';

/**
 * A Redis server of the test's own (no persistence), which the test may kill and start again
 * on the same port without disturbing the shared Redis other test files use at the same time.
 */
export interface PrivateRedis {
  port: number;
  url: string;
  running(): boolean;
  /** Stops the server (SIGKILL: as a crash; SIGTERM: as an operator's restart). */
  stop(signal?: 'SIGKILL' | 'SIGTERM'): Promise<void>;
  /** Starts it again on the same port; resolves once it answers PING. */
  start(): Promise<void>;
  close(): Promise<void>;
}

/** Does something on `port` answer a Redis PING with +PONG? */
export function redisAnswers(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (d) => {
      reply += d;
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
    socket.on('error', () => done(false));
  });
}

export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let output = '';

  const start = async () => {
    output = '';
    const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    proc.stdout!.on('data', (d) => (output += d));
    proc.stderr!.on('data', (d) => (output += d));
    exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    const spawnError = new Promise<never>((_, reject) => proc.once('error', reject));
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`redis-server exited with ${proc.exitCode}: ${output}`);
      if (await Promise.race([redisAnswers(port), spawnError])) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    proc.kill('SIGKILL');
    throw new Error(`redis-server on port ${port} did not answer: ${output}`);
  };

  const stop = async (signal: 'SIGKILL' | 'SIGTERM' = 'SIGKILL') => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
    child = undefined;
  };

  // A test process that dies (a timeout, ^C) must not leave a server behind.
  const onExit = () => child?.kill('SIGKILL');
  process.once('exit', onExit);

  try {
    await start();
  } catch (err) {
    process.removeListener('exit', onExit);
    throw err;
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    running: () => Boolean(child && child.exitCode === null && child.signalCode === null),
    stop,
    start,
    async close() {
      await stop('SIGKILL');
      process.removeListener('exit', onExit);
    },
  };
}
