/** `idps create|list|show|update|delete`: the upstream identity providers people may sign in with. */
import type { Services } from '../../services.ts';
import { CLI_ACTOR } from '../../admin/audit.ts';
import { idpJson } from '../../idps/representation.ts';
import type { Idp } from '../../idps/service.ts';
import type { Command, Invocation } from '../command.ts';
import { parse, requireId, UsageError, type Options } from '../options.ts';

const settingOptions = {
  preset: { type: 'string' },
  issuer: { type: 'string' },
  'client-id': { type: 'string' },
  'client-secret-stdin': { type: 'boolean' },
  scope: { type: 'string' },
  button: { type: 'string' },
  position: { type: 'string' },
  'no-create-accounts': { type: 'boolean' },
  'create-accounts': { type: 'boolean' },
} satisfies Options;
const createOptions = { ...settingOptions, name: { type: 'string' } } satisfies Options;
const updateOptions = { ...settingOptions, enable: { type: 'boolean' }, disable: { type: 'boolean' } } satisfies Options;
const optionsOf = { create: createOptions, update: updateOptions } satisfies Record<string, Options>;

async function inputFrom(values: Record<string, unknown>, stdin: () => Promise<string>) {
  if (values['no-create-accounts'] && values['create-accounts']) throw new UsageError('--create-accounts and --no-create-accounts contradict each other');
  if (values.enable && values.disable) throw new UsageError('--enable and --disable contradict each other');
  return {
    preset: values.preset,
    issuer: values.issuer,
    clientId: values['client-id'],
    // One trailing newline is the shell's, not the secret's; the secret never sits in the shell history.
    clientSecret: values['client-secret-stdin'] ? (await stdin()).replace(/\r?\n$/, '') : undefined,
    scope: values.scope,
    button: values.button,
    position: values.position,
    createAccounts: values['no-create-accounts'] ? false : values['create-accounts'] ? true : undefined,
    enabled: values.enable ? true : values.disable ? false : undefined,
  };
}

function idpText(idp: Idp, redirectUri: string): string {
  return [
    `name:            ${idp.name}${idp.enabled ? '' : ' (disabled)'}`,
    `issuer:          ${idp.issuer}${idp.preset ? ` (preset ${idp.preset})` : ''}`,
    `protocol:        ${idp.protocol === 'github' ? "OAuth 2.0 and GitHub's API" : 'OpenID Connect'}`,
    `client id:       ${idp.clientId}`,
    `scope:           ${idp.scope}`,
    `button:          ${idp.button} (position ${idp.position})`,
    `new accounts:    ${idp.createAccounts ? 'created at first sign-in' : 'not created: only linked accounts sign in'}`,
    `redirect URI:    ${redirectUri}   (register it at the provider)`,
  ].join('\n');
}

async function run(services: Services, { sub, args, out, stdin }: Invocation): Promise<void> {
  const { idps, admin } = services;
  const show = (idp: Idp) => out.print(idpText(idp, idps.redirectUri(idp.name)), idpJson(idp, idps.redirectUri(idp.name)));
  switch (sub) {
    case 'create': {
      const { values, positionals } = parse(args, createOptions);
      if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
      if (values.name === undefined) throw new UsageError('missing --name (lower-case, part of the redirect URI: e.g. google)');
      if (!values['client-secret-stdin']) throw new UsageError('missing --client-secret-stdin (pipe in the client secret the provider gave)');
      return show(await admin.createIdp(CLI_ACTOR, { name: values.name, ...(await inputFrom(values, stdin)) }));
    }
    case 'list': {
      const { positionals } = parse(args, {});
      if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
      const all = await idps.list();
      return out.print(
        all.length
          ? all
              .map((i) => `${String(i.position).padStart(4)}  ${i.name.padEnd(16)} ${i.enabled ? 'enabled ' : 'disabled'}  ${i.issuer}  "${i.button}"`)
              .join('\n')
          : 'no identity providers yet',
        all.map((i) => idpJson(i, idps.redirectUri(i.name))),
      );
    }
    case 'show': {
      const { positionals } = parse(args, {});
      return show(await idps.get(requireId(positionals, 'identity provider name')));
    }
    case 'update': {
      const { values, positionals } = parse(args, updateOptions);
      const name = requireId(positionals, 'identity provider name');
      return show((await admin.updateIdp(CLI_ACTOR, name, await inputFrom(values, stdin))).idp);
    }
    case 'delete': {
      const { positionals } = parse(args, {});
      const idp = await admin.deleteIdp(CLI_ACTOR, requireId(positionals, 'identity provider name'));
      return out.print(`deleted identity provider ${idp.name} (and the sign-ins linked through it)`, { name: idp.name, deleted: true });
    }
    default:
      throw new UsageError(`unknown idps command ${sub ?? '(none)'}`);
  }
}

export const idps: Command = { subcommands: ['create', 'list', 'show', 'update', 'delete'], options: {}, optionsOf, run };
