import type Koa from 'koa';
import { errors, type Provider } from 'oidc-provider';
import { GatehouseError } from '../errors.ts';
import { checkAccessTokenAsProviderDoes } from './internals.ts';

/** A user's access token that passed every check, as Gatehouse's routes need it. */
export interface VerifiedAccessToken {
  accountId: string;
  clientId: string;
  grantId: string;
  scopes: ReadonlySet<string>;
}

export interface VerifyOptions {
  /** Scopes the token must carry (space-separated); missing ones are 403 insufficient_scope. */
  scope?: string;
}

export type AccessTokenVerifier = (ctx: Koa.Context, options?: VerifyOptions) => Promise<VerifiedAccessToken>;

const INVALID = 'the access token is invalid, expired or revoked';

/**
 * Checks the access token of a request to a Gatehouse route (/userdata/me, POST /logout, any
 * later one) as oidc-provider checks it at /userinfo: found and unexpired, its DPoP proof or
 * mTLS certificate when it is sender-constrained, issued for this server (no audience of another
 * resource server), carrying the scope, its client still enabled, its grant still live. A
 * user's token only (with a grant): a client credentials token is not found as an access token.
 *
 * Answers are Gatehouse errors with the WWW-Authenticate challenge of RFC 6750 / RFC 9449 set.
 */
export function accessTokenVerifier(provider: () => Provider): AccessTokenVerifier {
  return async (ctx, { scope } = {}) => {
    const challenge = (params: string) => {
      const scheme = ctx.get('dpop') || /^dpop /i.test(ctx.get('authorization')) ? 'DPoP' : 'Bearer';
      ctx.set('www-authenticate', `${scheme} realm="gatehouse"${params}`);
    };
    const required = scope ? scope.split(' ').filter(Boolean) : [];
    try {
      const token = await checkAccessTokenAsProviderDoes(provider(), ctx, requestUrl(ctx), (found) => {
        if (found.aud !== undefined) throw new errors.InvalidToken('token audience prevents accessing this route');
        const missing = required.filter((s) => !found.scopes.has(s));
        if (missing.length) throw new errors.InsufficientScope('access token missing requested scope', missing.join(' '));
      });
      if (!token.accountId || !token.grantId || !token.clientId) throw new errors.InvalidToken('not a user access token');
      return { accountId: token.accountId, clientId: token.clientId, grantId: token.grantId, scopes: token.scopes };
    } catch (err) {
      if (err instanceof errors.InsufficientScope) {
        challenge(`, error="insufficient_scope", scope="${required.join(' ')}"`);
        throw new GatehouseError(403, 'insufficient_scope', `the access token was not granted the ${required.join(' ')} scope`);
      }
      if (err instanceof errors.InvalidDpopProof || err instanceof errors.UseDpopNonce) {
        challenge(`, error="${err.error}"`);
        throw new GatehouseError(401, err.error, err.error_description ?? 'the DPoP proof is invalid');
      }
      if (err instanceof errors.InvalidToken) {
        challenge(', error="invalid_token"');
        const detail = (err as { error_detail?: string }).error_detail;
        throw new GatehouseError(
          401,
          'invalid_token',
          detail === 'failed jkt verification' ? `${INVALID}, or bound to a DPoP key: send it as Authorization: DPoP <token> with a DPoP proof` : INVALID,
        );
      }
      if (err instanceof errors.InvalidRequest) {
        challenge(', error="invalid_request"');
        throw new GatehouseError(400, 'invalid_request', err.error_description ?? 'the access token is not presented correctly');
      }
      throw err;
    }
  };
}

/** The URL the request was sent to, as a DPoP proof names it (htu: no query, no fragment). */
function requestUrl(ctx: Koa.Context): string {
  const url = new URL(ctx.originalUrl, `${ctx.protocol}://${ctx.host}`);
  url.search = '';
  url.hash = '';
  return url.href;
}
