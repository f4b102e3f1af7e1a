import { randomBytes, timingSafeEqual } from 'node:crypto';
import type Koa from 'koa';

/**
 * Double-submit CSRF protection for our forms: a random token in a signed, SameSite=Strict,
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
  if (!expected || typeof submitted !== 'string') return false;
  // Bytes, not characters: timingSafeEqual throws on buffers of different lengths.
  const [given, wanted] = [Buffer.from(submitted), Buffer.from(expected)];
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}
