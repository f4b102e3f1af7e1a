import type Koa from 'koa';
import type { Provider } from '../oidc/index.ts';
import type { Logger } from './logger.ts';
import type { HttpMetrics } from './metrics.ts';

export type SecurityEventLevel = 'info' | 'warn';

/** Reports one security event; bound to a request's logger inside a request. */
export type ReportSecurityEvent = (event: string, fields?: Record<string, unknown>, level?: SecurityEventLevel) => void;

/**
 * Security-relevant happenings (failed and locked sign-ins, failed client authentication,
 * revocations, admin changes…), logged as such — `event` names it, `security: true` marks it —
 * so they can be alerted on, and counted in the metrics. Callers never pass a credential.
 */
export class SecurityEvents {
  private readonly listeners: Array<(event: string, fields: Record<string, unknown>) => void> = [];

  constructor(
    private readonly log: Logger,
    private readonly metrics?: HttpMetrics,
  ) {}

  record(event: string, fields: Record<string, unknown> = {}, level: SecurityEventLevel = 'warn', log: Logger = this.log): void {
    log[level]({ event, security: true, ...fields }, event);
    this.metrics?.securityEvent(event);
    for (const listener of this.listeners) listener(event, fields);
  }

  /** Also tells `listener` of every event (the account page's history keeps a person's own); it must not throw. */
  listen(listener: (event: string, fields: Record<string, unknown>) => void): void {
    this.listeners.push(listener);
  }
}

// Long enough to read, short enough that a hostile value cannot flood the log.
const clip = (value: unknown): string | undefined => (typeof value === 'string' ? value.slice(0, 200) : undefined);

interface OidcErrorLike {
  error?: string;
  error_description?: string;
  error_detail?: string;
  status?: number;
}

/** The client_id half of an HTTP Basic header (RFC 6749 2.3.1), which names who failed to authenticate. */
function basicAuthClientId(ctx: Koa.Context): string | undefined {
  const match = /^Basic ([A-Za-z0-9+/=]+)$/i.exec(ctx.get('authorization'));
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  try {
    return clip(decodeURIComponent(decoded.slice(0, colon)));
  } catch {
    return clip(decoded.slice(0, colon));
  }
}

const ERROR_EVENTS = [
  'authorization.error',
  'grant.error',
  'introspection.error',
  'revocation.error',
  'userinfo.error',
  'end_session.error',
  'end_session_confirm.error',
] as const;

/**
 * Listens to oidc-provider's documented events: failures of client authentication and of
 * grants, revocations, ended sessions and server errors become log lines (with the request's
 * id), and successful token responses are counted.
 */
export function watchProvider(provider: Provider, events: SecurityEvents, fallbackLog: Logger, metrics?: HttpMetrics): void {
  // oidc-provider's typings declare each event separately; the loops below name them as strings.
  const emitter = provider as unknown as NodeJS.EventEmitter;
  const requestLog = (ctx: Koa.Context | undefined): Logger => (ctx?.state as { log?: Logger } | undefined)?.log ?? fallbackLog;
  const clientOf = (ctx: Koa.Context) => {
    const oidc = (ctx as { oidc?: { client?: { clientId: string }; params?: Record<string, unknown>; route?: string } }).oidc;
    return { client_id: oidc?.client?.clientId ?? clip(oidc?.params?.client_id) ?? basicAuthClientId(ctx), endpoint: oidc?.route };
  };

  for (const name of ERROR_EVENTS) {
    emitter.on(name, (ctx: Koa.Context, err: OidcErrorLike) => {
      const fields = { ...clientOf(ctx), error: err.error, description: clip(err.error_description), detail: clip(err.error_detail) };
      if (err.error === 'invalid_client') events.record(err.status === 429 ? 'client.authentication_locked' : 'client.authentication_failed', fields, 'warn', requestLog(ctx));
      else if (name === 'grant.error' && err.error === 'invalid_grant') events.record('token.grant_refused', fields, 'warn', requestLog(ctx));
      else if (name === 'authorization.error') events.record('authorization.refused', fields, 'info', requestLog(ctx));
      else requestLog(ctx).info({ ...fields, event: name }, name);
    });
  }
  emitter.on('grant.revoked', (ctx: Koa.Context, grantId: string) => {
    events.record('grant.revoked', { ...clientOf(ctx), grant_id: grantId }, 'info', requestLog(ctx));
  });
  for (const kind of ['access_token', 'refresh_token', 'client_credentials'] as const) {
    emitter.on(`${kind}.destroyed`, (token: { clientId?: string; accountId?: string }) => {
      events.record('token.revoked', { kind, client_id: token.clientId, sub: token.accountId }, 'info');
    });
  }
  emitter.on('end_session.success', (ctx: Koa.Context) => {
    events.record('session.ended', clientOf(ctx), 'info', requestLog(ctx));
  });
  emitter.on('grant.success', (ctx: Koa.Context) => {
    const grantType = (ctx as { oidc?: { params?: { grant_type?: unknown } } }).oidc?.params?.grant_type;
    metrics?.tokenIssued(typeof grantType === 'string' ? grantType : 'unknown');
  });
  emitter.on('server_error', (ctx: Koa.Context, err: Error) => {
    requestLog(ctx).error({ err, ...clientOf(ctx) }, 'server error in oidc-provider');
  });
}
