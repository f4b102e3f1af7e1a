/**
 * The one error type of Gatehouse's own routes and services. Routes never format errors
 * themselves: the error middleware in app.ts maps this to
 * {"error": code, "error_description": description} with `status`.
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

/** Refused unchecked: too many wrong `what` from this address. Answered 429 with Retry-After. */
export class LockedOutError extends GatehouseError {
  override name = 'LockedOutError';
  constructor(
    what: string,
    readonly retryAfterSeconds: number,
  ) {
    const minutes = Math.ceil(retryAfterSeconds / 60);
    super(429, 'too_many_requests', `too many wrong ${what} from this address: locked for ${minutes} minute${minutes === 1 ? '' : 's'}; try again later`);
  }
}
