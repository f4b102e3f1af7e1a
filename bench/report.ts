/**
 * Results, their medians, the compact stdout table and bench/REPORT.md.
 */
import fs from 'node:fs';
import os from 'node:os';
import type { Measurement, SignInMeasurement } from './load.ts';
import type { ProfileSummary } from './profile.ts';
import type { WorkloadKey } from './workloads.ts';

export interface PairRow {
  workload: WorkloadKey;
  title: string;
  a: Measurement[];
  b: Measurement[];
  problems: string[];
}

export interface SignInRow {
  a: SignInMeasurement[];
  b: SignInMeasurement[];
}

export interface ConfigResult {
  key: string;
  title: string;
  aLabel: string;
  bLabel?: string;
  /** Ratio column heading, e.g. "Gatehouse ÷ bare". */
  ratioLabel: string;
  notes: string[];
  rows: PairRow[];
  signIns?: SignInRow;
  idleRss?: { a: number; b?: number; aProcesses: number };
  error?: string;
}

export interface Check {
  what: string;
  target: string;
  value: string;
  pass: boolean | undefined;
}

export interface BenchReport {
  startedAt: Date;
  finishedAt?: Date;
  settings: Record<string, string | number | boolean>;
  scryptMs?: number[];
  /** Why the django-oauth-toolkit target was not run (packages not installed). */
  dotSkipped?: string;
  configs: ConfigResult[];
  checks: Check[];
  profiles: Array<{ title: string; summary: ProfileSummary; file: string; measurement: Pick<Measurement, "rps" | "cpuMsPerRequest"> }>;
  code?: { commit: string; dirty: string[]; dir: string };
  /** Idle RSS of plain node with an empty HTTP server. */
  baselineRss?: number;
  problems: string[];
}

export function median(values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

export const med = <T>(list: T[], pick: (m: T) => number) => median(list.map(pick));
export const sum = <T>(list: T[], pick: (m: T) => number) => list.reduce((s, m) => s + pick(m), 0);

export function ratioOf(row: PairRow): number {
  return med(row.a, (m) => m.rps) / med(row.b, (m) => m.rps);
}

export const mib = (bytes: number) => (Number.isFinite(bytes) ? `${(bytes / 2 ** 20).toFixed(0)}` : '–');
const f0 = (n: number) => (Number.isFinite(n) ? n.toFixed(0) : '–');
const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '–');
const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '–');
const f3 = (n: number) => (Number.isFinite(n) ? n.toFixed(3) : '–');

/** "CPU ms/req (kernel share)". */
function cpuCell(list: Measurement[]): string {
  const ms = med(list, (m) => m.cpuMsPerRequest);
  const sys = med(list, (m) => (m.cpuSeconds ? m.cpuSystemSeconds / m.cpuSeconds : NaN));
  return `${f3(ms)} (${Number.isFinite(sys) ? (100 * sys).toFixed(0) : '–'} % sys)`;
}

export function badCount(list: Measurement[]): { errors: number; non2xx: number } {
  return { errors: sum(list, (m) => m.errors), non2xx: sum(list, (m) => m.non2xx) };
}

function statusSummary(list: Measurement[]): string {
  const codes: Record<string, number> = {};
  for (const m of list) for (const [c, n] of Object.entries(m.statusCodes)) if (!c.startsWith('2')) codes[c] = (codes[c] ?? 0) + n;
  return Object.entries(codes)
    .map(([c, n]) => `${c}×${n}`)
    .join(' ');
}

function errCell(list: Measurement[]): string {
  if (!list.length) return '';
  const { errors, non2xx } = badCount(list);
  const codes = statusSummary(list);
  return errors || non2xx ? `**${errors}/${non2xx}**${codes ? ` (${codes})` : ''} ⚠` : '0/0';
}

function pad(s: string, n: number, right = false) {
  return right ? s.padStart(n) : s.padEnd(n);
}

/** The compact table for stdout. */
export function textTable(configs: ConfigResult[]): string {
  const head = ['config', 'workload', 'GH req/s', 'B req/s', 'ratio', 'GH p50/p99', 'B p50/p99', 'GH ms CPU/req', 'B ms CPU/req', 'GH RSS', 'B RSS', 'err/non2xx'];
  const widths = [22, 32, 9, 9, 6, 11, 11, 13, 12, 7, 6, 14];
  const lines = [head.map((h, i) => pad(h, widths[i]!, i >= 2 && i <= 10)).join(' ')];
  for (const c of configs) {
    if (c.error) lines.push(`${pad(c.key, widths[0]!)} FAILED: ${c.error.split('\n')[0]}`);
    for (const r of c.rows) {
      const { errors, non2xx } = badCount([...r.a, ...r.b]);
      lines.push(
        [
          pad(c.key, widths[0]!),
          pad(r.title, widths[1]!),
          pad(f0(med(r.a, (m) => m.rps)), widths[2]!, true),
          pad(r.b.length ? f0(med(r.b, (m) => m.rps)) : '–', widths[3]!, true),
          pad(r.b.length ? f2(ratioOf(r)) : '–', widths[4]!, true),
          pad(`${f0(med(r.a, (m) => m.p50))}/${f0(med(r.a, (m) => m.p99))}`, widths[5]!, true),
          pad(r.b.length ? `${f0(med(r.b, (m) => m.p50))}/${f0(med(r.b, (m) => m.p99))}` : '–', widths[6]!, true),
          pad(f3(med(r.a, (m) => m.cpuMsPerRequest)), widths[7]!, true),
          pad(r.b.length ? f3(med(r.b, (m) => m.cpuMsPerRequest)) : '–', widths[8]!, true),
          pad(mib(med(r.a, (m) => m.rssBytes)), widths[9]!, true),
          pad(r.b.length ? mib(med(r.b, (m) => m.rssBytes)) : '–', widths[10]!, true),
          `${errors}/${non2xx}${errors || non2xx || r.problems.length ? '  <<< ERRORS' : ''}`,
        ].join(' '),
      );
    }
    if (c.signIns) {
      const s = c.signIns;
      const a = med(s.a, (m) => m.perSecond);
      const b = med(s.b, (m) => m.perSecond);
      const fails = sum([...s.a, ...s.b], (m) => m.failures);
      lines.push(
        [
          pad(c.key, widths[0]!),
          pad('sign-ins/s (complete flow)', widths[1]!),
          pad(f1(a), widths[2]!, true),
          pad(s.b.length ? f1(b) : '–', widths[3]!, true),
          pad(s.b.length ? f2(a / b) : '–', widths[4]!, true),
          pad(`${f0(med(s.a, (m) => m.p50Ms))}/${f0(med(s.a, (m) => m.p99Ms))}`, widths[5]!, true),
          pad(s.b.length ? `${f0(med(s.b, (m) => m.p50Ms))}/${f0(med(s.b, (m) => m.p99Ms))}` : '–', widths[6]!, true),
          pad(f1(1000 / med(s.a, (m) => m.perCpuSecond)), widths[7]!, true),
          pad(s.b.length ? f1(1000 / med(s.b, (m) => m.perCpuSecond)) : '–', widths[8]!, true),
          pad(mib(med(s.a, (m) => m.rssBytes)), widths[9]!, true),
          pad(s.b.length ? mib(med(s.b, (m) => m.rssBytes)) : '–', widths[10]!, true),
          `${fails} failed${fails ? '  <<< ERRORS' : ''}`,
        ].join(' '),
      );
    }
  }
  return lines.join('\n');
}

function machine(): string[] {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1]?.trim() ?? 'unknown';
  return [
    `- CPU: ${model}, ${os.availableParallelism()} cores available (${os.cpus().length} listed)`,
    `- RAM: ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    `- Node.js ${process.version}, ${os.type()} ${os.release()}`,
    `- load average at start: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`,
  ];
}

function configMarkdown(c: ConfigResult, thresholds: Partial<Record<WorkloadKey, number>> | undefined): string[] {
  const out: string[] = [`### ${c.title}`, ''];
  if (c.error) out.push('**FAILED:**', '', '```', c.error, '```', '');
  for (const n of c.notes) out.push(`- ${n}`);
  if (c.idleRss) {
    out.push(`- idle RSS after start (ready, 2 s settled, before any workload): ${c.aLabel} ${mib(c.idleRss.a)} MiB (${c.idleRss.aProcesses} process${c.idleRss.aProcesses === 1 ? '' : 'es'}${c.idleRss.aProcesses > 1 ? ': cluster primary + workers' : ''})${c.idleRss.b !== undefined ? `, ${c.bLabel} ${mib(c.idleRss.b)} MiB` : ''}`);
  }
  out.push('');
  const bl = c.bLabel ?? '–';
  out.push(
    `| workload | ${c.aLabel} req/s | ${bl} req/s | ${c.ratioLabel} | target | p50 / p99 ms (${c.aLabel}) | p50 / p99 ms (${bl}) | CPU ms/req (${c.aLabel}) | CPU ms/req (${bl}) | RSS MiB (${c.aLabel}) | RSS MiB (${bl}) | errors / non-2xx |`,
    '|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|',
  );
  for (const r of c.rows) {
    const hasB = r.b.length > 0;
    const ratio = hasB ? ratioOf(r) : NaN;
    const t = thresholds?.[r.workload];
    const bad = badCount([...r.a, ...r.b]);
    const clean = bad.errors === 0 && bad.non2xx === 0 && r.problems.length === 0;
    const target = t !== undefined && hasB ? `≥ ${t} ${ratio >= t && clean ? 'PASS' : '**FAIL**'}` : '';
    out.push(
      `| ${r.title} | ${f0(med(r.a, (m) => m.rps))} | ${hasB ? f0(med(r.b, (m) => m.rps)) : '–'} | ${hasB ? `**${f2(ratio)}**` : '– (no counterpart)'} | ${target} | ${f1(med(r.a, (m) => m.p50))} / ${f1(med(r.a, (m) => m.p99))} | ${hasB ? `${f1(med(r.b, (m) => m.p50))} / ${f1(med(r.b, (m) => m.p99))}` : '–'} | ${cpuCell(r.a)} | ${hasB ? cpuCell(r.b) : '–'} | ${mib(med(r.a, (m) => m.rssBytes))} | ${hasB ? mib(med(r.b, (m) => m.rssBytes)) : '–'} | ${errCell(r.a)}${hasB ? ` · ${errCell(r.b)}` : ''} |`,
    );
  }
  if (c.signIns) {
    const s = c.signIns;
    const a = med(s.a, (m) => m.perSecond);
    const b = med(s.b, (m) => m.perSecond);
    out.push(
      '',
      `| complete sign-ins | ${c.aLabel} | ${bl} |`,
      '|---|---:|---:|',
      `| sign-ins/s | ${f1(a)} | ${s.b.length ? f1(b) : '–'} |`,
      `| ratio ${c.ratioLabel} | ${s.b.length ? f2(a / b) : '–'} | |`,
      `| sign-ins per CPU-second (server) | ${f2(med(s.a, (m) => m.perCpuSecond))} | ${s.b.length ? f2(med(s.b, (m) => m.perCpuSecond)) : '–'} |`,
      `| server CPU ms per sign-in | ${f1(1000 / med(s.a, (m) => m.perCpuSecond))} | ${s.b.length ? f1(1000 / med(s.b, (m) => m.perCpuSecond)) : '–'} |`,
      `| sign-in latency p50 / p99 ms | ${f0(med(s.a, (m) => m.p50Ms))} / ${f0(med(s.a, (m) => m.p99Ms))} | ${s.b.length ? `${f0(med(s.b, (m) => m.p50Ms))} / ${f0(med(s.b, (m) => m.p99Ms))}` : '–'} |`,
      `| sign-ins measured (all rounds) | ${sum(s.a, (m) => m.signIns)} (${sum(s.a, (m) => m.consents)} with consent) | ${sum(s.b, (m) => m.signIns)} (${sum(s.b, (m) => m.consents)} with consent) |`,
      `| failed sign-ins | ${sum(s.a, (m) => m.failures) ? `**${sum(s.a, (m) => m.failures)}** ⚠` : 0} | ${sum(s.b, (m) => m.failures) ? `**${sum(s.b, (m) => m.failures)}** ⚠` : 0} |`,
      `| RSS MiB during sign-ins | ${mib(med(s.a, (m) => m.rssBytes))} | ${s.b.length ? mib(med(s.b, (m) => m.rssBytes)) : '–'} |`,
    );
    const samples = [...s.a, ...s.b].flatMap((m) => m.failureSamples);
    if (samples.length) out.push('', 'Sign-in failures (samples):', '', ...samples.map((x) => `- \`${x.replace(/`/g, "'")}\``));
  }
  const problems = c.rows.flatMap((r) => r.problems.map((p) => `${r.title}: ${p}`));
  if (problems.length) out.push('', '**Problems:**', '', ...problems.map((p) => `- ⚠ ${p}`));
  out.push('');
  return out;
}

export function markdown(report: BenchReport, thresholds: Record<string, Partial<Record<WorkloadKey, number>>>): string {
  const out: string[] = [
    '# Gatehouse benchmark',
    '',
    `Generated by \`npm run bench\` (bench/run.ts) on ${report.startedAt.toISOString()}${report.finishedAt ? `, finished ${report.finishedAt.toISOString()}` : ''}.`,
    '',
    '## Machine',
    '',
    ...machine(),
    '',
    '## Settings',
    '',
    ...(report.code
      ? [
          `- code: commit ${report.code.commit}${report.code.dirty.length ? ` plus uncommitted changes (${report.code.dirty.map((d) => `\`${d.trim()}\``).join(', ')})` : ''}, copied at start so every server of the run runs the same code`,
        ]
      : []),
    ...Object.entries(report.settings).map(([k, v]) => `- ${k}: ${v}`),
    `- Gatehouse settings: defaults, except ${Object.entries(process.env).filter(([k]) => k.startsWith('GATEHOUSE_')).map(([k, v]) => `${k}=${v}`).join(', ') || 'none'} from the environment (the bench sets PORT, GATEHOUSE_ISSUER, DATABASE_URL/GATEHOUSE_DATA_DIR, GATEHOUSE_WORKERS, REDIS_URL, GATEHOUSE_REDIS_PREFIX)`,
    '',
    'Method: each workload is measured alternately on the two servers (A B A B …), each measurement',
    'preceded by its own warm-up; the tables give the median of the rounds. Server CPU is utime+stime',
    'of the server process(es) from /proc before and after the measurement (cluster: primary plus',
    'workers), divided by the requests completed; RSS is summed over the same processes right after.',
    'Latencies are autocannon\'s, in ms. The load generator (autocannon, and the sign-in loop) runs in',
    'the bench process on the same machine. "% sys" is the kernel\'s share of that CPU (syscalls: network,',
    'fsync). With PostgreSQL + Redis, the CPU of the PostgreSQL and Redis servers is NOT counted (they are',
    'shared with other users of this machine): Gatehouse\'s CPU per request there is its own process(es) only.',
    'The bare oidc-provider is always ONE process: rows for',
    'Gatehouse with all workers compare N processes with that one process (labelled so).',
    '',
  ];
  if (report.problems.length) out.push('## ⚠ PROBLEMS', '', ...report.problems.map((p) => `- **${p}**`), '');

  out.push('## Targets', '', '| check | target | measured | result |', '|---|---|---|---|');
  for (const c of report.checks) out.push(`| ${c.what} | ${c.target} | ${c.value} | ${c.pass === undefined ? 'not run' : c.pass ? 'PASS' : '**FAIL**'} |`);
  out.push('');

  if (report.baselineRss !== undefined) {
    out.push(
      '## Idle memory floor',
      '',
      `Both servers run compiled to JavaScript on plain node, as \`npm start\` runs Gatehouse (\`node dist/src/server.js\`). A node process with an empty HTTP server idles at ${mib(report.baselineRss)} MiB RSS on this machine: that much of every idle figure is the runtime, not Gatehouse.`,
      '',
    );
  }

  if (report.scryptMs?.length) {
    out.push(
      '## Password hash cost',
      '',
      `One \`hashPassword\` (src/accounts/passwords.ts, scrypt N=2^15, r=8, p=3, 32 MiB) in the bench process: ${report.scryptMs.map((m) => `${m.toFixed(0)} ms`).join(', ')} (median ${median(report.scryptMs).toFixed(0)} ms). Every Gatehouse sign-in verifies one such hash (on libuv's thread pool); the bare provider's devInteractions check no password.`,
      '',
    );
  }

  out.push('## Results', '');
  for (const c of report.configs) out.push(...configMarkdown(c, thresholds[c.key]));

  for (const p of report.profiles) {
    out.push(
      `## Where Gatehouse spends its CPU (${p.title})`,
      '',
      `\`node --cpu-prof\` of one Gatehouse process under this workload (${f0(p.measurement.rps)} req/s, ${f3(p.measurement.cpuMsPerRequest)} ms CPU/request while profiled). Profile: \`${p.file}\`. ${p.summary.windowed ? 'Only samples inside the measurement window (start-up and warm-up excluded).' : 'Whole process life (start-up included).'} Busy (non-idle) time ${f0(p.summary.busyMs)} ms of ${f0(p.summary.totalMs)} ms sampled. Self time of a JavaScript function includes the native code it calls synchronously (better-sqlite3 runs SQLite synchronously, so a statement's time shows as the JavaScript function that runs it: the SQLite adapter's \`upsert\`/\`find\`, or knex's \`_query\`).`,
      '',
      'Top 10 functions by self time (% of busy time):',
      '',
      '| # | function | where | self ms | % |',
      '|---:|---|---|---:|---:|',
      ...p.summary.functions.map((fn, i) => `| ${i + 1} | \`${fn.name}\` | ${fn.where} | ${f0(fn.ms)} | ${f1(fn.percent)} |`),
      '',
      'Self time by module:',
      '',
      '| module | self ms | % |',
      '|---|---:|---:|',
      ...p.summary.modules.map((m) => `| ${m.name} | ${f0(m.ms)} | ${f1(m.percent)} |`),
      '',
    );
  }
  return out.join('\n');
}
