import type Router from '@koa/router';
import type Koa from 'koa';
import type { Views } from '../../web/views.ts';
import { asSentence } from '../../errors.ts';
import { isUnexpected, problemOf, setProblemHeaders, type Problem } from '../../problem.ts';
import type { Operator } from './guard.ts';

/** What the redirect after a change says; a fixed list, so a link cannot put words on the page. */
const NOTICES: Record<string, string> = {
  'client-saved': 'The client is saved.',
  'client-unchanged': 'Nothing changed.',
  'client-disabled': 'The client is disabled: it gets no tokens, and its API keys stop working.',
  'client-enabled': 'The client is enabled.',
  'client-deleted': 'The client is deleted, with its API keys and the /userdata documents it kept.',
  'key-revoked': 'The API key is revoked.',
  'user-created': 'The user is created.',
  'user-disabled': 'The user is disabled: they cannot sign in, and their sessions and tokens are revoked.',
  'user-enabled': 'The user is enabled.',
  'mfa-reset':
    'The user’s authenticator app and recovery codes are removed: they sign in with their password alone, and may set up a new app on their account page.',
  'user-unlocked': 'The user is unlocked: wrong passwords and codes typed before no longer lock or slow their sign-in, from any address.',
  'admin-granted': 'The user is now an admin.',
  'admin-removed': 'The user is no longer an admin.',
  'password-set': 'The password is set.',
  'grant-revoked': 'The app’s access is revoked: its tokens stop working.',
  'userdata-cleared': 'The app’s document is cleared: the app now reads {}.',
  'scope-created': 'The scope is created: clients may be given it now, on every Gatehouse process.',
  'scope-deleted': 'The scope is deleted.',
  'idp-created': 'The provider is added: its button shows on the sign-in page once its redirect URI is registered there.',
  'idp-updated': 'The provider is saved.',
  'idp-deleted': 'The provider is deleted, with the sign-ins linked through it; the accounts stay.',
  'resource-created': 'The resource is registered: clients may ask tokens for it now, on every Gatehouse process.',
  'resource-updated': 'The resource is saved: new tokens for it follow the change, on every Gatehouse process.',
  'resource-deleted': 'The resource is deleted; tokens already issued for it live until they expire.',
};

const ERROR_TITLES: Record<number, string> = {
  400: 'That did not work',
  403: 'Not allowed',
  404: 'Not found',
  409: 'That did not work',
  413: 'Too much to send',
  429: 'Too many attempts',
  503: 'Gatehouse is briefly unavailable',
};

/** Renders admin/`template` with the notice the address names and the signed-in operator. */
export function page(views: Views, ctx: Koa.Context, template: string, context: Record<string, unknown>, status = 200): void {
  const operator = ctx.state.operator as Operator | undefined;
  const key = ctx.query.notice;
  const notice = typeof key === 'string' && Object.hasOwn(NOTICES, key) ? NOTICES[key] : undefined;
  ctx.status = status;
  ctx.type = 'html';
  ctx.body = views.render(`admin/${template}`, {
    notice,
    ...(operator ? { operator: { username: operator.user.username, id: operator.user.id }, csrf: operator.session.csrf } : {}),
    ...context,
  });
}

export function seeOther(ctx: Koa.Context, location: string): void {
  ctx.status = 303;
  ctx.redirect(location);
}

/** What every page module renders with. */
export type Render = (ctx: Koa.Context, template: string, context: Record<string, unknown>, status?: number) => void;

export const renderWith =
  (views: Views): Render =>
  (ctx, template, context, status) =>
    page(views, ctx, template, context, status);

/** Errors become pages through the one error model: the status and what went wrong, never a stack trace. */
export function errorPages(router: Router, views: Views): void {
  router.use(async (ctx, next) => {
    ctx.set('cache-control', 'no-store');
    try {
      await next();
    } catch (err) {
      const problem = problemOf(err);
      if (isUnexpected(problem)) ctx.app.emit('error', err, ctx);
      setProblemHeaders(ctx, problem);
      page(
        views,
        ctx,
        'error.njk',
        { title: ERROR_TITLES[problem.status] ?? 'Something went wrong', status: problem.status, description: pageDescription(problem) },
        problem.status,
      );
    }
  });
}

/** What the admin error page says: the problem's description, as a sentence where it is ours. */
function pageDescription(problem: Problem): string {
  if (isUnexpected(problem)) return 'An unexpected error occurred. Try again; if it keeps happening, the server log says more.';
  if (problem.code === 'temporarily_unavailable') return asSentence(problem.description);
  return problem.description;
}
