import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { LOG_LEVELS, type LogLevel } from './observability/logger.ts';
import { parseCompatPaths, type CompatPaths } from './compat/dot-paths.ts';
import { isBuiltInScope, SCOPE_TOKEN } from './scopes/names.ts';
import { MFA_POLICIES, type MfaPolicy } from './accounts/mfa/policy.ts';

/**
 * Everything Gatehouse reads from the environment, checked once at start-up.
 * The rest of the code receives a Config and trusts it.
 */

export type DatabaseConfig =
  | { client: 'sqlite'; filename: string; synchronous: 'normal' | 'full' }
  | { client: 'pg'; connectionString: string };

export interface Config {
  port: number;
  issuer: string;
  database: DatabaseConfig;
  redisUrl: string | undefined;
  /** Prefix of every Redis key, so deployments can share one Redis. */
  redisPrefix: string;
  /** Extra ioredis options (JSON), e.g. Sentinel: {"sentinels": [...], "name": "mymaster"}. */
  redisOptions: Record<string, unknown>;
  cookieKeys: string[] | undefined;
  /** Whether X-Forwarded-* are honoured at all: there is at least one trusted proxy hop. */
  /**
   * The key private signing keys and stored cookie keys are encrypted with (GATEHOUSE_SECRET_KEY);
   * when unset, the key file below is used, created on first start.
   */
  secretKey: string | undefined;
  /** The key file used without GATEHOUSE_SECRET_KEY: beside the SQLite database, else in the data directory. */
  secretKeyFile: string;
  trustProxy: boolean;
  /**
   * How many proxies in front of Gatehouse append to X-Forwarded-For (and set X-Forwarded-Proto).
   * The client's address is the one the outermost of them saw: the proxyHops-th value from the
   * right. Everything left of it was written by the client and is never believed. 0: no proxy.
   */
  proxyHops: number;
  /** Strict-Transport-Security max-age in seconds on an https issuer; 0 sends no header. */
  hstsMaxAge: number;
  /**
   * API scopes seeded into the scopes table at start-up, each name once (scopes are data: see
   * src/scopes/service.ts). Not the list clients are checked against.
   */
  apiScopes: string[];
  /** Where the embedded default keeps its files (SQLite database). */
  dataDir: string;
  /** Another provider's URL layout to answer too: django-oauth-toolkit's paths under a prefix (`dot` is /o). */
  compatPaths: CompatPaths | undefined;
  /** Serving processes `npm start` runs (node:cluster); all state is in the stores. */
  workers: number;
  /** The largest /userdata document, in bytes of JSON. */
  userdataMaxBytes: number;
  /** How often each process checks the database for rotated signing keys, in seconds. */
  keysReloadSeconds: number;
  /** Lifetimes in seconds. A grant bounds every refresh token issued under it. */
  lifetimes: Lifetimes;
  /** The least severe log level written (JSON lines on stdout). */
  logLevel: LogLevel;
  /** GET /metrics (Prometheus); off unless the operator turns it on. */
  metrics: { enabled: boolean; token: string | undefined };
  /** Outgoing mail (password reset, address verification); undefined when GATEHOUSE_SMTP_URL is unset. */
  mail: MailConfig | undefined;
  /** Who must sign in with a second factor besides the clients that ask for it (src/accounts/mfa/policy.ts). */
  requireMfa: MfaPolicy;
  /** How long one call to an upstream identity provider may take, in milliseconds, before the person is told it is not answering. */
  idpTimeoutMs: number;
}

/** Where mail goes out. `smtpUrl` carries the SMTP password: show it only through redactUrl. */
export interface MailConfig {
  smtpUrl: string;
  from: string;
}

export interface Lifetimes {
  accessToken: number;
  refreshToken: number;
  grant: number;
  session: number;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const booleanFlag = z
  .string()
  .trim()
  .toLowerCase()
  .refine((v) => ['true', 'false', '1', '0', 'yes', 'no'].includes(v), 'must be true or false')
  .transform((v) => ['true', '1', 'yes'].includes(v));

/**
 * GATEHOUSE_TRUST_PROXY: `true` (one proxy), `false` (none), or the number of proxies in front,
 * each of which appends to X-Forwarded-For. More than ten hops is surely a mistake.
 */
const MAX_PROXY_HOPS = 10;
const proxyHops = z
  .string()
  .trim()
  .toLowerCase()
  .transform((v, ctx) => {
    if (['true', 'yes'].includes(v)) return 1;
    if (['false', 'no'].includes(v)) return 0;
    if (/^\d{1,2}$/.test(v) && Number(v) <= MAX_PROXY_HOPS) return Number(v);
    ctx.addIssue({ code: 'custom', message: `must be true, false, or the number of proxies in front (0 to ${MAX_PROXY_HOPS})` });
    return z.NEVER;
  });

const httpUrl = z.string().refine((v) => {
  try {
    const url = new URL(v);
    // url.search and url.hash are '' for a bare "?" or "#", which is still a (empty) query or
    // fragment component: check the string itself.
    return (url.protocol === 'http:' || url.protocol === 'https:') && !v.includes('?') && !v.includes('#');
  } catch {
    return false;
  }
}, 'must be an absolute http(s) URL without query or fragment');

/**
 * GATEHOUSE_SMTP_URL. The message never quotes the value: it may hold the SMTP password.
 */
const smtpUrl = z.string().refine((v) => {
  try {
    const url = new URL(v);
    return (url.protocol === 'smtp:' || url.protocol === 'smtps:') && url.hostname !== '';
  } catch {
    return false;
  }
}, 'must be smtp://[user:password@]host[:port] or smtps://… (the password percent-encoded)');

/** GATEHOUSE_MAIL_FROM: an address, or `Name <address>`. */
const mailFrom = z
  .string()
  .trim()
  .max(320, 'must be at most 320 characters')
  .refine((v) => {
    const address = /^[^<>\r\n]*<([^<>\s]+)>$/.exec(v)?.[1] ?? v;
    return z.email().safeParse(address).success && !/[\r\n]/.test(v);
  }, 'must be an email address, or "Name <address>"');

const seconds = z.coerce.number().int('must be a whole number of seconds').min(1, 'must be at least 1 second').max(10 * 365 * 24 * 60 * 60, 'must be at most ten years');

const envSchema = z.object({
  PORT: z.coerce.number().int('must be a whole number').min(0).max(65535).default(3000),
  GATEHOUSE_ISSUER: httpUrl.optional(),
  DATABASE_URL: z
    .string()
    .refine(
      (v) => /^postgres(ql)?:\/\/.+/.test(v) || /^sqlite:.+/.test(v),
      'must be postgres://… or sqlite:<path>',
    )
    .optional(),
  REDIS_URL: z
    .string()
    .refine((v) => /^rediss?:\/\/.+/.test(v), 'must be redis://… or rediss://…')
    .optional(),
  GATEHOUSE_REDIS_PREFIX: z.string().max(100, 'must be at most 100 characters').default('gatehouse:'),
  GATEHOUSE_REDIS_OPTIONS: z
    .string()
    .transform((v, ctx) => {
      try {
        const parsed: unknown = JSON.parse(v);
        if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
      } catch {
        // reported below
      }
      ctx.addIssue({ code: 'custom', message: 'must be a JSON object of ioredis options' });
      return z.NEVER;
    })
    .optional(),
  GATEHOUSE_COOKIE_KEYS: z
    .string()
    .transform((v) => v.split(',').map((k) => k.trim()).filter(Boolean))
    .refine((keys) => keys.length > 0, 'must hold at least one key')
    .refine((keys) => keys.every((k) => k.length >= 32), 'each key must be at least 32 characters')
    .optional(),
  GATEHOUSE_SECRET_KEY: z.string().min(32, 'must be at least 32 characters (e.g. openssl rand -base64 32)').optional(),
  GATEHOUSE_TRUST_PROXY: proxyHops.default(0),
  // A year, the least that browsers' HSTS preload lists accept; 0 turns the header off (e.g. while trying https out).
  GATEHOUSE_HSTS_MAX_AGE: z.coerce.number().int('must be a whole number of seconds').min(0, 'must be 0 (off) or more').max(2 * 365 * 24 * 60 * 60, 'must be at most two years').default(365 * 24 * 60 * 60),
  GATEHOUSE_API_SCOPES: z
    .string()
    .transform((v) => v.split(/[\s,]+/).filter(Boolean))
    .refine((scopes) => scopes.every((s) => SCOPE_TOKEN.test(s) && s.length <= 100), 'scopes must be printable ASCII without spaces, quotes or backslashes, at most 100 characters each')
    .refine((scopes) => scopes.every((s) => !isBuiltInScope(s)), 'must not repeat the built-in scopes (openid profile email offline_access userdata)')
    .default(['read', 'write']),
  GATEHOUSE_DATA_DIR: z.string().min(1).default('./data'),
  GATEHOUSE_SQLITE_SYNCHRONOUS: z.enum(['normal', 'full'], 'must be normal or full').default('normal'),
  GATEHOUSE_WORKERS: z.coerce.number().int('must be a whole number').min(1, 'must be at least 1').max(256, 'must be at most 256').optional(),
  GATEHOUSE_COMPAT_PATHS: z
    .string()
    .transform((v, ctx) => {
      try {
        return parseCompatPaths(v.trim());
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
    })
    .optional(),
  GATEHOUSE_USERDATA_MAX_BYTES: z.coerce.number().int('must be a whole number of bytes').min(2, 'must be at least 2 bytes').max(16 * 1024 * 1024, 'must be at most 16 MiB').default(64 * 1024),
  GATEHOUSE_KEYS_RELOAD_SECONDS: seconds.default(60),
  GATEHOUSE_ACCESS_TOKEN_TTL: seconds.default(60 * 60),
  GATEHOUSE_REFRESH_TOKEN_TTL: seconds.default(30 * 24 * 60 * 60),
  GATEHOUSE_GRANT_TTL: seconds.default(90 * 24 * 60 * 60),
  GATEHOUSE_SESSION_TTL: seconds.default(14 * 24 * 60 * 60),
  GATEHOUSE_LOG_LEVEL: z.enum(LOG_LEVELS, `must be one of ${LOG_LEVELS.join(', ')}`).default('info'),
  GATEHOUSE_METRICS: booleanFlag.default(false),
  GATEHOUSE_SMTP_URL: smtpUrl.optional(),
  GATEHOUSE_MAIL_FROM: mailFrom.optional(),
  GATEHOUSE_REQUIRE_MFA: z.enum(MFA_POLICIES, `must be one of ${MFA_POLICIES.join(', ')}`).default('off'),
  GATEHOUSE_IDP_TIMEOUT_MS: z.coerce.number().int('must be a whole number of milliseconds').min(100, 'must be at least 100 ms').max(60_000, 'must be at most 60000 ms').default(10_000),
  GATEHOUSE_METRICS_TOKEN: z.string().min(32, 'must be at least 32 characters').regex(/^[\x21-\x7E]+$/, 'must be printable ASCII without spaces').optional(),
});

/** Reads the environment; throws ConfigError with one line naming the variable at fault. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const blankAsUnset = Object.fromEntries(
    Object.entries(env).filter(([, value]) => value !== undefined && value !== ''),
  );
  const parsed = envSchema.safeParse(blankAsUnset);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const variable = String(issue.path[0] ?? 'environment');
    throw new ConfigError(`invalid ${variable}: ${issue.message}`);
  }
  const e = parsed.data;
  if (e.GATEHOUSE_GRANT_TTL < e.GATEHOUSE_REFRESH_TOKEN_TTL) {
    throw new ConfigError('invalid GATEHOUSE_GRANT_TTL: must be at least GATEHOUSE_REFRESH_TOKEN_TTL, or refresh tokens would die with their grant before their time');
  }
  if (e.GATEHOUSE_METRICS_TOKEN && !e.GATEHOUSE_METRICS) {
    throw new ConfigError('invalid GATEHOUSE_METRICS_TOKEN: set GATEHOUSE_METRICS=true too, or /metrics stays off');
  }
  if (e.GATEHOUSE_SMTP_URL && !e.GATEHOUSE_MAIL_FROM) {
    throw new ConfigError('invalid GATEHOUSE_MAIL_FROM: required with GATEHOUSE_SMTP_URL (the address mail is sent from)');
  }
  const dataDir = path.resolve(e.GATEHOUSE_DATA_DIR);
  const issuer = e.GATEHOUSE_ISSUER ?? `http://localhost:${e.PORT}`;

  let database: DatabaseConfig;
  if (!e.DATABASE_URL) {
    database = { client: 'sqlite', filename: path.join(dataDir, 'gatehouse.sqlite3'), synchronous: e.GATEHOUSE_SQLITE_SYNCHRONOUS };
  } else if (e.DATABASE_URL.startsWith('sqlite:')) {
    database = { client: 'sqlite', filename: path.resolve(e.DATABASE_URL.slice('sqlite:'.length)), synchronous: e.GATEHOUSE_SQLITE_SYNCHRONOUS };
  } else {
    database = { client: 'pg', connectionString: e.DATABASE_URL };
  }

  return {
    port: e.PORT,
    issuer,
    database,
    redisUrl: e.REDIS_URL,
    redisPrefix: e.GATEHOUSE_REDIS_PREFIX,
    redisOptions: e.GATEHOUSE_REDIS_OPTIONS ?? {},
    cookieKeys: e.GATEHOUSE_COOKIE_KEYS,
    trustProxy: e.GATEHOUSE_TRUST_PROXY > 0,
    proxyHops: e.GATEHOUSE_TRUST_PROXY,
    hstsMaxAge: e.GATEHOUSE_HSTS_MAX_AGE,
    secretKey: e.GATEHOUSE_SECRET_KEY,
    secretKeyFile: path.join(database.client === 'sqlite' ? path.dirname(database.filename) : dataDir, 'gatehouse.key'),
    apiScopes: [...new Set(e.GATEHOUSE_API_SCOPES)],
    dataDir,
    keysReloadSeconds: e.GATEHOUSE_KEYS_RELOAD_SECONDS,
    userdataMaxBytes: e.GATEHOUSE_USERDATA_MAX_BYTES,
    compatPaths: e.GATEHOUSE_COMPAT_PATHS,
    workers: e.GATEHOUSE_WORKERS ?? os.availableParallelism(),
    lifetimes: {
      accessToken: e.GATEHOUSE_ACCESS_TOKEN_TTL,
      refreshToken: e.GATEHOUSE_REFRESH_TOKEN_TTL,
      grant: e.GATEHOUSE_GRANT_TTL,
      session: e.GATEHOUSE_SESSION_TTL,
    },
    logLevel: e.GATEHOUSE_LOG_LEVEL,
    metrics: { enabled: e.GATEHOUSE_METRICS, token: e.GATEHOUSE_METRICS_TOKEN },
    mail: e.GATEHOUSE_SMTP_URL ? { smtpUrl: e.GATEHOUSE_SMTP_URL, from: e.GATEHOUSE_MAIL_FROM! } : undefined,
    requireMfa: e.GATEHOUSE_REQUIRE_MFA,
    idpTimeoutMs: e.GATEHOUSE_IDP_TIMEOUT_MS,
  };
}
