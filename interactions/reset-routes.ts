import Router from '@koa/router';
import type Koa from 'koa';
import { koaBody } from 'koa-body';
import { MIN_PASSWORD_LENGTH } from '../src/accounts/passwords.ts';
import { RESET_LINK_MINUTES, type PasswordResetService, type ResetRefusal } from '../src/accounts/recovery/password-reset.ts';
import type { EmailVerificationService } from '../src/accounts/recovery/email-verification.ts';
import { securityReporter } from '../src/observability/request-log.ts';
import { csrfToken, csrfValid } from '../src/web/csrf.ts';
import type { Views } from '../src/web/views.ts';

export interface AccountLinkDeps {
  passwordResets: Pick<PasswordResetService, 'request' | 'check' | 'reset' | 'canMail'>;
  emailVerification: Pick<EmailVerificationService, 'check' | 'confirm'>;
  views: Views;
}

export { ACCOUNT_LINK_PREFIXES } from './account-link-paths.ts';

// Forms only: small urlencoded bodies, parsed on these routes alone.
const formBody = koaBody({ urlencoded: true, json: false, multipart: false, text: false, formLimit: '16kb' });

function formFields(ctx: Koa.Context): Record<string, unknown> {
  const body: unknown = (ctx.request as { body?: unknown }).body;
  return typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
}
const field = (body: Record<string, unknown>, name: string) => (typeof body[name] === 'string' ? (body[name] as string) : '');

const REFUSALS: Record<Exclude<ResetRefusal, 'invalid_link'>, string> = {
  too_short: `The new password must be at least ${MIN_PASSWORD_LENGTH} characters. Your password has not changed.`,
  too_long: 'The new password is too long. Your password has not changed.',
  mismatch: 'The two passwords are not the same. Type the new password twice. Your password has not changed.',
};

const INVALID_LINK = {
  title: 'This link no longer works',
  message: `A reset link works once, within ${RESET_LINK_MINUTES} minutes, and only the newest one you were sent. Your password has not changed.`,
  hint: 'Ask for a new link from the sign-in page: "Forgot your password?".',
};

/**
 * "Forgot your password?", the reset link's page, and the address verification link: pages for
 * people arriving from a mail, outside any sign-in (no interaction, no session needed).
 */
export function accountLinkRoutes({ passwordResets, emailVerification, views }: AccountLinkDeps): Router {
  const router = new Router();

  const page = (ctx: Koa.Context, template: string, context: Record<string, unknown>, status = 200) => {
    ctx.status = status;
    ctx.type = 'html';
    ctx.body = views.render(template, { csrf: csrfToken(ctx), ...context });
  };

  // The links carry their token: never cached, never sent on as a Referer (the layout and headers say so too).
  router.use(async (ctx, next) => {
    ctx.set('cache-control', 'no-store');
    await next();
  });

  const forgotPage = (ctx: Koa.Context, context: Record<string, unknown>, status = 200) =>
    page(ctx, 'forgot-password.njk', { title: 'Forgot your password?', minutes: RESET_LINK_MINUTES, canMail: passwordResets.canMail, ...context }, status);

  router.get('/password-reset', (ctx) => forgotPage(ctx, { email: '' }));

  router.post('/password-reset', formBody, async (ctx) => {
    const body = formFields(ctx);
    const email = field(body, 'email').trim().slice(0, 254);
    if (!csrfValid(ctx, body.csrf)) return forgotPage(ctx, { email, error: 'Your form expired. Please try again.' }, 403);
    if (!/^[^\s@]+@[^\s@]+$/.test(email)) return forgotPage(ctx, { email, error: 'Enter the email address of your account.' }, 400);
    const answer = await passwordResets.request(email, ctx.ip);
    if (!answer.ok) {
      securityReporter(ctx)('authentication.locked', { path: ctx.path, error: 'reset_requests_throttled', ip: ctx.ip });
      ctx.set('retry-after', String(answer.retryAfterSeconds));
      const minutes = Math.max(1, Math.ceil(answer.retryAfterSeconds / 60));
      return forgotPage(ctx, { email, error: `Too many reset requests. Try again in ${minutes} minute${minutes === 1 ? '' : 's'}.` }, 429);
    }
    // The same page whether or not an account has the address; the mail, if any, goes out afterwards.
    forgotPage(ctx, { email, sent: true });
  });

  const resetPage = (ctx: Koa.Context, token: string, username: string, error?: string, status = 200) =>
    page(ctx, 'reset-password.njk', { title: 'Choose a new password', token, username, minLength: MIN_PASSWORD_LENGTH, error }, status);
  const invalidLink = (ctx: Koa.Context) => page(ctx, 'account-link-done.njk', INVALID_LINK, 410);

  router.get('/password-reset/:token', async (ctx) => {
    const user = await passwordResets.check(ctx.params.token!);
    if (!user) return invalidLink(ctx);
    resetPage(ctx, ctx.params.token!, user.username);
  });

  router.post('/password-reset/:token', formBody, async (ctx) => {
    const token = ctx.params.token!;
    const body = formFields(ctx);
    const user = await passwordResets.check(token);
    if (!user) return invalidLink(ctx);
    if (!csrfValid(ctx, body.csrf)) return resetPage(ctx, token, user.username, 'Your form expired. Please type the new password again.', 403);
    const result = await passwordResets.reset(token, field(body, 'password'), field(body, 'password_confirm'));
    if (!result.ok) {
      if (result.refused === 'invalid_link') return invalidLink(ctx);
      return resetPage(ctx, token, user.username, REFUSALS[result.refused], 400);
    }
    securityReporter(ctx)('password.reset', { user: result.user.id, ip: ctx.ip });
    page(ctx, 'account-link-done.njk', {
      title: 'Your password is changed',
      message: 'You can sign in with your new password now. You were signed out everywhere else.',
      hint: 'Go back to the application you were using and sign in.',
    });
  });

  const usedVerifyLink = (ctx: Koa.Context) =>
    page(
      ctx,
      'account-link-done.njk',
      { title: 'This link no longer works', message: 'A verification link works once, within 24 hours, and only the newest one. Nothing was changed.' },
      410,
    );

  // GET only shows what the link confirms: mail scanners and link previews open links, and a
  // person must be the one who confirms. The button posts (with CSRF) and uses the link.
  router.get('/verify-email/:token', async (ctx) => {
    const link = await emailVerification.check(ctx.params.token!);
    if (!link) return usedVerifyLink(ctx);
    page(ctx, 'verify-email.njk', { title: 'Confirm your email address', token: ctx.params.token!, ...link });
  });

  router.post('/verify-email/:token', formBody, async (ctx) => {
    const token = ctx.params.token!;
    const link = await emailVerification.check(token);
    if (!link) return usedVerifyLink(ctx);
    if (!csrfValid(ctx, formFields(ctx).csrf)) {
      return page(
        ctx,
        'verify-email.njk',
        { title: 'Confirm your email address', token, ...link, error: 'Your form expired. Please press Confirm again.' },
        403,
      );
    }
    const user = await emailVerification.confirm(token);
    if (!user) return usedVerifyLink(ctx);
    page(ctx, 'account-link-done.njk', {
      title: 'Your address is confirmed',
      message: `Thank you: ${user.email} is now the verified address of ${user.username}.`,
    });
  });

  // The pages are read with GET, their forms post: another method gets a clear answer.
  router.all(['/password-reset', '/password-reset/:token', '/verify-email/:token'], async (ctx, next) => {
    if (ctx.method === 'OPTIONS') return next();
    ctx.set('allow', 'GET, HEAD, POST');
    page(
      ctx,
      'account-link-done.njk',
      { title: 'Not here', message: 'This address shows a page and takes its form. Open the link from your mail again.' },
      405,
    );
  });

  return router;
}
