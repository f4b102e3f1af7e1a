/** `api-keys create|list|revoke`: the keys an app uses for /userdata. */
import type { Services } from '../../services.ts';
import { CLI_ACTOR } from '../../admin/audit.ts';
import { apiKeyJson } from '../../admin/representations.ts';
import type { Command, Invocation } from '../command.ts';
import { parse, requireId, UsageError, type Options } from '../options.ts';

const apiKeyOptions = { client: { type: 'string' }, scope: { type: 'string', multiple: true }, name: { type: 'string' } } satisfies Options;

async function run(services: Services, { sub, args, out }: Invocation): Promise<void> {
  const { values, positionals } = parse(args, apiKeyOptions);
  switch (sub) {
    case 'create': {
      if (!values.client) throw new UsageError('missing --client');
      const { key, apiKey } = await services.admin.createApiKey(
        CLI_ACTOR,
        values.client,
        (values.scope ?? []).flatMap((s) => s.split(/\s+/)).filter(Boolean),
        values.name,
      );
      return out.print(`key:    ${key}   (shown once: store it now)\nid:     ${apiKey.id}\nscopes: ${apiKey.scopes.join(' ')}`, { key, ...apiKeyJson(apiKey) });
    }
    case 'list': {
      const keys = await services.apiKeys.list(values.client);
      return out.print(
        keys.length
          ? keys
              .map((k) => `${k.id}  ${k.clientId}  ${k.scopes.join(' ')}  ${k.revokedAt ? 'revoked' : `last used ${k.lastUsedAt?.toISOString() ?? 'never'}`}`)
              .join('\n')
          : 'no API keys',
        keys.map(apiKeyJson),
      );
    }
    case 'revoke': {
      const revoked = await services.admin.revokeApiKey(CLI_ACTOR, requireId(positionals, 'API key id'));
      return out.print(`revoked API key ${revoked.id}`, apiKeyJson(revoked));
    }
    default:
      throw new UsageError(`unknown api-keys command ${sub ?? '(none)'}`);
  }
}

export const apiKeys: Command = {
  subcommands: ['create', 'list', 'revoke'],
  options: apiKeyOptions,
  run,
};
