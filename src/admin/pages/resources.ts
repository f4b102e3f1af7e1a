import type Router from '@koa/router';
import type Koa from 'koa';
import { GatehouseError, NotFoundError, ValidationError } from '../../errors.ts';
import type { ResourcesService } from '../../resources/service.ts';
import type { ScopesService } from '../../scopes/service.ts';
import type { AdminOperations } from '../operations.ts';
import { formFields } from './forms.ts';
import { operatorOf } from './guard.ts';
import { seeOther, type Render } from './render.ts';
import { when } from './view-models.ts';

export interface ResourcePagesServices {
  admin: AdminOperations;
  resources: Pick<ResourcesService, 'list' | 'find'>;
  scopes: Pick<ScopesService, 'names'>;
}

interface ResourceForm {
  audience: string;
  name: string;
  scopes: string[];
  tokenFormat: string;
  signingAlg: string;
  accessTokenTtl: string;
}

const EMPTY_FORM: ResourceForm = { audience: '', name: '', scopes: [], tokenFormat: 'opaque', signingAlg: 'ES256', accessTokenTtl: '' };

const text = (v: unknown) => (typeof v === 'string' ? v.trim() : '');
/** A checkbox group arrives as one string or several. */
const choices = (v: unknown) => (Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : typeof v === 'string' ? [v] : []);

function resourceFormFromBody(body: Record<string, unknown>): ResourceForm {
  return {
    audience: text(body.audience),
    name: text(body.name),
    scopes: choices(body.scopes),
    tokenFormat: text(body.tokenFormat),
    signingAlg: text(body.signingAlg),
    accessTokenTtl: text(body.accessTokenTtl),
  };
}

/** Resource servers (RFC 8707): listed, registered, edited and deleted here, through AdminOperations. */
export function resourcePages(router: Router, { admin, resources, scopes }: ResourcePagesServices, page: Render): void {
  const resourcesPage = async (ctx: Koa.Context, extra: { form?: ResourceForm; errors?: Record<string, string>; refused?: string } = {}, status = 200) => {
    const shown = (await resources.list()).map((r) => ({
      audience: r.audience,
      name: r.name,
      scopes: r.scopes.join(' '),
      format: r.tokenFormat === 'jwt' ? `JWT (${r.signingAlg})` : 'opaque',
      ttl: r.accessTokenTtl === null ? 'default' : `${r.accessTokenTtl} s`,
      created: when(r.createdAt),
      editHref: `/admin/resources/${encodeURIComponent(r.audience)}`,
      deleteHref: `/admin/resources/${encodeURIComponent(r.audience)}/delete`,
    }));
    page(
      ctx,
      'resources.njk',
      {
        title: 'Resources',
        section: 'resources',
        resources: shown,
        scopeNames: await scopes.names(),
        form: extra.form ?? EMPTY_FORM,
        errors: extra.errors ?? {},
        refused: extra.refused,
      },
      status,
    );
  };

  router.get('/resources', (ctx) => resourcesPage(ctx));

  router.post('/resources', async (ctx) => {
    const form = resourceFormFromBody(formFields(ctx));
    try {
      await admin.createResource(operatorOf(ctx).actor, {
        audience: form.audience,
        ...(form.name ? { name: form.name } : {}),
        scopes: form.scopes,
        tokenFormat: form.tokenFormat,
        signingAlg: form.signingAlg,
        accessTokenTtl: form.accessTokenTtl === '' ? null : form.accessTokenTtl,
      });
      seeOther(ctx, '/admin/resources?notice=resource-created');
    } catch (err) {
      if (err instanceof ValidationError) return resourcesPage(ctx, { form, errors: err.fields }, 400);
      throw err;
    }
  });

  const editPage = async (ctx: Koa.Context, audience: string, form: ResourceForm, errors: Record<string, string> = {}, status = 200) => {
    page(
      ctx,
      'resource.njk',
      {
        title: form.name || audience,
        section: 'resources',
        audience,
        action: `/admin/resources/${encodeURIComponent(audience)}`,
        form,
        errors,
        scopeNames: await scopes.names(),
      },
      status,
    );
  };

  router.get('/resources/:audience', async (ctx) => {
    const audience = ctx.params.audience!;
    const r = await resources.find(audience);
    if (!r) throw new NotFoundError(`resource server ${audience}`);
    await editPage(ctx, audience, {
      audience,
      name: r.name,
      scopes: r.scopes,
      tokenFormat: r.tokenFormat,
      signingAlg: r.signingAlg,
      accessTokenTtl: r.accessTokenTtl === null ? '' : String(r.accessTokenTtl),
    });
  });

  router.post('/resources/:audience', async (ctx) => {
    const audience = ctx.params.audience!;
    const form = { ...resourceFormFromBody(formFields(ctx)), audience };
    try {
      await admin.updateResource(operatorOf(ctx).actor, audience, {
        // An emptied name falls back to the audience, as at creation.
        name: form.name || audience,
        scopes: form.scopes,
        tokenFormat: form.tokenFormat,
        signingAlg: form.signingAlg,
        accessTokenTtl: form.accessTokenTtl === '' ? null : form.accessTokenTtl,
      });
      seeOther(ctx, '/admin/resources?notice=resource-updated');
    } catch (err) {
      if (err instanceof ValidationError) return editPage(ctx, audience, form, err.fields, 400);
      throw err;
    }
  });

  router.post('/resources/:audience/delete', async (ctx) => {
    try {
      await admin.deleteResource(operatorOf(ctx).actor, ctx.params.audience!);
      seeOther(ctx, '/admin/resources?notice=resource-deleted');
    } catch (err) {
      // Still some client's default resource: say which, on the page.
      if (err instanceof GatehouseError && err.code === 'resource_in_use') return resourcesPage(ctx, { refused: err.description }, 409);
      throw err;
    }
  });
}
