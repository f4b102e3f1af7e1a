/**
 * Load generation: autocannon (programmatic) for the request workloads, and a small concurrent
 * loop of complete sign-ins. Every measurement reads the server processes' CPU time (utime +
 * stime from /proc) before and after, and their RSS after.
 */
import autocannon from 'autocannon';
import { totalCpu, totalRss, type ServerProcess } from './processes.ts';
import { signIn, type SignInClient, type SignInForms } from './user-agent.ts';

export interface RequestSpec {
  method: 'GET' | 'POST';
  path: string;
  headers: Record<string, string>;
  body?: string;
}

export interface LoadSettings {
  connections: number;
  warmupSeconds: number;
  durationSeconds: number;
}

export interface Measurement {
  rps: number;
  requests: number;
  p50: number;
  p99: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  statusCodes: Record<string, number>;
  cpuSeconds: number;
  /** Of cpuSeconds, the kernel's share (stime): syscalls such as fsync, network. */
  cpuSystemSeconds: number;
  /** Server CPU time per request, in milliseconds. */
  cpuMsPerRequest: number;
  /** Wall-clock window of the measurement, CLOCK_MONOTONIC microseconds (as V8 profiles count). */
  windowUs: [number, number];
  rssBytes: number;
  processes: number;
}

function run(url: string, spec: RequestSpec, connections: number, seconds: number) {
  return autocannon({
    url: new URL(spec.path, url).href,
    method: spec.method,
    headers: spec.headers,
    ...(spec.body !== undefined ? { body: spec.body } : {}),
    connections,
    duration: seconds,
    timeout: 30,
  });
}

/** Warm-up (results discarded), then the measurement with the server's CPU time around it. */
export async function measure(server: ServerProcess, spec: RequestSpec, settings: LoadSettings): Promise<Measurement> {
  if (settings.warmupSeconds > 0) await run(server.url, spec, settings.connections, settings.warmupSeconds);
  const pids = server.pids();
  const cpuBefore = totalCpu(pids);
  const startUs = Number(process.hrtime.bigint() / 1000n);
  const result = await run(server.url, spec, settings.connections, settings.durationSeconds);
  const endUs = Number(process.hrtime.bigint() / 1000n);
  const cpuAfter = totalCpu(pids);
  const cpuSeconds = cpuAfter.user + cpuAfter.system - cpuBefore.user - cpuBefore.system;
  const statusCodes: Record<string, number> = {};
  for (const [code, stat] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = stat.count ?? 0;
  const requests = result.requests.total;
  return {
    rps: requests / result.duration,
    requests,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    statusCodes,
    cpuSeconds,
    cpuSystemSeconds: cpuAfter.system - cpuBefore.system,
    cpuMsPerRequest: requests ? (cpuSeconds * 1000) / requests : NaN,
    windowUs: [startUs, endUs],
    rssBytes: totalRss(pids),
    processes: pids.length,
  };
}

export interface SignInMeasurement {
  signIns: number;
  failures: number;
  failureSamples: string[];
  consents: number;
  seconds: number;
  perSecond: number;
  cpuSeconds: number;
  perCpuSecond: number;
  p50Ms: number;
  p99Ms: number;
  rssBytes: number;
}

export interface SignInTarget {
  issuer: string;
  forms: SignInForms;
  client: SignInClient;
  nextUser(): { username: string; password: string };
}

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function signInLoop(target: SignInTarget, concurrency: number, seconds: number) {
  const end = Date.now() + seconds * 1000;
  const durations: number[] = [];
  const failureSamples: string[] = [];
  let failures = 0;
  let consents = 0;
  const started = Date.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) {
        const user = target.nextUser();
        const t0 = performance.now();
        try {
          const outcome = await signIn(target.issuer, target.forms, target.client, user.username, user.password);
          durations.push(performance.now() - t0);
          if (outcome.consented) consents++;
        } catch (err) {
          failures++;
          if (failureSamples.length < 3) failureSamples.push((err as Error).message.slice(0, 300));
        }
      }
    }),
  );
  return { durations, failures, failureSamples, consents, seconds: (Date.now() - started) / 1000 };
}

/** Complete sign-ins (authorize → login → consent → code → token) by `concurrency` people at once. */
export async function measureSignIns(server: ServerProcess, target: SignInTarget, concurrency: number, settings: LoadSettings): Promise<SignInMeasurement> {
  if (settings.warmupSeconds > 0) await signInLoop(target, concurrency, settings.warmupSeconds);
  const pids = server.pids();
  const cpuBefore = totalCpu(pids);
  const r = await signInLoop(target, concurrency, settings.durationSeconds);
  const cpuAfter = totalCpu(pids);
  const cpuSeconds = cpuAfter.user + cpuAfter.system - cpuBefore.user - cpuBefore.system;
  const sorted = [...r.durations].sort((a, b) => a - b);
  return {
    signIns: r.durations.length,
    failures: r.failures,
    failureSamples: r.failureSamples,
    consents: r.consents,
    seconds: r.seconds,
    perSecond: r.durations.length / r.seconds,
    cpuSeconds,
    perCpuSecond: cpuSeconds ? r.durations.length / cpuSeconds : NaN,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    rssBytes: totalRss(pids),
  };
}
