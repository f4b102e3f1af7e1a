import cluster from 'node:cluster';
import { timingSafeEqual, createHash } from 'node:crypto';
import type Koa from 'koa';
import client from 'prom-client';
import { GatehouseError } from '../errors.ts';
import { problemOf, respondWithJson } from '../problem.ts';

/**
 * Prometheus metrics, recorded only when the operator turns them on (GATEHOUSE_METRICS=true):
 * requests by route and status, their latency, tokens issued by grant, errors, security events,
 * and the process's own CPU, memory and event-loop figures.
 */
export class HttpMetrics {
  readonly registry = new client.Registry();
  private readonly requests = new client.Counter({
    name: 'gatehouse_http_requests_total',
    help: 'HTTP requests answered, by method, route and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });
  private readonly latency = new client.Histogram({
    name: 'gatehouse_http_request_duration_seconds',
    help: 'Time to answer an HTTP request, by route',
    labelNames: ['route'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  private readonly errors = new client.Counter({
    name: 'gatehouse_http_server_errors_total',
    help: 'Requests answered with a 5xx status, by route',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });
  private readonly tokens = new client.Counter({
    name: 'gatehouse_tokens_issued_total',
    help: 'Successful token endpoint responses, by grant type',
    labelNames: ['grant_type'] as const,
    registers: [this.registry],
  });
  private readonly security = new client.Counter({
    name: 'gatehouse_security_events_total',
    help: 'Security events (failed sign-ins, lockouts, failed client authentication, revocations, admin changes), by event',
    labelNames: ['event'] as const,
    registers: [this.registry],
  });

  private readonly backchannel = new client.Counter({
    name: 'gatehouse_backchannel_logout_total',
    help: 'Back-channel logout token deliveries to apps, by outcome (delivered, retrying, failed)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  constructor() {
    client.collectDefaultMetrics({ register: this.registry, prefix: 'gatehouse_' });
    // In a node:cluster worker, prom-client answers the primary's requests for this registry.
    // (Constructing an AggregatorRegistry is what installs prom-client's listener in a worker.)
    if (cluster.isWorker) {
      new client.AggregatorRegistry();
      client.AggregatorRegistry.setRegistries([this.registry]);
    }
  }

  observe(method: string, route: string, status: number, seconds: number): void {
    this.requests.inc({ method, route, status: String(status) });
    this.latency.observe({ route }, seconds);
    if (status >= 500) this.errors.inc({ route });
  }

  tokenIssued(grantType: string): void {
    this.tokens.inc({ grant_type: grantType });
  }

  securityEvent(event: string): void {
    this.security.inc({ event });
  }

  backchannelLogout(outcome: string): void {
    this.backchannel.inc({ outcome });
  }
}

const REQUEST = 'gatehouse:metrics-request';
const RESPONSE = 'gatehouse:metrics-response';

/**
 * The exposition text for the whole server: this process's registry, or with several workers
 * the sum over all of them, which only the primary can collect.
 */
async function exposition(metrics: HttpMetrics): Promise<string> {
  if (!cluster.isWorker) return metrics.registry.metrics();
  const id = `${process.pid}:${Math.random()}`;
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      process.off('message', onMessage);
      reject(new Error('the primary did not answer with metrics'));
    }, 5000);
    const onMessage = (message: { type?: string; id?: string; text?: string; error?: string }) => {
      if (message?.type !== RESPONSE || message.id !== id) return;
      clearTimeout(timer);
      process.off('message', onMessage);
      if (message.error !== undefined) reject(new Error(message.error));
      else resolve(message.text ?? '');
    };
    process.on('message', onMessage);
    process.send!({ type: REQUEST, id });
  });
}

/** In the primary: answers workers' requests for the cluster-wide metrics. */
export function serveClusterMetrics(): void {
  const aggregator = new client.AggregatorRegistry();
  cluster.on('message', (worker, message: { type?: string; id?: string }) => {
    if (message?.type !== REQUEST) return;
    aggregator.clusterMetrics().then(
      (text) => worker.send({ type: RESPONSE, id: message.id, text }),
      (err: Error) => worker.send({ type: RESPONSE, id: message.id, error: err.message }),
    );
  });
}

const digest = (value: string) => createHash('sha256').update(value).digest();

/**
 * GET /metrics in Prometheus' text format. With GATEHOUSE_METRICS_TOKEN set, only a scraper
 * presenting it as a Bearer token is answered.
 */
export function metricsRoute(metrics: HttpMetrics, token: string | undefined): Koa.Middleware {
  const expected = token === undefined ? undefined : digest(token);
  return async (ctx, next) => {
    if (ctx.path !== '/metrics') return next();
    ctx.state.route = '/metrics';
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      return respondWithJson(ctx, { ...problemOf(new GatehouseError(405, 'method_not_allowed', 'use GET /metrics')), headers: { allow: 'GET, HEAD' } });
    }
    ctx.set('cache-control', 'no-store');
    if (expected) {
      const presented = /^Bearer (\S+)$/i.exec(ctx.get('authorization'))?.[1];
      if (!presented || !timingSafeEqual(digest(presented), expected)) {
        // Answered here, not thrown: a scraper's refusal is not an authentication.failed event.
        const refused = problemOf(new GatehouseError(401, 'invalid_token', 'send the metrics token: Authorization: Bearer <GATEHOUSE_METRICS_TOKEN>'));
        return respondWithJson(ctx, { ...refused, headers: { 'www-authenticate': 'Bearer realm="gatehouse-metrics"' } });
      }
    }
    try {
      ctx.body = await exposition(metrics);
      ctx.type = metrics.registry.contentType;
    } catch {
      respondWithJson(ctx, problemOf(new GatehouseError(503, 'temporarily_unavailable', 'metrics could not be collected from every worker; try again')));
    }
  };
}
