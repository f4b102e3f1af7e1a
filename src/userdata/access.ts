import type { Knex } from 'knex';

/**
 * Has the user a live grant with this client: did they sign in to the app and allow it, and
 * not revoke that since? That is what lets the app's key reach its own document of the user; no
 * scope is needed, as the document is the app's own data (the userdata scope is what a token
 * needs for /userdata/me).
 *
 * The one place /userdata reads oidc-provider's stored grants (indexed columns only).
 */
export async function hasLiveGrant(db: Knex, sub: string, clientId: string): Promise<boolean> {
  const row = await db('oidc_payloads')
    .first('id')
    .where({ account_id: sub, model: 'Grant', client_id: clientId })
    .andWhere((w) => w.whereNull('expires_at').orWhere('expires_at', '>', Math.floor(Date.now() / 1000)));
  return row !== undefined;
}
