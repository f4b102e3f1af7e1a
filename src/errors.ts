/**
 * The one error type of Gatehouse's own routes and services. Routes never format errors
 * themselves: the error model (src/problem.ts) maps this, like any other error, to a problem that
 * the JSON routes answer as {"error": code, "error_description": description} with `status`,
 * and the pages show on their error page.
 */
export class GatehouseError extends Error {
  override name = 'GatehouseError';
  constructor(
    readonly status: number,
    readonly code: string,
    description: string,
  ) {
    super(description);
  }

  get description(): string {
    return this.message;
  }
}

/** Input that breaks a rule; `fields` says which field and why, for forms that show it in place. */
export class ValidationError extends GatehouseError {
  override name = 'ValidationError';
  constructor(
    readonly fields: Record<string, string>,
    code = 'invalid_request',
  ) {
    super(400, code, Object.entries(fields).map(([field, why]) => `${field}: ${why}`).join('; '));
  }
}

export class NotFoundError extends GatehouseError {
  override name = 'NotFoundError';
  constructor(what: string) {
    super(404, 'not_found', `${what} does not exist`);
  }
}

/**
 * What a lock is about: the failures that caused it and who is locked. The one wording of
 * "locked" (lockedDescription) is built from these, for every lock Gatehouse has.
 */
export interface Lock {
  failures: string;
  subject: string;
}

export const LOCKS = {
  signIn: { failures: 'failed sign-ins', subject: 'sign-in' },
  /** Another check for the same username or address is running: refused, never queued. */
  signInsAtOnce: { failures: 'sign-ins at once', subject: 'sign-in' },
  clientAuthentication: { failures: 'failed client authentications', subject: 'this client (or this address)' },
  apiKeys: { failures: 'wrong API keys', subject: 'this address' },
  adminTokens: { failures: 'wrong admin tokens', subject: 'this address' },
  deviceCodes: { failures: 'wrong device codes', subject: 'entering codes from this address' },
} as const satisfies Record<string, Lock>;

/** "too many failed sign-ins: sign-in is locked for 15 minutes; try again later" */
export function lockedDescription(lock: Lock, retryAfterSeconds: number): string {
  // A backoff is seconds long: "locked for 1 minute" would be wrong by most of a minute.
  if (retryAfterSeconds < 60) {
    const seconds = Math.max(1, Math.ceil(retryAfterSeconds));
    return `too many ${lock.failures}: ${lock.subject} is locked for ${seconds} second${seconds === 1 ? '' : 's'}; try again later`;
  }
  const minutes = Math.ceil(retryAfterSeconds / 60);
  return `too many ${lock.failures}: ${lock.subject} is locked for ${minutes} minute${minutes === 1 ? '' : 's'}; try again later`;
}

/**
 * A description (a lower-case clause, as OAuth error descriptions are) as a sentence for a page:
 * "too many failed sign-ins: sign-in is locked…" reads "Too many failed sign-ins. Sign-in is locked….".
 */
export function asSentence(description: string): string {
  const capital = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
  const text = description.split(': ').map(capital).join('. ');
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

/**
 * Refused unchecked: too many failures, so nothing presented is checked until the lock ends.
 * The one "locked" error of Gatehouse (sign-in, client authentication, API keys, admin tokens):
 * answered 429 with Retry-After (the error model, src/problem.ts, sets the header).
 */
export class LockedOutError extends GatehouseError {
  override name = 'LockedOutError';
  constructor(
    readonly lock: Lock,
    readonly retryAfterSeconds: number,
  ) {
    super(429, 'too_many_requests', lockedDescription(lock, retryAfterSeconds));
  }
}
