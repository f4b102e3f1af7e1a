import type Provider from 'oidc-provider';
import type { Knex } from 'knex';
import { findAccountPayloadIds } from '../../adapters/knex.ts';
import { GatehouseError } from '../errors.ts';
import type { GrantsService } from './service.ts';

/**
 * POST /logout for apps that sign a user out from their backend: the access token's grant is
 * revoked (access and refresh tokens), and the user's Gatehouse sessions forget that client;
 * a session left with no client is ended.
 */
export async function revokeGrantForBearerLogout(provider: Provider, grants: GrantsService, db: Knex, accessTokenValue: string): Promise<{ sub: string; clientId: string }> {
  const token = await provider.AccessToken.find(accessTokenValue);
  if (!token || token.isExpired || !token.grantId || !token.accountId) {
    throw new GatehouseError(401, 'invalid_token', 'the access token is invalid, expired or revoked');
  }
  const { grantId, accountId } = token;
  const clientId = token.clientId!;
  await grants.revoke(grantId);

  for (const id of await findAccountPayloadIds(db, 'Session', accountId)) {
    const session = await provider.Session.find(id);
    if (!session?.authorizations?.[clientId]) continue;
    delete session.authorizations[clientId];
    if (Object.keys(session.authorizations).length === 0) {
      await session.destroy();
    } else {
      const remaining = Math.max(1, (session.exp ?? 0) - Math.floor(Date.now() / 1000));
      await session.save(remaining);
    }
  }
  return { sub: accountId, clientId };
}
