import { STATUS_CODES } from 'node:http';
import type Koa from 'koa';
import { asSentence, GatehouseError, LockedOutError } from './errors.ts';
import { providerErrorFacts } from './oidc/internals.ts';
import { isConnectionError } from './stores/availability.ts';

/**
 * The one error model: what any error means for the one who sent the request. Every surface
 * (Gatehouse's JSON routes, the interaction pages, the admin pages, oidc-provider's renderError
 * and its JSON answers' headers) maps errors with problemOf and renders the problem it returns.
 */
export interface Problem {
  status: number;
  /** The OAuth-style error code: invalid_request, not_found, temporarily_unavailable… */
  code: string;
  /** What may be shown: the error's own description when `exposed`, else a generic one. */
  description: string;
  /** Whether `description` is the error's own words, meant for the caller. */
  exposed: boolean;
  /** Seconds after which trying again may succeed (the Retry-After header). */
  retryAfter?: number;
  headers?: Record<string, string>;
}

export const UNEXPECTED = 'an unexpected error occurred';
export const STORE_UNREACHABLE = 'a store Gatehouse needs is unreachable; try again shortly';
/** How long a client should wait after an outage (a 503) before trying again. */
const RETRY_AFTER_OUTAGE = 5;

const unexpected = (): Problem => ({ status: 500, code: 'server_error', description: UNEXPECTED, exposed: false });

/**
 * Maps any error to a problem. The one rule for what is shown: only words meant for the caller,
 * that is a GatehouseError's description (ours, always written for the caller), oidc-provider's error_description for the errors it
 * exposes (they are written for clients), and an HTTP error's message when it says `expose`
 * (http-errors, as Koa and koa-body throw them). Any other 5xx never shows its message; a 4xx that does
 * not expose its message (a JSON SyntaxError from the body parser) keeps its status with a
 * generic description.
 */
export function problemOf(err: unknown): Problem {
  // Our own errors are written for the caller, whatever their status.
  if (err instanceof GatehouseError) {
    const retryAfter = err instanceof LockedOutError ? err.retryAfterSeconds : err.status === 503 ? RETRY_AFTER_OUTAGE : undefined;
    return { status: err.status, code: err.code, description: err.description, exposed: true, ...(retryAfter !== undefined ? { retryAfter } : {}) };
  }
  // Before oidc-provider's errors: StoreUnavailableError is one of them, and a raw connection
  // error from a driver is the same outage.
  if (isConnectionError(err)) {
    return { status: 503, code: 'temporarily_unavailable', description: STORE_UNREACHABLE, exposed: true, retryAfter: RETRY_AFTER_OUTAGE };
  }
  const provider = providerErrorFacts(err);
  if (provider) {
    if (!provider.expose || provider.status >= 500) return unexpected();
    return {
      status: provider.status,
      code: provider.error,
      description: provider.description ?? provider.error,
      exposed: true,
      ...(provider.retryAfterSeconds !== undefined ? { retryAfter: provider.retryAfterSeconds } : {}),
    };
  }
  const e = (err ?? {}) as { status?: unknown; statusCode?: unknown; expose?: unknown; message?: unknown; headers?: unknown };
  const status = typeof e.status === 'number' ? e.status : typeof e.statusCode === 'number' ? e.statusCode : undefined;
  if (status !== undefined && status >= 400 && status < 500) {
    const exposed = e.expose === true && typeof e.message === 'string' && e.message !== '';
    const headers = e.expose === true ? stringHeaders(e.headers) : undefined;
    return {
      status,
      code: 'invalid_request',
      description: exposed ? (e.message as string) : (STATUS_CODES[status] ?? 'client error').toLowerCase(),
      exposed,
      ...(headers ? { headers } : {}),
    };
  }
  return unexpected();
}

// http-errors may carry headers meant for the response (Allow on a 405, for instance).
function stringHeaders(headers: unknown): Record<string, string> | undefined {
  if (!headers || typeof headers !== 'object') return undefined;
  const entries = Object.entries(headers).filter((entry): entry is [string, string] => typeof entry[1] === 'string');
  return entries.length ? Object.fromEntries(entries) : undefined;
}

/** Whether the error behind `problem` is one to log as a fault of ours (not the caller's). */
export const isUnexpected = (problem: Problem): boolean => problem.status >= 500 && !problem.exposed;

/** The one place Retry-After (and a problem's other headers) are set on a response. */
export function setProblemHeaders(ctx: Koa.Context, problem: Problem): void {
  if (problem.retryAfter !== undefined) ctx.set('retry-after', String(problem.retryAfter));
  for (const [name, value] of Object.entries(problem.headers ?? {})) ctx.set(name, value);
}

/**
 * A refusal shown on the form itself (a sign-in form): sets the problem's headers (Retry-After of
 * a lock) and returns the status and the sentence the form shows.
 */
export function formRefusal(ctx: Koa.Context, err: unknown): { status: number; sentence: string } {
  const problem = problemOf(err);
  setProblemHeaders(ctx, problem);
  return { status: problem.status, sentence: asSentence(problem.description) };
}

/** The JSON renderer: {"error", "error_description"} with the problem's status and headers. */
export function respondWithJson(ctx: Koa.Context, problem: Problem): void {
  ctx.status = problem.status;
  setProblemHeaders(ctx, problem);
  ctx.body = { error: problem.code, error_description: problem.description };
}

/** What the interaction pages' error page (interactions/views/error.njk) shows for a problem. */
export function interactionErrorPage(problem: Problem): { title: string; error: string; description: string } {
  return {
    title: problem.status === 503 ? 'Gatehouse is briefly unavailable' : 'Something went wrong',
    error: problem.code,
    description: problem.description,
  };
}

/** The HTML renderer: the page `html` (rendered from the problem by the surface) with the problem's status and headers. */
export function respondWithPage(ctx: Koa.Context, problem: Problem, html: string): void {
  ctx.status = problem.status;
  setProblemHeaders(ctx, problem);
  ctx.type = 'html';
  ctx.body = html;
}
