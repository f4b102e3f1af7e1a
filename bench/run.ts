/**
 * `npm run bench`: Gatehouse against a bare oidc-provider of the same version, in one run.
 *
 * Environment:
 *   BENCH_DURATION=10      seconds per measurement         BENCH_WARMUP=3    seconds of warm-up before each
 *   BENCH_CONNECTIONS=16   autocannon connections          BENCH_ROUNDS=2    A B rounds (median reported)
 *   BENCH_SIGNIN_CONCURRENCY=6  people signing in at once  BENCH_WORKERS=<cores>  "all workers"
 *   BENCH_QUICK=1          smoke run: SQLite only (a, b), no PostgreSQL, no growth
 *   BENCH_GROWTH=0|1       growth phase (default: on, off with BENCH_QUICK)
 *   BENCH_POSTGRES=0|1     PostgreSQL + Redis configurations (default: on, off with BENCH_QUICK)
 *   BENCH_PROFILE=0|1      --cpu-prof of Gatehouse under client-credentials load (default on)
 *   BENCH_ONLY=a,b,c1,c2,dot,growth,profile   run only these parts
 *   BENCH_DOT=0|1          django-oauth-toolkit (Debian packages) as a target (default on; skipped with a line when not installed)
 *   BENCH_WORKLOADS=cc,introspect,…   measure only these workloads (default: all); BENCH_SIGNINS=0 skips sign-ins
 *   BENCH_GROWTH_TOKENS=1000000 BENCH_GROWTH_USERS=100000 BENCH_GROWTH_CLIENTS=100000
 *   BENCH_POSTGRES_URL=postgres://127.0.0.1:5432/test  BENCH_REDIS_URL=redis://127.0.0.1:6379
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { measure, measureSignIns, type LoadSettings, type Measurement } from './load.ts';
import { freePort, killAllSync, setCodeRoot, spawnServer, stopAll } from './processes.ts';
import { createSnapshot, importFrom, type Snapshot } from './snapshot.ts';
import { loadGatehouseCode } from './gatehouse-setup.ts';
import { newestProfile, summarize } from './profile.ts';
import { badCount, markdown, med, median, mib, ratioOf, sum, textTable, type BenchReport, type Check, type ConfigResult, type PairRow } from './report.ts';
import { idleRss, startBare, startGatehouseTarget, type Target } from './targets.ts';
import { dotMissing, startDot } from './dot-target.ts';
import { WORKLOADS, type Workload, type WorkloadKey } from './workloads.ts';

const env = process.env;
const QUICK = env.BENCH_QUICK === '1';
const num = (name: string, fallback: number) => {
  const v = env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a number, not ${v}`);
  return n;
};
const flag = (name: string, fallback: boolean) => (env[name] === undefined || env[name] === '' ? fallback : env[name] === '1' || env[name] === 'true');

const load: LoadSettings = {
  connections: num('BENCH_CONNECTIONS', 16),
  warmupSeconds: num('BENCH_WARMUP', 3),
  durationSeconds: num('BENCH_DURATION', 10),
};
const ROUNDS = Math.max(1, num('BENCH_ROUNDS', 2));
const SIGNIN_CONCURRENCY = Math.max(1, num('BENCH_SIGNIN_CONCURRENCY', 6));
const ALL_WORKERS = Math.max(2, num('BENCH_WORKERS', os.availableParallelism()));
const GROWTH = flag('BENCH_GROWTH', !QUICK);
const POSTGRES = flag('BENCH_POSTGRES', !QUICK);
const DOT = flag('BENCH_DOT', !QUICK);
const PROFILE = flag('BENCH_PROFILE', true);
// `signin`: complete sign-ins (as in the sign-in rounds) instead of one endpoint's load.
const PROFILE_WORKLOADS = (env.BENCH_PROFILE_WORKLOADS ?? 'cc').split(',').map((key): Workload | 'signin' => {
  if (key.trim() === 'signin') return 'signin';
  const w = WORKLOADS.find((x) => x.key === key.trim());
  if (!w) throw new Error(`BENCH_PROFILE_WORKLOADS: unknown workload ${key} (signin, ${WORKLOADS.map((x) => x.key).join(', ')})`);
  return w;
});
const MEASURED = env.BENCH_WORKLOADS ? WORKLOADS.filter((w) => env.BENCH_WORKLOADS!.split(',').map((k) => k.trim()).includes(w.key)) : WORKLOADS;
const SIGNINS = flag('BENCH_SIGNINS', true);
const ONLY = env.BENCH_ONLY ? new Set(env.BENCH_ONLY.split(',').map((s) => s.trim())) : undefined;
const growthSize = {
  tokens: num('BENCH_GROWTH_TOKENS', 1_000_000),
  users: num('BENCH_GROWTH_USERS', 100_000),
  clients: num('BENCH_GROWTH_CLIENTS', 100_000),
};
// Enough distinct people that every measured sign-in is a first one (login and consent).
const SIGNIN_USERS = num('BENCH_SIGNIN_USERS', 5000);
const wanted = (part: string) => !ONLY || ONLY.has(part);

const REPORT_FILE = env.BENCH_REPORT ? path.resolve(env.BENCH_REPORT) : fileURLToPath(new URL('./REPORT.md', import.meta.url));

// The targets of issue 19 ("Close to the limit"): Gatehouse ÷ bare oidc-provider (÷ DOT for dot).
const THRESHOLDS: Record<string, Partial<Record<WorkloadKey, number>>> = {
  a: { cc: 0.8, introspect: 0.9, userinfo: 0.85, discovery: 0.95 },
  c1: { cc: 0.75, introspect: 0.8, userinfo: 0.75 },
  dot: { cc: 10 },
  growth: { cc: 0.9, introspect: 0.9 },
};
const IDLE_RSS_MIB = 120;
/** A complete sign-in: one password hash plus at most this much other server CPU. */
const SIGNIN_OTHER_CPU_MS = 5;

const report: BenchReport = {
  startedAt: new Date(),
  settings: {
    'duration per measurement (s)': load.durationSeconds,
    'warm-up before each measurement (s)': load.warmupSeconds,
    'autocannon connections': load.connections,
    'rounds (A B alternating, median reported)': ROUNDS,
    'sign-in concurrency (people at once)': SIGNIN_CONCURRENCY,
    '"all workers" (GATEHOUSE_WORKERS)': ALL_WORKERS,
    'quick run (BENCH_QUICK)': QUICK,
    'PostgreSQL + Redis configurations': POSTGRES,
    'django-oauth-toolkit target': DOT,
    growth: GROWTH ? `${growthSize.tokens} tokens, ${growthSize.users} users, ${growthSize.clients} clients` : false,
    'oidc-provider': '9.13.3 (Gatehouse and bare)',
  },
  configs: [],
  checks: [],
  profiles: [],
  problems: [],
};

// ---------------------------------------------------------------------------------------------
// Cleanup, however the run ends.

const cleanups: Array<() => Promise<unknown>> = [];
const onCleanup = (fn: () => Promise<unknown>) => cleanups.push(fn);
async function runCleanups() {
  await stopAll();
  while (cleanups.length) {
    const fn = cleanups.pop()!;
    await fn().catch((err) => console.error(`bench: cleanup failed: ${(err as Error).message}`));
  }
}
process.on('exit', killAllSync);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\nbench: ${signal}: stopping servers and dropping bench databases`);
    runCleanups().finally(() => {
      snapshot?.remove();
      process.exit(130);
    });
  });
}

// ---------------------------------------------------------------------------------------------

const log = (s: string) => console.log(s);
const f0 = (n: number) => (Number.isFinite(n) ? n.toFixed(0) : '–');

function describe(m: Measurement) {
  const bad = m.errors || m.non2xx ? `  <<< ${m.errors} errors, ${m.non2xx} non-2xx ${JSON.stringify(m.statusCodes)}` : '';
  return `${f0(m.rps).padStart(6)} req/s  p50 ${m.p50} ms  p99 ${m.p99} ms  ${m.cpuMsPerRequest.toFixed(3)} ms CPU/req (${m.cpuSeconds ? ((100 * m.cpuSystemSeconds) / m.cpuSeconds).toFixed(0) : '–'} % sys)  RSS ${mib(m.rssBytes)} MiB (${m.processes} proc)${bad}`;
}

async function measureOne(config: string, w: Workload, t: Target, round: number, row: PairRow, into: Measurement[]) {
  const spec = await w.spec(t);
  const before = await w.check(t);
  if (before) {
    row.problems.push(`${t.label}, round ${round}: check before the measurement failed: ${before}`);
    log(`  [${config}] ${w.key} ${t.label} r${round}: CHECK FAILED: ${before}`);
    return;
  }
  const m = await measure(t.server, spec, load);
  const crashed = t.server.crashed();
  if (crashed) throw new Error(crashed);
  const after = await w.check(t);
  if (after) row.problems.push(`${t.label}, round ${round}: check after the measurement failed: ${after}`);
  into.push(m);
  log(`  [${config}] ${w.key.padEnd(10)} ${t.label.padEnd(22)} r${round}: ${describe(m)}${after ? `  <<< CHECK AFTER FAILED: ${after}` : ''}`);
}

/** Every workload alternately on A and B, ROUNDS times; then complete sign-ins the same way. */
async function comparePair(config: string, a: Target, b: Target | undefined, workloads: Workload[], result: ConfigResult, signIns: boolean) {
  for (const w of workloads) {
    const row: PairRow = { workload: w.key, title: w.title, a: [], b: [], problems: [] };
    result.rows.push(row);
    const withB = b && (w.bare || b.kind === 'gatehouse');
    for (let round = 1; round <= ROUNDS; round++) {
      await measureOne(config, w, a, round, row, row.a);
      if (withB) await measureOne(config, w, b, round, row, row.b);
    }
    if (withB && row.a.length && row.b.length) log(`  [${config}] ${w.key}: ratio ${ratioOf(row).toFixed(2)}`);
  }
  if (!signIns) return;
  result.signIns = { a: [], b: [] };
  for (let round = 1; round <= ROUNDS; round++) {
    for (const [t, into] of [[a, result.signIns.a], ...(b ? [[b, result.signIns.b]] : [])] as Array<[Target, typeof result.signIns.a]>) {
      const m = await measureSignIns(t.server, t.signIns, SIGNIN_CONCURRENCY, load);
      into.push(m);
      log(
        `  [${config}] sign-ins   ${t.label.padEnd(22)} r${round}: ${m.perSecond.toFixed(1)} sign-ins/s  ${m.perCpuSecond.toFixed(2)} per CPU-s  p50 ${f0(m.p50Ms)} ms  (${m.signIns} ok, ${m.consents} consents, ${m.failures} failed)${m.failures ? `  <<< ${m.failureSamples[0]}` : ''}`,
      );
    }
  }
}

interface ConfigSpec {
  key: string;
  title: string;
  database: 'sqlite' | 'pg';
  redis: boolean;
  workers: number;
  /** What Gatehouse is compared with: the bare provider (default), or django-oauth-toolkit. */
  versus?: 'bare' | 'dot';
}

async function runConfig(spec: ConfigSpec): Promise<ConfigResult> {
  const aLabel = spec.workers === 1 ? 'Gatehouse' : `Gatehouse ×${spec.workers}`;
  const result: ConfigResult = {
    key: spec.key,
    title: spec.title,
    aLabel,
    bLabel: spec.versus === 'dot' ? 'DOT' : 'bare',
    ratioLabel: spec.versus === 'dot' ? 'Gatehouse ÷ DOT' : spec.workers === 1 ? 'Gatehouse ÷ bare' : `Gatehouse ×${spec.workers} ÷ bare ×1 (info)`,
    notes: [],
    rows: [],
  };
  log(`\n== ${spec.title}`);
  let gh: Target | undefined;
  let bare: Target | undefined;
  try {
    bare = spec.versus === 'dot' ? await startDot('DOT') : await startBare('bare');
    gh = await startGatehouseTarget({ label: aLabel, database: spec.database, workers: spec.workers, redis: spec.redis, signInUsers: SIGNIN_USERS, onCleanup });
    result.notes.push(`Gatehouse: ${spec.database === 'sqlite' ? 'SQLite file in a temp dir (the embedded default, GATEHOUSE_DATA_DIR)' : 'PostgreSQL (fresh database)'}${spec.redis ? ' + Redis (access tokens, codes, interactions in Redis)' : ''}, GATEHOUSE_WORKERS=${spec.workers} (${gh.server.pids().length} process${gh.server.pids().length === 1 ? '' : 'es'} measured: ${spec.workers > 1 ? 'cluster primary + workers' : 'one'})`);
    result.notes.push(`${spec.versus === 'dot' ? 'DOT' : 'bare'}: ${bare.notes.join('; ')}`);
    result.idleRss = { a: gh.idleRssBytes, b: bare.idleRssBytes, aProcesses: gh.idleProcesses };
    log(`  [${spec.key}] idle RSS after start: ${aLabel} ${mib(gh.idleRssBytes)} MiB (${gh.idleProcesses} process${gh.idleProcesses === 1 ? '' : 'es'}), ${result.bLabel} ${mib(bare.idleRssBytes)} MiB`);
    const workloads = spec.versus === 'dot' ? MEASURED.filter((w) => w.key === 'cc' || w.key === 'introspect') : MEASURED;
    await comparePair(spec.key, gh, bare, workloads, result, SIGNINS && spec.versus !== 'dot');
  } catch (err) {
    result.error = (err as Error).stack ?? String(err);
    for (const t of [gh, bare]) if (t && !t.server.crashed()) result.error += `\n--- last output of ${t.label}:\n${t.server.output().slice(-2000)}`;
    console.error(`bench: ${spec.key} failed: ${result.error}`);
  } finally {
    await gh?.stop();
    await bare?.stop();
    await runCleanups();
  }
  return result;
}

async function runGrowth(): Promise<ConfigResult> {
  const result: ConfigResult = {
    key: 'growth',
    title: `(d) Growth: SQLite with ${growthSize.tokens.toLocaleString('en')} stored tokens, ${growthSize.users.toLocaleString('en')} users, ${growthSize.clients.toLocaleString('en')} clients vs an empty database (both Gatehouse, 1 worker)`,
    aLabel: 'grown',
    bLabel: 'empty',
    ratioLabel: 'grown ÷ empty',
    notes: [],
    rows: [],
  };
  log(`\n== ${result.title}`);
  let grown: Target | undefined;
  let empty: Target | undefined;
  try {
    log('  seeding …');
    grown = await startGatehouseTarget({ label: 'Gatehouse (grown)', database: 'sqlite', workers: 1, redis: false, signInUsers: 10, growth: growthSize, onCleanup });
    result.notes.push(...grown.notes);
    log(`  ${grown.notes.join('; ')}`);
    empty = await startGatehouseTarget({ label: 'Gatehouse (empty)', database: 'sqlite', workers: 1, redis: false, signInUsers: 10, onCleanup });
    await comparePair('growth', grown, empty, WORKLOADS.filter((w) => w.key === 'cc' || w.key === 'introspect'), result, false);
  } catch (err) {
    result.error = (err as Error).stack ?? String(err);
    console.error(`bench: growth failed: ${result.error}`);
  } finally {
    await grown?.stop();
    await empty?.stop();
    await runCleanups();
  }
  return result;
}

async function runProfile(database: 'sqlite' | 'pg', w: Workload | 'signin'): Promise<void> {
  const title = `${w === 'signin' ? `complete sign-ins (${SIGNIN_CONCURRENCY} at once)` : `${w.title} load`}, ${database === 'sqlite' ? 'embedded SQLite, 1 worker' : 'PostgreSQL + Redis, 1 worker'}`;
  log(`\n== CPU profile: Gatehouse under the ${title}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bench-profile-'));
  let gh: Target | undefined;
  try {
    gh = await startGatehouseTarget({ label: 'Gatehouse (profiled)', database, workers: 1, redis: database === 'pg', signInUsers: 10, nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}`], onCleanup });
    let m: { windowUs?: [number, number]; rps: number; cpuMsPerRequest: number };
    if (w === 'signin') {
      const started = Number(process.hrtime.bigint() / 1000n);
      const s = await measureSignIns(gh.server, gh.signIns, SIGNIN_CONCURRENCY, load);
      m = { windowUs: [started, Number(process.hrtime.bigint() / 1000n)], rps: s.perSecond, cpuMsPerRequest: (1000 * s.cpuSeconds) / Math.max(1, s.signIns) };
      log(`  profiled run: ${s.perSecond.toFixed(1)} sign-ins/s, ${m.cpuMsPerRequest.toFixed(1)} ms CPU per sign-in (${s.failures} failed)`);
    } else {
      const measured = await measure(gh.server, await w.spec(gh), load);
      m = measured;
      log(`  profiled run: ${describe(measured)}`);
    }
    await gh.stop(); // SIGTERM: the server closes and exits, and node writes the profile
    gh = undefined;
    const file = newestProfile(dir);
    if (!file) throw new Error(`no .cpuprofile written in ${dir}`);
    const summary = summarize(file, 10, m.windowUs);
    report.profiles.push({ title, summary, file, measurement: m });
    log(`  profile ${file}: top self time${summary.windowed ? ' (measurement window only)' : ' (whole process life, start-up included)'}`);
    for (const fn of summary.functions) log(`    ${fn.percent.toFixed(1).padStart(5)} %  ${fn.name}  ${fn.where}`);
    log('  by module:');
    for (const mod of summary.modules) log(`    ${mod.percent.toFixed(1).padStart(5)} %  ${mod.name}`);
  } catch (err) {
    report.problems.push(`profile (${title}) failed: ${(err as Error).message}`);
    console.error(`bench: profile failed: ${(err as Error).stack}`);
  } finally {
    await gh?.stop();
    await runCleanups();
  }
}

/** RSS of plain node with a bare HTTP server: the floor under the idle figures. */
async function runBaseline(): Promise<void> {
  const server = await spawnServer({ name: 'baseline', script: 'bench/idle-baseline.ts', port: await freePort(), env: {}, readyPath: '/' });
  try {
    report.baselineRss = (await idleRss(server)).bytes;
    log(`idle RSS of node with an empty HTTP server: ${mib(report.baselineRss)} MiB`);
  } finally {
    await server.stop();
  }
}

function buildChecks(): Check[] {
  const checks: Check[] = [];
  const cfg = (key: string) => report.configs.find((c) => c.key === key);
  const ratioCheck = (what: string, key: string, workload: WorkloadKey, threshold: number) => {
    const row = cfg(key)?.rows.find((r) => r.workload === workload);
    if (!row?.a.length || !row.b.length) return checks.push({ what, target: `≥ ${threshold}×`, value: 'not measured', pass: undefined });
    const ratio = ratioOf(row);
    const bad = badCount(key === 'dot' ? row.a : [...row.a, ...row.b]);
    const clean = bad.errors === 0 && bad.non2xx === 0 && row.problems.length === 0;
    checks.push({
      what,
      target: `≥ ${threshold}×`,
      value: `${ratio.toFixed(2)}× (${med(row.a, (m) => m.rps).toFixed(0)} vs ${med(row.b, (m) => m.rps).toFixed(0)} req/s)${clean ? '' : ' with errors'}`,
      pass: ratio >= threshold && clean,
    });
  };
  const t = THRESHOLDS;
  ratioCheck('client-credentials tokens, SQLite (1 worker vs bare)', 'a', 'cc', t.a!.cc!);
  ratioCheck('introspection, SQLite (1 worker vs bare)', 'a', 'introspect', t.a!.introspect!);
  ratioCheck('userinfo, SQLite (1 worker vs bare)', 'a', 'userinfo', t.a!.userinfo!);
  ratioCheck('discovery, SQLite (1 worker vs bare)', 'a', 'discovery', t.a!.discovery!);
  ratioCheck('client-credentials tokens, PostgreSQL + Redis (1 worker vs bare)', 'c1', 'cc', t.c1!.cc!);
  ratioCheck('introspection, PostgreSQL + Redis (1 worker vs bare)', 'c1', 'introspect', t.c1!.introspect!);
  ratioCheck('userinfo, PostgreSQL + Redis (1 worker vs bare)', 'c1', 'userinfo', t.c1!.userinfo!);
  if (report.dotSkipped) checks.push({ what: 'client-credentials tokens vs django-oauth-toolkit (SQLite, 1 worker vs DOT, 2 gunicorn workers)', target: `≥ ${t.dot!.cc}×`, value: `not measured: ${report.dotSkipped}`, pass: undefined });
  else ratioCheck('client-credentials tokens vs django-oauth-toolkit (SQLite, 1 worker vs DOT, 2 gunicorn workers)', 'dot', 'cc', t.dot!.cc!);
  const idle = cfg('a')?.idleRss;
  checks.push({ what: 'idle RSS of one Gatehouse process after start (SQLite)', target: `≤ ${IDLE_RSS_MIB} MiB`, value: idle ? `${mib(idle.a)} MiB` : 'not measured', pass: idle ? idle.a <= IDLE_RSS_MIB * 2 ** 20 : undefined });
  const idlePg = cfg('c1')?.idleRss;
  if (idlePg) checks.push({ what: 'idle RSS of one Gatehouse process after start (PostgreSQL + Redis)', target: `≤ ${IDLE_RSS_MIB} MiB`, value: `${mib(idlePg.a)} MiB`, pass: idlePg.a <= IDLE_RSS_MIB * 2 ** 20 });
  // Server CPU per complete sign-in, less one password hash (measured in this process before any load).
  const signIns = cfg('a')?.signIns;
  if (signIns?.a.length && report.scryptMs?.length) {
    const cpuMs = 1000 / med(signIns.a, (m) => m.perCpuSecond);
    const other = cpuMs - median(report.scryptMs);
    checks.push({
      what: 'complete sign-in, SQLite: server CPU beyond its one password hash',
      target: `≤ ${SIGNIN_OTHER_CPU_MS} ms`,
      value: `${other.toFixed(1)} ms (${cpuMs.toFixed(1)} ms CPU per sign-in − ${median(report.scryptMs).toFixed(0)} ms hash)`,
      pass: other <= SIGNIN_OTHER_CPU_MS,
    });
  } else checks.push({ what: 'complete sign-in, SQLite: server CPU beyond its one password hash', target: `≤ ${SIGNIN_OTHER_CPU_MS} ms`, value: 'not measured', pass: undefined });
  ratioCheck('growth: client-credentials tokens (grown ÷ empty)', 'growth', 'cc', t.growth!.cc!);
  ratioCheck('growth: introspection (grown ÷ empty)', 'growth', 'introspect', t.growth!.introspect!);
  const all = report.configs.flatMap((c) => c.rows);
  // django-oauth-toolkit's own errors are its row's business, not Gatehouse's or the bare provider's.
  const judged = report.configs.flatMap((c) => c.rows.flatMap((r) => (c.key === 'dot' ? r.a : [...r.a, ...r.b])));
  const bad = badCount(judged);
  const signInFailures = sum(report.configs.flatMap((c) => (c.signIns ? [...c.signIns.a, ...c.signIns.b] : [])), (m) => m.failures);
  const problems = all.reduce((n, r) => n + r.problems.length, 0) + report.configs.filter((c) => c.error).length;
  checks.push({
    what: 'no errors, no non-2xx, no failed checks or sign-ins (all measurements)',
    target: '0',
    value: `${bad.errors} errors, ${bad.non2xx} non-2xx, ${problems} failed checks/configs, ${signInFailures} failed sign-ins`,
    pass: bad.errors === 0 && bad.non2xx === 0 && problems === 0 && signInFailures === 0,
  });
  return checks;
}

function collectProblems() {
  for (const c of report.configs) {
    if (c.error) report.problems.push(`${c.title}: FAILED: ${c.error.split('\n')[0]}`);
    for (const r of c.rows) {
      const bad = badCount(c.key === 'dot' ? r.a : [...r.a, ...r.b]);
      if (bad.errors || bad.non2xx) report.problems.push(`${c.key} / ${r.title}: ${bad.errors} errors, ${bad.non2xx} non-2xx responses`);
      for (const p of r.problems) report.problems.push(`${c.key} / ${r.title}: ${p}`);
    }
    const fails = c.signIns ? sum([...c.signIns.a, ...c.signIns.b], (m) => m.failures) : 0;
    if (fails) report.problems.push(`${c.key} / sign-ins: ${fails} failed sign-ins`);
  }
}

function writeReport() {
  report.checks = buildChecks();
  fs.writeFileSync(REPORT_FILE, markdown(report, THRESHOLDS));
}

let snapshot: Snapshot | undefined;

async function main() {
  log(`Gatehouse benchmark: ${load.durationSeconds} s per measurement, ${load.warmupSeconds} s warm-up, ${load.connections} connections, ${ROUNDS} rounds${QUICK ? ' (QUICK)' : ''}`);

  snapshot = createSnapshot();
  setCodeRoot(snapshot.dir);
  await loadGatehouseCode(snapshot);
  report.code = { commit: snapshot.commit, dirty: snapshot.dirty, dir: snapshot.dir };
  log(`code: commit ${snapshot.commit}${snapshot.dirty.length ? ` + ${snapshot.dirty.length} uncommitted change(s)` : ''}, copied to ${snapshot.dir} (servers run from this copy)`);
  const { hashPassword } = await importFrom<typeof import('../src/accounts/passwords.ts')>(snapshot, 'src/accounts/passwords.ts');

  // The password hash every sign-in pays, in this process, before any load.
  report.scryptMs = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    await hashPassword('bench-password-correct-horse');
    report.scryptMs.push(performance.now() - t0);
  }
  log(`scrypt hashPassword (N=2^15, r=8, p=3): ${report.scryptMs.map((m) => m.toFixed(0)).join(', ')} ms (median ${median(report.scryptMs).toFixed(0)} ms)`);

  await runBaseline();

  const configs: ConfigSpec[] = [
    { key: 'a', title: '(a) SQLite, the embedded default, 1 worker — vs bare (1 process)', database: 'sqlite', redis: false, workers: 1 },
    { key: 'b', title: `(b) SQLite, all workers (GATEHOUSE_WORKERS=${ALL_WORKERS}) — vs bare (1 process; informational)`, database: 'sqlite', redis: false, workers: ALL_WORKERS },
  ];
  if (POSTGRES) {
    configs.push(
      { key: 'c1', title: '(c) PostgreSQL + Redis, 1 worker — vs bare (1 process)', database: 'pg', redis: true, workers: 1 },
      { key: 'c2', title: `(c) PostgreSQL + Redis, all workers (GATEHOUSE_WORKERS=${ALL_WORKERS}) — vs bare (1 process; informational)`, database: 'pg', redis: true, workers: ALL_WORKERS },
    );
  }
  if (DOT && wanted('dot')) {
    const missing = dotMissing();
    if (missing) {
      report.dotSkipped = missing;
      log(`\n== django-oauth-toolkit: SKIPPED: ${missing}`);
    } else configs.push({ key: 'dot', title: '(e) SQLite, 1 worker — vs django-oauth-toolkit (Debian package, gunicorn, 2 workers)', database: 'sqlite', redis: false, workers: 1, versus: 'dot' });
  }
  for (const spec of configs) {
    if (!wanted(spec.key)) continue;
    report.configs.push(await runConfig(spec));
    writeReport();
  }
  if (GROWTH && wanted('growth')) {
    report.configs.push(await runGrowth());
    writeReport();
  }
  if (PROFILE && wanted('profile')) {
    for (const w of PROFILE_WORKLOADS) {
      await runProfile('sqlite', w);
      if (POSTGRES) await runProfile('pg', w);
    }
  }

  report.finishedAt = new Date();
  collectProblems();
  writeReport();

  log(`\n${textTable(report.configs)}`);
  log('\nTargets:');
  for (const c of report.checks) log(`  ${c.pass === undefined ? 'n/a ' : c.pass ? 'PASS' : 'FAIL'}  ${c.what}: ${c.value} (target ${c.target})`);
  if (report.problems.length) {
    console.error('\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!');
    console.error('!!! PROBLEMS: some measurements had errors, non-2xx answers or failed checks:');
    for (const p of report.problems) console.error(`!!!   ${p}`);
    console.error('!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!');
  }
  log(`\nReport: ${path.relative(process.cwd(), REPORT_FILE)}`);
}

try {
  await main();
} catch (err) {
  console.error(`bench: ${(err as Error).stack ?? err}`);
  process.exitCode = 1;
} finally {
  await runCleanups();
  snapshot?.remove();
}
process.exit(process.exitCode ?? (report.problems.length ? 1 : 0));
