/**
 * The boundary around oidc-provider: the only code that knows it (with adapters/, its storage).
 * The rest of Gatehouse asks through what is exported here: build and mount the provider, check
 * an access token, revoke, list grants, end sessions, import a refresh token, run the sign-in
 * and consent steps. Reaches into oidc-provider's internals live in internals.ts alone.
 */
import type Koa from 'koa';
import mountAt from 'koa-mount';
import type { Provider } from 'oidc-provider';
import { accessTokenVerifier, type AccessTokenVerifier } from './access-token.ts';
import type { GrantsService, UserGrant, UserSession } from './grants.ts';
import { interactionsOf, type Interactions } from './interactions.ts';

export type { Provider };
export { createProvider, type ProviderDeps } from './provider.ts';
export { findAccountIn } from './accounts.ts';
export { MFA_REQUIRED_REASON } from './interaction-policy.ts';
export { GrantsService, type UserGrant, type UserSession } from './grants.ts';
export { accessTokenVerifier, type AccessTokenVerifier, type VerifiedAccessToken, type VerifyOptions } from './access-token.ts';
export { interactionsOf, type Interactions, type InteractionResults, type InteractionState, type MissingConsent } from './interactions.ts';
export { importRefreshToken, refreshTokenIsStored, hasLiveGrant, sweepExpiredPayloads, type ImportedRefreshToken } from './artifacts.ts';

/** oidc-provider as Koa middleware: the protocol endpoints, served at the root. */
export function mount(provider: Provider): Koa.Middleware {
  return mountAt(provider);
}

/** What routes and services ask of oidc-provider, bound to the provider serving now. */
export interface Oidc {
  verifyAccessToken: AccessTokenVerifier;
  grantsOf(sub: string): Promise<UserGrant[]>;
  hasLiveGrant(sub: string, clientId: string): Promise<boolean>;
  revokeGrant(grantId: string): Promise<void>;
  /** Revokes one of the user's grants and everything issued under it; NotFoundError when it is not theirs. */
  revokeGrantOf(sub: string, grantId: string): Promise<void>;
  sessionsOf(sub: string): Promise<UserSession[]>;
  /** Ends one of the user's sessions by its handle; NotFoundError when it is not theirs. */
  endSession(sub: string, handle: string): Promise<void>;
  revokeClient(clientId: string): Promise<void>;
  revokeUser(sub: string): Promise<void>;
  /** Ends the user's sessions, or only their sign-in to one client (a session left with none ends). */
  endSessions(sub: string, clientId?: string): Promise<void>;
  interactions: Interactions;
}

export function oidcBoundary(provider: () => Provider, grants: GrantsService): Oidc {
  return {
    verifyAccessToken: accessTokenVerifier(provider),
    grantsOf: (sub) => grants.grantsOf(sub),
    hasLiveGrant: (sub, clientId) => grants.hasLiveGrant(sub, clientId),
    revokeGrant: (grantId) => grants.revokeGrant(grantId),
    revokeGrantOf: (sub, grantId) => grants.revokeForUser(sub, grantId),
    sessionsOf: (sub) => grants.sessionsOf(sub),
    endSession: (sub, handle) => grants.endSession(sub, handle),
    revokeClient: (clientId) => grants.revokeClient(clientId),
    revokeUser: (sub) => grants.revokeUser(sub),
    endSessions: (sub, clientId) => grants.endSessions(sub, clientId),
    interactions: interactionsOf(provider),
  };
}
