/**
 * Reads a V8 .cpuprofile (node --cpu-prof) and sums self time per function and per module.
 */
import fs from 'node:fs';
import path from 'node:path';
import { getCodeRoot, ROOT } from './processes.ts';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface SelfTime {
  name: string;
  where: string;
  ms: number;
  percent: number;
}

export interface ProfileSummary {
  /** Whether only the samples inside the measurement window were counted (else the whole run, start-up included). */
  windowed: boolean;
  totalMs: number;
  /** Time not idle (program, GC and JavaScript). */
  busyMs: number;
  functions: SelfTime[];
  modules: SelfTime[];
}

function shortUrl(url: string): string {
  if (!url) return '';
  const p = url.startsWith('file://') ? url.slice('file://'.length) : url;
  for (const root of [getCodeRoot(), ROOT]) if (p.startsWith(`${root}/`)) return p.slice(root.length + 1);
  return p;
}

/** node_modules/<pkg> (or @scope/pkg), our own file, node:internal, or the V8 category. */
function moduleOf(node: ProfileNode): string {
  const url = shortUrl(node.callFrame.url);
  if (!url) return node.callFrame.functionName.startsWith('(') ? node.callFrame.functionName : '(native / V8 builtins)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return `npm:${rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  if (url.startsWith('node:')) return 'node: core';
  return url;
}

/**
 * `window`: [start, end] in CLOCK_MONOTONIC microseconds (process.hrtime, which V8's profile
 * timestamps also count), so start-up and shutdown can be left out.
 */
export function summarize(file: string, top = 10, window?: [number, number]): ProfileSummary {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  const windowed = Boolean(window && profile.samples && window[0] < profile.endTime && window[1] > profile.startTime);
  if (profile.samples && profile.timeDeltas) {
    // timeDeltas[i] is the time since the previous sample; attribute it to sample i.
    let at = profile.startTime;
    for (let i = 0; i < profile.samples.length; i++) {
      const delta = Math.max(0, profile.timeDeltas[i] ?? 0);
      at += profile.timeDeltas[i] ?? 0;
      if (windowed && (at < window![0] || at > window![1])) continue;
      const id = profile.samples[i]!;
      selfUs.set(id, (selfUs.get(id) ?? 0) + delta);
    }
  } else {
    const total = profile.endTime - profile.startTime;
    const hits = profile.nodes.reduce((s, n) => s + (n.hitCount ?? 0), 0) || 1;
    for (const n of profile.nodes) selfUs.set(n.id, ((n.hitCount ?? 0) * total) / hits);
  }
  const totalUs = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const idleUs = [...selfUs].filter(([id]) => byId.get(id)?.callFrame.functionName === '(idle)').reduce((a, [, us]) => a + us, 0);
  const busyUs = totalUs - idleUs;

  const fn = new Map<string, { name: string; where: string; us: number }>();
  const mod = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!;
    if (node.callFrame.functionName === '(idle)') continue;
    // Our own code appears as its compiled file (dist/…/x.js) and the line in that file.
    const file = shortUrl(node.callFrame.url);
    const where = file ? `${file}:${node.callFrame.lineNumber + 1}` : '';
    const name = node.callFrame.functionName || '(anonymous)';
    const key = `${name}@${where}`;
    const entry = fn.get(key) ?? { name, where, us: 0 };
    entry.us += us;
    fn.set(key, entry);
    const m = moduleOf(node);
    mod.set(m, (mod.get(m) ?? 0) + us);
  }
  const pct = (us: number) => (busyUs ? (100 * us) / busyUs : 0);
  return {
    windowed,
    totalMs: totalUs / 1000,
    busyMs: busyUs / 1000,
    functions: [...fn.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((f) => ({ name: f.name, where: f.where, ms: f.us / 1000, percent: pct(f.us) })),
    modules: [...mod]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([m, us]) => ({ name: m, where: '', ms: us / 1000, percent: pct(us) })),
  };
}

export function newestProfile(dir: string): string | undefined {
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => path.join(dir, f));
  return files.sort((a, b) => fs.statSync(b).size - fs.statSync(a).size)[0];
}
