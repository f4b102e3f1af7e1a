/** `clients create|list|show|update|delete|rotate-secret`. */
import type { Services } from '../../services.ts';
import type { Client } from '../../clients/service.ts';
import { toClientMetadata } from '../../clients/metadata.ts';
import { CLI_ACTOR } from '../../admin/audit.ts';
import type { Command, Invocation } from '../command.ts';
import { parse, requireId, UsageError, type Options } from '../options.ts';
import { ValidationError } from '../../errors.ts';

const listOptions = { search: { type: 'string' } } satisfies Options;

const clientOptions = {
  name: { type: 'string' },
  type: { type: 'string' },
  grant: { type: 'string', multiple: true },
  'redirect-uri': { type: 'string', multiple: true },
  'post-logout-redirect-uri': { type: 'string', multiple: true },
  origin: { type: 'string', multiple: true },
  scope: { type: 'string', multiple: true },
  'default-scope': { type: 'string' },
  'no-default-scope': { type: 'boolean' },
  'auth-method': { type: 'string' },
  'require-pkce': { type: 'boolean' },
  'no-require-pkce': { type: 'boolean' },
  'require-par': { type: 'boolean' },
  'no-require-par': { type: 'boolean' },
  'require-dpop': { type: 'boolean' },
  'no-require-dpop': { type: 'boolean' },
  'skip-consent': { type: 'boolean' },
  'no-skip-consent': { type: 'boolean' },
  'require-mfa': { type: 'boolean' },
  'no-require-mfa': { type: 'boolean' },
  'allow-insecure-redirect': { type: 'boolean' },
  'no-allow-insecure-redirect': { type: 'boolean' },
  'logo-uri': { type: 'string' },
  'client-uri': { type: 'string' },
  'id-token-alg': { type: 'string' },
  'default-resource': { type: 'string' },
  'backchannel-logout-uri': { type: 'string' },
  'backchannel-logout-session-required': { type: 'boolean' },
} satisfies Options;

const updateOptions = {
  ...clientOptions,
  disable: { type: 'boolean' },
  enable: { type: 'boolean' },
  'no-default-resource': { type: 'boolean' },
  'no-backchannel-logout-uri': { type: 'boolean' },
  'no-backchannel-logout-session-required': { type: 'boolean' },
  // Which upstream identity providers the client's sign-in page shows (src/idps/).
  idp: { type: 'string', multiple: true },
  'all-idps': { type: 'boolean' },
} satisfies Options;

const optionsOf = { create: clientOptions, update: updateOptions, list: listOptions } satisfies Record<string, Options>;

function clientInputFrom(values: Record<string, unknown>) {
  const list = (key: string) => values[key] as string[] | undefined;
  return {
    name: values.name,
    type: values.type,
    grantTypes: list('grant'),
    redirectUris: list('redirect-uri'),
    postLogoutRedirectUris: list('post-logout-redirect-uri'),
    allowedOrigins: list('origin'),
    scope: list('scope')
      ?.flatMap((s) => s.split(/\s+/))
      .filter(Boolean),
    defaultScope: values['no-default-scope']
      ? null
      : typeof values['default-scope'] === 'string'
        ? values['default-scope'].split(/\s+/).filter(Boolean)
        : undefined,
    authMethod: values['auth-method'],
    requirePkce: values['require-pkce'] ? true : values['no-require-pkce'] ? false : undefined,
    requirePar: values['require-par'] ? true : values['no-require-par'] ? false : undefined,
    requireDpop: values['require-dpop'] ? true : values['no-require-dpop'] ? false : undefined,
    skipConsent: values['skip-consent'] ? true : values['no-skip-consent'] ? false : undefined,
    requireMfa: values['require-mfa'] ? true : values['no-require-mfa'] ? false : undefined,
    allowInsecureRedirect: values['allow-insecure-redirect'] ? true : values['no-allow-insecure-redirect'] ? false : undefined,
    logoUri: values['logo-uri'],
    clientUri: values['client-uri'],
    idTokenSignedResponseAlg: values['id-token-alg'],
    defaultResource: values['no-default-resource'] ? null : values['default-resource'],
    backchannelLogoutUri: values['no-backchannel-logout-uri'] ? null : values['backchannel-logout-uri'],
    backchannelLogoutSessionRequired: values['backchannel-logout-session-required']
      ? true
      : values['no-backchannel-logout-session-required']
        ? false
        : undefined,
  };
}

function clientText(client: Client, clientSecret?: string | null): string {
  const lines = [
    `client_id:     ${client.clientId}`,
    ...(clientSecret ? [`client_secret: ${clientSecret}   (shown once: store it now)`] : []),
    `name:          ${client.name}`,
    `type:          ${client.type}${client.disabled ? ' (disabled)' : ''}`,
    `grant types:   ${client.grantTypes.join(' ')}`,
    `auth method:   ${client.authMethod}`,
    `scope:         ${client.scope.join(' ')}`,
    `default scope: ${client.defaultScope === null ? `${client.scope.join(' ')} (the scope)` : client.defaultScope.length ? client.defaultScope.join(' ') : 'none: a request must name its scope'}`,
    `require PKCE:  ${client.type === 'public' ? 'yes (public client)' : client.requirePkce ? 'yes' : 'no'}`,
    ...(client.requirePar ? ['require PAR:   yes (authorization requests are pushed to /request first)'] : []),
    ...(client.requireDpop ? ['require DPoP:  yes (access tokens are bound to a key)'] : []),
    `require MFA:   ${client.requireMfa ? 'yes (signing in takes a second factor)' : 'no (GATEHOUSE_REQUIRE_MFA decides)'}`,
  ];
  if (client.redirectUris.length) lines.push(`redirect URIs: ${client.redirectUris.join(' ')}`);
  if (client.postLogoutRedirectUris.length) lines.push(`post-logout:   ${client.postLogoutRedirectUris.join(' ')}`);
  if (client.allowedOrigins.length) lines.push(`origins:       ${client.allowedOrigins.join(' ')}`);
  if (client.defaultResource) lines.push(`resource:      ${client.defaultResource} (by default)`);
  if (client.backchannelLogoutUri)
    lines.push(`logout:        ${client.backchannelLogoutUri} (back-channel${client.backchannelLogoutSessionRequired ? ', with sid' : ''})`);
  return lines.join('\n');
}

async function run(services: Services, { sub, args, out }: Invocation): Promise<void> {
  switch (sub) {
    case 'create': {
      const { values, positionals } = parse(args, clientOptions);
      if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
      const { client, clientSecret } = await services.admin.createClient(CLI_ACTOR, clientInputFrom(values));
      return out.print(clientText(client, clientSecret), toClientMetadata(client, clientSecret));
    }
    case 'list': {
      const { values, positionals } = parse(args, listOptions);
      if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
      // The same search the admin's client list offers (name or client_id, case-insensitive).
      const { clients, total } = await services.admin.searchClients(values.search);
      return out.print(
        clients.length
          ? clients.map((c) => `${c.clientId}  ${c.type.padEnd(12)} ${c.disabled ? '[disabled] ' : ''}${c.name}`).join('\n')
          : total
            ? 'no client matches'
            : 'no clients yet',
        clients.map((c) => toClientMetadata(c)),
      );
    }
    case 'show': {
      const { positionals } = parse(args, {});
      const client = await services.clients.get(requireId(positionals, 'client id'));
      return out.print(clientText(client), toClientMetadata(client));
    }
    case 'update': {
      const { values, positionals } = parse(args, updateOptions);
      const id = requireId(positionals, 'client id');
      const disabled = values.disable ? true : values.enable ? false : undefined;
      if (values.idp?.length && values['all-idps']) throw new UsageError('--idp and --all-idps contradict each other');
      const { idp: idpNames, 'all-idps': allIdps, ...settings } = values;
      // Bad input changes nothing: unknown provider names are refused before the client is touched.
      const known = new Set((await services.idps.list()).map((i) => i.name));
      const unknownIdps = (idpNames ?? []).filter((n) => !known.has(n));
      if (unknownIdps.length) throw new ValidationError({ idps: `unknown identity provider ${unknownIdps.join(', ')} (idps list shows them)` });
      const { client, clientSecret } = await services.admin.updateClient(CLI_ACTOR, id, { ...clientInputFrom(settings), disabled });
      const idps =
        idpNames?.length || allIdps ? await services.admin.setClientIdps(CLI_ACTOR, id, allIdps ? [] : idpNames!) : await services.idps.clientLimit(id);
      const shown = clientText(client, clientSecret) + (idps.length ? `\nsign-in providers: ${idps.join(' ')}` : '');
      return out.print(shown, { ...toClientMetadata(client, clientSecret), idps });
    }
    case 'delete': {
      const { positionals } = parse(args, {});
      const id = requireId(positionals, 'client id');
      await services.admin.deleteClient(CLI_ACTOR, id);
      return out.print(`deleted client ${id}`, { client_id: id, deleted: true });
    }
    case 'rotate-secret': {
      const { positionals } = parse(args, {});
      const { client, clientSecret } = await services.admin.rotateClientSecret(CLI_ACTOR, requireId(positionals, 'client id'));
      return out.print(`client_id:     ${client.clientId}\nclient_secret: ${clientSecret}   (shown once; the old secret no longer works)`, {
        client_id: client.clientId,
        client_secret: clientSecret,
      });
    }
    default:
      throw new UsageError(`unknown clients command ${sub ?? '(none)'}`);
  }
}

export const clients: Command = {
  subcommands: ['create', 'list', 'show', 'update', 'delete', 'rotate-secret'],
  // show, delete and rotate-secret take no options but --json.
  options: {},
  optionsOf,
  run,
};
