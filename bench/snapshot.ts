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

const COPIED = ['src', 'adapters', 'interactions', 'migrations', 'bench', 'knexfile.ts', 'package.json', 'tsconfig.json', 'tsconfig.build.json'];

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
  compile(dir);
  return { dir, commit, dirty, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Compiles the copy as `npm start` does (tsconfig.build.json into dist/), with the bare
 * provider and the idle baseline beside it, so every server of the run is plain node on
 * JavaScript: none pays for the TypeScript loader.
 */
function compile(dir: string): void {
  fs.writeFileSync(
    path.join(dir, 'tsconfig.bench.json'),
    JSON.stringify({ extends: './tsconfig.build.json', include: ['src', 'adapters', 'interactions', 'migrations', 'bench/bare-provider.ts', 'bench/idle-baseline.ts'] }),
  );
  execFileSync(process.execPath, [path.join(dir, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.bench.json'], { cwd: dir, stdio: 'inherit' });
  for (const assets of ['views', 'public']) {
    fs.cpSync(path.join(dir, 'interactions', assets), path.join(dir, 'dist/interactions', assets), { recursive: true });
  }
}

/** Imports a module of the snapshot (e.g. 'src/services.ts'). */
export async function importFrom<T>(snapshot: Snapshot, file: string): Promise<T> {
  return (await import(pathToFileURL(path.join(snapshot.dir, file)).href)) as T;
}
