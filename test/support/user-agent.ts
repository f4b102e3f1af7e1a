/**
 * A person's browser, over plain HTTP: keeps cookies, follows redirects on our server, stops
 * when sent to the application's redirect URI, and fills in forms by their field names.
 */
export interface Page {
  url: string;
  status: number;
  html: string;
  headers: Headers;
}

export class UserAgent {
  private readonly cookies = new Map<string, string>();

  constructor(private readonly stopAt: string[] = []) {}

  cookieNames(): string[] {
    return [...this.cookies.keys()];
  }

  cookieValues(): string[] {
    return [...this.cookies.values()];
  }

  async request(url: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.cookies.size) headers.set('cookie', [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '));
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      const expired = attrs.some((a) => /^\s*expires=/i.test(a) && new Date(a.split('=')[1]!).getTime() < Date.now()) || attrs.some((a) => /^\s*max-age=0/i.test(a));
      if (expired || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return res;
  }

  /** GETs `url` and follows redirects until a page renders or the app's redirect URI is reached. */
  async open(url: string, init: RequestInit = {}): Promise<Page> {
    let res = await this.request(url, init);
    let current = url;
    for (let hops = 0; hops < 20 && res.status >= 300 && res.status < 400; hops++) {
      const location = new URL(res.headers.get('location')!, current).toString();
      current = location;
      if (this.stopAt.some((prefix) => location.startsWith(prefix))) {
        return { url: location, status: res.status, html: '', headers: res.headers };
      }
      res = await this.request(location);
    }
    return { url: current, status: res.status, html: await res.text(), headers: res.headers };
  }

  /** Submits the form on `page` whose action matches `action`, with its hidden fields plus `fields`. */
  async submit(page: Page, action: RegExp, fields: Record<string, string>): Promise<Page> {
    const form = [...page.html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/g)].find((m) => action.test(attr(m[1]!, 'action') ?? ''));
    if (!form) throw new Error(`no form with action ${action} on ${page.url}:\n${page.html.slice(0, 500)}`);
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
  return s.replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&#x2F;/g, '/');
}

/** A form on a page, found by its id or its action: where it posts and the hidden fields it carries. */
export interface FoundForm {
  target: string;
  fields: URLSearchParams;
}

export function findForm(page: Page, by: { id: string } | { action: RegExp }): FoundForm {
  const form = [...page.html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/g)].find((m) =>
    'id' in by ? attr(m[1]!, 'id') === by.id : by.action.test(attr(m[1]!, 'action') ?? ''),
  );
  if (!form) throw new Error(`no form ${'id' in by ? `#${by.id}` : `with action ${by.action}`} on ${page.url}:\n${page.html.slice(0, 500)}`);
  const fields = new URLSearchParams();
  for (const input of form[2]!.matchAll(/<input\b([^>]*)>/g)) {
    const name = attr(input[1]!, 'name');
    if (name && attr(input[1]!, 'type') === 'hidden') fields.set(name, decodeEntities(attr(input[1]!, 'value') ?? ''));
  }
  return { target: new URL(decodeEntities(attr(form[1]!, 'action') ?? page.url), page.url).toString(), fields };
}

/**
 * Submits the form with id `id` (buttons may sit outside it, linked by form="id", as on the
 * sign-out page), with its hidden fields plus `fields`.
 */
export async function submitFormById(agent: UserAgent, page: Page, id: string, fields: Record<string, string>): Promise<Page> {
  const form = findForm(page, { id });
  for (const [k, v] of Object.entries(fields)) form.fields.set(k, v);
  return agent.open(form.target, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.fields });
}

/**
 * Submits the form whose action matches `action` as a forged or tampered request would: with
 * `fields` set and the fields named in `omit` (say, the CSRF token) left out.
 */
export async function submitTampered(agent: UserAgent, page: Page, action: RegExp, fields: Record<string, string>, omit: string[] = []): Promise<Page> {
  const form = findForm(page, { action });
  for (const [k, v] of Object.entries(fields)) form.fields.set(k, v);
  for (const name of omit) form.fields.delete(name);
  return agent.open(form.target, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form.fields });
}

/** The login page, as a person recognises it: a form asking for a password. */
export const isLoginPage = (page: Page): boolean => /name="password"/.test(page.html);
/** The consent page: Allow and Deny buttons. */
export const isConsentPage = (page: Page): boolean => /name="decision"/.test(page.html);
