import { randomBytes, timingSafeEqual } from 'node:crypto';
import type Koa from 'koa';

/**
 * CSRF protection for every form Gatehouse serves. Forms without a server-side session of their
 * own (sign-in, consent, the admin's sign-in) use a double-submit token: a random token in a signed, SameSite=Strict,
 * HttpOnly cookie, repeated in a hidden form field; a POST must present both, equal.
 */
const COOKIE = 'gatehouse.csrf';

export function csrfToken(ctx: Koa.Context): string {
  let token = ctx.cookies.get(COOKIE, { signed: true });
  if (!token || !/^[\w-]{43}$/.test(token)) {
    token = randomBytes(32).toString('base64url');
    ctx.cookies.set(COOKIE, token, { signed: true, httpOnly: true, sameSite: 'strict', secure: ctx.secure, overwrite: true });
  }
  return token;
}

export function csrfValid(ctx: Koa.Context, submitted: unknown): boolean {
  const expected = ctx.cookies.get(COOKIE, { signed: true });
  return expected !== undefined && sameSecret(submitted, expected);
}

/**
 * True when a submitted form field is exactly the expected secret, compared in constant time:
 * every CSRF check (the double-submit cookie here, the admin session's own token) goes through it.
 */
export function sameSecret(submitted: unknown, expected: string): boolean {
  if (typeof submitted !== 'string' || expected === '') return false;
  // Bytes, not characters: a value of the right length in non-ASCII characters is longer in
  // bytes, and timingSafeEqual throws on buffers of different lengths.
  const [given, wanted] = [Buffer.from(submitted), Buffer.from(expected)];
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}
