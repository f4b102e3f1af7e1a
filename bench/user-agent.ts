/**
 * A person's browser over plain HTTP, trimmed for the benchmark (after test/support/user-agent.ts,
 * kept here so the bench does not break while the tests' helpers change): keeps cookies, follows
 * redirects until a page renders or the application's redirect URI is reached, and submits forms
 * with their hidden fields.
 */
import { createHash, randomBytes } from 'node:crypto';

export interface Page {
  url: string;
  status: number;
  html: string;
}

export class UserAgent {
  private readonly cookies = new Map<string, string>();

  constructor(private readonly stopAt: string) {}

  private async request(url: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.cookies.size) headers.set('cookie', [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '));
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      const expired =
        attrs.some((a) => /^\s*expires=/i.test(a) && new Date(a.split('=')[1]!).getTime() < Date.now()) || attrs.some((a) => /^\s*max-age=0/i.test(a));
      if (expired || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return res;
  }

  async open(url: string, init: RequestInit = {}): Promise<Page> {
    let res = await this.request(url, init);
    let current = url;
    for (let hops = 0; hops < 20 && res.status >= 300 && res.status < 400; hops++) {
      await res.arrayBuffer();
      const location = new URL(res.headers.get('location')!, current).toString();
      current = location;
      if (location.startsWith(this.stopAt)) return { url: location, status: res.status, html: '' };
      res = await this.request(location);
    }
    return { url: current, status: res.status, html: await res.text() };
  }

  /** Submits the form whose action matches `action`, with its hidden fields plus `fields`. */
  async submit(page: Page, action: RegExp, fields: Record<string, string>): Promise<Page> {
    const form = [...page.html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/g)].find((m) => action.test(decodeEntities(attr(m[1]!, 'action') ?? '')));
    if (!form) throw new Error(`no form with action ${action} on ${page.url} (${page.status}):\n${page.html.slice(0, 400)}`);
    const body = new URLSearchParams();
    for (const input of form[2]!.matchAll(/<input\b([^>]*)>/g)) {
      const name = attr(input[1]!, 'name');
      if (name && attr(input[1]!, 'type') === 'hidden') body.set(name, decodeEntities(attr(input[1]!, 'value') ?? ''));
    }
    for (const [k, v] of Object.entries(fields)) body.set(k, v);
    const target = new URL(decodeEntities(attr(form[1]!, 'action')!), page.url).toString();
    return this.open(target, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
  }
}

function attr(tag: string, name: string): string | undefined {
  return new RegExp(`\\b${name}="([^"]*)"`).exec(tag)?.[1];
}

function decodeEntities(s: string): string {
  return s
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&#x27;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&#x2F;/g, '/')
    .replace(/&amp;/g, '&');
}

export const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

/** How a provider's sign-in pages are filled in. */
export interface SignInForms {
  authorizePath: string;
  tokenPath: string;
  /** Form action of the login page, and its fields for a username and password. */
  login: { action: RegExp; fields: (username: string, password: string) => Record<string, string> };
  /** Form action of the consent page (the Allow choice). */
  consent: { action: RegExp; fields: Record<string, string> };
}

export interface SignInClient {
  clientId: string;
  clientSecret: string;
  redirectUri: string;
  scope: string;
}

export interface SignInOutcome {
  accessToken: string;
  consented: boolean;
}

/**
 * One complete sign-in, as a web app and a person do it: authorize (PKCE S256, state, nonce) →
 * login form → consent form (if asked) → code at the redirect URI → token exchange with HTTP Basic.
 */
export async function signIn(issuer: string, forms: SignInForms, client: SignInClient, username: string, password: string): Promise<SignInOutcome> {
  const agent = new UserAgent(client.redirectUri);
  const verifier = randomBytes(32).toString('base64url');
  const state = randomBytes(16).toString('base64url');
  const authorize = new URL(forms.authorizePath, issuer);
  authorize.search = new URLSearchParams({
    client_id: client.clientId,
    response_type: 'code',
    redirect_uri: client.redirectUri,
    scope: client.scope,
    state,
    nonce: randomBytes(16).toString('base64url'),
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  }).toString();

  let page = await agent.open(authorize.href);
  if (/name="password"/.test(page.html)) page = await agent.submit(page, forms.login.action, forms.login.fields(username, password));
  let consented = false;
  if (!page.url.startsWith(client.redirectUri) && page.html) {
    page = await agent.submit(page, forms.consent.action, forms.consent.fields);
    consented = true;
  }
  if (!page.url.startsWith(client.redirectUri)) throw new Error(`sign-in of ${username} ended at ${page.url} (${page.status}): ${page.html.replace(/\s+/g, ' ').slice(0, 300)}`);
  const params = new URL(page.url).searchParams;
  const code = params.get('code');
  if (!code || params.get('state') !== state) throw new Error(`sign-in of ${username}: no code at the redirect URI: ${page.url}`);

  const res = await fetch(new URL(forms.tokenPath, issuer), {
    method: 'POST',
    headers: { authorization: basic(client.clientId, client.clientSecret), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: client.redirectUri, code_verifier: verifier }),
  });
  const body = (await res.json()) as { access_token?: string; id_token?: string };
  if (res.status !== 200 || !body.access_token || !body.id_token) throw new Error(`code exchange for ${username} failed: ${res.status} ${JSON.stringify(body)}`);
  return { accessToken: body.access_token, consented };
}
