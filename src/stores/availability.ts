import { StoreUnavailableError } from '../oidc/internals.ts';

/**
 * StoreUnavailableError: a store (the database or Redis) could not be reached, raised from the
 * adapters so that oidc-provider answers 503 (it subclasses oidc-provider's error: see
 * src/oidc/internals.ts), and from our own routes through the same classifier.
 */
export { StoreUnavailableError };

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
