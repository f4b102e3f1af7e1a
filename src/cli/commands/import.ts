/** `import dot --from SOURCE [--dry-run]`: django-oauth-toolkit's applications, users and refresh tokens. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Config } from '../../config.ts';
import type { Services } from '../../services.ts';
import { importFromDot, type ImportReport } from '../../importers/dot/import.ts';
import type { Command, Invocation, Preparation } from '../command.ts';
import { parse, UsageError, type Options } from '../options.ts';

function importReportText(r: ImportReport): string {
  const lines = [`${r.dry_run ? 'DRY RUN: nothing was written. ' : ''}Import from ${r.source}`, '', 'Users:'];
  for (const u of r.users)
    lines.push(`  ${u.outcome.padEnd(9)} ${u.username} (sub ${u.sub})${u.notes.length ? `\n              ${u.notes.join('\n              ')}` : ''}`);
  lines.push('', 'Clients:');
  for (const c of r.clients)
    lines.push(
      `  ${c.outcome.padEnd(9)} ${c.name || '(no name)'} (${c.client_id})${c.notes.length ? `\n              ${c.notes.join('\n              ')}` : ''}`,
    );
  if (r.collisions.length) {
    // Said apart from the rest: each is a name Gatehouse already uses for something else.
    lines.push('', `Collisions (refused, nothing of them changed): ${r.collisions.length}`);
    for (const c of r.collisions) lines.push(`  ${c.kind} ${c.id} (${c.name}): ${c.reason}`);
  }
  lines.push(
    '',
    `Refresh tokens: ${r.refresh_tokens.imported} carried over, ${r.refresh_tokens.already_present} already here, ${r.refresh_tokens.not_imported.length} not carried over`,
  );
  for (const t of r.refresh_tokens.not_imported) lines.push(`  #${t.id}: ${t.reason}`);
  for (const n of [...r.refresh_tokens.notes, ...r.notes]) lines.push(`Note: ${n}`);
  const s = (o: Record<string, number>) =>
    Object.entries(o)
      .map(([k, v]) => `${v} ${k}`)
      .join(', ');
  lines.push('', `Users: ${s(r.summary.users)}. Clients: ${s(r.summary.clients)}.`);
  return lines.join('\n');
}

const importOptions = { from: { type: 'string' }, 'dry-run': { type: 'boolean' } } satisfies Options;

async function run(services: Services, { sub, args, out, note: planNote }: Invocation): Promise<void> {
  const { values, positionals } = parse(args, importOptions);
  if (sub !== 'dot') throw new UsageError(`unknown import source ${sub ?? '(none)'}: only "dot" (django-oauth-toolkit) is supported`);
  if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
  if (!values.from) throw new UsageError('missing --from (a DOT SQLite file, a postgres:// URL, or a dumpdata .json file)');
  const report = await importFromDot(services, values.from, { dryRun: Boolean(values['dry-run']) });
  if (planNote) report.notes.push(planNote);
  out.print(importReportText(report), report);
}

// A dry run writes nothing, not even the embedded database's file: when there is none yet,
// it plans against an empty database in a scratch directory, removed afterwards.
function prepare(config: Config, rest: string[]): Preparation {
  if (!(rest.includes('--dry-run') && config.database.client === 'sqlite' && !fs.existsSync(config.database.filename))) return { config };
  const note = `the database ${config.database.filename} does not exist yet: planned against an empty one, and it was not created`;
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-dry-run-'));
  return {
    // The key file too: it would be created beside the database otherwise.
    config: {
      ...config,
      database: { ...config.database, filename: path.join(scratch, 'gatehouse.sqlite3') },
      secretKeyFile: path.join(scratch, 'gatehouse.key'),
    },
    note,
    cleanup: () => fs.rmSync(scratch, { recursive: true, force: true }),
  };
}

export const importCommand: Command = {
  subcommands: ['dot'],
  options: importOptions,
  prepare,
  run,
};
