import type Router from '@koa/router';
import type Koa from 'koa';
import { ValidationError } from '../../errors.ts';
import { scopesWithBuiltIns } from '../../scopes/representation.ts';
import { ScopeInUseError, type ScopesService } from '../../scopes/service.ts';
import type { AdminOperations } from '../operations.ts';
import { formFields, scopeFormFromBody } from './forms.ts';
import { operatorOf } from './guard.ts';
import { seeOther, type Render } from './render.ts';
import { clientHref, when } from './view-models.ts';

export interface ScopePagesServices {
  admin: AdminOperations;
  scopes: ScopesService;
}

/** Scopes: the built-in ones listed, API scopes created and deleted here. */
export function scopePages(router: Router, { admin, scopes }: ScopePagesServices, page: Render): void {
  const scopesPage = async (
    ctx: Koa.Context,
    extra: { form?: { name: string; description: string }; errors?: Record<string, string>; inUse?: ScopeInUseError } = {},
    status = 200,
  ) => {
    const shown = (await scopesWithBuiltIns(scopes)).map((s) => ({
      name: s.name,
      description: s.description,
      builtIn: s.built_in,
      created: s.created_at ? when(new Date(s.created_at)) : '',
      deleteHref: `/admin/scopes/${encodeURIComponent(s.name)}/delete`,
    }));
    const inUse = extra.inUse && {
      scope: extra.inUse.scope,
      clients: extra.inUse.clients.map((c) => ({ ...c, href: clientHref(c.clientId) })),
    };
    page(
      ctx,
      'scopes.njk',
      { title: 'Scopes', section: 'scopes', scopes: shown, form: extra.form ?? { name: '', description: '' }, errors: extra.errors ?? {}, inUse },
      status,
    );
  };

  router.get('/scopes', (ctx) => scopesPage(ctx));

  router.post('/scopes', async (ctx) => {
    const form = scopeFormFromBody(formFields(ctx));
    try {
      await admin.createScope(operatorOf(ctx).actor, form);
      seeOther(ctx, '/admin/scopes?notice=scope-created');
    } catch (err) {
      if (err instanceof ValidationError) return scopesPage(ctx, { form, errors: err.fields }, 400);
      throw err;
    }
  });

  router.post('/scopes/:name/delete', async (ctx) => {
    try {
      await admin.deleteScope(operatorOf(ctx).actor, ctx.params.name!);
      seeOther(ctx, '/admin/scopes?notice=scope-deleted');
    } catch (err) {
      if (err instanceof ScopeInUseError) return scopesPage(ctx, { inUse: err }, 409);
      throw err;
    }
  });
}
