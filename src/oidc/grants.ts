import type { AdapterFactory } from 'oidc-provider';
import { deleteRedisAccountArtifacts } from '../../adapters/redis.ts';
import type { Stores } from '../../adapters/index.ts';
import { GatehouseError, NotFoundError } from '../errors.ts';
import { guardStore } from '../stores/availability.ts';
import type { EndedSignIn } from '../logout/backchannel.ts';
import {
  deleteAccountPayloads,
  deleteClientPayloads,
  deleteRedisClientCredentials,
  findAccountSessions,
  findClientGrantIds,
  hasLiveGrant,
  listLiveGrants,
  type StoredGrant,
  type StoredSessionRow,
} from './artifacts.ts';
import { forgetClientInSession } from './internals.ts';

export type UserGrant = StoredGrant;

/** One of a user's Gatehouse sessions, as the account page lists it. */
export interface UserSession {
  /** Names it for endSession; opens nothing. */
  handle: string;
  signedInAt: Date | null;
  expiresAt: Date | null;
  /** The apps this session signed in to. */
  clientIds: string[];
}

/**
 * A user's authorized apps (oidc-provider Grants) and their sessions, and revoking them with
 * everything they issued: what the admin, the account page, POST /logout and disabling a user
 * ask of oidc-provider's storage, outside of a protocol request.
 */
export class GrantsService {
  constructor(
    private readonly stores: Stores,
    private readonly adapterFor: AdapterFactory,
    /** Told of each app sign-in that ends with a session (back-channel logout); never waited for. */
    private readonly signedOut: (sub: string, signIns: EndedSignIn[]) => void | Promise<void> = () => undefined,
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
    await this.revokeIssuedUnder(grantId);
    await this.adapterFor('Grant').destroy(grantId);
  }

  /** What a grant issued: its access tokens, refresh tokens and codes, wherever each is stored. The grant stays. */
  private async revokeIssuedUnder(grantId: string): Promise<void> {
    await Promise.all(['AccessToken', 'RefreshToken', 'AuthorizationCode'].map((model) => this.adapterFor(model).revokeByGrantId(grantId)));
  }

  /** Revokes one of a user's grants; NotFoundError when the user holds no such grant. */
  async revokeForUser(sub: string, grantId: string): Promise<void> {
    const grants = await this.grantsOf(sub);
    if (!grants.some((g) => g.grantId === grantId)) throw new NotFoundError(`grant ${grantId} of user ${sub}`);
    await this.revokeGrant(grantId);
  }

  /**
   * Revokes every token and code issued to a client, in every store: its users' access and
   * refresh tokens, its codes, its client credentials tokens. The grants (the consent its users
   * gave) stay, so a person signing in again is not asked again. The client was disabled, or its
   * secret changed.
   */
  async revokeClientTokens(clientId: string): Promise<void> {
    const grantIds = await findClientGrantIds(this.stores.db, clientId);
    await deleteClientPayloads(this.stores.db, clientId, 'grants');
    await this.revokeClientInRedis(clientId, grantIds);
  }

  /** Revokes everything of a client, its grants included: the client is deleted. */
  async revokeClient(clientId: string): Promise<void> {
    const grantIds = await findClientGrantIds(this.stores.db, clientId);
    await deleteClientPayloads(this.stores.db, clientId);
    await this.revokeClientInRedis(clientId, grantIds);
  }

  /**
   * What Redis holds of a client: its grants' access tokens and codes, its client credentials
   * tokens. Done after the database (refresh tokens above all), so that Redis being down leaves
   * only artifacts that expire within the hour.
   */
  private async revokeClientInRedis(clientId: string, grantIds: string[]): Promise<void> {
    const { redis } = this.stores;
    if (!redis) return;
    for (const grantId of grantIds) await this.revokeIssuedUnder(grantId);
    await guardStore('redis', () => deleteRedisClientCredentials(redis.client, redis.prefix, clientId));
  }

  /** Deletes every artifact a user holds (sessions, grants, codes, tokens) in every store: the user is disabled. */
  async revokeUser(sub: string): Promise<void> {
    await this.tellAppsOfSessionsEnding(sub);
    await deleteAccountPayloads(this.stores.db, sub);
    if (this.stores.redis) await deleteRedisAccountArtifacts(this.stores.redis.client, this.stores.redis.prefix, sub);
  }

  /**
   * Ends every Gatehouse session of a user and revokes every token and code issued to them, in
   * every store; their grants (the consent they gave each app) stay. Their password changed: who
   * knew the old one is signed out everywhere, and the person signs in again with the new one.
   */
  async revokeUserSignIns(sub: string): Promise<void> {
    await this.tellAppsOfSessionsEnding(sub);
    await deleteAccountPayloads(this.stores.db, sub, 'grants');
    // Grants live in the database only (adapters/index.ts MODEL_STORES): what Redis holds of the user goes.
    if (this.stores.redis) await deleteRedisAccountArtifacts(this.stores.redis.client, this.stores.redis.prefix, sub);
  }

  /**
   * Ends a user's Gatehouse sessions: with a client, the sessions forget that client and a
   * session left with no client is ended; without one, every session of the user is ended.
   */
  async endSessions(sub: string, clientId?: string): Promise<void> {
    const sessions = await findAccountSessions(this.stores.db, sub);
    await this.signedOut(sub, signInsOf(sessions, clientId));
    for (const session of sessions) {
      if (clientId === undefined) {
        await session.destroy();
        continue;
      }
      await forgetClientInSession(session, clientId);
    }
  }

  /** A user's live Gatehouse sessions, newest sign-in first. */
  async sessionsOf(sub: string): Promise<UserSession[]> {
    const sessions = await findAccountSessions(this.stores.db, sub);
    return sessions
      .map((s) => ({
        handle: s.handle,
        signedInAt: s.loginTs === undefined ? null : new Date(s.loginTs * 1000),
        expiresAt: s.exp === undefined ? null : new Date(s.exp * 1000),
        clientIds: Object.keys(s.authorizations ?? {}),
      }))
      .sort((a, b) => (b.signedInAt?.getTime() ?? 0) - (a.signedInAt?.getTime() ?? 0));
  }

  /** Ends one of a user's sessions (its apps hear of it); NotFoundError when the user has no such session. */
  async endSession(sub: string, handle: string): Promise<void> {
    const session = (await findAccountSessions(this.stores.db, sub)).find((s) => s.handle === handle);
    if (!session) throw new GatehouseError(404, 'not_found', 'that session has ended already, or is not yours');
    await this.signedOut(sub, signInsOf([session]));
    await session.destroy();
  }

  /** Every app the user's sessions are signed in to hears that they are signed out. */
  private async tellAppsOfSessionsEnding(sub: string): Promise<void> {
    await this.signedOut(sub, signInsOf(await findAccountSessions(this.stores.db, sub)));
  }
}

/** The app sign-ins of these sessions (of one app, when named), each with its session id. */
function signInsOf(sessions: StoredSessionRow[], clientId?: string): EndedSignIn[] {
  return sessions.flatMap((session) =>
    Object.entries(session.authorizations ?? {})
      .filter(([id]) => clientId === undefined || id === clientId)
      .map(([id, authorization]) => {
        const sid = (authorization as { sid?: unknown } | undefined)?.sid;
        return { clientId: id, sid: typeof sid === 'string' ? sid : undefined };
      }),
  );
}
