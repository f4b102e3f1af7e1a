/** `admin-tokens create|list|revoke`: tokens for the admin API. */
import type { Services } from '../../services.ts';
import { CLI_ACTOR } from '../../admin/audit.ts';
import { adminTokenJson } from '../../admin/representations.ts';
import type { Command, Invocation } from '../command.ts';
import { parse, requireId, UsageError, type Options } from '../options.ts';

const adminTokenOptions = { name: { type: 'string' } } satisfies Options;

async function run(services: Services, { sub, args, out }: Invocation): Promise<void> {
  const { values, positionals } = parse(args, adminTokenOptions);
  const json = adminTokenJson;
  switch (sub) {
    case 'create': {
      if (!values.name) throw new UsageError('missing --name');
      const { token, adminToken } = await services.admin.createAdminToken(CLI_ACTOR, values.name);
      return out.print(`token: ${token}   (shown once: store it now)\nid:    ${adminToken.id}`, { token, ...json(adminToken) });
    }
    case 'list': {
      const tokens = await services.adminTokens.list();
      return out.print(
        tokens.length ? tokens.map((t) => `${t.id}  ${t.name}${t.revokedAt ? '  [revoked]' : ''}`).join('\n') : 'no admin tokens',
        tokens.map(json),
      );
    }
    case 'revoke': {
      const revoked = await services.admin.revokeAdminToken(CLI_ACTOR, requireId(positionals, 'admin token id'));
      return out.print(`revoked admin token ${revoked.id}`, json(revoked));
    }
    default:
      throw new UsageError(`unknown admin-tokens command ${sub ?? '(none)'}`);
  }
}

export const adminTokens: Command = {
  subcommands: ['create', 'list', 'revoke'],
  options: adminTokenOptions,
  run,
};
