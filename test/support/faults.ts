import http from 'node:http';
import net from 'node:net';
import * as oidc from 'openid-client';
import { loadConfig } from '../../src/config.ts';
import { openServices } from '../../src/services.ts';
import { REDIRECT_URI } from './relying-party.ts';
import { UserAgent, type Page } from './user-agent.ts';
import { readAnswer } from './http-answer.ts';
import { basicAuth } from './http.ts';
import { waitFor } from './wait.ts';

/**
 * What the fault tests (kill -9, store restarts, SIGTERM) share: a seeded database, plain HTTP
 * calls that each use a connection of their own (no keep-alive pool to go stale across a
 * restart), and the three kinds of load: client credentials tokens, sign-ins, userdata writes.
 */

export const PASSWORD = 'faults-tests-correct-horse';

export interface Seeded {
  client: { id: string; secret: string };
  apiKey: string;
  users: Array<{ username: string; sub: string }>;
}

/**
 * Migrates the database of `env` and creates, through the same services the CLI calls, one
 * confidential client (authorization code + refresh token + client credentials; scopes for
 * userdata and the API), `users` people with PASSWORD, and an API key with userdata:read/write.
 */
export async function seed(env: Record<string, string>, users = 3): Promise<Seeded> {
  const services = await openServices(loadConfig(env));
  try {
    const { client, clientSecret } = await services.clients.create({
      name: 'Faults app',
      type: 'confidential',
      grantTypes: ['authorization_code', 'refresh_token', 'client_credentials'],
      redirectUris: [REDIRECT_URI],
      scope: ['openid', 'profile', 'userdata', 'read', 'write'],
    });
    const { key } = await services.apiKeys.create(client.clientId, ['userdata:read', 'userdata:write']);
    const created: Seeded['users'] = [];
    for (let i = 0; i < users; i++) {
      const username = `faults-${i}`;
      const user = await services.accounts.create({ username, email: `${username}@example.com`, password: PASSWORD });
      created.push({ username, sub: user.id });
    }
    return { client: { id: client.clientId, secret: clientSecret! }, apiKey: key, users: created };
  } finally {
    await services.close();
  }
}

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: any;
  ms: number;
}

/** One request on a connection of its own; rejects on a network error or after `timeoutMs`. */
export function call(base: string, method: string, path: string, init: { headers?: Record<string, string>; body?: string; timeoutMs?: number } = {}): Promise<Answer> {
  const url = new URL(path, base);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...init.headers };
    if (init.body !== undefined) headers['content-length'] = Buffer.byteLength(init.body);
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname + url.search, method, headers, agent: false }, (res) => {
      readAnswer(res).then((answer) => resolve({ ...answer, ms: Date.now() - started }), reject);
    });
    req.setTimeout(init.timeoutMs ?? 20_000, () => req.destroy(new Error(`no answer within ${init.timeoutMs ?? 20_000} ms`)));
    req.on('error', reject);
    req.end(init.body);
  });
}

/** POST a form to an OAuth endpoint, authenticated as the client (client_secret_basic). */
export function oauthPost(base: string, path: '/token' | '/introspect' | '/revoke', client: Seeded['client'], form: Record<string, string>, timeoutMs?: number): Promise<Answer> {
  return call(base, 'POST', path, {
    headers: { authorization: basicAuth(client.id, client.secret), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
    ...(timeoutMs ? { timeoutMs } : {}),
  });
}

/** A userdata call with the API key: PUT sends JSON, PATCH a merge patch, If-Match when `ifMatch` is given. */
export function userdataCall(base: string, apiKey: string, sub: string, method: 'GET' | 'PUT' | 'PATCH', body?: unknown, ifMatch?: number, timeoutMs?: number): Promise<Answer> {
  const headers: Record<string, string> = { 'x-api-key': apiKey };
  if (body !== undefined) headers['content-type'] = method === 'PATCH' ? 'application/merge-patch+json' : 'application/json';
  if (ifMatch !== undefined) headers['if-match'] = `"${ifMatch}"`;
  return call(base, method, `/userdata/${sub}`, { headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}), ...(timeoutMs ? { timeoutMs } : {}) });
}

/** The version an answer's ETag carries ("3" → 3), or undefined. */
export const etagVersion = (answer: Answer): number | undefined => {
  const m = /^"(\d+)"$/.exec(String(answer.headers.etag ?? ''));
  return m ? Number(m[1]) : undefined;
};

/** JSON Merge Patch (RFC 7396) on a plain object, as the server applies it: what a PATCH should produce. */
export function mergePatch(target: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...target };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else if (typeof v === 'object' && !Array.isArray(v)) {
      const current = out[k];
      out[k] = mergePatch(current && typeof current === 'object' && !Array.isArray(current) ? (current as Record<string, unknown>) : {}, v as Record<string, unknown>);
    } else out[k] = v;
  }
  return out;
}

/** Deep equality of JSON values (key order ignored). */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a as object);
  const kb = Object.keys(b as object);
  return ka.length === kb.length && ka.every((k) => sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** Each browser step of a sign-in, with its final status and time (redirects on our server followed). */
export interface SignInStep {
  step: 'authorize' | 'login' | 'consent';
  status: number;
  ms: number;
  page: Page;
}

/**
 * A person signs in as a browser does (authorize → login form → consent if asked) and lands on
 * the app's redirect URI with a code. `onStep` sees every page. Returns the code and PKCE
 * verifier, or undefined when a page stopped the sign-in (an error page).
 */
export async function browserSignIn(
  base: string,
  clientId: string,
  username: string,
  scope: string,
  onStep: (step: SignInStep) => void = () => undefined,
): Promise<{ code: string; verifier: string } | undefined> {
  const agent = new UserAgent([REDIRECT_URI]);
  const verifier = oidc.randomPKCECodeVerifier();
  const url = new URL('/authorize', base);
  url.search = new URLSearchParams({
    client_id: clientId,
    response_type: 'code',
    redirect_uri: REDIRECT_URI,
    scope,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  }).toString();
  const timed = async (step: SignInStep['step'], work: () => Promise<Page>) => {
    const started = Date.now();
    const page = await work();
    onStep({ step, status: page.status, ms: Date.now() - started, page });
    return page;
  };
  let page = await timed('authorize', () => agent.open(url.href, { signal: AbortSignal.timeout(20_000) }));
  if (/name="password"/.test(page.html)) page = await timed('login', () => agent.submit(page, /\/login$/, { username, password: PASSWORD }));
  if (/name="decision"/.test(page.html)) page = await timed('consent', () => agent.submit(page, /\/consent$/, { decision: 'allow' }));
  if (!page.url.startsWith(REDIRECT_URI)) return undefined;
  const code = new URL(page.url).searchParams.get('code');
  return code ? { code, verifier } : undefined;
}

/** The app's callback: the code for tokens at /token. */
export const redeemCode = (base: string, client: Seeded['client'], code: string, verifier: string, timeoutMs?: number) =>
  oauthPost(base, '/token', client, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier }, timeoutMs);

export { waitFor };

/** Runs `work` over `items` with at most `concurrency` at once. */
export async function inParallel<T, R>(items: T[], concurrency: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await work(items[i]!);
      }
    }),
  );
  return results;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * An HTTP/1.1 connection driven by hand, for requests that must stay in flight: write the head,
 * wait for "100 Continue" (proof that the server has the request), stream the body when the test
 * says so. Keeps the connection open after an answer, as a load balancer's pool does.
 */
export class RawConnection {
  private buffer = Buffer.alloc(0);
  private readonly parsed: RawResponse[] = [];
  private wake: () => void = () => undefined;
  closed = false;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, d]);
      this.parse();
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.parse(true);
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  static open(port: number, host = '127.0.0.1'): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, host);
      socket.once('connect', () => resolve(new RawConnection(socket)));
      socket.once('error', reject);
    });
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** The next answer on this connection (an interim 100 Continue counts as one). */
  async next(timeoutMs = 20_000): Promise<RawResponse> {
    const deadline = Date.now() + timeoutMs;
    while (!this.parsed.length) {
      if (this.closed) throw new Error('the server closed the connection without an answer');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no answer within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return this.parsed.shift()!;
  }

  /** Resolves true once the server has closed the connection, false if it is still open after `timeoutMs`. */
  async closedWithin(timeoutMs: number): Promise<boolean> {
    return waitFor(() => this.closed, timeoutMs, 20);
  }

  destroy(): void {
    this.socket.destroy();
  }

  private parse(atClose = false): void {
    for (;;) {
      const end = this.buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      const [statusLine, ...lines] = this.buffer.subarray(0, end).toString('latin1').split('\r\n');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')?.[1]);
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      let rest = this.buffer.subarray(end + 4);
      let body: Buffer;
      if (status >= 100 && status < 200) body = Buffer.alloc(0);
      else if (headers['content-length'] !== undefined) {
        const length = Number(headers['content-length']);
        if (rest.length < length) return;
        body = rest.subarray(0, length);
        rest = rest.subarray(length);
      } else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
        const chunks: Buffer[] = [];
        let offset = 0;
        for (;;) {
          const lineEnd = rest.indexOf('\r\n', offset);
          if (lineEnd < 0) return;
          const size = parseInt(rest.subarray(offset, lineEnd).toString('latin1'), 16);
          if (rest.length < lineEnd + 2 + size + 2) return;
          chunks.push(rest.subarray(lineEnd + 2, lineEnd + 2 + size));
          offset = lineEnd + 2 + size + 2;
          if (size === 0) break;
        }
        body = Buffer.concat(chunks);
        rest = rest.subarray(offset);
      } else if (status === 204 || status === 304) body = Buffer.alloc(0);
      else {
        if (!atClose) return; // the body runs to the end of the connection
        body = rest;
        rest = Buffer.alloc(0);
      }
      this.parsed.push({ status, headers, body: body.toString('utf8') });
      this.buffer = rest;
    }
  }
}

/** Is anything accepting connections on `port`? false once connecting is refused. */
export function accepts(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, host);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
