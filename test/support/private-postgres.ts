import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './gatehouse.ts';

const run = promisify(execFile);

/**
 * A PostgreSQL cluster of the test's own (initdb into a temporary directory, its own port and
 * socket directory), which the test may stop and start again without disturbing the shared
 * server other test files use at the same time. As root (CI), the server runs as the
 * `postgres` OS user, since PostgreSQL refuses to run as root.
 */
export interface PrivatePostgres {
  port: number;
  /** postgres://postgres@127.0.0.1:<port>/postgres (trust authentication). */
  url: string;
  running(): boolean;
  /** pg_ctl stop: 'immediate' as a crash (recovery at the next start), 'fast' as an operator's restart. */
  stop(mode?: 'immediate' | 'fast'): Promise<void>;
  /** pg_ctl start, waiting until it accepts connections. */
  start(): Promise<void>;
  /** Stops the server and removes its directory. */
  close(): Promise<void>;
}

/** The newest /usr/lib/postgresql/<major>/bin, or $TEST_POSTGRES_BIN. */
export function postgresBinDir(): string {
  if (process.env.TEST_POSTGRES_BIN) return process.env.TEST_POSTGRES_BIN;
  const root = '/usr/lib/postgresql';
  const majors = fs.existsSync(root) ? fs.readdirSync(root).filter((d) => fs.existsSync(path.join(root, d, 'bin', 'initdb'))) : [];
  majors.sort((a, b) => Number(b) - Number(a));
  if (!majors.length) throw new Error(`no PostgreSQL server binaries under ${root} (set TEST_POSTGRES_BIN)`);
  return path.join(root, majors[0]!, 'bin');
}

const isRoot = () => process.getuid?.() === 0;

/** A command line for `bin/cmd`, as the postgres OS user when we are root. */
function asServerUser(bin: string, cmd: string, args: string[]): [string, string[]] {
  const exe = path.join(bin, cmd);
  return isRoot() ? ['runuser', ['-u', 'postgres', '--', exe, ...args]] : [exe, args];
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = postgresBinDir();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-pg-'));
  const data = path.join(dir, 'data');
  const log = path.join(dir, 'server.log');
  if (isRoot()) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    fs.chownSync(dir, uid, gid);
  }
  const port = await freePort();
  const pgctl = (args: string[]) => asServerUser(bin, 'pg_ctl', ['-D', data, ...args]);
  const exec = async ([file, args]: [string, string[]], timeout = 60_000) => {
    try {
      await run(file, args, { timeout });
    } catch (err) {
      const e = err as Error & { stdout?: string; stderr?: string };
      const serverLog = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').slice(-2000) : '';
      throw new Error(`${path.basename(args.find((a) => a.startsWith('/')) ?? file)} ${args.slice(-1)[0]} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}\n${serverLog}`);
    }
  };

  await exec(asServerUser(bin, 'initdb', ['-D', data, '--auth=trust', '-U', 'postgres', '--no-sync', '--no-instructions', '-E', 'UTF8', '--locale=C']));
  let up = false;
  // fsync=off: nothing here outlives the test, and the OS does not crash under it; a stop in
  // 'immediate' mode still leaves a cluster that needs crash recovery at the next start.
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=16MB -c max_connections=50`;
  const start = async () => {
    await exec(pgctl(['-l', log, '-w', '-t', '60', '-o', options, 'start']));
    up = true;
  };
  const stop = async (mode: 'immediate' | 'fast' = 'immediate') => {
    await exec(pgctl(['-w', '-t', '60', '-m', mode, 'stop']));
    up = false;
  };
  // A test process that dies (a timeout, ^C) must not leave a server behind.
  const onExit = () => {
    if (!up) return;
    const [file, args] = pgctl(['-m', 'immediate', 'stop']);
    try {
      execFileSync(file, args, { stdio: 'ignore', timeout: 10_000 });
    } catch {
      // already gone
    }
  };
  process.once('exit', onExit);

  try {
    await start();
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    running: () => up,
    stop,
    start,
    async close() {
      if (up) await stop('immediate').catch(() => undefined);
      process.removeListener('exit', onExit);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
