/** `resources create|list|show|update|delete`: the resource servers (APIs) clients ask tokens for. */
import type { Services } from '../../services.ts';
import { CLI_ACTOR } from '../../admin/audit.ts';
import { resourceJson } from '../../resources/representation.ts';
import type { Resource } from '../../resources/service.ts';
import type { Command, Invocation } from '../command.ts';
import { parse, requireId, UsageError, type Options } from '../options.ts';

const settingOptions = {
  name: { type: 'string' },
  scope: { type: 'string', multiple: true },
  'token-format': { type: 'string' },
  'signing-alg': { type: 'string' },
  'access-token-ttl': { type: 'string' },
} satisfies Options;
const createOptions = { ...settingOptions, audience: { type: 'string' } } satisfies Options;
const updateOptions = { ...settingOptions, 'default-ttl': { type: 'boolean' } } satisfies Options;

const optionsOf = { create: createOptions, update: updateOptions } satisfies Record<string, Options>;

function inputFrom(values: Record<string, unknown>) {
  const scope = values.scope as string[] | undefined;
  return {
    name: values.name,
    scopes: scope?.flatMap((s) => s.split(/\s+/)).filter(Boolean),
    tokenFormat: values['token-format'],
    signingAlg: values['signing-alg'],
    accessTokenTtl: values['default-ttl'] ? null : values['access-token-ttl'],
  };
}

function resourceText(r: Resource): string {
  return [
    `audience:      ${r.audience}`,
    `name:          ${r.name}`,
    `scopes:        ${r.scopes.join(' ')}`,
    `token format:  ${r.tokenFormat}${r.tokenFormat === 'jwt' ? ` (RFC 9068, signed ${r.signingAlg})` : ' (check it at /introspect)'}`,
    `token ttl:     ${r.accessTokenTtl === null ? "Gatehouse's access token lifetime" : `${r.accessTokenTtl} s`}`,
  ].join('\n');
}

async function run(services: Services, { sub, args, out }: Invocation): Promise<void> {
  switch (sub) {
    case 'create': {
      const { values, positionals } = parse(args, createOptions);
      if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
      if (values.audience === undefined) throw new UsageError('missing --audience (the URL the API is known by, e.g. https://api.example.com)');
      if (!values.scope?.length) throw new UsageError('missing --scope (repeatable: the API scopes the resource accepts)');
      const resource = await services.admin.createResource(CLI_ACTOR, { audience: values.audience, ...inputFrom(values) });
      return out.print(resourceText(resource), resourceJson(resource));
    }
    case 'list': {
      const { positionals } = parse(args, {});
      if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
      const all = await services.resources.list();
      return out.print(
        all.length ? all.map((r) => `${r.audience}  ${r.tokenFormat.padEnd(6)} ${r.scopes.join(' ')}  ${r.name}`).join('\n') : 'no resources yet',
        all.map(resourceJson),
      );
    }
    case 'show': {
      const { positionals } = parse(args, {});
      const resource = await services.resources.get(requireId(positionals, 'resource audience'));
      return out.print(resourceText(resource), resourceJson(resource));
    }
    case 'update': {
      const { values, positionals } = parse(args, updateOptions);
      const audience = requireId(positionals, 'resource audience');
      const resource = await services.admin.updateResource(CLI_ACTOR, audience, inputFrom(values));
      return out.print(resourceText(resource), resourceJson(resource));
    }
    case 'delete': {
      const { positionals } = parse(args, {});
      const resource = await services.admin.deleteResource(CLI_ACTOR, requireId(positionals, 'resource audience'));
      return out.print(`deleted resource ${resource.audience}`, { audience: resource.audience, deleted: true });
    }
    default:
      throw new UsageError(`unknown resources command ${sub ?? '(none)'}`);
  }
}

export const resources: Command = {
  subcommands: ['create', 'list', 'show', 'update', 'delete'],
  // list, show and delete take no options but --json.
  options: {},
  optionsOf,
  run,
};
