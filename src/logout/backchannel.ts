import { randomBytes } from 'node:crypto';
import { importJWK, SignJWT } from 'jose';
import type { Client } from '../clients/service.ts';
import type { BackchannelDeliveries, PendingLogout } from './backchannel-deliveries.ts';
import { checkBackchannelTarget, type Resolve } from './backchannel-target.ts';

/**
 * OpenID Connect Back-Channel Logout 1.0: when a person's sign-in to an app ends, the app is
 * sent a logout token (a signed JWT naming the person and, where the app asks, the session) at
 * its registered `backchannel_logout_uri`, so it can end its own session for them.
 *
 * Every way a sign-in ends comes here: RP-initiated logout (oidc-provider's end_session),
 * `POST /logout`, sessions an operator ends, a person disabled, a password set. The logout
 * stores what each token is made from (backchannel-deliveries.ts); each attempt signs a fresh
 * token and sends it, after the logout has answered.
 */

/** One app a person was signed in to, and the session id (`sid`) it knows that sign-in by. */
export interface EndedSignIn {
  clientId: string;
  sid?: string | undefined;
}

export interface BackchannelLogoutDeps {
  issuer: string;
  findClient: (clientId: string) => Promise<Client | undefined>;
  /** The private signing keys, newest active first (KeysService.privateJwks). */
  privateJwks: () => Promise<{ keys: JsonWebKey[] }>;
  /** The durable queue the logouts go to; it calls `deliver` for each attempt. */
  deliveries: () => BackchannelDeliveries;
  log: { warn(fields: object, message: string): void };
  fetch?: typeof fetch;
  /** Resolves a URI's host before each attempt (tests give their own). */
  resolve?: Resolve;
}

const LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';
/** How long a logout token may be accepted: long enough for clock skew and a retry's transit. */
const TOKEN_LIFETIME_SECONDS = 120;

export class BackchannelLogout {
  constructor(private readonly deps: BackchannelLogoutDeps) {}

  /**
   * Stores a logout for each app of `signIns` that has a back-channel URI, to be sent after the
   * caller has answered; resolves once stored, never rejects (a store failure is logged: the
   * logout itself has happened, and the app's tokens are revoked by it).
   */
  async notify(sub: string, signIns: readonly EndedSignIn[]): Promise<void> {
    try {
      const seen = new Set<string>();
      const logouts: PendingLogout[] = [];
      for (const signIn of signIns) {
        const key = `${signIn.clientId}\n${signIn.sid ?? ''}`;
        if (seen.has(key)) continue;
        seen.add(key);
        if ((await this.deps.findClient(signIn.clientId))?.backchannelLogoutUri) logouts.push({ clientId: signIn.clientId, sub, sid: signIn.sid });
      }
      await this.deps.deliveries().enqueue(logouts);
    } catch (err) {
      this.deps.log.warn(
        { event: 'backchannel_logout.store_error', detail: (err as Error).message },
        'back-channel logouts could not be stored; the apps are not told',
      );
    }
  }

  /** One attempt: signs a fresh logout token and POSTs it; an app without a back-channel URI (any more) is not sent anything. */
  async deliver({ clientId, sub, sid }: PendingLogout): Promise<void> {
    const client = await this.deps.findClient(clientId);
    if (!client?.backchannelLogoutUri) return;
    await checkBackchannelTarget(client.backchannelLogoutUri, this.deps.resolve);
    const token = await this.logoutToken(client, sub, sid);
    const res = await (this.deps.fetch ?? fetch)(client.backchannelLogoutUri, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ logout_token: token }),
    });
    await res.body?.cancel();
    if (res.status !== 200 && res.status !== 204) throw new Error(`expected 200 or 204 from the app's back-channel logout URI, got ${res.status}`);
  }

  /** Back-Channel Logout 1.0 §2.4: iss, aud, iat, exp, jti, events, sub and sid, never a nonce. */
  private async logoutToken(client: Client, sub: string, sid: string | undefined): Promise<string> {
    // Signed as the app's ID tokens are; an imported HS256 app gets RS256 (its secret is no key for this).
    const alg = client.idTokenSignedResponseAlg === 'ES256' ? 'ES256' : 'RS256';
    const jwk = (await this.deps.privateJwks()).keys.find((k) => (k as { alg?: string }).alg === alg);
    if (!jwk) throw new Error(`no ${alg} signing key`);
    const key = await importJWK(jwk as Parameters<typeof importJWK>[0], alg);
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ events: { [LOGOUT_EVENT]: {} }, ...(sid ? { sid } : {}) })
      .setProtectedHeader({ alg, kid: (jwk as { kid?: string }).kid, typ: 'logout+jwt' })
      .setIssuer(this.deps.issuer)
      .setAudience(client.clientId)
      .setSubject(sub)
      .setIssuedAt(now)
      .setExpirationTime(now + TOKEN_LIFETIME_SECONDS)
      .setJti(randomBytes(16).toString('base64url'))
      .sign(key);
  }
}
