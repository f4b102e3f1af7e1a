import type Router from '@koa/router';
import type Koa from 'koa';
import { API_KEY_SCOPES, type ApiKeysService } from '../../apikeys/service.ts';
import type { Client, ClientsService } from '../../clients/service.ts';
import { NotFoundError, ValidationError } from '../../errors.ts';
import type { AdminOperations } from '../operations.ts';
import {
  apiKeyFormFromBody,
  AUTH_METHOD_CHOICES,
  clientFormFromBody,
  clientFormFromClient,
  clientInput,
  formFields,
  GRANT_TYPE_CHOICES,
  NEW_CLIENT_FORM,
  otherErrors,
  text,
  type ClientForm,
} from './forms.ts';
import { operatorOf } from './guard.ts';
import { seeOther, type Render } from './render.ts';
import { apiKeyView, clientSummary } from './view-models.ts';

export interface ClientPagesServices {
  admin: AdminOperations;
  clients: ClientsService;
  apiKeys: ApiKeysService;
}

const clientFormContext = { grantTypeChoices: GRANT_TYPE_CHOICES, authMethodChoices: AUTH_METHOD_CHOICES };

/** Clients: listed and searched, created, edited, disabled, deleted; their secrets and API keys. */
export function clientPages(router: Router, { admin, clients, apiKeys }: ClientPagesServices, page: Render): void {
  router.get('/clients', async (ctx) => {
    const q = text(ctx.query.q).trim();
    const found = await admin.searchClients(q);
    page(ctx, 'clients.njk', { title: 'Clients', section: 'clients', q, clients: found.clients.map(clientSummary), total: found.total });
  });

  const newClientPage = (ctx: Koa.Context, form: ClientForm, errors: Record<string, string> = {}, status = 200) =>
    page(ctx, 'client-new.njk', { title: 'New client', section: 'clients', form, errors, otherErrors: otherErrors(errors), ...clientFormContext }, status);

  const secretPage = (ctx: Koa.Context, client: Client, clientSecret: string | null, heading: string) =>
    page(ctx, 'shown-once.njk', {
      title: heading,
      section: 'clients',
      heading,
      facts: [
        { label: 'Name', value: client.name },
        { label: 'client_id', value: client.clientId, code: true, id: 'client-id' },
      ],
      secret: clientSecret,
      secretLabel: 'client_secret',
      secretId: 'client-secret',
      copyId: 'copy-secret',
      noSecret: 'A public client has no secret: it proves itself with PKCE.',
      back: { href: clientSummary(client).href, label: 'Done: go to the client' },
    });

  router.get('/clients/new', (ctx) => newClientPage(ctx, NEW_CLIENT_FORM));

  router.post('/clients', async (ctx) => {
    const form = clientFormFromBody(formFields(ctx));
    try {
      const { client, clientSecret } = await admin.createClient(operatorOf(ctx).actor, clientInput(form));
      secretPage(ctx, client, clientSecret, 'Client created');
    } catch (err) {
      if (err instanceof ValidationError) return newClientPage(ctx, form, err.fields, 400);
      throw err;
    }
  });

  const clientPage = async (
    ctx: Koa.Context,
    client: Client,
    extra: { form?: ClientForm; errors?: Record<string, string>; keyErrors?: Record<string, string>; keyForm?: { name: string; scopes: string[] } } = {},
    status = 200,
  ) => {
    const errors = extra.errors ?? {};
    page(
      ctx,
      'client.njk',
      {
        title: client.name,
        section: 'clients',
        client: clientSummary(client),
        form: extra.form ?? clientFormFromClient(client),
        errors,
        otherErrors: otherErrors(errors),
        apiKeys: (await apiKeys.list(client.clientId)).map(apiKeyView),
        apiKeyScopes: API_KEY_SCOPES,
        keyForm: extra.keyForm ?? { name: '', scopes: [] },
        keyErrors: extra.keyErrors ?? {},
        ...clientFormContext,
      },
      status,
    );
  };

  router.get('/clients/:id', async (ctx) => {
    await clientPage(ctx, await clients.get(ctx.params.id!));
  });

  router.post('/clients/:id', async (ctx) => {
    const current = await clients.get(ctx.params.id!);
    const form = clientFormFromBody(formFields(ctx));
    try {
      // Only the fields the person changed are saved and audited (AdminOperations.updateClient).
      const { client, clientSecret, changed } = await admin.updateClient(operatorOf(ctx).actor, current.clientId, clientInput(form));
      if (changed.length === 0) return seeOther(ctx, `${clientSummary(current).href}?notice=client-unchanged`);
      // A public client made confidential gets its first secret here, shown once.
      if (clientSecret) return secretPage(ctx, client, clientSecret, 'Client saved, with a new secret');
      seeOther(ctx, `${clientSummary(client).href}?notice=client-saved`);
    } catch (err) {
      if (err instanceof ValidationError) return clientPage(ctx, current, { form, errors: err.fields }, 400);
      throw err;
    }
  });

  router.post('/clients/:id/rotate-secret', async (ctx) => {
    const { client, clientSecret } = await admin.rotateClientSecret(operatorOf(ctx).actor, ctx.params.id!);
    secretPage(ctx, client, clientSecret, 'New client secret');
  });

  for (const [action, disabled] of [
    ['disable', true],
    ['enable', false],
  ] as const) {
    router.post(`/clients/:id/${action}`, async (ctx) => {
      const { client } = await admin.updateClient(operatorOf(ctx).actor, ctx.params.id!, { disabled });
      seeOther(ctx, `${clientSummary(client).href}?notice=client-${action}d`);
    });
  }

  router.get('/clients/:id/delete', async (ctx) => {
    const client = await clients.get(ctx.params.id!);
    const keys = (await apiKeys.list(client.clientId)).filter((k) => !k.revokedAt);
    page(ctx, 'client-delete.njk', { title: `Delete ${client.name}?`, section: 'clients', client: clientSummary(client), liveKeys: keys.length });
  });

  router.post('/clients/:id/delete', async (ctx) => {
    await admin.deleteClient(operatorOf(ctx).actor, ctx.params.id!);
    seeOther(ctx, '/admin/clients?notice=client-deleted');
  });

  // API keys of a client.
  router.post('/clients/:id/api-keys', async (ctx) => {
    const client = await clients.get(ctx.params.id!);
    const keyForm = apiKeyFormFromBody(formFields(ctx));
    try {
      const { key, apiKey } = await admin.createApiKey(operatorOf(ctx).actor, client.clientId, keyForm.scopes, keyForm.name);
      page(ctx, 'shown-once.njk', {
        title: 'API key created',
        section: 'clients',
        heading: 'API key created',
        facts: [
          { label: 'Client', value: client.name },
          ...(apiKey.name ? [{ label: 'Name', value: apiKey.name }] : []),
          { label: 'Scopes', value: apiKey.scopes.join(' '), code: true },
        ],
        secret: key,
        secretLabel: 'API key',
        secretId: 'api-key',
        copyId: 'copy-api-key',
        usage: 'Send it as the X-API-Key header to /userdata.',
        back: { href: clientSummary(client).href, label: 'Done: go to the client' },
      });
    } catch (err) {
      if (err instanceof ValidationError) return clientPage(ctx, client, { keyForm, keyErrors: err.fields }, 400);
      throw err;
    }
  });

  router.post('/clients/:id/api-keys/:keyId/revoke', async (ctx) => {
    const client = await clients.get(ctx.params.id!);
    const key = await apiKeys.get(ctx.params.keyId!);
    if (key.clientId !== client.clientId) throw new NotFoundError(`API key ${key.id} of client ${client.clientId}`);
    await admin.revokeApiKey(operatorOf(ctx).actor, key.id);
    seeOther(ctx, `${clientSummary(client).href}?notice=key-revoked`);
  });
}
