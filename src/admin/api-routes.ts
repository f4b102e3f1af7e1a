import Router from '@koa/router';
import type Koa from 'koa';
import { koaBody } from 'koa-body';
import { GatehouseError, LOCKS, LockedOutError, ValidationError } from '../errors.ts';
import { AddressThrottledCredential, CREDENTIAL_THROTTLE, CredentialThrottle } from '../accounts/throttle.ts';
import { fromClientMetadata, toClientMetadata, withMetadataFieldNames } from '../clients/metadata.ts';
import type { AccountsService } from '../accounts/service.ts';
import type { ApiKeysService } from '../apikeys/service.ts';
import type { ClientsService } from '../clients/service.ts';
import type { ScopesService } from '../scopes/service.ts';
import type { ResourcesService } from '../resources/service.ts';
import { resourceInputFrom, resourceJson, withResourceFieldNames } from '../resources/representation.ts';
import type { AuditLog } from './audit.ts';
import type { AdminOperations } from './operations.ts';
import type { AdminTokensService } from './tokens.ts';
import { servesPath } from './served-path.ts';
import type { Actor } from './audit.ts';
import { openApiDocument } from './openapi.ts';
import { scopeJson, scopesWithBuiltIns } from '../scopes/representation.ts';
import type { IdpsService } from '../idps/service.ts';
import { idpInputFrom, idpJson, withIdpFieldNames } from '../idps/representation.ts';
import { apiKeyJson, appDocumentJson, auditJson, grantJson, userJson } from './representations.ts';

// JSON only, parsed on these routes alone (never before the provider), small.
const jsonBody = koaBody({ json: true, urlencoded: false, multipart: false, text: false, jsonLimit: '64kb', jsonStrict: true });

type State = { actor: Actor };

function objectBody(ctx: Koa.Context): Record<string, unknown> {
  const body: unknown = (ctx.request as { body?: unknown }).body;
  if (!ctx.is('application/json')) throw new GatehouseError(415, 'unsupported_media_type', 'send a JSON object with Content-Type: application/json');
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new GatehouseError(400, 'invalid_request', 'the body must be a JSON object');
  return body as Record<string, unknown>;
}

const optionalBoolean = (body: Record<string, unknown>, key: string): boolean | undefined => {
  const v = body[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw new ValidationError({ [key]: 'must be true or false' });
  return v;
};

/** What the admin API uses (never the database: storage is the services' business). */
export interface AdminApiServices {
  config: { issuer: string };
  admin: AdminOperations;
  clients: ClientsService;
  accounts: AccountsService;
  apiKeys: ApiKeysService;
  adminTokens: AdminTokensService;
  audit: AuditLog;
  scopes: ScopesService;
  resources: Pick<ResourcesService, 'list' | 'get'>;
  throttle: CredentialThrottle;
  /** Upstream identity providers; absent, their routes answer 404 like any unknown path. */
  idps?: Pick<IdpsService, 'list' | 'get' | 'redirectUri' | 'clientLimit'>;
}

/** The admin API under /admin/api: the same audited operations as the pages and the CLI. */
export function adminApiRoutes(services: AdminApiServices): Router<State> {
  const { admin, clients, accounts, apiKeys, adminTokens, audit, scopes } = services;
  const router = new Router<State>({ prefix: '/admin/api' });
  const tokenGuard = new AddressThrottledCredential(services.throttle, CredentialThrottle.adminTokenSubject, CREDENTIAL_THROTTLE.lockAdminTokenAddressAfter);

  router.get('/openapi.json', (ctx) => {
    ctx.body = openApiDocument(services.config.issuer);
  });

  router.use(async (ctx, next) => {
    ctx.set('cache-control', 'no-store');
    const match = /^Bearer ([\x21-\x7E]+)$/i.exec(ctx.get('authorization'));
    // Wrong tokens are counted per address, as API keys are; while it is locked none is checked.
    const token = match ? await tokenGuard.verify(ctx.ip, () => adminTokens.verify(match[1]!), (seconds) => new LockedOutError(LOCKS.adminTokens, seconds)) : undefined;
    if (!token) {
      ctx.set('www-authenticate', 'Bearer realm="gatehouse-admin"');
      throw new GatehouseError(401, 'invalid_token', 'send an admin API token: Authorization: Bearer gha_…');
    }
    ctx.state.actor = { label: `admin-token:${token.id} (${token.name})`, address: ctx.ip };
    await next();
  });

  // Clients, in RFC 7591 client metadata; errors name the fields the same way.
  router.use(['/clients', '/clients/:id'], async (_ctx, next) => {
    try {
      await next();
    } catch (err) {
      throw err instanceof ValidationError ? withMetadataFieldNames(err) : err;
    }
  });
  router.get('/clients', async (ctx) => {
    const found = await admin.searchClients(typeof ctx.query.search === 'string' ? ctx.query.search : undefined);
    ctx.body = found.clients.map((c) => toClientMetadata(c));
  });
  const clientInput = (ctx: Koa.Context, creating: boolean) => {
    const { input, unknown } = fromClientMetadata(objectBody(ctx), { creating });
    if (unknown.length) throw new ValidationError(Object.fromEntries(unknown.map((k) => [k, 'is not a client metadata field Gatehouse knows'])), 'invalid_client_metadata');
    return input;
  };
  router.post('/clients', jsonBody, async (ctx) => {
    const { disabled, ...input } = clientInput(ctx, true);
    const { client, clientSecret } = await admin.createClient(ctx.state.actor, input);
    const final = disabled ? (await admin.updateClient(ctx.state.actor, client.clientId, { disabled })).client : client;
    ctx.status = 201;
    ctx.body = toClientMetadata(final, clientSecret);
  });
  router.get('/clients/:id', async (ctx) => {
    ctx.body = toClientMetadata(await clients.get(ctx.params.id!));
  });
  router.patch('/clients/:id', jsonBody, async (ctx) => {
    const { client, clientSecret } = await admin.updateClient(ctx.state.actor, ctx.params.id!, clientInput(ctx, false));
    ctx.body = toClientMetadata(client, clientSecret);
  });
  router.delete('/clients/:id', async (ctx) => {
    await admin.deleteClient(ctx.state.actor, ctx.params.id!);
    ctx.status = 204;
  });
  router.post('/clients/:id/rotate-secret', async (ctx) => {
    const { client, clientSecret } = await admin.rotateClientSecret(ctx.state.actor, ctx.params.id!);
    ctx.body = toClientMetadata(client, clientSecret);
  });

  // API keys of a client.
  router.get('/clients/:id/api-keys', async (ctx) => {
    await clients.get(ctx.params.id!);
    ctx.body = (await apiKeys.list(ctx.params.id!)).map(apiKeyJson);
  });
  router.post('/clients/:id/api-keys', jsonBody, async (ctx) => {
    const body = objectBody(ctx);
    if (!Array.isArray(body.scopes)) throw new ValidationError({ scopes: 'must be a list, e.g. ["userdata:read", "userdata:write"]' });
    if (body.name !== undefined && typeof body.name !== 'string') throw new ValidationError({ name: 'must be a string' });
    const { key, apiKey } = await admin.createApiKey(ctx.state.actor, ctx.params.id!, body.scopes, body.name as string | undefined);
    ctx.status = 201;
    ctx.body = { key, ...apiKeyJson(apiKey) };
  });
  router.delete('/api-keys/:id', async (ctx) => {
    ctx.body = apiKeyJson(await admin.revokeApiKey(ctx.state.actor, ctx.params.id!));
  });

  // Users.
  router.get('/users', async (ctx) => {
    ctx.body = (await accounts.list(typeof ctx.query.search === 'string' ? ctx.query.search : undefined)).map(userJson);
  });
  router.post('/users', jsonBody, async (ctx) => {
    const body = objectBody(ctx);
    if (body.password !== undefined && typeof body.password !== 'string') throw new ValidationError({ password: 'must be a string' });
    const user = await admin.createUser(ctx.state.actor, {
      username: body.username,
      email: body.email,
      name: body.name,
      password: body.password as string | undefined,
      isAdmin: optionalBoolean(body, 'admin'),
      emailVerified: optionalBoolean(body, 'email_verified'),
    });
    ctx.status = 201;
    ctx.body = userJson(user);
  });
  router.get('/users/:id', async (ctx) => {
    ctx.body = userJson(await accounts.get(ctx.params.id!));
  });
  router.patch('/users/:id', jsonBody, async (ctx) => {
    const body = objectBody(ctx);
    const known = new Set(['email', 'name', 'email_verified', 'admin', 'disabled']);
    const unknown = Object.keys(body).filter((k) => !known.has(k));
    if (unknown.length) throw new ValidationError(Object.fromEntries(unknown.map((k) => [k, k === 'password' ? 'set passwords with POST /admin/api/users/{id}/password' : 'is not a user field'])));
    const id = ctx.params.id!;
    await accounts.get(id);
    const admin_ = optionalBoolean(body, 'admin');
    const disabled = optionalBoolean(body, 'disabled');
    const emailVerified = optionalBoolean(body, 'email_verified');
    if (body.email !== undefined || body.name !== undefined || emailVerified !== undefined) {
      await admin.updateUser(ctx.state.actor, id, { email: body.email, name: body.name, emailVerified });
    }
    if (admin_ !== undefined) await admin.setUserAdmin(ctx.state.actor, id, admin_);
    if (disabled !== undefined) await admin.setUserDisabled(ctx.state.actor, id, disabled);
    ctx.body = userJson(await accounts.get(id));
  });
  router.post('/users/:id/password', jsonBody, async (ctx) => {
    const body = objectBody(ctx);
    if (typeof body.password !== 'string') throw new ValidationError({ password: 'is required' });
    await admin.setUserPassword(ctx.state.actor, ctx.params.id!, body.password);
    ctx.status = 204;
  });
  router.post('/users/:id/unlock', async (ctx) => {
    const { user, cleared } = await admin.unlockUser(ctx.state.actor, ctx.params.id!);
    ctx.body = { ...userJson(user), counters_cleared: cleared };
  });
  router.post('/users/:id/mfa/reset', async (ctx) => {
    const { user, removed } = await admin.resetUserMfa(ctx.state.actor, ctx.params.id!);
    ctx.body = { ...userJson(user), authenticator_removed: removed };
  });
  // A password reset link to hand over (or, with {"send": true}, mailed to the user).
  router.post('/users/:id/reset-link', jsonBody, async (ctx) => {
    const body = ctx.request.length ? objectBody(ctx) : {};
    const send = optionalBoolean(body, 'send') ?? false;
    const link = await admin.createResetLink(ctx.state.actor, ctx.params.id!, { send });
    ctx.set('cache-control', 'no-store');
    ctx.body = link.sent ? { sent: true, email: link.user.email, expires_at: link.expiresAt.toISOString() } : { url: link.url, expires_at: link.expiresAt.toISOString() };
  });
  router.get('/users/:id/grants', async (ctx) => {
    ctx.body = (await admin.userGrants(ctx.params.id!)).map((g) => grantJson(g, g.clientName ?? ''));
  });
  router.delete('/users/:id/grants/:grantId', async (ctx) => {
    await admin.revokeUserGrant(ctx.state.actor, ctx.params.id!, ctx.params.grantId!);
    ctx.status = 204;
  });

  // A user's /userdata documents, one per app.
  router.get('/users/:id/userdata', async (ctx) => {
    ctx.body = (await admin.userDocuments(ctx.params.id!)).map((d) => appDocumentJson(d));
  });
  router.get('/users/:id/userdata/:clientId', async (ctx) => {
    const doc = await admin.userDocument(ctx.params.id!, ctx.params.clientId!);
    ctx.body = { ...appDocumentJson(doc), document: doc.document };
  });
  router.delete('/users/:id/userdata/:clientId', async (ctx) => {
    await admin.clearUserDocument(ctx.state.actor, ctx.params.id!, ctx.params.clientId!);
    ctx.status = 204;
  });

  // Scopes: the API scopes clients may hold, and the built-in ones (listed, never changed).
  router.get('/scopes', async (ctx) => {
    ctx.body = await scopesWithBuiltIns(scopes);
  });
  router.post('/scopes', jsonBody, async (ctx) => {
    const body = objectBody(ctx);
    const unknown = Object.keys(body).filter((k) => k !== 'name' && k !== 'description');
    if (unknown.length) throw new ValidationError(Object.fromEntries(unknown.map((k) => [k, 'is not a scope field (name, description)'])));
    const scope = await admin.createScope(ctx.state.actor, body);
    ctx.status = 201;
    ctx.body = scopeJson(scope);
  });
  router.delete('/scopes/:name', async (ctx) => {
    await admin.deleteScope(ctx.state.actor, ctx.params.name!);
    ctx.status = 204;
  });

  // Resource servers (RFC 8707): the APIs clients ask tokens for; the audience, percent-encoded, names one.
  const namedAsSent = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (err) {
      throw err instanceof ValidationError ? withResourceFieldNames(err) : err;
    }
  };
  router.get('/resources', async (ctx) => {
    ctx.body = (await services.resources.list()).map(resourceJson);
  });
  router.post('/resources', jsonBody, async (ctx) => {
    const input = await namedAsSent(async () => resourceInputFrom(objectBody(ctx)));
    const resource = await namedAsSent(() => admin.createResource(ctx.state.actor, input));
    ctx.status = 201;
    ctx.body = resourceJson(resource);
  });
  router.get('/resources/:audience', async (ctx) => {
    ctx.body = resourceJson(await services.resources.get(ctx.params.audience!));
  });
  router.patch('/resources/:audience', jsonBody, async (ctx) => {
    const input = await namedAsSent(async () => resourceInputFrom(objectBody(ctx)));
    ctx.body = resourceJson(await namedAsSent(() => admin.updateResource(ctx.state.actor, ctx.params.audience!, input)));
  });
  router.delete('/resources/:audience', async (ctx) => {
    await admin.deleteResource(ctx.state.actor, ctx.params.audience!);
    ctx.status = 204;
  });

  // Upstream identity providers (src/idps/): never their client secret back; redirect_uri is what to register there.
  const idps = services.idps;
  if (idps) {
    const idpFieldsAsSent = async <T>(work: () => Promise<T>): Promise<T> => {
      try {
        return await work();
      } catch (err) {
        throw err instanceof ValidationError ? withIdpFieldNames(err) : err;
      }
    };
    const shown = (idp: Awaited<ReturnType<typeof idps.get>>) => idpJson(idp, idps.redirectUri(idp.name));
    router.get('/idps', async (ctx) => {
      ctx.body = (await idps.list()).map(shown);
    });
    router.post('/idps', jsonBody, async (ctx) => {
      const input = await idpFieldsAsSent(async () => idpInputFrom(objectBody(ctx)));
      const idp = await idpFieldsAsSent(() => admin.createIdp(ctx.state.actor, input));
      ctx.status = 201;
      ctx.body = shown(idp);
    });
    router.get('/idps/:name', async (ctx) => {
      ctx.body = shown(await idps.get(ctx.params.name!));
    });
    router.patch('/idps/:name', jsonBody, async (ctx) => {
      const input = await idpFieldsAsSent(async () => idpInputFrom(objectBody(ctx)));
      ctx.body = shown((await idpFieldsAsSent(() => admin.updateIdp(ctx.state.actor, ctx.params.name!, input))).idp);
    });
    router.delete('/idps/:name', async (ctx) => {
      await admin.deleteIdp(ctx.state.actor, ctx.params.name!);
      ctx.status = 204;
    });
    // Which providers a client's sign-in page shows: {"idps": ["google"]}; [] shows every enabled one.
    router.get('/clients/:id/idps', async (ctx) => {
      await clients.get(ctx.params.id!);
      ctx.body = { idps: await idps.clientLimit(ctx.params.id!) };
    });
    router.put('/clients/:id/idps', jsonBody, async (ctx) => {
      const body = objectBody(ctx);
      const names = body.idps;
      if (!Array.isArray(names) || names.some((n) => typeof n !== 'string')) throw new ValidationError({ idps: 'must be a list of identity provider names' });
      ctx.body = { idps: await admin.setClientIdps(ctx.state.actor, ctx.params.id!, names as string[]) };
    });
  }

  // The audit log, newest first; page with ?before=<id>.
  router.get('/audit', async (ctx) => {
    const limit = Number(ctx.query.limit ?? 100);
    const before = ctx.query.before === undefined ? undefined : Number(ctx.query.before);
    if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new ValidationError({ limit: 'must be a whole number from 1 to 500' });
    if (before !== undefined && (!Number.isInteger(before) || before < 1)) throw new ValidationError({ before: 'must be an entry id' });
    ctx.body = (await audit.list({ limit, beforeId: before })).map(auditJson);
  });

  // Anything else under /admin/api gets this API's JSON error (405 on a known path, else 404),
  // not the router's plain text.
  router.all('/{*rest}', async (ctx, next) => {
    if (ctx.method === 'OPTIONS') return next();
    if (servesPath(router, ctx)) throw new GatehouseError(405, 'method_not_allowed', `${ctx.method} is not allowed here; see /admin/api/openapi.json`);
    throw new GatehouseError(404, 'not_found', 'there is no such path in the admin API; see /admin/api/openapi.json');
  });

  return router;
}
