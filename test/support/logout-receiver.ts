import http from 'node:http';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';
import { freePort } from './gatehouse.ts';

/** The event a back-channel logout token carries (Back-Channel Logout 1.0 §2.4). */
export const LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

export interface ReceivedLogout {
  claims: JWTPayload;
  typ: string | undefined;
  /** The names of the form fields the request carried (only logout_token is expected). */
  fields: string[];
}

/**
 * An app's back-channel logout endpoint, as an app must run it (§2.6): each logout token is
 * verified against Gatehouse's JWKS for the issuer and the app's client_id, and recorded; a
 * token that does not verify is answered 400. `hold` makes it a slow app.
 */
export class LogoutReceiver {
  readonly received: ReceivedLogout[] = [];
  private waiters: Array<() => void> = [];
  /** While set, requests wait for it before they are answered (a slow app). */
  hold: Promise<void> | undefined;
  url = '';
  private server: http.Server | undefined;

  /** Listens on `port` when given (an app that comes back up at the URI it registered), else on a free one. */
  async start(issuer: string, audience: () => string, port?: number): Promise<void> {
    const jwks = createRemoteJWKSet(new URL(`${issuer}/jwks`));
    this.server = http.createServer(async (req, res) => {
      let body = '';
      for await (const chunk of req) body += chunk;
      const form = new URLSearchParams(body);
      const token = form.get('logout_token') ?? '';
      try {
        const { payload } = await jwtVerify(token, jwks, { issuer, audience: audience(), maxTokenAge: '2 minutes' });
        this.received.push({ claims: payload, typ: decodeProtectedHeader(token).typ, fields: [...form.keys()] });
      } catch {
        res.writeHead(400).end();
        return;
      }
      for (const wake of this.waiters.splice(0)) wake();
      if (this.hold) await this.hold;
      res.writeHead(200, { 'cache-control': 'no-store' }).end();
    });
    const listenOn = port ?? (await freePort());
    await new Promise<void>((resolve) => this.server!.listen(listenOn, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${listenOn}/backchannel-logout`;
  }

  /** Resolves once a logout token for `sub` has arrived. */
  async tokenFor(sub: string): Promise<ReceivedLogout> {
    for (;;) {
      const found = this.received.find((r) => r.claims.sub === sub);
      if (found) return found;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  close(): void {
    this.server?.close();
  }
}
