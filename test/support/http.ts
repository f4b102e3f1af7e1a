/**
 * HTTP as the tests speak it: client credentials in a Basic header, urlencoded form posts, and
 * the forms on a rendered page. One copy of each, so a test that means to send something odd
 * says so by calling the raw variant.
 */
import type { Page, UserAgent } from './user-agent.ts';

/** application/x-www-form-urlencoded, as RFC 6749 appendix B says (space as "+"). */
const formUrlEncode = (value: string) => new URLSearchParams([['', value]]).toString().slice(1);

/**
 * `Authorization: Basic …` for client_secret_basic as RFC 6749 §2.3.1 says: the client id and the
 * secret each form-urlencoded, then joined by ":" and base64-encoded.
 */
export const basicAuth = (id: string, secret: string): string => `Basic ${Buffer.from(`${formUrlEncode(id)}:${formUrlEncode(secret)}`).toString('base64')}`;

/**
 * `Authorization: Basic …` with `id:secret` base64-encoded as given, not form-urlencoded first:
 * only for a test that means to send such a header (a hand-made one, a user's password, a
 * tampered secret).
 */
export const rawBasicAuth = (id: string, secret: string): string => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

/** The content type of a form post. */
export const FORM_CONTENT_TYPE = { 'content-type': 'application/x-www-form-urlencoded' } as const;

/** POSTs a form body (urlencoded) without following the answer's redirect. */
export async function postForm(
  agent: UserAgent,
  url: string,
  fields: Record<string, string>,
): Promise<{ status: number; location: string | null; html: string }> {
  const res = await agent.request(url, { method: 'POST', headers: FORM_CONTENT_TYPE, body: new URLSearchParams(fields) });
  return { status: res.status, location: res.headers.get('location'), html: await res.text() };
}

function attr(tag: string, name: string): string | undefined {
  return new RegExp(`\\b${name}="([^"]*)"`).exec(tag)?.[1];
}

export function decodeEntities(s: string): string {
  return s
    .replace(/&amp;/g, '&')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&#x2F;/g, '/');
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
  return agent.open(form.target, { method: 'POST', headers: FORM_CONTENT_TYPE, body: form.fields });
}

/**
 * Submits the form whose action matches `action` as a forged or tampered request would: with
 * `fields` set and the fields named in `omit` (say, the CSRF token) left out.
 */
export async function submitTampered(agent: UserAgent, page: Page, action: RegExp, fields: Record<string, string>, omit: string[] = []): Promise<Page> {
  const form = findForm(page, { action });
  for (const [k, v] of Object.entries(fields)) form.fields.set(k, v);
  for (const name of omit) form.fields.delete(name);
  return agent.open(form.target, { method: 'POST', headers: FORM_CONTENT_TYPE, body: form.fields });
}
