import type Koa from 'koa';
import { csrfValid } from './csrf.ts';

/**
 * A username-and-password form as every sign-in page reads it (an app's, the account page's,
 * the admin's): the fields, or the answer it gets before any password is checked (a form that
 * did not come from our page, an empty field). The password is then checked by
 * signInWithPassword, with the same throttle everywhere.
 */
export type SignInForm = { ok: true; username: string; password: string } | { ok: false; username: string; status: number; error: string };

export function readSignInForm(ctx: Koa.Context, fields: Record<string, unknown>): SignInForm {
  const username = typeof fields.username === 'string' ? fields.username.trim() : '';
  const password = typeof fields.password === 'string' ? fields.password : '';
  if (!csrfValid(ctx, fields.csrf)) return { ok: false, username, status: 403, error: 'Your form expired. Please sign in again.' };
  if (!username || !password) return { ok: false, username, status: 400, error: 'Enter your username and password.' };
  return { ok: true, username, password };
}
