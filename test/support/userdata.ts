import http from 'node:http';
import { runCli } from './cli.ts';
import type { TestGatehouse } from './gatehouse.ts';
import { hashPassword } from '../../src/accounts/passwords.ts';
import { oidc, REDIRECT_URI, relyingParty, signInAndAllow, type RegisteredClient } from './relying-party.ts';
import { UserAgent } from './user-agent.ts';
import { readAnswer } from './http-answer.ts';

/** `api-keys create` through the CLI, as an operator does; the parsed --json output. */
export async function createApiKeyWithCli(gh: TestGatehouse, clientId: string, scopes: string[]): Promise<{ key: string; id: string; scopes: string[] } & Record<string, unknown>> {
  const res = await runCli(['api-keys', 'create', '--client', clientId, ...scopes.flatMap((s) => ['--scope', s]), '--json'], gh.env);
  if (res.code !== 0) throw new Error(res.stderr);
  return res.json();
}

/**
 * A person signs in to `client` and allows it (the grant Gatehouse keeps for that pair), and the
 * app redeems the code: returns the access token.
 */
export async function signInToApp(gh: TestGatehouse, client: RegisteredClient, username: string, password: string, scope = 'openid userdata'): Promise<{ accessToken: string; scope: string | undefined }> {
  const rp = await relyingParty(gh, client, 'basic');
  const verifier = oidc.randomPKCECodeVerifier();
  const url = oidc.buildAuthorizationUrl(rp, {
    redirect_uri: REDIRECT_URI,
    scope,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  });
  const landed = await signInAndAllow(new UserAgent([REDIRECT_URI]), url.href, username, password);
  if (!landed.url.startsWith(REDIRECT_URI)) throw new Error(`sign-in did not reach the app: ${landed.url} (${landed.status})\n${landed.html.slice(0, 500)}`);
  const tokens = await oidc.authorizationCodeGrant(rp, new URL(landed.url), { pkceCodeVerifier: verifier });
  return { accessToken: tokens.access_token, scope: tokens.scope };
}

const PASSWORD = 'userdata-tests-correct-horse';
let passwordHash: Promise<string> | undefined;

/** At most two sign-ins at once: each costs a scrypt (32 MiB, libuv's thread pool, which DNS lookups share). */
let signingIn = 0;
const waiting: Array<() => void> = [];
async function oneOfTwo<T>(work: () => Promise<T>): Promise<T> {
  if (signingIn >= 2) await new Promise<void>((resolve) => waiting.push(resolve));
  signingIn++;
  try {
    return await work();
  } finally {
    signingIn--;
    waiting.shift()?.();
  }
}

/**
 * A new person who signed in to each of `apps` and allowed it (scope `scope`). Created through
 * the accounts service in-process; all share one password hash, computed once, so each person
 * costs one scrypt (at sign-in) instead of two.
 */
export async function userWhoAuthorized(gh: TestGatehouse, username: string, apps: RegisteredClient[], scope = 'openid userdata'): Promise<{ sub: string; tokens: string[] }> {
  passwordHash ??= hashPassword(PASSWORD);
  const user = await gh.services.accounts.create({ username, email: `${username}@example.com` });
  await gh.services.db('users').where({ id: user.id }).update({ password_hash: await passwordHash });
  const tokens: string[] = [];
  for (const app of apps) tokens.push((await oneOfTwo(() => signInToApp(gh, app, username, PASSWORD, scope))).accessToken);
  return { sub: user.id, tokens };
}

/**
 * gh.url by IP: no name lookup, which runs in libuv's thread pool and can wait there behind
 * password hashing long enough for a connect timeout on a busy machine.
 */
export const direct = (gh: TestGatehouse) => gh.url.replace('//localhost:', '//127.0.0.1:');

export interface Answer {
  status: number;
  headers: Headers;
  text: string;
  /** The body parsed as JSON (undefined when empty or not JSON). */
  json: any;
}

export interface Call {
  method?: 'GET' | 'PUT' | 'PATCH' | 'DELETE' | 'HEAD';
  key?: string;
  token?: string;
  /** A value is sent as JSON; a string or bytes as they are. */
  body?: unknown;
  contentType?: string;
  headers?: Record<string, string>;
}

/**
 * One request to /userdata/<who> as an app's backend makes it. Each request goes over a
 * connection of its own (node:http, no keep-alive pool): on this busy machine, reusing an idle
 * pooled connection races with the server's keep-alive timeout (ECONNRESET), and a server that
 * refuses a body before reading it all closes that connection under requests sharing it.
 */
export async function userdata(gh: TestGatehouse, who: string, call: Call = {}): Promise<Answer> {
  const method = call.method ?? 'GET';
  const headers: Record<string, string> = { ...call.headers };
  if (call.key !== undefined) headers['x-api-key'] = call.key;
  if (call.token !== undefined) headers.authorization = `Bearer ${call.token}`;
  let body: Buffer | undefined;
  if (call.body !== undefined) {
    body = typeof call.body === 'string' ? Buffer.from(call.body) : call.body instanceof Uint8Array ? Buffer.from(call.body) : Buffer.from(JSON.stringify(call.body));
    headers['content-type'] = call.contentType ?? (method === 'PATCH' ? 'application/merge-patch+json' : 'application/json');
  }
  try {
    return await sendOnOwnConnection(gh, `/userdata/${who}`, { method, headers, body });
  } catch (err) {
    throw new Error(`${method} /userdata/${who}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * A request over a connection of its own, closed after the answer. With a body and without
 * `chunked`, Content-Length is sent; with `chunked`, the body goes chunked in 16 KiB pieces.
 * Header values may be anything Node sends (an empty X-API-Key included).
 */
export function sendOnOwnConnection(gh: TestGatehouse, path: string, init: { method: string; headers: Record<string, string>; body?: Buffer; chunked?: boolean }): Promise<Answer> {
  const url = new URL(path, direct(gh));
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...init.headers };
    if (init.body && !init.chunked) headers['content-length'] = init.body.length;
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: init.method, headers, agent: false }, (res) => {
      readAnswer(res).then(({ status, headers: raw, text, json }) => {
        const responseHeaders = new Headers();
        for (const [k, v] of Object.entries(raw)) if (typeof v === 'string') responseHeaders.set(k, v);
        resolve({ status, headers: responseHeaders, text, json });
      }, reject);
    });
    req.on('error', reject);
    const body = init.body;
    if (!body) return void req.end();
    let offset = 0;
    const write = () => {
      while (offset < body.length) {
        const more = req.write(body.subarray(offset, offset + 16 * 1024));
        offset += 16 * 1024;
        if (!more) return void req.once('drain', write);
      }
      req.end();
    };
    write();
  });
}
