import type Koa from 'koa';
import { errors, type InteractionResults, type Provider } from 'oidc-provider';

export type { InteractionResults };

/** The interaction oidc-provider sent the browser to: which step, for which request. */
export interface InteractionState {
  uid: string;
  /** `reasons`: the checks that asked for it (MFA_REQUIRED_REASON: two factors, where the session has one). */
  prompt: { name: string; reasons?: string[]; details: Record<string, unknown> };
  params: Record<string, unknown>;
  session?: { accountId: string } | undefined;
  grantId?: string | undefined;
}

/** What oidc-provider asks the consent step to grant (prompt.details of the consent prompt). */
export interface MissingConsent {
  missingOIDCScope?: string[];
  missingOIDCClaims?: string[];
  missingResourceScopes?: Record<string, string[]>;
}

/** What the sign-in and consent pages ask of oidc-provider. */
export interface Interactions {
  /** The current interaction of the browser; throws an error `isStale` recognises when there is none. */
  details(ctx: Koa.Context): Promise<InteractionState>;
  /** Finishes the step; returns where to send the browser. */
  finish(ctx: Koa.Context, result: InteractionResults, options: { mergeWithLastSubmission: boolean }): Promise<string>;
  /** A client's display metadata (undefined for an unknown or disabled client). */
  client(
    clientId: unknown,
  ): Promise<{ clientName?: string | undefined; logoUri?: string | undefined; clientUri?: string | undefined; requireMfa: boolean } | undefined>;
  /** Records the user's consent to what is missing, in the interaction's grant or a new one; returns the grant id. */
  grantConsent(state: InteractionState, missing: MissingConsent): Promise<string>;
  /** The interaction expired or was already finished (the cookie is gone, the link is stale). */
  isStale(err: unknown): boolean;
  /**
   * A live interaction by its uid (its step and client), for a form posted outside the
   * interaction's own path, where its cookie is not sent (the start of an upstream sign-in).
   */
  pending(uid: unknown): Promise<{ prompt: string; clientId: string } | undefined>;
}

export function interactionsOf(provider: () => Provider): Interactions {
  return {
    async details(ctx) {
      return (await provider().interactionDetails(ctx.req, ctx.res)) as unknown as InteractionState;
    },
    finish(ctx, result, options) {
      return provider().interactionResult(ctx.req, ctx.res, result, options);
    },
    async client(clientId) {
      const client = typeof clientId === 'string' ? await provider().Client.find(clientId) : undefined;
      if (!client) return undefined;
      return { clientName: client.clientName, logoUri: client.logoUri, clientUri: client.clientUri, requireMfa: client['gatehouse:require_mfa'] === true };
    },
    async grantConsent(state, missing) {
      const current = provider();
      const grant = state.grantId
        ? await current.Grant.find(state.grantId)
        : new current.Grant({ accountId: state.session!.accountId, clientId: String(state.params.client_id) });
      if (!grant) throw new errors.SessionNotFound('grant not found');
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      return grant.save();
    },
    isStale(err) {
      return err instanceof errors.SessionNotFound || err instanceof errors.InvalidRequest;
    },
    async pending(uid) {
      if (typeof uid !== 'string' || !/^[\w-]{1,64}$/.test(uid)) return undefined;
      const found = await provider().Interaction.find(uid);
      if (!found || found.isExpired) return undefined;
      return { prompt: String(found.prompt?.name ?? ''), clientId: String(found.params?.client_id ?? '') };
    },
  };
}
