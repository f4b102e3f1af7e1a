import { errors } from 'oidc-provider';

/**
 * A store (the database or Redis) could not be reached. Raised from the adapters so that
 * oidc-provider answers 503 temporarily_unavailable (JSON for APIs, our error page for
 * browsers) instead of a 500, and from our own routes through the same classifier.
 */
export class StoreUnavailableError extends errors.OIDCProviderError {
  readonly store: string;

  constructor(store: 'database' | 'redis', cause?: unknown) {
    super(503, 'temporarily_unavailable', { cause });
    this.store = store;
    this.expose = true;
    // Never send the browser on to the client with a half-finished request.
    this.allow_redirect = false;
    this.error_description = `the ${store} is unreachable; try again shortly`;
  }
}

// SQLITE_BUSY: the file stayed locked by another writer past busy_timeout (5 s); like a store
// that cannot be reached, the answer is "try again shortly" (503), not a server error.
const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', '57P01', '57P02', '57P03', 'SQLITE_BUSY', 'SQLITE_BUSY_SNAPSHOT']);

/** True for errors that mean "cannot reach the store", not "the query was wrong". */
export function isConnectionError(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false;
  if (err instanceof StoreUnavailableError) return true;
  const e = err as { code?: unknown; name?: unknown; message?: unknown; cause?: unknown };
  if (typeof e.code === 'string' && (CONNECTION_CODES.has(e.code) || e.code.startsWith('08'))) return true;
  if (e.name === 'KnexTimeoutError' || e.name === 'MaxRetriesPerRequestError') return true;
  if (typeof e.message === 'string' && /Connection terminated|Connection is closed|enableOfflineQueue|connect ECONNREFUSED|Client has encountered a connection error/i.test(e.message)) return true;
  if (Array.isArray((err as AggregateError).errors)) return (err as AggregateError).errors.some(isConnectionError);
  return e.cause ? isConnectionError(e.cause) : false;
}

/** Runs `work`, turning connection failures into StoreUnavailableError. */
export async function guardStore<T>(store: 'database' | 'redis', work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (!(err instanceof StoreUnavailableError) && isConnectionError(err)) throw new StoreUnavailableError(store, err);
    throw err;
  }
}
