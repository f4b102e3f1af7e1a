import type Router from '@koa/router';
import type Koa from 'koa';
import type { AccountsService, User } from '../../accounts/service.ts';
import { ValidationError } from '../../errors.ts';
import type { Actor } from '../audit.ts';
import type { AdminOperations } from '../operations.ts';
import { formFields, NEW_USER_FORM, text, userFormFromBody, type UserForm } from './forms.ts';
import { operatorOf } from './guard.ts';
import { seeOther, type Render } from './render.ts';
import { appDocumentView, grantView, userSummary } from './view-models.ts';

export interface UserPagesServices {
  admin: AdminOperations;
  accounts: AccountsService;
}

/** Users: listed, created, disabled, made admins; their passwords, grants and /userdata documents. */
export function userPages(router: Router, { admin, accounts }: UserPagesServices, page: Render): void {
  router.get('/users', async (ctx) => {
    const q = text(ctx.query.q).trim();
    page(ctx, 'users.njk', { title: 'Users', section: 'users', q, users: (await accounts.list(q || undefined)).map(userSummary) });
  });

  const newUserPage = (ctx: Koa.Context, form: UserForm, errors: Record<string, string> = {}, status = 200) =>
    page(ctx, 'user-new.njk', { title: 'New user', section: 'users', form, errors }, status);

  router.get('/users/new', (ctx) => newUserPage(ctx, NEW_USER_FORM));

  router.post('/users', async (ctx) => {
    const body = formFields(ctx);
    const form = userFormFromBody(body);
    const password = text(body.password);
    try {
      const user = await admin.createUser(operatorOf(ctx).actor, {
        username: form.username,
        email: form.email,
        name: form.name,
        password: password || undefined,
        isAdmin: form.admin,
      });
      seeOther(ctx, `${userSummary(user).href}?notice=user-created`);
    } catch (err) {
      // The password is never sent back to the browser.
      if (err instanceof ValidationError) return newUserPage(ctx, form, err.fields, 400);
      throw err;
    }
  });

  const userPage = async (ctx: Koa.Context, user: User, passwordErrors: Record<string, string> = {}, status = 200, extra: Record<string, unknown> = {}) => {
    page(
      ctx,
      'user.njk',
      {
        title: user.username,
        section: 'users',
        user: userSummary(user),
        self: user.id === operatorOf(ctx).user.id,
        grants: (await admin.userGrants(user.id)).map(grantView),
        documents: (await admin.userDocuments(user.id)).map((d) => appDocumentView(user, d)),
        passwordErrors,
        ...extra,
      },
      status,
    );
  };

  router.get('/users/:id', async (ctx) => {
    await userPage(ctx, await accounts.get(ctx.params.id!));
  });

  // Not yourself, and never the last enabled admin: AdminOperations refuses those.
  const userActions = {
    disable: { notice: 'user-disabled', run: (actor: Actor, id: string) => admin.setUserDisabled(actor, id, true) },
    enable: { notice: 'user-enabled', run: (actor: Actor, id: string) => admin.setUserDisabled(actor, id, false) },
    'grant-admin': { notice: 'admin-granted', run: (actor: Actor, id: string) => admin.setUserAdmin(actor, id, true) },
    'remove-admin': { notice: 'admin-removed', run: (actor: Actor, id: string) => admin.setUserAdmin(actor, id, false) },
    unlock: { notice: 'user-unlocked', run: (actor: Actor, id: string) => admin.unlockUser(actor, id) },
    'mfa/reset': { notice: 'mfa-reset', run: (actor: Actor, id: string) => admin.resetUserMfa(actor, id) },
  };
  for (const [action, { notice, run }] of Object.entries(userActions)) {
    router.post(`/users/:id/${action}`, async (ctx) => {
      const user = await accounts.get(ctx.params.id!);
      await run(operatorOf(ctx).actor, user.id);
      seeOther(ctx, `${userSummary(user).href}?notice=${notice}`);
    });
  }

  router.post('/users/:id/password', async (ctx) => {
    const user = await accounts.get(ctx.params.id!);
    try {
      await admin.setUserPassword(operatorOf(ctx).actor, user.id, text(formFields(ctx).password));
      seeOther(ctx, `${userSummary(user).href}?notice=password-set`);
    } catch (err) {
      if (err instanceof ValidationError) return userPage(ctx, user, err.fields, 400);
      throw err;
    }
  });

  // The link is shown once, on this answer (never in a redirect's URL, which browsers keep in history).
  router.post('/users/:id/reset-link', async (ctx) => {
    const user = await accounts.get(ctx.params.id!);
    const link = await admin.createResetLink(operatorOf(ctx).actor, user.id);
    ctx.set('cache-control', 'no-store');
    await userPage(ctx, user, {}, 200, { resetLink: { url: link.url, expires: link.expiresAt.toISOString().replace('T', ' ').slice(0, 16) + ' UTC' } });
  });

  router.post('/users/:id/grants/:grantId/revoke', async (ctx) => {
    const user = await accounts.get(ctx.params.id!);
    await admin.revokeUserGrant(operatorOf(ctx).actor, user.id, ctx.params.grantId!);
    seeOther(ctx, `${userSummary(user).href}?notice=grant-revoked`);
  });

  // One app's /userdata document of a user: shown, and cleared.
  router.get('/users/:id/userdata/:clientId', async (ctx) => {
    const user = await accounts.get(ctx.params.id!);
    const doc = await admin.userDocument(user.id, ctx.params.clientId!);
    page(ctx, 'user-document.njk', {
      title: `${user.username} · ${doc.clientName ?? doc.clientId}`,
      section: 'users',
      user: userSummary(user),
      doc: { ...appDocumentView(user, doc), json: JSON.stringify(doc.document, null, 2) },
    });
  });

  router.post('/users/:id/userdata/:clientId/clear', async (ctx) => {
    const user = await accounts.get(ctx.params.id!);
    await admin.clearUserDocument(operatorOf(ctx).actor, user.id, ctx.params.clientId!);
    seeOther(ctx, `${userSummary(user).href}?notice=userdata-cleared#userdata`);
  });
}
