/**
 * Server processes for the benchmark: spawning, waiting until ready, reading their CPU time and
 * memory from /proc, and stopping every one of them (by pid) however the run ends.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '');

/** Where servers run from: the project, or the run's snapshot of it (see snapshot.ts). */
let codeRoot = ROOT;
export const setCodeRoot = (dir: string) => {
  codeRoot = dir;
};
export const getCodeRoot = () => codeRoot;

let clockTicks = 100;
try {
  clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch {
  // Linux's usual value
}
const pageSize = 4096;

export interface ServerProcess {
  name: string;
  url: string;
  child: ChildProcess;
  pid: number;
  output(): string;
  /** The serving processes: the spawned one and (cluster) its node children. */
  pids(): number[];
  /** Set when the process exited without being asked to (with the end of its output). */
  crashed(): string | undefined;
  stop(): Promise<void>;
}

const running = new Set<ServerProcess>();

/** Every pid we started that may still be alive: the spawned processes and the workers we saw. */
const knownPids = new Map<number, Set<number>>();

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
    srv.once('error', reject);
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Direct children of `pid` (all threads), from /proc. */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[] = [];
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tasks) {
    try {
      for (const c of fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(/\s+/)) if (c) out.push(Number(c));
    } catch {
      // thread gone
    }
  }
  return out;
}

function isNode(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'node' || fs.readlinkSync(`/proc/${pid}/exe`) === process.execPath;
  } catch {
    return false;
  }
}

export interface CpuTimes {
  user: number;
  system: number;
}

/** utime and stime of one process (all its threads), in seconds; zeros if it is gone. */
export function cpuTimes(pid: number): CpuTimes {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces; fields are counted after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): utime is field 14, stime 15.
    return { user: Number(fields[11]) / clockTicks, system: Number(fields[12]) / clockTicks };
  } catch {
    return { user: 0, system: 0 };
  }
}

/** utime + stime of one process, in seconds. */
export function cpuSeconds(pid: number): number {
  const t = cpuTimes(pid);
  return t.user + t.system;
}

/** Resident set size in bytes (VmRSS); 0 if the process is gone. */
export function rssBytes(pid: number): number {
  try {
    const statm = fs.readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ');
    return Number(statm[1]) * pageSize;
  } catch {
    return 0;
  }
}

export function totalCpu(pids: number[]): CpuTimes {
  return pids.reduce((sum, pid) => {
    const t = cpuTimes(pid);
    return { user: sum.user + t.user, system: sum.system + t.system };
  }, { user: 0, system: 0 });
}

export function totalRss(pids: number[]): number {
  return pids.reduce((sum, pid) => sum + rssBytes(pid), 0);
}

export interface SpawnOptions {
  name: string;
  script: string;
  port: number;
  env: Record<string, string>;
  /** Extra node flags (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /** A server that is not ours (django-oauth-toolkit under gunicorn): this command instead of node `script`. */
  command?: { file: string; args: string[]; cwd: string };
  /** Path answering 200 once the server serves. */
  readyPath: string;
  /** How many serving processes to wait for (cluster workers), counting node children. */
  workers?: number;
  timeoutMs?: number;
}

/**
 * Starts the compiled `<script>` (dist/…/x.js, as `npm start` runs src/server.ts) with plain node
 * in the code copy, and waits until `readyPath` answers 200.
 */
export async function spawnServer(opts: SpawnOptions): Promise<ServerProcess> {
  const compiled = path.join('dist', opts.script.replace(/\.ts$/, '.js'));
  // stdout (Gatehouse's request log, a line per request) goes to a file, as to a log shipper: read
  // through a pipe, the bench process would spend the CPU it needs for the load on it.
  const logFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bench-log-')), `${opts.name.replace(/\W+/g, '-')}.log`);
  const logFd = fs.openSync(logFile, 'a');
  const child = spawn(opts.command?.file ?? process.execPath, opts.command?.args ?? [...(opts.nodeArgs ?? []), compiled], {
    cwd: opts.command?.cwd ?? codeRoot,
    env: { ...process.env, ...opts.env, PORT: String(opts.port) },
    stdio: ['ignore', logFd, 'pipe'],
  });
  fs.closeSync(logFd);
  let errors = '';
  child.stderr!.on('data', (d: Buffer) => {
    errors += d.toString();
    if (errors.length > 200_000) errors = errors.slice(-100_000);
  });
  const tail = (file: string, bytes: number) => {
    try {
      const size = fs.statSync(file).size;
      const fd = fs.openSync(file, 'r');
      const buf = Buffer.alloc(Math.min(bytes, size));
      fs.readSync(fd, buf, 0, buf.length, size - buf.length);
      fs.closeSync(fd);
      return buf.toString();
    } catch {
      return '';
    }
  };
  /** What the server said on stderr, and the end of its log. */
  const output = () => `${errors}${tail(logFile, 8000)}`;
  let stopping = false;
  let crash: string | undefined;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      if (!stopping) {
        crash = `${opts.name} (pid ${child.pid}) exited unexpectedly (${signal ?? code}); its last output:\n${output().slice(-3000)}`;
        console.error(`\n!!! ${crash}\n`);
      }
      resolve();
    }),
  );
  const pid = child.pid!;
  const seen = new Set<number>([pid]);
  knownPids.set(pid, seen);
  const pids = () => {
    const workers = opts.command ? childrenOf(pid) : childrenOf(pid).filter(isNode);
    for (const w of workers) seen.add(w);
    return [pid, ...workers];
  };
  const url = `http://127.0.0.1:${opts.port}`;
  const proc: ServerProcess = {
    name: opts.name,
    url,
    child,
    pid,
    output,
    pids,
    crashed: () => crash,
    async stop() {
      stopping = true;
      running.delete(proc);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 15_000).unref());
      if ((await Promise.race([exited, timer])) === 'timeout') {
        for (const p of seen) if (alive(p)) process.kill(p, 'SIGKILL');
        await exited;
      }
      // Cluster workers leave when their primary does; make sure of it.
      const deadline = Date.now() + 5000;
      while ([...seen].some((p) => p !== pid && alive(p)) && Date.now() < deadline) await sleep(100);
      for (const p of seen) if (p !== pid && alive(p)) process.kill(p, 'SIGKILL');
      knownPids.delete(pid);
    },
  };
  running.add(proc);

  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  const wantWorkers = opts.workers && opts.workers > 1 ? opts.workers : 0;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      running.delete(proc);
      throw new Error(`${opts.name} exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${output().slice(-4000)}`);
    }
    try {
      const res = await fetch(`${url}${opts.readyPath}`);
      await res.arrayBuffer();
      if (res.status === 200 && (!wantWorkers || pids().length - 1 >= wantWorkers)) {
        // Give every cluster worker a moment to listen too.
        if (wantWorkers) await sleep(1000);
        return proc;
      }
    } catch {
      // not listening yet
    }
    await sleep(200);
  }
  await proc.stop();
  throw new Error(`${opts.name} did not become ready:\n${output().slice(-4000)}`);
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Stops every server still running (normal end, failure or Ctrl-C). */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((p) => p.stop().catch(() => undefined)));
}

/** Last resort at process exit: SIGKILL every pid we started or saw as a worker. */
export function killAllSync(): void {
  for (const set of knownPids.values()) {
    for (const p of set) {
      if (alive(p)) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
  }
}
