import type { Config } from '../config.ts';
import type { Services } from '../services.ts';
import type { Options } from './options.ts';
import type { Output } from './output.ts';

/** One run of a command, as the dispatcher hands it over. */
export interface Invocation {
  /** The subcommand (`create` in `clients create`); for a command without subcommands, whatever came next. */
  sub: string | undefined;
  /** The arguments after the subcommand. */
  args: string[];
  out: Output;
  /** All of stdin (`--password-stdin`). */
  stdin: () => Promise<string>;
  /** The migrations applied when the services opened, without their extension. */
  applied: string[];
  /** A note from prepare() for the command's report. */
  note?: string | undefined;
}

/** What prepare() changed before the services opened, and what to undo after the command. */
export interface Preparation {
  config: Config;
  note?: string;
  cleanup?: () => void;
}

/** One CLI command (a file in src/cli/commands/), dispatched by src/cli/index.ts. */
export interface Command {
  /** Its subcommands, or none. */
  subcommands: string[];
  /** The options it takes (besides --json and --help): checked before the database is opened. */
  options: Options;
  /** A subcommand's own options, where they differ from `options`: any other is refused. */
  optionsOf?: Readonly<Record<string, Options>>;
  /** A last say on the configuration before the services open (`rest`: the arguments after the subcommand). */
  prepare?(config: Config, rest: string[]): Preparation;
  run(services: Services, invocation: Invocation): Promise<void>;
}

/** The options `sub` of `command` takes. */
export function optionsFor(command: Command, sub: string | undefined): Options {
  return (sub !== undefined && command.optionsOf?.[sub]) || command.options;
}
