import * as oidc from 'openid-client';
import { GatehouseError } from '../errors.ts';
import { githubApiBase } from './presets.ts';
import { isLoopbackHttp } from './rules.ts';
import type { Idp } from './service.ts';

/**
 * Gatehouse as a relying party of an upstream provider, through openid-client: discovery, PKCE
 * (S256), state, nonce, the callback's iss (RFC 9207, where the upstream offers it) and the ID
 * token checked by the library, never by hand. GitHub is OAuth 2.0 only: the same library
 * redeems its code, and who the person is comes from its API (/user, /user/emails).
 * Every upstream call is bounded by the configured timeout.
 */

/** Who the upstream says the person is. `subject` is the upstream's stable id (sub, or GitHub's numeric id). */
export interface UpstreamPerson {
  subject: string;
  email: string | undefined;
  /** Only a verified address is ever matched to an account (and then only with proof). */
  emailVerified: boolean;
  name: string;
  /** A username the upstream suggests (preferred_username, GitHub's login). */
  username: string | undefined;
}

/** What the start of a sign-in hands the browser, and what must be kept for its return. */
export interface UpstreamStart {
  url: string;
  state: string;
  checks: { nonce?: string; verifier: string };
}

/** The upstream failed or answered what cannot be trusted: status and sentence for the error page. */
export class UpstreamError extends GatehouseError {
  override name = 'UpstreamError';
}

const DISCOVERY_CACHE_MS = 10 * 60 * 1000;

/** The error, or one of its causes, is the abort of a timed-out fetch. */
function timedOut(err: unknown): boolean {
  for (let e = err as { name?: string; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (e.name === 'TimeoutError' || e.name === 'AbortError') return true;
  }
  return false;
}

/** The error, or one of its causes, is a connection that could not be made. */
function unreachable(err: unknown): boolean {
  for (let e = err as { message?: string; code?: string; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (e.message === 'fetch failed' || /^(ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|UND_ERR_SOCKET)$/.test(e.code ?? '')) return true;
  }
  return false;
}

/** An upstream failure said for the person: what happened and what to do, never the upstream's internals. */
export function upstreamFailure(idp: Pick<Idp, 'button' | 'name'>, err: unknown): UpstreamError {
  if (err instanceof UpstreamError) return err;
  const who = providerLabel(idp);
  if (timedOut(err)) return new UpstreamError(504, 'upstream_timeout', `${who} did not answer in time. Try again in a moment, or sign in another way.`);
  if (unreachable(err))
    return new UpstreamError(502, 'upstream_unreachable', `${who} cannot be reached right now. Try again in a moment, or sign in another way.`);
  const code = (err as { code?: string }).code;
  // openid-client's ClientError wraps oauth4webapi's error, whose cause names the claim.
  type Caused = { cause?: Caused; claim?: string };
  const cause = (err as Caused).cause;
  const claim = cause?.claim ?? cause?.cause?.claim;
  if (code === 'OAUTH_JWT_CLAIM_COMPARISON_FAILED' && claim === 'nonce') {
    return new UpstreamError(
      400,
      'nonce_mismatch',
      `The answer from ${who} was not for this sign-in (its nonce does not match). Go back to the application and start again.`,
    );
  }
  if (code === 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED' || (code === 'OAUTH_JWT_CLAIM_COMPARISON_FAILED' && claim === 'iss')) {
    return new UpstreamError(
      400,
      'issuer_mismatch',
      `The answer did not come from ${who} (its issuer does not match). Go back to the application and start again.`,
    );
  }
  if (err instanceof oidc.ResponseBodyError) {
    return new UpstreamError(502, 'upstream_refused', `${who} refused to finish the sign-in (${err.error}). Go back to the application and start again.`);
  }
  if (err instanceof oidc.AuthorizationResponseError) {
    return new UpstreamError(400, 'upstream_error', `${who} could not sign you in (${err.error}). Go back to the application and start again.`);
  }
  return new UpstreamError(502, 'upstream_invalid', `The answer from ${who} could not be verified, so it was not used. Try again, or sign in another way.`);
}

/** "Google" from "Sign in with Google"; else the provider's name. */
export function providerLabel(idp: Pick<Idp, 'button' | 'name'>): string {
  return /^Sign in with (.+)$/.exec(idp.button)?.[1] ?? idp.name;
}

export class Upstreams {
  private readonly configurations = new Map<string, { version: string; until: number; configuration: oidc.Configuration }>();

  constructor(
    private readonly secrets: { clientSecret(name: string): Promise<string>; redirectUri(name: string): string },
    private readonly timeoutMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Where to send the browser, with fresh state, nonce (OpenID Connect) and PKCE verifier. */
  async start(idp: Idp): Promise<UpstreamStart> {
    const configuration = await this.configuration(idp);
    const state = oidc.randomState();
    const verifier = oidc.randomPKCECodeVerifier();
    const nonce = idp.protocol === 'oidc' ? oidc.randomNonce() : undefined;
    const url = oidc.buildAuthorizationUrl(configuration, {
      redirect_uri: this.secrets.redirectUri(idp.name),
      scope: idp.scope,
      state,
      ...(nonce ? { nonce } : {}),
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    });
    return { url: url.href, state, checks: { ...(nonce ? { nonce } : {}), verifier } };
  }

  /**
   * Redeems the callback's code (`query`: the callback's parameters as the upstream sent them)
   * and says who signed in. Throws UpstreamError with the sentence for the person.
   */
  async finish(idp: Idp, query: URLSearchParams, state: string, checks: UpstreamStart['checks']): Promise<UpstreamPerson> {
    try {
      const configuration = await this.configuration(idp);
      // The URL the upstream redirected to: the registered redirect URI with its parameters.
      const callback = new URL(this.secrets.redirectUri(idp.name));
      callback.search = query.toString();
      const tokens = await oidc.authorizationCodeGrant(configuration, callback, {
        expectedState: state,
        pkceCodeVerifier: checks.verifier,
        ...(checks.nonce ? { expectedNonce: checks.nonce } : {}),
        idTokenExpected: idp.protocol === 'oidc',
      });
      return idp.protocol === 'github' ? await this.githubPerson(idp, tokens.access_token) : await this.oidcPerson(configuration, tokens);
    } catch (err) {
      throw upstreamFailure(idp, err);
    }
  }

  private async oidcPerson(configuration: oidc.Configuration, tokens: Awaited<ReturnType<typeof oidc.authorizationCodeGrant>>): Promise<UpstreamPerson> {
    let claims: Record<string, unknown> = { ...tokens.claims()! };
    // Some issuers keep email and name out of the ID token: userinfo has them (same subject, checked).
    if ((claims.email === undefined || claims.name === undefined) && configuration.serverMetadata().userinfo_endpoint) {
      const info = await oidc.fetchUserInfo(configuration, tokens.access_token, String(claims.sub));
      claims = { ...info, ...claims };
    }
    const email = typeof claims.email === 'string' ? claims.email : undefined;
    return {
      subject: String(claims.sub),
      email,
      emailVerified: email !== undefined && claims.email_verified === true,
      name: typeof claims.name === 'string' ? claims.name : '',
      username: typeof claims.preferred_username === 'string' ? claims.preferred_username : undefined,
    };
  }

  /** GitHub's API: the user, and among their addresses the primary one GitHub verified. */
  private async githubPerson(idp: Idp, accessToken: string): Promise<UpstreamPerson> {
    const api = githubApiBase(idp.issuer);
    const get = async (path: string): Promise<unknown> => {
      const res = await fetch(`${api}${path}`, {
        headers: {
          authorization: `Bearer ${accessToken}`,
          accept: 'application/vnd.github+json',
          'user-agent': 'Gatehouse',
          'x-github-api-version': '2022-11-28',
        },
        signal: AbortSignal.timeout(this.timeoutMs),
        redirect: 'error',
      });
      if (!res.ok)
        throw new UpstreamError(
          502,
          'upstream_refused',
          `${providerLabel(idp)} would not say who you are (HTTP ${res.status}). Try again, or sign in another way.`,
        );
      return res.json();
    };
    const user = (await get('/user')) as { id?: unknown; login?: unknown; name?: unknown };
    if (typeof user.id !== 'number' && typeof user.id !== 'string')
      throw new UpstreamError(502, 'upstream_invalid', `${providerLabel(idp)} did not say who you are. Try again, or sign in another way.`);
    const emails = (await get('/user/emails')) as Array<{ email?: unknown; primary?: unknown; verified?: unknown }>;
    const primary = Array.isArray(emails) ? emails.find((e) => e.primary === true && e.verified === true && typeof e.email === 'string') : undefined;
    return {
      subject: String(user.id),
      email: primary ? String(primary.email) : undefined,
      emailVerified: primary !== undefined,
      name: typeof user.name === 'string' && user.name ? user.name : typeof user.login === 'string' ? user.login : '',
      username: typeof user.login === 'string' ? user.login : undefined,
    };
  }

  /** The provider's client configuration: discovered (cached a few minutes per version of its row) or, for GitHub, its fixed endpoints. */
  private async configuration(idp: Idp): Promise<oidc.Configuration> {
    const version = `${idp.updatedAt.getTime()}`;
    const cached = this.configurations.get(idp.name);
    if (cached && cached.version === version && cached.until > this.now()) return cached.configuration;
    const secret = await this.secrets.clientSecret(idp.name);
    const seconds = this.timeoutMs / 1000;
    const insecure = isLoopbackHttp(idp.issuer);
    let configuration: oidc.Configuration;
    if (idp.protocol === 'github') {
      const web = new URL(idp.issuer).origin;
      configuration = new oidc.Configuration(
        { issuer: idp.issuer, authorization_endpoint: `${web}/login/oauth/authorize`, token_endpoint: `${web}/login/oauth/access_token` },
        idp.clientId,
        undefined,
        oidc.ClientSecretPost(secret),
      );
    } else {
      try {
        configuration = await oidc.discovery(new URL(idp.issuer), idp.clientId, undefined, oidc.ClientSecretBasic(secret), {
          timeout: seconds,
          ...(insecure ? { execute: [oidc.allowInsecureRequests] } : {}),
        });
      } catch (err) {
        throw upstreamFailure(idp, err);
      }
      // client_secret_basic unless the issuer says it takes only client_secret_post.
      const methods = configuration.serverMetadata().token_endpoint_auth_methods_supported;
      if (methods && !methods.includes('client_secret_basic') && methods.includes('client_secret_post')) {
        configuration = new oidc.Configuration(configuration.serverMetadata(), idp.clientId, undefined, oidc.ClientSecretPost(secret));
      }
    }
    configuration.timeout = seconds;
    if (insecure) oidc.allowInsecureRequests(configuration);
    this.configurations.set(idp.name, { version, until: this.now() + DISCOVERY_CACHE_MS, configuration });
    return configuration;
  }
}
