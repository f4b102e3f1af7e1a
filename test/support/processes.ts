import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

export interface GatehouseProcess {
  url: string;
  child: ChildProcess;
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Gatehouse as a separate process, waiting until /readyz answers: from the TypeScript sources
 * (`npm run dev`: node --import=tsx src/server.ts), or with `compiled` as `npm start` runs it
 * (node dist/src/server.js, after `npm run compile`).
 */
export async function spawnGatehouse(env: Record<string, string>, { waitReady = true, compiled = false } = {}): Promise<GatehouseProcess> {
  const args = compiled ? ['dist/src/server.js'] : ['--import=tsx', 'src/server.ts'];
  const child = spawn(process.execPath, args, { cwd: root, env: { GATEHOUSE_WORKERS: '1', ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = `http://localhost:${env.PORT}`;
  const proc: GatehouseProcess = {
    url,
    child,
    output: () => output,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  if (!waitReady) return proc;
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`gatehouse exited with ${child.exitCode}: ${output}`);
    try {
      const res = await fetch(`${url}/readyz`);
      if (res.status === 200) return proc;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  await proc.stop('SIGKILL');
  throw new Error(`gatehouse did not become ready: ${output}`);
}

/** Waits for `child` to exit and returns its code. */
export function exitCode(proc: GatehouseProcess, timeoutMs = 20_000): Promise<number | null> {
  return new Promise((resolve, reject) => {
    if (proc.child.exitCode !== null) return resolve(proc.child.exitCode);
    const timer = setTimeout(() => reject(new Error(`still running: ${proc.output()}`)), timeoutMs);
    proc.child.on('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}
