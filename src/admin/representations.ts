import type { User } from '../accounts/service.ts';
import type { ApiKey } from '../apikeys/service.ts';
import type { UserGrant } from '../oidc/index.ts';
import type { AuditEntry } from './audit.ts';
import type { AppDocument } from './operations.ts';
import type { AdminToken } from './tokens.ts';

/** How users, keys, tokens, grants and audit entries look in JSON (CLI --json and the admin API). */

export function userJson(user: User) {
  return {
    id: user.id,
    username: user.username,
    email: user.email,
    email_verified: user.emailVerified,
    name: user.name,
    admin: user.isAdmin,
    disabled: user.disabled,
    must_reset_password: user.mustResetPassword,
    created_at: user.createdAt.toISOString(),
    updated_at: user.updatedAt.toISOString(),
  };
}

export function apiKeyJson(k: ApiKey) {
  return {
    id: k.id,
    client_id: k.clientId,
    name: k.name,
    scopes: k.scopes,
    created_at: k.createdAt.toISOString(),
    last_used_at: k.lastUsedAt?.toISOString() ?? null,
    revoked_at: k.revokedAt?.toISOString() ?? null,
  };
}

export function adminTokenJson(t: AdminToken) {
  return {
    id: t.id,
    name: t.name,
    created_at: t.createdAt.toISOString(),
    last_used_at: t.lastUsedAt?.toISOString() ?? null,
    revoked_at: t.revokedAt?.toISOString() ?? null,
  };
}

export function grantJson(g: UserGrant, clientName?: string) {
  return {
    grant_id: g.grantId,
    client_id: g.clientId,
    ...(clientName !== undefined ? { client_name: clientName } : {}),
    scope: g.scope,
    created_at: g.createdAt.toISOString(),
    expires_at: g.expiresAt?.toISOString() ?? null,
  };
}

export function appDocumentJson(d: AppDocument) {
  return { client_id: d.clientId, client_name: d.clientName, version: d.version, updated_at: d.updatedAt.toISOString(), bytes: d.bytes };
}

export function auditJson(e: AuditEntry) {
  return { id: e.id, at: e.at.toISOString(), actor: e.actor, action: e.action, target: e.target, details: e.details, address: e.address };
}
