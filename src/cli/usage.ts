/**
 * What the CLI says when it is asked for help or given something it does not take. The usage
 * text below is the one source: each command's help is its own lines of it, so a new command or
 * option is documented (and helped) by adding its line there.
 */

export const USAGE = `usage: npm run -s cli -- <command> [options] [--json]

  help [COMMAND [SUBCOMMAND]]               this text, or one command's (so does --help or -h
                                            after any command)
  migrate                                   apply database migrations; names what it applied
  clients create --name N --type confidential|public
                 --grant authorization_code|refresh_token|client_credentials (repeatable)
                         or urn:ietf:params:oauth:grant-type:device_code (device sign-in)
                 [--redirect-uri URI]… [--post-logout-redirect-uri URI]… [--origin URL]…
                 [--scope "openid profile email offline_access"]
                 [--default-scope "openid profile"]  what a request without scope asks for
                                            (default: the --scope; "" refuses such requests)
                 [--auth-method client_secret_basic|client_secret_post|none] [--require-pkce]
                 [--logo-uri URL] [--client-uri URL] [--skip-consent] [--id-token-alg RS256|ES256]
                 [--allow-insecure-redirect]   plain-http redirect URIs on any host (unsafe)
                 [--default-resource URL]   the resource server a request naming no resource= gets
                                            its token for
                 [--backchannel-logout-uri URL]  where a logout token is POSTed when a
                                            person's sign-in to the app ends
                 [--backchannel-logout-session-required]  the token carries the session id
                 [--require-par]            authorization requests must be pushed to /request first
                 [--require-dpop]           access tokens must be DPoP-bound
                 [--require-mfa]            signing in to the app takes a second factor
  clients list [--search TEXT]              name or client_id contains TEXT
  clients show ID
  clients update ID [any create option] [--no-require-pkce] [--no-skip-consent] [--disable | --enable]
                 [--no-default-scope]       a request without scope asks for the --scope again
                 [--no-default-resource]    a request without resource= gets a token for Gatehouse
                 [--idp NAME]… | [--all-idps]   which upstream providers its sign-in page shows
                 [--no-backchannel-logout-uri] [--no-backchannel-logout-session-required]
                 [--no-require-par] [--no-require-dpop] [--no-require-mfa]
  clients delete ID
  clients rotate-secret ID
  users create --username U --email E [--name N] [--password-stdin] [--admin] [--email-verified]
                 [--send-verification]      mail a link confirming the address (needs SMTP)
                                            without --password-stdin, asks twice on the terminal
  users list [--search TEXT]
  users show ID|USERNAME
  users set-password ID|USERNAME [--password-stdin]
  users disable ID|USERNAME                 sign-in refused, tokens revoked
  users enable ID|USERNAME
  users unlock ID|USERNAME                  lifts sign-in and code locks and slow-downs, from every address
  users reset-link --username U [--send]    a single-use password reset link (30 minutes) to hand
                                            over; --send mails it to the user (needs SMTP)
  users mfa reset ID|USERNAME               removes their authenticator app and recovery codes
  api-keys create --client CLIENT_ID --scope userdata:read --scope userdata:write [--name N]
                                            prints the key once
  api-keys list [--client CLIENT_ID]
  api-keys revoke KEY_ID
  users grant-admin ID|USERNAME | remove-admin ID|USERNAME
  admin-tokens create --name N              a token for the admin API, printed once
  admin-tokens list | revoke ID
  import dot --from SOURCE [--dry-run]      import django-oauth-toolkit applications, users and
                                            live refresh tokens (SOURCE: SQLite file, postgres://
                                            URL, or a dumpdata .json file)
  keys list
  keys rotate                               new signing keys; the old ones stay published
  keys retire KID                           stop publishing a rotated key
  scopes create --name N --description D    an API scope clients may be given; D is what the
                                            consent page shows
  scopes list                               API scopes and the built-in ones
  scopes delete NAME                        refused while a client's scope holds it or a resource
                                            accepts it
  resources create --audience URL --scope S (repeatable) [--name N] [--token-format opaque|jwt]
                 [--signing-alg ES256|RS256] [--access-token-ttl SECONDS]
                                            an API clients ask tokens for with resource=URL
  resources list
  resources show URL
  resources update URL [--name N] [--scope S]… [--token-format opaque|jwt] [--signing-alg ES256|RS256]
                 [--access-token-ttl SECONDS | --default-ttl]
  resources delete URL                      refused while a client has it as --default-resource
  idps create --name N (--issuer URL | --preset google|microsoft[:TENANT]|github|gitlab)
                 --client-id ID --client-secret-stdin [--scope "openid email profile"]
                 [--button TEXT] [--position N] [--no-create-accounts]
                                            sign in with another identity provider; prints the
                                            redirect URI to register there
  idps list | show NAME | delete NAME
  idps update NAME [--issuer URL] [--client-id ID] [--client-secret-stdin] [--scope S] [--button TEXT]
                 [--position N] [--enable | --disable] [--create-accounts | --no-create-accounts]`;

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
