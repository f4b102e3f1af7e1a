import Router from '@koa/router';
import type { Views } from '../../web/views.ts';
import { GatehouseError, NotFoundError } from '../../errors.ts';
import type { AdminSessionsService } from '../sessions.ts';
import { servesPath } from '../served-path.ts';
import { ASSET_PATHS, assetRoutes } from './assets.ts';
import { auditPages, type AuditPagesServices } from './audit.ts';
import { clientPages, type ClientPagesServices } from './clients.ts';
import { formBody } from './forms.ts';
import { AdminSessionCookie, requireOperator } from './guard.ts';
import { errorPages, renderWith } from './render.ts';
import { resourcePages, type ResourcePagesServices } from './resources.ts';
import { scopePages, type ScopePagesServices } from './scopes.ts';
import { sessionPages, type SessionPagesServices } from './session.ts';
import { userPages, type UserPagesServices } from './users.ts';
import { idpPages, type IdpPagesServices } from './idps.ts';

/** What the admin pages use: each area module gets its own part of it. */
export type AdminPageServices = SessionPagesServices &
  ClientPagesServices &
  UserPagesServices &
  ScopePagesServices &
  ResourcePagesServices &
  AuditPagesServices & { adminSessions: AdminSessionsService } & Partial<Pick<IdpPagesServices, 'idps'>>;

const PUBLIC_PATHS: ReadonlySet<string> = new Set(['/admin/login', '/admin/login/code', '/admin/login/enrol', ...ASSET_PATHS]);

/**
 * The operator's admin pages under /admin: clients, users, API keys, scopes and the audit log.
 * Every change goes through AdminOperations (audited, the same rules as the CLI and the admin
 * API); sign-in is for users with the admin flag, in a database session (see sessions.ts).
 */
export function adminPageRoutes(services: AdminPageServices, views: Views): Router {
  const { admin, clients, accounts, apiKeys, audit, throttle, scopes, resources, adminSessions } = services;
  const router = new Router({ prefix: '/admin' });
  const page = renderWith(views);
  const cookie = new AdminSessionCookie(adminSessions);

  errorPages(router, views);
  router.use(formBody);
  requireOperator(router, { cookie, accounts, views, publicPaths: PUBLIC_PATHS });

  assetRoutes(router);
  sessionPages(router, { accounts, throttle, totp: services.totp, config: services.config, accountEvents: services.accountEvents }, cookie, page);
  clientPages(router, { admin, clients, apiKeys }, page);
  userPages(router, { admin, accounts }, page);
  scopePages(router, { admin, scopes }, page);
  resourcePages(router, { admin, resources, scopes }, page);
  auditPages(router, { audit, clients, accounts }, page);
  if (services.idps) idpPages(router, { admin, idps: services.idps }, page);

  // Any other address under /admin gets an error page (405 on a known path, else 404), not the
  // router's plain text.
  router.all('/{*rest}', async (ctx, next) => {
    if (ctx.method === 'OPTIONS') return next();
    if (servesPath(router, ctx)) throw new GatehouseError(405, 'method_not_allowed', 'This address does not take that kind of request.');
    throw new NotFoundError('This page');
  });

  return router;
}
