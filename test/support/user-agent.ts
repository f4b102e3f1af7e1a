/**
 * A person's browser, over plain HTTP: keeps cookies, follows redirects on our server, stops
 * when sent to the application's redirect URI, and fills in forms by their field names.
 */
import { findForm, FORM_CONTENT_TYPE } from './http.ts';

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

  /** The value of the cookie `name` this browser holds, if it holds one. */
  cookie(name: string): string | undefined {
    return this.cookies.get(name);
  }

  /** Every cookie this browser holds, as [name, value] pairs. */
  cookieEntries(): Array<[string, string]> {
    return [...this.cookies];
  }

  /** Plants a cookie, as an attacker with access to the browser (or a copied cookie jar) does. */
  setCookie(name: string, value: string): void {
    this.cookies.set(name, value);
  }

  /** The Cookie header this browser sends with its next request ("" when it holds none). */
  cookieHeader(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  async request(url: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.cookies.size) headers.set('cookie', this.cookieHeader());
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
    const form = findForm(page, { action });
    for (const [k, v] of Object.entries(fields)) form.fields.set(k, v);
    return this.open(form.target, { method: 'POST', headers: FORM_CONTENT_TYPE, body: form.fields });
  }
}

/** The login page, as a person recognises it: a form asking for a password. */
export const isLoginPage = (page: Page): boolean => /name="password"/.test(page.html);
/** The consent page: Allow and Deny buttons. */
export const isConsentPage = (page: Page): boolean => /name="decision"/.test(page.html);

/** What a person saw on the way: the consent page, when one was shown, and where the browser landed. */
export interface SignInWalk {
  consent?: Page;
  landed: Page;
}

/** A person opens `url`, signs in with `username` and `password` when asked, and allows when asked. */
export async function signInAllowingConsent(agent: UserAgent, url: string, username: string, password: string, headers: Record<string, string> = {}): Promise<SignInWalk> {
  let page = await agent.open(url, { headers });
  if (isLoginPage(page)) page = await agent.submit(page, /\/login$/, { username, password });
  let consent: Page | undefined;
  if (isConsentPage(page)) {
    consent = page;
    page = await agent.submit(page, /\/consent$/, { decision: 'allow' });
  }
  return { consent, landed: page };
}

/** A person signs in at /account with their username and password; returns the account page. */
export async function signInToAccount(agent: UserAgent, base: string, username: string, password: string): Promise<Page> {
  const login = await agent.open(`${base}/account`);
  return agent.submit(login, /\/account\/login$/, { username, password });
}
