import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Knex } from 'knex';
import { KnexAdapter } from '../../adapters/knex.ts';
import { nowInSeconds } from '../../adapters/payload-row.ts';
import { importedGrantPayload, importedRefreshTokenPayload } from './internals.ts';

/**
 * The queries over oidc-provider's stored artifacts that are not the adapter contract: a user's
 * grants and sessions, a client's grants, sweeping, importing. Beside the adapters (which own the
 * table's layout), this is the one module that reads `oidc_payloads` by its indexed columns or
 * parses a stored payload; the rest of Gatehouse asks src/oidc/ (GrantsService) instead.
 */

const TABLE = 'oidc_payloads';

const unexpired = (w: Knex.QueryBuilder) => w.whereNull('expires_at').orWhere('expires_at', '>', nowInSeconds());

/**
 * Deletes expired rows in small batches, so a sweep never holds a long lock that would
 * stall token requests. Returns how many rows it removed.
 */
export async function sweepExpiredPayloads(db: Knex, batchSize = 1000): Promise<number> {
  let total = 0;
  for (;;) {
    const now = nowInSeconds();
    const expired = db(TABLE).select('model', 'id').where('expires_at', '<=', now).limit(batchSize);
    const removed = await db(TABLE).whereIn(['model', 'id'], expired).delete();
    total += removed;
    if (removed < batchSize) return total;
  }
}

/** A user's stored session, as a row: what ending it or making it forget a client needs. */
export interface StoredSessionRow {
  /**
   * Names the session to its owner (the account page's "Sign out" button): a hash of the row's
   * id, which is itself the hash of the cookie value, so the handle opens nothing.
   */
  handle: string;
  authorizations?: Record<string, unknown>;
  exp?: number;
  /** When the person signed in (seconds), as oidc-provider records it. */
  loginTs?: number;
  /** Stores the payload as changed, for ttl more seconds. */
  save(ttl?: number): Promise<void>;
  destroy(): Promise<void>;
}

/**
 * A user's stored sessions (by the indexed account_id column). Sessions are stored under the
 * hash of their cookie value (see adapters/payload-row.ts), which no lookup through
 * oidc-provider's Session.find can name, so they are edited here as rows.
 */
export async function findAccountSessions(db: Knex, accountId: string): Promise<StoredSessionRow[]> {
  const rows: { id: string; payload: string }[] = await db(TABLE)
    .select('id', 'payload')
    .where({ account_id: accountId, model: 'Session' })
    .andWhere(unexpired);
  return rows.map(({ id, payload }) => {
    const session = JSON.parse(payload) as Record<string, unknown> & { authorizations?: Record<string, unknown>; exp?: number; loginTs?: number };
    return {
      handle: createHash('sha256').update(`session-handle:${id}`).digest('base64url').slice(0, 32),
      get loginTs() {
        return typeof session.loginTs === 'number' ? session.loginTs : undefined;
      },
      get authorizations() {
        return session.authorizations;
      },
      get exp() {
        return session.exp;
      },
      async save(ttl?: number) {
        const expiresAt = ttl ? nowInSeconds() + ttl : null;
        await db(TABLE)
          .where({ model: 'Session', id })
          .update({ payload: JSON.stringify(session), expires_at: expiresAt });
      },
      async destroy() {
        await db(TABLE).where({ model: 'Session', id }).delete();
      },
    };
  });
}

/** Ids of a client's unexpired Grants (by the indexed client_id column). */
export async function findClientGrantIds(db: Knex, clientId: string): Promise<string[]> {
  const rows = await db(TABLE).select('id').where({ client_id: clientId, model: 'Grant' });
  return rows.map((r: { id: string }) => r.id);
}

/** The newest unexpired Grant of a user for a client: consent remembered across sessions. */
export async function findLatestGrantId(db: Knex, accountId: string, clientId: string): Promise<string | undefined> {
  const row = await db(TABLE)
    .select('id')
    .where({ account_id: accountId, model: 'Grant', client_id: clientId })
    .andWhere(unexpired)
    .orderBy('expires_at', 'desc')
    .first();
  return row?.id;
}

/** What a deletion leaves: nothing, or the Grants (remembered consent) while the tokens and sessions go. */
export type Keep = 'nothing' | 'grants';

const keeping = (q: Knex.QueryBuilder, keep: Keep) => (keep === 'grants' ? q.whereNot({ model: 'Grant' }) : q);

/**
 * Deletes the artifacts a user holds in the database: sessions, codes, tokens, and unless kept,
 * grants. All of them when the user is disabled; all but the grants when their password changes.
 */
export async function deleteAccountPayloads(db: Knex, accountId: string, keep: Keep = 'nothing'): Promise<void> {
  await keeping(db(TABLE).where({ account_id: accountId }), keep).delete();
}

/**
 * Deletes the artifacts issued to a client that the database holds: refresh tokens, codes,
 * access and client credentials tokens stored there, and unless kept, grants.
 */
export async function deleteClientPayloads(db: Knex, clientId: string, keep: Keep = 'nothing'): Promise<void> {
  await keeping(db(TABLE).where({ client_id: clientId }), keep).delete();
}

/**
 * Deletes a client's client credentials tokens from Redis. They belong to no grant and no
 * account, so no index of the Redis adapter names them: the ClientCredentials keys are scanned
 * (SCAN, in steps, never blocking Redis) and those whose payload names the client are deleted.
 * It costs a pass over the live client credentials tokens, for an operator's change to a client.
 *
 * Assumes the Redis adapter's layout (adapters/redis.ts): each artifact is a hash under
 * `<prefix><Model>:<id>` whose `payload` field is the JSON payload.
 */
export async function deleteRedisClientCredentials(redis: Redis, prefix: string, clientId: string): Promise<number> {
  let removed = 0;
  const stream = redis.scanStream({ match: `${escapeGlob(prefix)}ClientCredentials:*`, count: 500 });
  for await (const keys of stream as AsyncIterable<string[]>) {
    if (keys.length === 0) continue;
    const payloads = await Promise.all(keys.map((key) => redis.hget(key, 'payload').catch(() => null)));
    const own = keys.filter((_key, i) => payloadClientId(payloads[i]) === clientId);
    if (own.length) removed += await redis.del(...own);
  }
  return removed;
}

function payloadClientId(payload: string | null | undefined): string | undefined {
  if (!payload) return undefined;
  try {
    const parsed = JSON.parse(payload) as { clientId?: unknown };
    return typeof parsed.clientId === 'string' ? parsed.clientId : undefined;
  } catch {
    return undefined;
  }
}

/** A prefix as a literal in a Redis glob pattern. */
const escapeGlob = (s: string) => s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);

/**
 * Has the user a live grant with this client: did they sign in to the app and allow it, and
 * not revoke that since? That is what lets the app's key reach its own document of the user; no
 * scope is needed, as the document is the app's own data (the userdata scope is what a token
 * needs for /userdata/me). Indexed columns only.
 */
export async function hasLiveGrant(db: Knex, sub: string, clientId: string): Promise<boolean> {
  const row = await db(TABLE).first('id').where({ account_id: sub, model: 'Grant', client_id: clientId }).andWhere(unexpired);
  return row !== undefined;
}

export interface StoredGrant {
  grantId: string;
  clientId: string;
  scope: string;
  createdAt: Date;
  expiresAt: Date | null;
}

/** A user's unexpired Grants, newest first, read from their stored payloads. */
export async function listLiveGrants(db: Knex, sub: string): Promise<StoredGrant[]> {
  const rows = await db(TABLE).select('id', 'client_id', 'payload', 'expires_at').where({ account_id: sub, model: 'Grant' }).andWhere(unexpired);
  return rows
    .map((r: { id: string; client_id: string; payload: string; expires_at: number | string | null }) => {
      const payload = JSON.parse(r.payload) as { iat?: number; openid?: { scope?: string } };
      return {
        grantId: r.id,
        clientId: r.client_id,
        scope: payload.openid?.scope ?? '',
        createdAt: new Date((payload.iat ?? 0) * 1000),
        expiresAt: r.expires_at === null ? null : new Date(Number(r.expires_at) * 1000),
      };
    })
    .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime());
}

export interface ImportedRefreshToken {
  /** The token's value as the app holds it (it keeps working unchanged). */
  token: string;
  /** A stable id for the grant the token is given, so a repeated import writes the same row. */
  grantId: string;
  accountId: string;
  clientId: string;
  scope: string;
  lifetimes: { grant: number; refreshToken: number };
}

/**
 * Is a refresh token of this value stored already (issued here, or imported before)? An import
 * must never write over it: that would hand someone's live token to another user or client.
 * Asked through the adapter, so it finds the token however the adapter keys its rows.
 */
export async function refreshTokenIsStored(trx: Knex, token: string): Promise<boolean> {
  return (await new KnexAdapter(trx, 'RefreshToken').find(token)) !== undefined;
}

/**
 * Stores a refresh token issued by another server (the DOT importer) as oidc-provider would
 * have: a Grant holding its scope, and a RefreshToken of that grant, as if issued by the
 * authorization code grant now. Written through the database adapter inside the caller's
 * transaction; the payload shapes are oidc-provider's (see internals.ts).
 */
export async function importRefreshToken(trx: Knex, imported: ImportedRefreshToken): Promise<void> {
  const now = nowInSeconds();
  const grantTtl = imported.lifetimes.grant;
  const ttl = Math.min(imported.lifetimes.refreshToken, grantTtl);
  await new KnexAdapter(trx, 'Grant').upsert(imported.grantId, importedGrantPayload({ ...imported, now, expiresIn: grantTtl }), grantTtl);
  await new KnexAdapter(trx, 'RefreshToken').upsert(imported.token, importedRefreshTokenPayload({ ...imported, now, expiresIn: ttl }), ttl);
}
