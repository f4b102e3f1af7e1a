/**
 * One version of the code for the whole run. Others edit src/ while a full run takes half an
 * hour; servers started later would otherwise run newer code than the first ones, and the
 * comparison across configurations would mean nothing. At start the bench copies the code
 * (src, adapters, interactions, migrations, bench …) into a temp dir with node_modules linked,
 * and every server, and the bench's own use of Gatehouse's services, run from that copy.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from './processes.ts';

export interface Snapshot {
  dir: string;
  commit: string;
  /** `git status --short` of the code copied (uncommitted changes the run includes). */
  dirty: string[];
  remove(): void;
}

const COPIED = ['src', 'adapters', 'interactions', 'migrations', 'bench', 'knexfile.ts', 'package.json', 'tsconfig.json'];

function git(args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

export function createSnapshot(): Snapshot {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-bench-code-'));
  const commit = git(['rev-parse', '--short', 'HEAD']) || 'unknown';
  const dirty = git(['status', '--short', '--', ...COPIED.filter((p) => p !== 'bench')])
    .split('\n')
    .filter(Boolean);
  for (const entry of COPIED) {
    const from = path.join(ROOT, entry);
    if (!fs.existsSync(from)) continue;
    fs.cpSync(from, path.join(dir, entry), {
      recursive: true,
      filter: (src) => !src.endsWith('.cpuprofile') && !src.endsWith('REPORT.md'),
    });
  }
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  return { dir, commit, dirty, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Imports a module of the snapshot (e.g. 'src/services.ts'). */
export async function importFrom<T>(snapshot: Snapshot, file: string): Promise<T> {
  return (await import(pathToFileURL(path.join(snapshot.dir, file)).href)) as T;
}
