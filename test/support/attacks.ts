/**
 * Helpers for the attack tests (test/attacks-*.test.ts): an operator's browser over HTTP, a
 * browser behind a TLS-terminating proxy, a snapshot of everything an operator can change (to
 * show a refused request changed nothing), and the routes a router serves.
 */
import type Router from '@koa/router';
import type { TestGatehouse } from './gatehouse.ts';
import { findForm } from './http.ts';
import { UserAgent, type Page } from './user-agent.ts';

/** An operator signed in to /admin over HTTP, as a browser does it: the agent and the session's CSRF token. */
export async function operatorAgent(gh: TestGatehouse, username: string, password: string, agent = new UserAgent()): Promise<{ agent: UserAgent; csrf: string; page: Page }> {
  const login = await agent.open(`${gh.url}/admin/login`);
  const page = await agent.submit(login, /\/admin\/login$/, { username, password });
  if (!page.url.endsWith('/admin/clients')) throw new Error(`admin sign-in failed: ${page.url} (${page.status})\n${page.html.slice(0, 500)}`);
  return { agent, csrf: findForm(page, { action: /\/admin\/logout$/ }).fields.get('csrf')!, page };
}

/**
 * Everything an operator can change, as rows: clients, users, API keys, admin tokens, grants,
 * user documents, scopes, resources, identity providers and the audit log. Sessions and throttle counters are left out (reading a
 * page touches them).
 */
export async function snapshot(gh: TestGatehouse): Promise<string> {
  const db = gh.services.db;
  const [clients, users, apiKeys, adminTokens, grants, userdata, scopes, resources, idps, clientIdps, audit] = await Promise.all([
    db('clients').select('*').orderBy('client_id'),
    db('users').select('*').orderBy('id'),
    db('api_keys').select('*').orderBy('id'),
    db('admin_tokens').select('id', 'name', 'secret_hash', 'created_at', 'revoked_at').orderBy('id'),
    db('oidc_payloads').select('id', 'payload').where({ model: 'Grant' }).orderBy('id'),
    db('userdata').select('*').orderBy(['sub', 'client_id']),
    db('scopes').select('*').orderBy('name'),
    db('resources').select('*').orderBy('audience'),
    db('identity_providers').select('*').orderBy('name'),
    db('client_identity_providers').select('*').orderBy(['client_id', 'idp_name']),
    db('audit_log').count({ n: '*' }).first(),
  ]);
  return JSON.stringify({ clients, users, apiKeys, adminTokens, grants, userdata, scopes, resources, idps, clientIdps, audit });
}

/**
 * The routes (method and full path) a @koa/router serves: middleware left out, and so are the
 * catch-alls registered with router.all (every method, CONNECT included) that only answer
 * 404/405 for what no route serves.
 */
export function routesOf(router: Router<any, any>): Array<{ method: string; path: string }> {
  return router.stack
    .filter((layer) => layer.methods.length > 0 && !layer.methods.includes('CONNECT'))
    .flatMap((layer) => layer.methods.filter((m) => m !== 'HEAD').map((method) => ({ method, path: String(layer.path) })));
}

/**
 * A browser reaching Gatehouse through a TLS-terminating proxy at `publicOrigin` (https): each
 * request goes to the test server with X-Forwarded-Proto/Host (and For, when given), and every
 * Set-Cookie line seen is kept.
 */
export class ProxiedAgent extends UserAgent {
  readonly setCookies: string[] = [];

  constructor(
    private readonly gh: TestGatehouse,
    private readonly publicOrigin: string,
    stopAt: string[] = [],
    private readonly forwardedFor?: string,
  ) {
    super(stopAt);
  }

  override async request(url: string, init: RequestInit = {}): Promise<Response> {
    const target = url.startsWith(this.publicOrigin) ? this.gh.url + url.slice(this.publicOrigin.length) : url;
    const headers = new Headers(init.headers);
    headers.set('x-forwarded-proto', 'https');
    headers.set('x-forwarded-host', new URL(this.publicOrigin).host);
    if (this.forwardedFor) headers.set('x-forwarded-for', this.forwardedFor);
    const res = await super.request(target, { ...init, headers });
    this.setCookies.push(...res.headers.getSetCookie());
    return res;
  }
}

/** The attributes of a Set-Cookie line: its name, and lower-cased attribute names and values. */
export function parseSetCookie(line: string): { name: string; attributes: Map<string, string> } {
  const [pair, ...attrs] = line.split(';');
  const attributes = new Map<string, string>();
  for (const a of attrs) {
    const [k, ...v] = a.trim().split('=');
    attributes.set(k!.toLowerCase(), v.join('=').toLowerCase());
  }
  return { name: pair!.slice(0, pair!.indexOf('=')).trim(), attributes };
}
