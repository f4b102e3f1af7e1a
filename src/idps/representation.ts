import type { Idp, LinkedIdentity } from './service.ts';

/** A provider as the CLI's --json and the admin API show it: never its client secret. */
export function idpJson(idp: Idp, redirectUri: string) {
  return {
    name: idp.name,
    protocol: idp.protocol,
    preset: idp.preset,
    issuer: idp.issuer,
    client_id: idp.clientId,
    scope: idp.scope,
    button: idp.button,
    position: idp.position,
    enabled: idp.enabled,
    create_accounts: idp.createAccounts,
    redirect_uri: redirectUri,
    created_at: idp.createdAt.toISOString(),
    updated_at: idp.updatedAt.toISOString(),
  };
}

export function linkJson(link: LinkedIdentity) {
  return {
    idp: link.idpName,
    subject: link.subject,
    email: link.email,
    created_at: link.createdAt.toISOString(),
    last_used_at: link.lastUsedAt?.toISOString() ?? null,
  };
}
