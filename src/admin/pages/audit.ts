import type Router from '@koa/router';
import type { AccountsService } from '../../accounts/service.ts';
import type { ClientsService } from '../../clients/service.ts';
import { NotFoundError, ValidationError } from '../../errors.ts';
import type { AuditEntry, AuditLog } from '../audit.ts';
import type { Render } from './render.ts';
import { auditView } from './view-models.ts';

const AUDIT_PAGE_SIZE = 50;

export interface AuditPagesServices {
  audit: AuditLog;
  clients: ClientsService;
  accounts: AccountsService;
}

/** The audit log, newest first, a page at a time. */
export function auditPages(router: Router, { audit, clients, accounts }: AuditPagesServices, page: Render): void {
  /** Today's names of the clients and users a page of entries targets (gone ones have none). */
  const targetNames = async (entries: AuditEntry[]): Promise<Map<string, string>> => {
    const names = new Map<string, string>();
    if (entries.some((e) => e.target.startsWith('client:'))) {
      for (const c of await clients.list()) names.set(`client:${c.clientId}`, c.name);
    }
    const userIds = [...new Set(entries.filter((e) => e.target.startsWith('user:')).map((e) => e.target.slice('user:'.length)))];
    const users = await Promise.all(
      userIds.map((id) => accounts.get(id).catch((err: unknown) => (err instanceof NotFoundError ? undefined : Promise.reject(err)))),
    );
    for (const u of users) if (u) names.set(`user:${u.id}`, u.username);
    return names;
  };

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
}
