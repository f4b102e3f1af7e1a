/** `keys list|rotate|retire`: the signing keys. */
import type { Services } from '../../services.ts';
import { CLI_ACTOR } from '../../admin/audit.ts';
import type { Command, Invocation } from '../command.ts';
import { parse, requireId, UsageError } from '../options.ts';

async function run(services: Services, { sub, args, out }: Invocation): Promise<void> {
  const { positionals } = parse(args, {});
  const show = async () => {
    const keys = await services.keys.list();
    out.print(
      keys.map((k) => `${k.kid}  ${k.alg}  ${k.status}  created ${k.createdAt.toISOString()}`).join('\n'),
      keys.map((k) => ({ kid: k.kid, alg: k.alg, status: k.status, created_at: k.createdAt.toISOString(), rotated_at: k.rotatedAt?.toISOString() ?? null })),
    );
  };
  switch (sub) {
    case 'list':
      await services.keys.ensureSigningKeys();
      return show();
    case 'rotate':
      await services.admin.rotateSigningKeys(CLI_ACTOR);
      return show();
    case 'retire': {
      const kid = requireId(positionals, 'key id');
      await services.admin.retireSigningKey(CLI_ACTOR, kid);
      return out.print(`retired key ${kid}`, { kid, retired: true });
    }
    default:
      throw new UsageError(`unknown keys command ${sub ?? '(none)'}`);
  }
}

export const keys: Command = {
  subcommands: ['list', 'rotate', 'retire'],
  options: {},
  run,
};
