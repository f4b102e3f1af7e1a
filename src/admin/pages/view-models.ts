import type { User } from '../../accounts/service.ts';
import type { ApiKey } from '../../apikeys/service.ts';
import type { Client } from '../../clients/service.ts';
import { UNASSIGNED_OWNER } from '../../userdata/service.ts';
import type { AuditEntry } from '../audit.ts';
import type { AppDocument, NamedGrant } from '../operations.ts';

/** What the admin templates show: plain objects with the links and dates already written out. */

export const when = (d: Date | null | undefined) => (d ? `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC` : '');

export const clientHref = (clientId: string) => `/admin/clients/${encodeURIComponent(clientId)}`;

export const clientSummary = (c: Client) => ({
  clientId: c.clientId,
  name: c.name,
  type: c.type,
  grantTypes: c.grantTypes,
  disabled: c.disabled,
  created: when(c.createdAt),
  href: clientHref(c.clientId),
});

export const apiKeyView = (k: ApiKey) => ({
  id: k.id,
  name: k.name,
  scopes: k.scopes,
  created: when(k.createdAt),
  lastUsed: when(k.lastUsedAt),
  revoked: when(k.revokedAt),
});

export const userSummary = (u: User) => ({
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

/** A row of a user's /userdata documents: the app (or why there is none), size, version. */
export const appDocumentView = (u: User, d: AppDocument) => ({
  clientId: d.clientId,
  appName: d.clientName ?? (d.clientId === UNASSIGNED_OWNER ? 'No app (kept from before documents belonged to apps)' : '(deleted client)'),
  clientHref: d.clientName === null ? undefined : clientHref(d.clientId),
  href: `${userSummary(u).href}/userdata/${encodeURIComponent(d.clientId)}`,
  version: d.version,
  bytes: d.bytes,
  updated: when(d.updatedAt),
});

/** A row of a user's apps: the grant, its client (or that it is gone), scope and dates. */
export const grantView = (g: NamedGrant) => ({
  grantId: g.grantId,
  clientId: g.clientId,
  clientName: g.clientName ?? '(deleted client)',
  clientHref: g.clientName === null ? undefined : clientHref(g.clientId),
  scope: g.scope,
  created: when(g.createdAt),
  expires: when(g.expiresAt),
});

/** An audit entry as the page shows it: names first, the ids they stand for beside them. */
export function auditView(e: AuditEntry, names: Map<string, string>) {
  const colon = e.target.indexOf(':');
  const [kind, id] = [e.target.slice(0, colon), e.target.slice(colon + 1)];
  const href = kind === 'client' ? clientHref(id) : kind === 'user' ? `/admin/users/${encodeURIComponent(id)}` : undefined;
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
