import type { Services } from '../../services.ts';
import type { Command, Invocation } from '../command.ts';

/** `migrate`: the migrations were applied as the services opened; this says which. */
async function run(_services: Services, { out, applied }: Invocation): Promise<void> {
  out.print(
    applied.length
      ? `applied ${applied.length} migration${applied.length === 1 ? '' : 's'}:\n${applied.map((n) => `  ${n}`).join('\n')}`
      : 'database is already up to date',
    { migrated: true, applied },
  );
}

export const migrate: Command = {
  subcommands: [],
  options: {},
  run,
};
