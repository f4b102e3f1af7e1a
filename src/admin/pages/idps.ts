import type Router from '@koa/router';
import type Koa from 'koa';
import { NotFoundError, ValidationError } from '../../errors.ts';
import type { Idp, IdpsService } from '../../idps/service.ts';
import type { AdminOperations } from '../operations.ts';
import { formFields } from './forms.ts';
import { operatorOf } from './guard.ts';
import { seeOther, type Render } from './render.ts';
import { when } from './view-models.ts';

export interface IdpPagesServices {
  admin: AdminOperations;
  idps: Pick<IdpsService, 'list' | 'find' | 'redirectUri'>;
}

interface IdpForm {
  name: string;
  preset: string;
  issuer: string;
  clientId: string;
  scope: string;
  button: string;
  position: string;
  createAccounts: boolean;
}

const EMPTY_FORM: IdpForm = { name: '', preset: '', issuer: '', clientId: '', scope: '', button: '', position: '', createAccounts: true };
const text = (v: unknown) => (typeof v === 'string' ? v.trim() : '');

function idpFormFromBody(body: Record<string, unknown>): IdpForm {
  return {
    name: text(body.name),
    preset: text(body.preset),
    issuer: text(body.issuer),
    clientId: text(body.clientId),
    scope: text(body.scope),
    button: text(body.button),
    position: text(body.position),
    createAccounts: body.createAccounts === 'on',
  };
}

/** Only what was filled in: an empty field keeps the preset's (or the current) value. */
function inputOf(form: IdpForm, secret: string) {
  return {
    ...(form.preset ? { preset: form.preset } : {}),
    ...(form.issuer ? { issuer: form.issuer } : {}),
    clientId: form.clientId,
    ...(secret ? { clientSecret: secret } : {}),
    ...(form.scope ? { scope: form.scope } : {}),
    ...(form.button ? { button: form.button } : {}),
    ...(form.position ? { position: form.position } : {}),
    createAccounts: form.createAccounts,
  };
}

/** Upstream identity providers: listed with the redirect URI to register, added, edited, turned on and off, deleted. */
export function idpPages(router: Router, { admin, idps }: IdpPagesServices, page: Render): void {
  const shown = (i: Idp) => ({
    name: i.name,
    issuer: i.issuer,
    preset: i.preset,
    button: i.button,
    position: i.position,
    enabled: i.enabled,
    createAccounts: i.createAccounts,
    redirectUri: idps.redirectUri(i.name),
    created: when(i.createdAt),
    href: `/admin/idps/${i.name}`,
  });
  const listPage = async (ctx: Koa.Context, extra: { form?: IdpForm; errors?: Record<string, string> } = {}, status = 200) => {
    page(
      ctx,
      'idps.njk',
      { title: 'Sign-in providers', section: 'idps', idps: (await idps.list()).map(shown), form: extra.form ?? EMPTY_FORM, errors: extra.errors ?? {} },
      status,
    );
  };
  const found = async (name: string) => {
    const idp = await idps.find(name);
    if (!idp) throw new NotFoundError(`identity provider ${name}`);
    return idp;
  };
  const editPage = async (ctx: Koa.Context, idp: Idp, form: IdpForm, errors: Record<string, string> = {}, status = 200) => {
    page(ctx, 'idp.njk', { title: idp.name, section: 'idps', idp: shown(idp), form, errors }, status);
  };

  router.get('/idps', (ctx) => listPage(ctx));

  router.post('/idps', async (ctx) => {
    const body = formFields(ctx);
    const form = idpFormFromBody(body);
    try {
      await admin.createIdp(operatorOf(ctx).actor, { name: form.name, ...inputOf(form, typeof body.clientSecret === 'string' ? body.clientSecret : '') });
      seeOther(ctx, '/admin/idps?notice=idp-created');
    } catch (err) {
      if (err instanceof ValidationError) return listPage(ctx, { form, errors: err.fields }, 400);
      throw err;
    }
  });

  router.get('/idps/:name', async (ctx) => {
    const idp = await found(ctx.params.name!);
    await editPage(ctx, idp, {
      ...EMPTY_FORM,
      issuer: idp.issuer,
      clientId: idp.clientId,
      scope: idp.scope,
      button: idp.button,
      position: String(idp.position),
      createAccounts: idp.createAccounts,
    });
  });

  router.post('/idps/:name', async (ctx) => {
    const idp = await found(ctx.params.name!);
    const body = formFields(ctx);
    const form = idpFormFromBody(body);
    try {
      // An empty secret field keeps the stored secret.
      await admin.updateIdp(operatorOf(ctx).actor, idp.name, inputOf(form, typeof body.clientSecret === 'string' ? body.clientSecret : ''));
      seeOther(ctx, '/admin/idps?notice=idp-updated');
    } catch (err) {
      if (err instanceof ValidationError) return editPage(ctx, idp, form, err.fields, 400);
      throw err;
    }
  });

  router.post('/idps/:name/enable', async (ctx) => {
    await admin.updateIdp(operatorOf(ctx).actor, (await found(ctx.params.name!)).name, { enabled: true });
    seeOther(ctx, '/admin/idps?notice=idp-updated');
  });
  router.post('/idps/:name/disable', async (ctx) => {
    await admin.updateIdp(operatorOf(ctx).actor, (await found(ctx.params.name!)).name, { enabled: false });
    seeOther(ctx, '/admin/idps?notice=idp-updated');
  });
  router.post('/idps/:name/delete', async (ctx) => {
    await admin.deleteIdp(operatorOf(ctx).actor, (await found(ctx.params.name!)).name);
    seeOther(ctx, '/admin/idps?notice=idp-deleted');
  });
}
