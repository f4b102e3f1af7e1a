import type { TestGatehouse } from './gatehouse.ts';
import { createClient, createUser, startLoopbackGatehouse, type RegisteredClient } from './relying-party.ts';
import { signInAllowingConsent, UserAgent } from './user-agent.ts';

/**
 * What the seed documents (../shared/seeds/) do, as their readers do it: register an app the way
 * the document says, open its authorization link in a browser, sign in and allow, and send the
 * document's own token and API requests byte for byte. Hosts and ports are the test server's;
 * paths, parameters and headers are the document's.
 */

export const SUPERUSER = { username: 'admin', password: 'seed-superuser-correct-horse' };

export interface SeedServer {
  gh: TestGatehouse;
  /** The server's origin, where the seed writes http://localhost:8000. */
  origin: string;
}

/** A Gatehouse with one superuser, as `createsuperuser` left DOT, and DOT's URLs if `compatPaths` says so. */
export async function seedServer(compatPaths?: string): Promise<SeedServer> {
  const gh = await startLoopbackGatehouse({ env: compatPaths ? { GATEHOUSE_COMPAT_PATHS: compatPaths } : {} });
  await createUser(gh, SUPERUSER.username, SUPERUSER.password, ['--admin']);
  return { gh, origin: gh.config.issuer };
}

/** Registers the app as the seed does in DOT's admin; `clients create` options stand for its form. */
export function registerApp(server: SeedServer, args: string[]): Promise<RegisteredClient> {
  return createClient(server.gh, args);
}

export interface Landing {
  /** Where the browser was sent back to: the app's redirect URI with code (or error) and state. */
  url: URL;
  code: string | null;
  /** Whether the person was shown a consent page, and what it listed. */
  consentShown: string | undefined;
}

/**
 * The person follows the authorization link: signs in as the superuser and allows the app.
 * Returns where the browser landed, which must be the app's redirect URI.
 */
export async function followAuthorizationLink(link: string, redirectUri: string, headers: Record<string, string> = {}): Promise<Landing> {
  const { consent, landed: page } = await signInAllowingConsent(new UserAgent([redirectUri]), link, SUPERUSER.username, SUPERUSER.password, headers);
  if (!page.url.startsWith(redirectUri)) throw new Error(`the browser did not come back to ${redirectUri} but to ${page.url} (${page.status}):\n${page.html.slice(0, 600)}`);
  const url = new URL(page.url);
  return { url, code: url.searchParams.get('code'), consentShown: consent?.html };
}

export interface JsonAnswer {
  status: number;
  headers: Headers;
  body: any;
}

/** One HTTP request exactly as written in a seed (curl -X POST … -H … -d …): the status and JSON body. */
export async function send(url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<JsonAnswer> {
  const res = await fetch(url, { method: init.method ?? 'GET', headers: init.headers, body: init.body, redirect: 'manual' });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: kept as text for the assertion message
  }
  return { status: res.status, headers: res.headers, body };
}

/**
 * The Basic header as the seeds' tools build it: Postman and the walkthrough's Python join id and
 * secret with ":" and base64 them, without the form-encoding RFC 6749 §2.3.1 asks for.
 */
export const basicAsToolsWriteIt = (app: RegisteredClient): string => `Basic ${Buffer.from(`${app.clientId}:${app.clientSecret}`, 'utf8').toString('base64')}`;

/** A token-endpoint POST as Postman sends it: the client in a Basic header, the fields form-encoded. */
export const postmanTokenRequest = (url: string, app: RegisteredClient, fields: Record<string, string>): Promise<JsonAnswer> =>
  send(url, {
    method: 'POST',
    headers: { Authorization: basicAsToolsWriteIt(app), 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
  });

/** `curl -d a=b -d c=d` as curl sends it: fields joined with & and not re-encoded. */
export const curlData = (fields: Array<[string, string]>): string => fields.map(([k, v]) => `${k}=${v}`).join('&');

/** The scopes a consent page lists, in its order: each item of its list ends with "(scope)". */
export function scopesOnConsent(html: string | undefined): string[] {
  const list = html ? /<ul class="scopes">([\s\S]*?)<\/ul>/.exec(html)?.[1] : undefined;
  return list ? [...list.matchAll(/\(([^()\s]+)\)<\/span>/g)].map((m) => m[1]!) : [];
}
