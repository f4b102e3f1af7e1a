import Router from '@koa/router';
import type Koa from 'koa';
import type { AccountsService } from '../accounts/service.ts';
import type { ApiKeysService } from '../apikeys/service.ts';
import { AddressThrottledCredential, CREDENTIAL_THROTTLE, CredentialThrottle } from '../accounts/throttle.ts';
import { GatehouseError, LOCKS, LockedOutError } from '../errors.ts';
import type { AccessTokenVerifier } from '../oidc/index.ts';
import { applyMergePatch, type Json } from './merge-patch.ts';
import type { Precondition, UserdataService, UserDocument } from './service.ts';

export interface UserdataDeps {
  /** Checks a user's access token as oidc-provider does (src/oidc/). */
  verifyAccessToken: AccessTokenVerifier;
  /** Whether the user signed in to the client and that grant still lives (src/oidc/). */
  hasLiveGrant(sub: string, clientId: string): Promise<boolean>;
  accounts: AccountsService;
  apiKeys: ApiKeysService;
  userdata: UserdataService;
  maxBytes: number;
  /** Counts wrong API keys per address. */
  throttle: CredentialThrottle;
  apiKeyGuard?: AddressThrottledCredential;
}

interface Caller {
  sub: string;
  clientId: string;
  canRead: boolean;
  canWrite: boolean;
}

const forbidden = () => new GatehouseError(403, 'forbidden', "this client may not reach that user's data");

/**
 * Who is calling, and on whose document: an API key on /userdata/:sub (its app's document of
 * that user), or the user's own token on /userdata/me (the token's app's document).
 */
async function authorize(ctx: Koa.Context, deps: UserdataDeps, sub: string): Promise<Caller> {
  if (sub === 'me') {
    if (!/^(Bearer|DPoP) ([\x21-\x7E]+)$/i.test(ctx.get('authorization'))) {
      ctx.set('www-authenticate', 'Bearer realm="gatehouse", scope="userdata"');
      throw new GatehouseError(401, 'invalid_token', '/userdata/me needs Authorization: Bearer <access token with the userdata scope>');
    }
    // The one token check refuses a disabled user's token too (as /userinfo does).
    const token = await deps.verifyAccessToken(ctx, { scope: 'userdata' });
    return { sub: token.accountId, clientId: token.clientId, canRead: true, canWrite: true };
  }

  const presented = ctx.get('x-api-key');
  if (!presented) throw new GatehouseError(401, 'invalid_api_key', 'send an API key in the X-API-Key header');
  // Wrong keys are counted per address; while it is locked no key is checked, so the answer
  // says nothing about the key.
  const key = await deps.apiKeyGuard!.verify(ctx.ip, () => deps.apiKeys.verify(presented), (seconds) => new LockedOutError(LOCKS.apiKeys, seconds));
  if (!key) throw new GatehouseError(401, 'invalid_api_key', 'the API key is unknown or revoked');
  const canRead = key.scopes.includes('userdata:read');
  const canWrite = key.scopes.includes('userdata:write');
  const needsWrite = ctx.method !== 'GET' && ctx.method !== 'HEAD';
  if (needsWrite ? !canWrite : !canRead) {
    throw new GatehouseError(403, 'insufficient_scope', `this API key lacks the ${needsWrite ? 'userdata:write' : 'userdata:read'} scope`);
  }
  // The same answer whether the user does not exist, never signed in to this client, or is
  // disabled: a client learns nothing about users it may not see.
  const user = await deps.accounts.findActive(sub);
  if (!user || !(await deps.hasLiveGrant(sub, key.clientId))) throw forbidden();
  return { sub, clientId: key.clientId, canRead, canWrite };
}

function parsePrecondition(header: string | undefined): Precondition {
  if (!header) return undefined;
  if (header.trim() === '*') return '*';
  // Strong comparison (RFC 9110): weak validators never match If-Match.
  return [...header.matchAll(/(W\/)?"(\d+)"/g)].filter((m) => !m[1]).map((m) => Number(m[2]));
}

async function readJsonObject(ctx: Koa.Context, maxBytes: number, contentType: string): Promise<Record<string, Json>> {
  if (!ctx.is(contentType)) {
    throw new GatehouseError(415, 'unsupported_media_type', `send the document as ${contentType}`);
  }
  const declared = Number(ctx.get('content-length') || 0);
  if (declared > maxBytes) throw new GatehouseError(413, 'document_too_large', `the body is larger than ${maxBytes} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) throw new GatehouseError(413, 'document_too_large', `the body is larger than ${maxBytes} bytes`);
    chunks.push(chunk as Buffer);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks)));
  } catch {
    throw new GatehouseError(400, 'invalid_json', 'the body is not valid UTF-8 JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new GatehouseError(400, 'invalid_document', 'the document must be a JSON object');
  }
  if (deeperThan(parsed, MAX_DOCUMENT_DEPTH)) {
    throw new GatehouseError(400, 'invalid_document', `the document is nested deeper than ${MAX_DOCUMENT_DEPTH} levels`);
  }
  return parsed as Record<string, Json>;
}

/**
 * Objects and arrays nested deeper than this are refused: a few thousand levels fit in 64 KiB
 * and would overflow the stack of JSON.stringify and of the merge patch (a 500).
 */
const MAX_DOCUMENT_DEPTH = 100;

/** Whether `value` nests objects or arrays more than `limit` levels deep (iteratively: no recursion to overflow). */
function deeperThan(value: unknown, limit: number): boolean {
  const pending: Array<[unknown, number]> = [[value, 1]];
  while (pending.length) {
    const [v, depth] = pending.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth > limit) return true;
    for (const child of Object.values(v)) pending.push([child, depth + 1]);
  }
  return false;
}

function respond(ctx: Koa.Context, doc: UserDocument, status = 200) {
  ctx.status = status;
  ctx.set('etag', `"${doc.version}"`);
  ctx.set('cache-control', 'no-store');
  if (status !== 204) ctx.body = doc.document;
}

/** GET | PUT | PATCH | DELETE /userdata/:sub (X-API-Key) and /userdata/me (Bearer). */
export function userdataRoutes(given: UserdataDeps): Router {
  const deps: UserdataDeps = { ...given, apiKeyGuard: new AddressThrottledCredential(given.throttle, CredentialThrottle.apiKeySubject, CREDENTIAL_THROTTLE.lockApiKeyAddressAfter) };
  const router = new Router({ prefix: '/userdata' });
  const sub = (ctx: Koa.Context) => {
    const value = String(ctx.params.sub);
    if (value.length > 255) throw new GatehouseError(400, 'invalid_request', 'the user id is too long');
    return value;
  };

  router.get('/:sub', async (ctx) => {
    const caller = await authorize(ctx, deps, sub(ctx));
    const doc = await deps.userdata.get(caller.sub, caller.clientId);
    const inm = ctx.get('if-none-match');
    if (inm && (inm.trim() === '*' || [...inm.matchAll(/"(\d+)"/g)].some((m) => Number(m[1]) === doc.version))) {
      ctx.status = 304;
      ctx.set('etag', `"${doc.version}"`);
      return;
    }
    respond(ctx, doc);
  });

  router.put('/:sub', async (ctx) => {
    const caller = await authorize(ctx, deps, sub(ctx));
    const replacement = await readJsonObject(ctx, deps.maxBytes, 'application/json');
    respond(ctx, await deps.userdata.write(caller.sub, caller.clientId, parsePrecondition(ctx.get('if-match')), () => replacement));
  });

  router.patch('/:sub', async (ctx) => {
    const caller = await authorize(ctx, deps, sub(ctx));
    const patch = await readJsonObject(ctx, deps.maxBytes, 'application/merge-patch+json');
    respond(ctx, await deps.userdata.write(caller.sub, caller.clientId, parsePrecondition(ctx.get('if-match')), (current) => applyMergePatch(current, patch)));
  });

  router.delete('/:sub', async (ctx) => {
    const caller = await authorize(ctx, deps, sub(ctx));
    respond(ctx, await deps.userdata.write(caller.sub, caller.clientId, parsePrecondition(ctx.get('if-match')), () => ({})), 204);
  });

  // Another method (POST …) gets the JSON error of this API, not the router's plain-text 405;
  // OPTIONS is left to the router, which lists the methods.
  router.all('/:sub', async (ctx, next) => {
    if (ctx.method === 'OPTIONS') return next();
    ctx.set('allow', 'GET, HEAD, PUT, PATCH, DELETE');
    throw new GatehouseError(405, 'method_not_allowed', 'use GET, PUT, PATCH or DELETE on /userdata/{sub}');
  });

  return router;
}
