import type { AdapterFactory } from 'oidc-provider';
import { deleteRedisAccountArtifacts } from '../../adapters/redis.ts';
import type { Stores } from '../../adapters/index.ts';
import { NotFoundError } from '../errors.ts';
import {
  deleteAccountPayloads,
  deleteClientPayloads,
  findAccountSessions,
  findClientGrantIds,
  hasLiveGrant,
  listLiveGrants,
  type StoredGrant,
} from './artifacts.ts';
import { forgetClientInSession } from './internals.ts';

export type UserGrant = StoredGrant;

/**
 * A user's authorized apps (oidc-provider Grants) and their sessions, and revoking them with
 * everything they issued: what the admin, the account page, POST /logout and disabling a user
 * ask of oidc-provider's storage, outside of a protocol request.
 */
export class GrantsService {
  constructor(
    private readonly stores: Stores,
    private readonly adapterFor: AdapterFactory,
  ) {}

  /** A user's live grants, newest first. */
  async grantsOf(sub: string): Promise<UserGrant[]> {
    return listLiveGrants(this.stores.db, sub);
  }

  /** Whether the user has signed in to the client and allowed it, and that grant still lives. */
  async hasLiveGrant(sub: string, clientId: string): Promise<boolean> {
    return hasLiveGrant(this.stores.db, sub, clientId);
  }

  /** The same as grantsOf (the name the admin and its tests use). */
  async listForUser(sub: string): Promise<UserGrant[]> {
    return this.grantsOf(sub);
  }

  /** Revokes a grant: its access tokens, refresh tokens and codes (wherever they are stored), then the grant. */
  async revokeGrant(grantId: string): Promise<void> {
    await Promise.all(['AccessToken', 'RefreshToken', 'AuthorizationCode'].map((model) => this.adapterFor(model).revokeByGrantId(grantId)));
    await this.adapterFor('Grant').destroy(grantId);
  }

  /** Revokes one of a user's grants; NotFoundError when the user holds no such grant. */
  async revokeForUser(sub: string, grantId: string): Promise<void> {
    const grants = await this.grantsOf(sub);
    if (!grants.some((g) => g.grantId === grantId)) throw new NotFoundError(`grant ${grantId} of user ${sub}`);
    await this.revokeGrant(grantId);
  }

  /** Revokes every grant of a client with what they issued, and every other artifact the database holds for it. */
  async revokeClient(clientId: string): Promise<void> {
    for (const grantId of await findClientGrantIds(this.stores.db, clientId)) await this.revokeGrant(grantId);
    await deleteClientPayloads(this.stores.db, clientId);
  }

  /** Deletes every artifact a user holds (sessions, grants, codes, tokens) in every store: the user is disabled. */
  async revokeUser(sub: string): Promise<void> {
    await deleteAccountPayloads(this.stores.db, sub);
    if (this.stores.redis) await deleteRedisAccountArtifacts(this.stores.redis.client, this.stores.redis.prefix, sub);
  }

  /**
   * Ends a user's Gatehouse sessions: with a client, the sessions forget that client and a
   * session left with no client is ended; without one, every session of the user is ended.
   */
  async endSessions(sub: string, clientId?: string): Promise<void> {
    for (const session of await findAccountSessions(this.stores.db, sub)) {
      if (clientId === undefined) {
        await session.destroy();
        continue;
      }
      await forgetClientInSession(session, clientId);
    }
  }
}
