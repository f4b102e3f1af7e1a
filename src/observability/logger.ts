import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger };

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Field names whose values are credentials. Nothing in Gatehouse logs them on purpose; the
 * redaction is the second line, for a field someone adds to a log call later. Top-level fields
 * only: wildcard paths (`*.token`) made every request's log line cost a few percent of its CPU.
 */
const CREDENTIAL_FIELDS = [
  'password',
  'client_secret',
  'secret',
  'token',
  'access_token',
  'refresh_token',
  'id_token',
  'code',
  'code_verifier',
  'authorization',
  'cookie',
  'key',
  'api_key',
];

/**
 * One JSON object per line (pino), the format log shippers read without configuration. Request
 * lines carry `req_id`; security events carry `event`. Lines are written as they come but
 * asynchronously: a slow reader of stdout (a busy log shipper, a full pipe) must not stall the
 * event loop and every request with it. A crash loses at most the lines still being written.
 * `time` is epoch milliseconds, which costs nothing to format and every shipper reads.
 */
export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'gatehouse', pid: process.pid },
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: CREDENTIAL_FIELDS, censor: '[redacted]' },
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

let quiet: Logger | undefined;

/** For code paths that run without a server (CLI, scripts): only what an operator must see, on stderr. */
export function createQuietLogger(): Logger {
  quiet ??= createLogger('warn', pino.destination({ dest: 2, sync: true }));
  return quiet;
}
