import { ConfigError, loadConfig } from '../config.ts';
import { GatehouseError, ValidationError } from '../errors.ts';
import { DotSourceError } from '../importers/dot/source.ts';
import { openServices, type Services } from '../services.ts';
import { optionsFor, type Command } from './command.ts';
import { adminTokens } from './commands/admin-tokens.ts';
import { apiKeys } from './commands/api-keys.ts';
import { clients } from './commands/clients.ts';
import { importCommand } from './commands/import.ts';
import { keys } from './commands/keys.ts';
import { migrate } from './commands/migrate.ts';
import { resources } from './commands/resources.ts';
import { idps } from './commands/idps.ts';
import { scopes } from './commands/scopes.ts';
import { users } from './commands/users.ts';
import { parse, UsageError, withOptionNames } from './options.ts';
import { createOutput } from './output.ts';
import { asksForHelp, didYouMean, USAGE, usageFor } from './usage.ts';
import { redactCredentials } from '../observability/redact.ts';

/**
 * `npm run -s cli -- <command>`: the operator's command line. Every command calls the same
 * services as the admin; --json prints machine-readable output. This file dispatches: it checks
 * the command line, opens the services, runs the command (one file each in commands/) and says
 * how it failed.
 */

// In the order a typo's "did you mean" prefers them.
const COMMANDS: Record<string, Command> = {
  migrate,
  clients,
  users,
  'api-keys': apiKeys,
  'admin-tokens': adminTokens,
  import: importCommand,
  keys,
  scopes,
  resources,
  idps,
};

const commandNamed = (name: string): Command | undefined => (Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined);

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function runCli(argv: string[]): Promise<number> {
  const json = argv.includes('--json');
  const out = createOutput(json);

  const [command, sub, ...rest] = argv;
  if (!command) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  // `help`, `help clients create`, `--help`, `clients --help`, `clients create -h`: the usage of
  // what was named, on stdout.
  if (command === 'help' || asksForHelp(argv)) {
    const [named, namedSub] = (command === 'help' ? argv.slice(1) : argv).filter((a) => !a.startsWith('-'));
    process.stdout.write(`${usageFor(USAGE, named, namedSub)}\n`);
    return 0;
  }

  let services: Services | undefined;
  let cleanup: (() => void) | undefined;
  try {
    // Known commands are checked before the database is opened, so a typo says so.
    const known = commandNamed(command);
    if (!known) throw new UsageError(`unknown command ${command}${didYouMean(command, Object.keys(COMMANDS))}`);
    const { subcommands } = known;
    if (subcommands.length && !subcommands.includes(sub ?? '')) {
      throw new UsageError(sub ? `unknown ${command} command ${sub}${didYouMean(sub, subcommands)}` : `${command} needs a command: ${subcommands.join(', ')}`);
    }
    const given = parse(subcommands.length ? rest : argv.slice(1), optionsFor(known, sub));
    if (!subcommands.length && given.positionals.length) throw new UsageError(`unexpected argument ${given.positionals[0]}`);
    let config = loadConfig();
    let note: string | undefined;
    if (known.prepare) {
      const prepared = known.prepare(config, rest);
      ({ config, note, cleanup } = prepared);
    }
    let applied: string[] = [];
    services = await openServices(config, { migrated: (names) => (applied = names.map((n) => n.replace(/\.(ts|js)$/, ''))) });
    await known.run(services, { sub, args: rest, out, stdin: readStdin, applied, note });
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      // The message, then the usage of the command (or of everything, for an unknown command).
      out.fail('usage', err.message, 2);
      const known = commandNamed(command);
      if (!json) process.stderr.write(`\n${usageFor(USAGE, known ? command : undefined, known?.subcommands.includes(sub ?? '') ? sub : undefined)}\n`);
      return 2;
    }
    if (err instanceof ConfigError) return out.fail('invalid_configuration', err.message, 2);
    if (err instanceof ValidationError) return out.fail(err.code, withOptionNames(err).description, 1);
    if (err instanceof GatehouseError) return out.fail(err.code, err.description, 1);
    if (err instanceof DotSourceError) return out.fail('invalid_source', redactCredentials(err.message, argv), 1);
    // A driver's message may quote a store URL, the SMTP URL or the --from URL of an import, password and all.
    return out.fail(
      'server_error',
      redactCredentials((err as Error).message, [process.env.DATABASE_URL, process.env.REDIS_URL, process.env.GATEHOUSE_SMTP_URL, ...argv]),
      1,
    );
  } finally {
    await services?.close();
    cleanup?.();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await runCli(process.argv.slice(2));
}
