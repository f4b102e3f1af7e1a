import type Koa from 'koa';
import { koaBody } from 'koa-body';
import type { GRANT_TYPES, ClientSettingsInput } from '../../clients/rules.ts';
import type { Client } from '../../clients/service.ts';

/** The forms of the admin pages: what the person sees and types, and how it is read back. */

// Forms only: small urlencoded bodies, parsed on these routes alone (never before the provider).
export const formBody = koaBody({ urlencoded: true, json: false, multipart: false, text: false, formLimit: '32kb' });

export const text = (v: unknown): string => (typeof v === 'string' ? v : '');
export const choices = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : typeof v === 'string' ? [v] : []);
export const checked = (v: unknown) => v === 'yes';
const lines = (s: string) =>
  s
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean);
const words = (s: string) => s.split(/\s+/).filter(Boolean);

export function formFields(ctx: Koa.Context): Record<string, unknown> {
  const body: unknown = (ctx.request as { body?: unknown }).body;
  return typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
}

export const GRANT_TYPE_CHOICES = [
  { value: 'authorization_code', label: 'Authorization code', hint: 'people sign in to a web, mobile or single-page app' },
  { value: 'refresh_token', label: 'Refresh token', hint: 'the app stays signed in (with authorization code or device sign-in)' },
  { value: 'client_credentials', label: 'Client credentials', hint: 'a service calls APIs as itself' },
  { value: 'urn:ietf:params:oauth:grant-type:device_code', label: 'Device sign-in', hint: 'a CLI or TV shows a code; the person signs in on another screen' },
] satisfies Array<{ value: (typeof GRANT_TYPES)[number]; label: string; hint: string }>;

export const AUTH_METHOD_CHOICES = [
  { value: '', label: 'Default for the type' },
  { value: 'client_secret_basic', label: 'client_secret_basic (HTTP Basic)' },
  { value: 'client_secret_post', label: 'client_secret_post (in the form body)' },
  { value: 'none', label: 'none (public client)' },
];

/** The client form as the person sees and types it. */
export interface ClientForm {
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
  requireMfa: boolean;
  allowInsecureRedirect: boolean;
  logoUri: string;
  clientUri: string;
}
export const CLIENT_FORM_FIELDS = new Set<string>([
  'name',
  'type',
  'grantTypes',
  'redirectUris',
  'postLogoutRedirectUris',
  'allowedOrigins',
  'scope',
  'defaultScope',
  'authMethod',
  'requirePkce',
  'skipConsent',
  'requireMfa',
  'allowInsecureRedirect',
  'logoUri',
  'clientUri',
]);
export const NEW_CLIENT_FORM: ClientForm = {
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
  requireMfa: false,
  allowInsecureRedirect: false,
  logoUri: '',
  clientUri: '',
};

export const clientFormFromBody = (body: Record<string, unknown>): ClientForm => ({
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
  requireMfa: checked(body.requireMfa),
  allowInsecureRedirect: checked(body.allowInsecureRedirect),
  logoUri: text(body.logoUri),
  clientUri: text(body.clientUri),
});

export const clientFormFromClient = (c: Client): ClientForm => ({
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
  requireMfa: c.requireMfa,
  allowInsecureRedirect: c.allowInsecureRedirect,
  logoUri: c.logoUri ?? '',
  clientUri: c.clientUri ?? '',
});

/** The form as the clients service takes it; its rules (checkClientSettings) judge it. */
export const clientInput = (f: ClientForm): ClientSettingsInput => ({
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
  requireMfa: f.requireMfa,
  allowInsecureRedirect: f.allowInsecureRedirect,
  logoUri: f.logoUri,
  clientUri: f.clientUri,
});

/** The API key form of a client's page. */
export const apiKeyFormFromBody = (body: Record<string, unknown>) => ({ name: text(body.name), scopes: choices(body.scopes) });

export interface UserForm {
  username: string;
  email: string;
  name: string;
  admin: boolean;
}
export const NEW_USER_FORM: UserForm = { username: '', email: '', name: '', admin: false };
/** The new-user form; the password is read apart (it is never sent back to the browser). */
export const userFormFromBody = (body: Record<string, unknown>): UserForm => ({
  username: text(body.username),
  email: text(body.email).trim(),
  name: text(body.name),
  admin: checked(body.admin),
});

export const scopeFormFromBody = (body: Record<string, unknown>) => ({ name: text(body.name), description: text(body.description) });

/** Errors without a field of their own on the client form go in one alert above it. */
export const otherErrors = (fields: Record<string, string>) =>
  Object.entries(fields)
    .filter(([field]) => !CLIENT_FORM_FIELDS.has(field))
    .map(([field, why]) => `${field}: ${why}`);
