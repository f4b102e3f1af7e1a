import type { Knex } from 'knex';

/** Does the user have a live grant with this client (did they ever authorize it, and not revoke)? */
export async function hasActiveGrant(db: Knex, sub: string, clientId: string): Promise<boolean> {
  const row = await db('oidc_payloads')
    .first('id')
    .where({ account_id: sub, model: 'Grant', client_id: clientId })
    .andWhere((w) => w.whereNull('expires_at').orWhere('expires_at', '>', Math.floor(Date.now() / 1000)));
  return Boolean(row);
}
