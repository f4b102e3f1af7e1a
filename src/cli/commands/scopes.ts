/** `scopes create|list|delete`: the API scopes clients may be given. */
import type { Services } from '../../services.ts';
import { CLI_ACTOR } from '../../admin/audit.ts';
import { scopeJson, scopesWithBuiltIns } from '../../scopes/representation.ts';
import type { Command, Invocation } from '../command.ts';
import { parse, requireId, UsageError, type Options } from '../options.ts';

const scopeOptions = { name: { type: 'string' }, description: { type: 'string' } } satisfies Options;

async function run(services: Services, { sub, args, out }: Invocation): Promise<void> {
  const { values, positionals } = parse(args, scopeOptions);
  switch (sub) {
    case 'create': {
      if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
      if (values.name === undefined) throw new UsageError('missing --name');
      if (values.description === undefined) throw new UsageError('missing --description (the words the consent page shows)');
      const scope = await services.admin.createScope(CLI_ACTOR, { name: values.name, description: values.description });
      return out.print(`created scope ${scope.name}: ${scope.description}`, scopeJson(scope));
    }
    case 'list': {
      if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
      const all = await scopesWithBuiltIns(services.scopes);
      const width = Math.max(...all.map((s) => s.name.length));
      return out.print(all.map((s) => `${s.name.padEnd(width)}  ${s.built_in ? '[built-in] ' : ''}${s.description}`).join('\n'), all);
    }
    case 'delete': {
      const scope = await services.admin.deleteScope(CLI_ACTOR, requireId(positionals, 'scope name'));
      return out.print(`deleted scope ${scope.name}`, { name: scope.name, deleted: true });
    }
    default:
      throw new UsageError(`unknown scopes command ${sub ?? '(none)'}`);
  }
}

export const scopes: Command = {
  subcommands: ['create', 'list', 'delete'],
  options: scopeOptions,
  run,
};
