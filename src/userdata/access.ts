import type { Knex } from 'knex';

/**
 * Did the user allow this client to use their data: a live grant with the client that
 * includes the userdata scope (not only having signed in to it)?
 */
export async function hasUserdataGrant(db: Knex, sub: string, clientId: string): Promise<boolean> {
  const rows: Array<{ payload: string }> = await db('oidc_payloads')
    .select('payload')
    .where({ account_id: sub, model: 'Grant', client_id: clientId })
    .andWhere((w) => w.whereNull('expires_at').orWhere('expires_at', '>', Math.floor(Date.now() / 1000)));
  return rows.some((row) => {
    const scope = (JSON.parse(row.payload) as { openid?: { scope?: string } }).openid?.scope ?? '';
    return scope.split(' ').includes('userdata');
  });
}
