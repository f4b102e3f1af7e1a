import type { TestGatehouse } from './gatehouse.ts';
import { basicAuth } from './http.ts';

export interface ApiResponse {
  status: number;
  headers: Headers;
  text: string;
  /** The parsed JSON body, or undefined for an empty or non-JSON body. */
  body: any;
}

export interface ApiRequest {
  /** A value to send as JSON, or (with `raw`) the exact body text. */
  body?: unknown;
  raw?: string;
  contentType?: string;
  /** The admin token to send as a Bearer token; `null` sends no Authorization header. */
  token?: string | null;
  authorization?: string;
}

/** A script calling /admin/api over real HTTP, as curl does: a Bearer token, JSON in and out. */
export function adminApi(gh: TestGatehouse, defaultToken: string) {
  return async function call(method: string, path: string, req: ApiRequest = {}): Promise<ApiResponse> {
    const headers: Record<string, string> = { accept: 'application/json' };
    const token = req.token === undefined ? defaultToken : req.token;
    if (req.authorization !== undefined) headers.authorization = req.authorization;
    else if (token !== null) headers.authorization = `Bearer ${token}`;
    let payload: string | undefined;
    if (req.raw !== undefined) payload = req.raw;
    else if (req.body !== undefined) payload = JSON.stringify(req.body);
    if (payload !== undefined) headers['content-type'] = req.contentType ?? 'application/json';
    const res = await fetch(`${gh.url}/admin/api${path}`, { method, headers, body: payload });
    const text = await res.text();
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    return { status: res.status, headers: res.headers, text, body };
  };
}

export type AdminApi = ReturnType<typeof adminApi>;

/** POST /token with the client credentials grant and HTTP Basic: the status and OAuth body. */
export async function clientCredentialsToken(gh: TestGatehouse, clientId: string, clientSecret: string): Promise<{ status: number; body: Record<string, any> }> {
  const res = await fetch(`${gh.url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(clientId, clientSecret) },
    body: new URLSearchParams({ grant_type: 'client_credentials' }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}
