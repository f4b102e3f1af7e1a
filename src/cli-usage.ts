/**
 * What the CLI says when it is asked for help or given something it does not take. The usage
 * text in src/cli.ts is the one source: each command's help is its own lines of it, so a new
 * command or option is documented (and helped) by adding its line there.
 */

/** `--help` or `-h` anywhere before a `--`. */
export function asksForHelp(args: string[]): boolean {
  const end = args.indexOf('--');
  return (end === -1 ? args : args.slice(0, end)).some((a) => a === '--help' || a === '-h');
}

/**
 * The entries of `usage` for `command` (and `sub`): an entry is a line indented by two spaces
 * and the more indented lines after it. `clients create` finds "  clients create …" and its
 * continuation lines; `users remove-admin` finds "  users grant-admin ID | remove-admin ID".
 * Without a match (a command not in the text yet) the command's entries, then the whole text.
 */
export function usageFor(usage: string, command?: string, sub?: string): string {
  if (!command) return usage;
  const entries: string[][] = [];
  for (const line of usage.split('\n')) {
    if (/^ {2}\S/.test(line)) entries.push([line]);
    else if (/^ {3,}\S/.test(line) && entries.length) entries.at(-1)!.push(line);
    else entries.push([]);
  }
  const ofCommand = entries.filter((e) => e.length && new RegExp(`^ {2}${escapeRegExp(command)}( |$)`).test(e[0]!));
  const ofSub = sub ? ofCommand.filter((e) => new RegExp(`^ {2}${escapeRegExp(command)} (.*\\| )?${escapeRegExp(sub)}( |$)`).test(e[0]!)) : [];
  const chosen = ofSub.length ? ofSub : ofCommand;
  if (!chosen.length) return usage;
  const what = ofSub.length ? `${command} ${sub}` : `${command}${ofCommand.length > 1 ? ' <command>' : ''}`;
  return [`usage: npm run -s cli -- ${what} [options] [--json]`, '', ...chosen.flat()].join('\n');
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** " (did you mean X?)" when one candidate is close to `word` (a typo, a plural, a prefix), else "". */
export function didYouMean(word: string, candidates: Iterable<string>): string {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(word.toLowerCase(), candidate.toLowerCase());
    const close = distance <= Math.max(2, Math.floor(candidate.length / 4)) || (word.replace(/^-+/, '').length >= 3 && candidate.startsWith(word));
    if (close && distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  return best ? ` (did you mean ${best}?)` : '';
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/**
 * node:util parseArgs's errors, said for an operator: "unknown option --grants (did you mean
 * --grant?)" instead of advice about positionals after "--". `options` are the long names the
 * command takes.
 */
export function explainParseError(err: unknown, options: string[]): string {
  const { code, message } = err as { code?: string; message: string };
  const option = /'(-{1,2}[^' =<]+)/.exec(message)?.[1] ?? '';
  const known = options.map((o) => `--${o}`);
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${option}${didYouMean(option, known)}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (/does not take an argument/.test(message)) return `${option} takes no value`;
      if (/ambiguous/.test(message)) return `${option} needs a value; for a value starting with "-", write ${option}=VALUE`;
      return `${option} needs a value`;
    default:
      return message.split('\n')[0]!;
  }
}
