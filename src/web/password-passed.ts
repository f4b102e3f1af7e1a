import { randomBytes } from 'node:crypto';
import type Koa from 'koa';
import { FIRST_FACTORS, type FirstFactor } from '../accounts/mfa/second-factor.ts';

/** How long a person has to type their code after their password. */
export const PASSWORD_PASSED_MS = 10 * 60_000;

/**
 * "This browser typed the right password for this person, a moment ago": what the code step of a
 * sign-in needs from the password step. A signed, HttpOnly cookie scoped to the one form that
 * reads it (an interaction's, or the account page's), naming what it is bound to (`bound`: the
 * interaction uid), so it opens no other sign-in. It is no session: it only lets the code form be
 * tried, under the code throttle, until it expires.
 *
 * `stage` says which step it opens: `code` (a person with an authenticator app types a code) or
 * `enrol` (a person who needs a second factor and has none sets one up). Each step reads only its
 * own stage, so neither form is a way around the other. It also says what the first factor was
 * (the password, or an upstream identity provider), so the finished sign-in's amr tells the truth.
 */
export type PasswordPassedStage = 'code' | 'enrol';

export class PasswordPassedCookie {
  constructor(
    private readonly name: string,
    private readonly now: () => number = Date.now,
  ) {}

  set(ctx: Koa.Context, path: string, userId: string, bound: string, stage: PasswordPassedStage = 'code', first: FirstFactor = 'password'): void {
    const value = Buffer.from(
      JSON.stringify({ u: userId, b: bound, s: stage, f: first, e: this.now() + PASSWORD_PASSED_MS, n: randomBytes(8).toString('hex') }),
    ).toString('base64url');
    ctx.cookies.set(this.name, value, { signed: true, httpOnly: true, sameSite: 'lax', secure: ctx.secure, path, maxAge: PASSWORD_PASSED_MS, overwrite: true });
  }

  /** The person who passed the password step for `bound` and is at `stage`, while it is fresh. */
  userId(ctx: Koa.Context, bound: string, stage: PasswordPassedStage = 'code'): string | undefined {
    return this.passed(ctx, bound, stage)?.userId;
  }

  /** Who passed the first step for `bound` and is at `stage`, and with what (a cookie without `f` is from before: the password). */
  passed(ctx: Koa.Context, bound: string, stage: PasswordPassedStage = 'code'): { userId: string; first: FirstFactor } | undefined {
    const raw = ctx.cookies.get(this.name, { signed: true });
    if (!raw) return undefined;
    try {
      const { u, b, s, f, e } = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as {
        u?: unknown;
        b?: unknown;
        s?: unknown;
        f?: unknown;
        e?: unknown;
      };
      if (typeof u !== 'string' || b !== bound || s !== stage || typeof e !== 'number' || e <= this.now()) return undefined;
      return { userId: u, first: FIRST_FACTORS.find((factor) => factor === f) ?? 'password' };
    } catch {
      return undefined;
    }
  }

  clear(ctx: Koa.Context, path: string): void {
    ctx.cookies.set(this.name, '', { signed: true, httpOnly: true, sameSite: 'lax', secure: ctx.secure, path, overwrite: true });
  }
}
