import fs from 'node:fs';
import Router from '@koa/router';
import type Koa from 'koa';
import { koaBody } from 'koa-body';
import { csrfToken, csrfValid } from '../../interactions/csrf.ts';
import type { Views } from '../../interactions/views.ts';
import type { User } from '../accounts/service.ts';
import { signInWithPassword } from '../accounts/sign-in.ts';
import { securityReporter } from '../observability/request-log.ts';
import { API_KEY_SCOPES, type ApiKey } from '../apikeys/service.ts';
import type { GRANT_TYPES, ClientSettingsInput } from '../clients/rules.ts';
import type { Client } from '../clients/service.ts';
import { GatehouseError, NotFoundError, ValidationError } from '../errors.ts';
import type { Services } from '../services.ts';
import { servesPath } from './served-path.ts';
import { isConnectionError } from '../stores/availability.ts';
import type { Actor, AuditEntry } from './audit.ts';
import type { AppDocument } from './operations.ts';
import { UNASSIGNED_OWNER } from '../userdata/service.ts';
import { AdminSessions, csrfMatches, type AdminSession } from './sessions.ts';
import { ScopeInUseError } from '../scopes/service.ts';
import { scopesWithBuiltIns } from '../scopes/representation.ts';

/** The operator signed in to this request, set once the session is checked. */
interface Operator {
  user: User;
  session: AdminSession;
  actor: Actor;
}

// Forms only: small urlencoded bodies, parsed on these routes alone (never before the provider).
const formBody = koaBody({ urlencoded: true, json: false, multipart: false, text: false, formLimit: '32kb' });

const asset = (file: string, type: string) => ({ type, body: fs.readFileSync(new URL(`../../interactions/public/${file}`, import.meta.url)) });
const ASSETS: Record<string, { type: string; body: Buffer }> = {
  'admin.js': asset('admin.js', 'application/javascript; charset=utf-8'),
  'admin.css': asset('admin.css', 'text/css; charset=utf-8'),
};
const PUBLIC_PATHS = new Set(['/admin/login', ...Object.keys(ASSETS).map((name) => `/admin/assets/${name}`)]);

const AUDIT_PAGE_SIZE = 50;

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
  'admin-granted': 'The user is now an admin.',
  'admin-removed': 'The user is no longer an admin.',
  'password-set': 'The password is set.',
  'grant-revoked': 'The app’s access is revoked: its tokens stop working.',
  'userdata-cleared': 'The app’s document is cleared: the app now reads {}.',
  'scope-created': 'The scope is created: clients may be given it now, on every Gatehouse process.',
  'scope-deleted': 'The scope is deleted.',
};

const GRANT_TYPE_CHOICES = [
  { value: 'authorization_code', label: 'Authorization code', hint: 'people sign in to a web, mobile or single-page app' },
  { value: 'refresh_token', label: 'Refresh token', hint: 'the app stays signed in (with authorization code)' },
  { value: 'client_credentials', label: 'Client credentials', hint: 'a service calls APIs as itself' },
] satisfies Array<{ value: (typeof GRANT_TYPES)[number]; label: string; hint: string }>;

const AUTH_METHOD_CHOICES = [
  { value: '', label: 'Default for the type' },
  { value: 'client_secret_basic', label: 'client_secret_basic (HTTP Basic)' },
  { value: 'client_secret_post', label: 'client_secret_post (in the form body)' },
  { value: 'none', label: 'none (public client)' },
];

/** The client form as the person sees and types it. */
interface ClientForm {
  name: string;
  type: string;
  grantTypes: string[];
  redirectUris: string;
  postLogoutRedirectUris: string;
  allowedOrigins: string;
  scope: string;
  /** Empty: the scope above. */
  defaultScope: string;
  /** No default: a request without scope is refused (invalid_scope). */
  noDefaultScope: boolean;
  authMethod: string;
  requirePkce: boolean;
  skipConsent: boolean;
  allowInsecureRedirect: boolean;
  logoUri: string;
  clientUri: string;
}
const CLIENT_FORM_FIELDS = new Set<string>(['name', 'type', 'grantTypes', 'redirectUris', 'postLogoutRedirectUris', 'allowedOrigins', 'scope', 'defaultScope', 'authMethod', 'requirePkce', 'skipConsent', 'allowInsecureRedirect', 'logoUri', 'clientUri']);
const NEW_CLIENT_FORM: ClientForm = {
  name: '',
  type: 'confidential',
  grantTypes: ['authorization_code'],
  redirectUris: '',
  postLogoutRedirectUris: '',
  allowedOrigins: '',
  scope: '',
  defaultScope: '',
  noDefaultScope: false,
  authMethod: '',
  requirePkce: false,
  skipConsent: false,
  allowInsecureRedirect: false,
  logoUri: '',
  clientUri: '',
};

const text = (v: unknown): string => (typeof v === 'string' ? v : '');
const choices = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : typeof v === 'string' ? [v] : []);
const lines = (s: string) => s.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
const words = (s: string) => s.split(/\s+/).filter(Boolean);
const checked = (v: unknown) => v === 'yes';
const when = (d: Date | null | undefined) => (d ? `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC` : '');

function formFields(ctx: Koa.Context): Record<string, unknown> {
  const body: unknown = (ctx.request as { body?: unknown }).body;
  return typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
}

const clientFormFromBody = (body: Record<string, unknown>): ClientForm => ({
  name: text(body.name),
  type: text(body.type),
  grantTypes: choices(body.grantTypes),
  redirectUris: text(body.redirectUris),
  postLogoutRedirectUris: text(body.postLogoutRedirectUris),
  allowedOrigins: text(body.allowedOrigins),
  scope: text(body.scope),
  defaultScope: text(body.defaultScope),
  noDefaultScope: checked(body.noDefaultScope),
  authMethod: text(body.authMethod),
  requirePkce: checked(body.requirePkce),
  skipConsent: checked(body.skipConsent),
  allowInsecureRedirect: checked(body.allowInsecureRedirect),
  logoUri: text(body.logoUri),
  clientUri: text(body.clientUri),
});

const clientFormFromClient = (c: Client): ClientForm => ({
  name: c.name,
  type: c.type,
  grantTypes: [...c.grantTypes],
  redirectUris: c.redirectUris.join('\n'),
  postLogoutRedirectUris: c.postLogoutRedirectUris.join('\n'),
  allowedOrigins: c.allowedOrigins.join('\n'),
  scope: c.scope.join(' '),
  defaultScope: c.defaultScope?.join(' ') ?? '',
  noDefaultScope: c.defaultScope?.length === 0,
  authMethod: c.authMethod,
  requirePkce: c.requirePkce,
  skipConsent: c.skipConsent,
  allowInsecureRedirect: c.allowInsecureRedirect,
  logoUri: c.logoUri ?? '',
  clientUri: c.clientUri ?? '',
});

/** The form as the clients service takes it; its rules (checkClientSettings) judge it. */
const clientInput = (f: ClientForm): ClientSettingsInput => ({
  name: f.name,
  type: f.type || undefined,
  grantTypes: f.grantTypes,
  redirectUris: lines(f.redirectUris),
  postLogoutRedirectUris: lines(f.postLogoutRedirectUris),
  allowedOrigins: lines(f.allowedOrigins),
  scope: words(f.scope),
  defaultScope: f.noDefaultScope ? [] : words(f.defaultScope).length ? words(f.defaultScope) : null,
  // "Default for the type" leaves the choice to the rules.
  authMethod: f.authMethod || undefined,
  requirePkce: f.requirePkce,
  skipConsent: f.skipConsent,
  allowInsecureRedirect: f.allowInsecureRedirect,
  logoUri: f.logoUri,
  clientUri: f.clientUri,
});

/** Only the settings the person changed, so the audit log names exactly those. */
function changedSettings(current: Client, submitted: ClientSettingsInput): ClientSettingsInput {
  const before = clientInput(clientFormFromClient(current));
  return Object.fromEntries(
    Object.entries(submitted).filter(([k, v]) => v !== undefined && JSON.stringify(v) !== JSON.stringify(before[k as keyof ClientSettingsInput])),
  );
}

const clientSummary = (c: Client) => ({
  clientId: c.clientId,
  name: c.name,
  type: c.type,
  grantTypes: c.grantTypes,
  disabled: c.disabled,
  created: when(c.createdAt),
  href: `/admin/clients/${encodeURIComponent(c.clientId)}`,
});

const apiKeyView = (k: ApiKey) => ({
  id: k.id,
  name: k.name,
  scopes: k.scopes,
  created: when(k.createdAt),
  lastUsed: when(k.lastUsedAt),
  revoked: when(k.revokedAt),
});

/** A row of a user's /userdata documents: the app (or why there is none), size, version. */
const appDocumentView = (u: User, d: AppDocument) => ({
  clientId: d.clientId,
  appName: d.clientName ?? (d.clientId === UNASSIGNED_OWNER ? 'No app (kept from before documents belonged to apps)' : '(deleted client)'),
  clientHref: d.clientName === null ? undefined : `/admin/clients/${encodeURIComponent(d.clientId)}`,
  href: `${userSummary(u).href}/userdata/${encodeURIComponent(d.clientId)}`,
  version: d.version,
  bytes: d.bytes,
  updated: when(d.updatedAt),
});

const userSummary = (u: User) => ({
  id: u.id,
  username: u.username,
  email: u.email,
  name: u.name,
  isAdmin: u.isAdmin,
  disabled: u.disabled,
  hasPassword: u.hasPassword,
  emailVerified: u.emailVerified,
  created: when(u.createdAt),
  updated: when(u.updatedAt),
  href: `/admin/users/${encodeURIComponent(u.id)}`,
});

/** An audit entry as the page shows it: names first, the ids they stand for beside them. */
function auditView(e: AuditEntry, names: Map<string, string>) {
  const colon = e.target.indexOf(':');
  const [kind, id] = [e.target.slice(0, colon), e.target.slice(colon + 1)];
  const href = kind === 'client' ? `/admin/clients/${encodeURIComponent(id)}` : kind === 'user' ? `/admin/users/${encodeURIComponent(id)}` : undefined;
  // Actors read "user:<id> (<username>)" or "admin-token:<id> (<name>)"; the CLI is "cli".
  const actor = /^(\S+) \((.*)\)$/.exec(e.actor);
  const actorId = actor?.[1] ?? '';
  return {
    id: e.id,
    at: when(e.at),
    iso: e.at.toISOString(),
    actorName: actor?.[2] ?? e.actor,
    actorId,
    actorHref: actorId.startsWith('user:') ? `/admin/users/${encodeURIComponent(actorId.slice('user:'.length))}` : undefined,
    action: e.action,
    target: e.target,
    targetName: names.get(e.target),
    href,
    details: Object.keys(e.details).length ? JSON.stringify(e.details) : '',
    address: e.address ?? '',
  };
}

const ERROR_TITLES: Record<number, string> = {
  400: 'That did not work',
  403: 'Not allowed',
  404: 'Not found',
  409: 'That did not work',
  413: 'Too much to send',
  429: 'Too many attempts',
  503: 'Gatehouse is briefly unavailable',
};


/**
 * The operator's admin pages under /admin: clients, users, API keys and the audit log. Every
 * change goes through AdminOperations (audited, the same rules as the CLI and the admin API);
 * sign-in is for users with the admin flag, in a database session (see sessions.ts).
 */
export function adminPageRoutes(services: Services, views: Views): Router {
  const { admin, clients, accounts, apiKeys, grants, audit, throttle } = services;
  const sessions = new AdminSessions(services.db);
  const router = new Router({ prefix: '/admin' });

  const operatorOf = (ctx: Koa.Context): Operator => ctx.state.operator as Operator;

  const page = (ctx: Koa.Context, template: string, context: Record<string, unknown>, status = 200) => {
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
  };
  const seeOther = (ctx: Koa.Context, location: string) => {
    ctx.status = 303;
    ctx.redirect(location);
  };

  /** The signed-in operator: a live session of a user who is still an enabled admin. */
  const signedIn = async (ctx: Koa.Context): Promise<Operator | undefined> => {
    const session = await sessions.current(ctx);
    if (!session) return undefined;
    const user = await accounts.findActive(session.userId);
    if (!user?.isAdmin) {
      await sessions.end(ctx);
      return undefined;
    }
    return { user, session, actor: { label: `user:${user.id} (${user.username})`, address: ctx.ip } };
  };

  // Errors become pages: the status and what went wrong, never a stack trace.
  router.use(async (ctx, next) => {
    ctx.set('cache-control', 'no-store');
    try {
      await next();
    } catch (err) {
      let status = 500;
      let description = 'An unexpected error occurred. Try again; if it keeps happening, the server log says more.';
      if (err instanceof GatehouseError) {
        status = err.status;
        description = err.description;
      } else if (isConnectionError(err)) {
        status = 503;
        description = 'A store Gatehouse needs is unreachable. Try again shortly.';
        ctx.set('retry-after', '5');
      } else {
        const e = err as { status?: number; expose?: boolean; message?: string };
        if (e.status && e.status >= 400 && e.status < 500 && e.expose) [status, description] = [e.status, String(e.message)];
        else ctx.app.emit('error', err, ctx);
      }
      page(ctx, 'error.njk', { title: ERROR_TITLES[status] ?? 'Something went wrong', status, description }, status);
    }
  });

  router.use(formBody);

  // Every page but sign-in needs a signed-in operator; every POST the session's CSRF token.
  router.use(async (ctx, next) => {
    if (PUBLIC_PATHS.has(ctx.path)) return next();
    const operator = await signedIn(ctx);
    if (!operator) return seeOther(ctx, '/admin/login');
    ctx.state.operator = operator;
    if (ctx.method === 'POST' && !csrfMatches(operator.session, formFields(ctx).csrf)) {
      return page(ctx, 'error.njk', {
        title: 'Not allowed',
        status: 403,
        description: 'This form did not come from your admin session (it may be from an old page, or from another site). Go back, reload the page and try again.',
      }, 403);
    }
    await next();
  });

  router.get('/assets/:file', (ctx) => {
    const name = ctx.params.file!;
    if (!Object.hasOwn(ASSETS, name)) throw new NotFoundError(`asset ${name}`);
    const found = ASSETS[name]!;
    ctx.type = found.type;
    ctx.set('cache-control', 'public, max-age=3600');
    ctx.body = found.body;
  });

  // Signing in and out.
  const loginPage = (ctx: Koa.Context, context: { username?: string; error?: string }, status = 200) =>
    page(ctx, 'login.njk', { title: 'Sign in to Gatehouse admin', csrf: csrfToken(ctx), username: '', ...context }, status);

  router.get('/login', async (ctx) => {
    if (await signedIn(ctx)) return seeOther(ctx, '/admin/clients');
    loginPage(ctx, {});
  });

  router.post('/login', async (ctx) => {
    const body = formFields(ctx);
    const username = text(body.username).trim();
    const password = text(body.password);
    const again = (status: number, error: string) => loginPage(ctx, { username, error }, status);

    if (!csrfValid(ctx, body.csrf)) return again(403, 'Your form expired. Please sign in again.');
    if (!username || !password) return again(400, 'Enter your username and password.');

    // The same throttle, and the same counters, as the sign-in page of the interactions.
    const result = await signInWithPassword(accounts, throttle, username, password, ctx.ip, securityReporter(ctx));
    if (!result.ok) {
      if (result.retryAfterSeconds) ctx.set('retry-after', String(result.retryAfterSeconds));
      return again(result.status, result.message);
    }
    const { user } = result;
    if (!user.isAdmin) {
      return again(403, `${user.username} is not an operator. Only users with the admin flag can sign in to Gatehouse admin; ask an operator to grant it.`);
    }
    await sessions.create(ctx, user.id);
    seeOther(ctx, '/admin/clients');
  });

  router.post('/logout', async (ctx) => {
    await sessions.end(ctx);
    seeOther(ctx, '/admin/login');
  });

  router.get('/', (ctx) => seeOther(ctx, '/admin/clients'));

  // Clients.
  router.get('/clients', async (ctx) => {
    const q = text(ctx.query.q).trim();
    const needle = q.toLowerCase();
    const all = await clients.list();
    const shown = all.filter((c) => !needle || c.name.toLowerCase().includes(needle) || c.clientId.toLowerCase().includes(needle));
    page(ctx, 'clients.njk', { title: 'Clients', section: 'clients', q, clients: shown.map(clientSummary), total: all.length });
  });

  const clientFormContext = { grantTypeChoices: GRANT_TYPE_CHOICES, authMethodChoices: AUTH_METHOD_CHOICES };
  /** Errors without a field of their own on the form go in one alert above it. */
  const otherErrors = (fields: Record<string, string>) =>
    Object.entries(fields)
      .filter(([field]) => !CLIENT_FORM_FIELDS.has(field))
      .map(([field, why]) => `${field}: ${why}`);

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
    page(ctx, 'client.njk', {
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
    }, status);
  };

  router.get('/clients/:id', async (ctx) => {
    await clientPage(ctx, await clients.get(ctx.params.id!));
  });

  router.post('/clients/:id', async (ctx) => {
    const current = await clients.get(ctx.params.id!);
    const form = clientFormFromBody(formFields(ctx));
    const changes = changedSettings(current, clientInput(form));
    if (Object.keys(changes).length === 0) return seeOther(ctx, `${clientSummary(current).href}?notice=client-unchanged`);
    try {
      const { client, clientSecret } = await admin.updateClient(operatorOf(ctx).actor, current.clientId, changes);
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

  for (const [action, disabled] of [['disable', true], ['enable', false]] as const) {
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
    const body = formFields(ctx);
    const keyForm = { name: text(body.name), scopes: choices(body.scopes) };
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

  // Users.
  router.get('/users', async (ctx) => {
    const q = text(ctx.query.q).trim();
    page(ctx, 'users.njk', { title: 'Users', section: 'users', q, users: (await accounts.list(q || undefined)).map(userSummary) });
  });

  type UserForm = { username: string; email: string; name: string; admin: boolean };
  const newUserPage = (ctx: Koa.Context, form: UserForm, errors: Record<string, string> = {}, status = 200) =>
    page(ctx, 'user-new.njk', { title: 'New user', section: 'users', form, errors }, status);

  router.get('/users/new', (ctx) => newUserPage(ctx, { username: '', email: '', name: '', admin: false }));

  router.post('/users', async (ctx) => {
    const body = formFields(ctx);
    const form = { username: text(body.username), email: text(body.email).trim(), name: text(body.name), admin: checked(body.admin) };
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

  const userPage = async (ctx: Koa.Context, user: User, passwordErrors: Record<string, string> = {}, status = 200) => {
    const names = new Map((await clients.list()).map((c) => [c.clientId, c.name]));
    const userGrants = (await grants.listForUser(user.id)).map((g) => ({
      grantId: g.grantId,
      clientId: g.clientId,
      clientName: names.get(g.clientId) ?? '(deleted client)',
      clientHref: names.has(g.clientId) ? `/admin/clients/${encodeURIComponent(g.clientId)}` : undefined,
      scope: g.scope,
      created: when(g.createdAt),
      expires: when(g.expiresAt),
    }));
    page(ctx, 'user.njk', {
      title: user.username,
      section: 'users',
      user: userSummary(user),
      self: user.id === operatorOf(ctx).user.id,
      grants: userGrants,
      documents: (await admin.userDocuments(user.id)).map((d) => appDocumentView(user, d)),
      passwordErrors,
    }, status);
  };

  router.get('/users/:id', async (ctx) => {
    await userPage(ctx, await accounts.get(ctx.params.id!));
  });

  const userActions = {
    disable: { notice: 'user-disabled', run: (actor: Actor, id: string) => admin.setUserDisabled(actor, id, true) },
    enable: { notice: 'user-enabled', run: (actor: Actor, id: string) => admin.setUserDisabled(actor, id, false) },
    'grant-admin': { notice: 'admin-granted', run: (actor: Actor, id: string) => admin.setUserAdmin(actor, id, true) },
    'remove-admin': { notice: 'admin-removed', run: (actor: Actor, id: string) => admin.setUserAdmin(actor, id, false) },
  };
  for (const [action, { notice, run }] of Object.entries(userActions)) {
    router.post(`/users/:id/${action}`, async (ctx) => {
      const operator = operatorOf(ctx);
      const user = await accounts.get(ctx.params.id!);
      if (user.id === operator.user.id && (action === 'disable' || action === 'remove-admin')) {
        // Locking yourself out is never what was meant; another operator can do it.
        throw new GatehouseError(400, 'invalid_request', 'You cannot disable yourself or remove your own admin flag. Ask another operator.');
      }
      await run(operator.actor, user.id);
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

  // Scopes: the built-in ones listed, API scopes created and deleted here.
  const scopesPage = async (
    ctx: Koa.Context,
    extra: { form?: { name: string; description: string }; errors?: Record<string, string>; inUse?: ScopeInUseError } = {},
    status = 200,
  ) => {
    const scopes = (await scopesWithBuiltIns(services.scopes)).map((s) => ({
      name: s.name,
      description: s.description,
      builtIn: s.built_in,
      created: s.created_at ? when(new Date(s.created_at)) : '',
      deleteHref: `/admin/scopes/${encodeURIComponent(s.name)}/delete`,
    }));
    const inUse = extra.inUse && {
      scope: extra.inUse.scope,
      clients: extra.inUse.clients.map((c) => ({ ...c, href: `/admin/clients/${encodeURIComponent(c.clientId)}` })),
    };
    page(ctx, 'scopes.njk', { title: 'Scopes', section: 'scopes', scopes, form: extra.form ?? { name: '', description: '' }, errors: extra.errors ?? {}, inUse }, status);
  };

  router.get('/scopes', (ctx) => scopesPage(ctx));

  router.post('/scopes', async (ctx) => {
    const body = formFields(ctx);
    const form = { name: text(body.name), description: text(body.description) };
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

  /** Today's names of the clients and users a page of entries targets (gone ones have none). */
  const targetNames = async (entries: AuditEntry[]): Promise<Map<string, string>> => {
    const names = new Map<string, string>();
    if (entries.some((e) => e.target.startsWith('client:'))) {
      for (const c of await clients.list()) names.set(`client:${c.clientId}`, c.name);
    }
    const userIds = [...new Set(entries.filter((e) => e.target.startsWith('user:')).map((e) => e.target.slice('user:'.length)))];
    const users = await Promise.all(userIds.map((id) => accounts.get(id).catch((err: unknown) => (err instanceof NotFoundError ? undefined : Promise.reject(err)))));
    for (const u of users) if (u) names.set(`user:${u.id}`, u.username);
    return names;
  };

  // The audit log, newest first, a page at a time.
  router.get('/audit', async (ctx) => {
    const rawBefore = ctx.query.before;
    const before = rawBefore === undefined ? undefined : Number(rawBefore);
    if (before !== undefined && (!Number.isInteger(before) || before < 1)) throw new ValidationError({ before: 'must be an entry id' });
    const entries = await audit.list({ limit: AUDIT_PAGE_SIZE, beforeId: before });
    const names = await targetNames(entries);
    page(ctx, 'audit.njk', {
      title: 'Audit log',
      section: 'audit',
      entries: entries.map((e) => auditView(e, names)),
      newer: before !== undefined,
      olderHref: entries.length === AUDIT_PAGE_SIZE ? `/admin/audit?before=${entries.at(-1)!.id}` : undefined,
    });
  });

  // Any other address under /admin gets an error page (405 on a known path, else 404), not the
  // router's plain text.
  router.all('/{*rest}', async (ctx, next) => {
    if (ctx.method === 'OPTIONS') return next();
    if (servesPath(router, ctx)) throw new GatehouseError(405, 'method_not_allowed', 'This address does not take that kind of request.');
    throw new NotFoundError('This page');
  });

  return router;
}
