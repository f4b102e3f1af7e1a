import type { Redis } from 'ioredis';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { alreadyConsumed, restoredPayload, storedId, storedPayload, storedUserCode } from './payload-row.ts';
import { guardStore } from '../src/stores/availability.ts';

/**
 * The oidc-provider adapter contract over Redis, for short-lived artifacts. Each artifact is a
 * hash {payload, consumed?} that expires with the artifact (Redis TTL). Sets index artifacts by
 * grant and by account, and plain keys map uid and user code to an id. Index entries may
 * outlive what they point to; every lookup goes through the artifact key, which has expired.
 * As in the database, keys hold the SHA-256 of a bearer id and of a user code, never the value
 * (see payload-row.ts), so a copy of Redis (a dump, a replica) redeems nothing either.
 */

// Marks a stored artifact consumed only if it exists and is not consumed yet: the atomic
// compare-and-set two processes redeeming one code race on.
const CONSUME = `
if redis.call('exists', KEYS[1]) == 0 then return -1 end
return redis.call('hsetnx', KEYS[1], 'consumed', ARGV[1])`;

// Deletes every member of an index set and the set itself, in one step.
const DELETE_INDEXED = `
local members = redis.call('smembers', KEYS[1])
for i = 1, #members do redis.call('del', members[i]) end
redis.call('del', KEYS[1])
return #members`;

// Stores an artifact with its TTL and its index entries in one command, so a token costs one
// write to Redis instead of a MULTI of five or more (each its own write on the socket).
// KEYS[1]: the artifact; KEYS[2 .. 1+ARGV[4]]: index sets; the rest: pointer keys (uid, user
// code) whose value is the id. ARGV: payload JSON, consumed ('' if not), TTL seconds (0: none),
// number of index sets, id.
const UPSERT = `
local ttl = tonumber(ARGV[3])
redis.call('del', KEYS[1])
redis.call('hset', KEYS[1], 'payload', ARGV[1])
if ARGV[2] ~= '' then redis.call('hset', KEYS[1], 'consumed', ARGV[2]) end
if ttl > 0 then redis.call('expire', KEYS[1], ttl) end
local indexes = tonumber(ARGV[4])
for i = 2, 1 + indexes do
  redis.call('sadd', KEYS[i], KEYS[1])
  -- Keep the index as long as its longest-lived member.
  if ttl > 0 then
    redis.call('expire', KEYS[i], ttl, 'NX')
    redis.call('expire', KEYS[i], ttl, 'GT')
  end
end
for i = 2 + indexes, #KEYS do
  if ttl > 0 then redis.call('set', KEYS[i], ARGV[5], 'EX', ttl) else redis.call('set', KEYS[i], ARGV[5]) end
end
return 1`;

type WithUpsert = Redis & { gatehouseUpsert(keyCount: number, ...keysAndArgs: Array<string | number>): Promise<number> };

export class RedisAdapter implements Adapter {
  private readonly redis: WithUpsert;

  constructor(
    redis: Redis,
    private readonly model: string,
    private readonly prefix: string,
  ) {
    // ioredis sends a defined command by its SHA (EVALSHA), loading the script when Redis lacks it.
    if (!('gatehouseUpsert' in redis)) redis.defineCommand('gatehouseUpsert', { lua: UPSERT });
    this.redis = redis as WithUpsert;
  }

  /** The key of an artifact by its stored id (a hash, see payload-row.ts). */
  private key(stored: string) {
    return `${this.prefix}${this.model}:${stored}`;
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
    const stored = storedId(this.model, id);
    const key = this.key(stored);
    const indexes: string[] = [];
    if (payload.grantId) indexes.push(`${this.prefix}grant:${payload.grantId}`);
    if (payload.accountId) indexes.push(`${this.prefix}account:${payload.accountId}`);
    const pointers: string[] = [];
    if (payload.uid) pointers.push(`${this.prefix}${this.model}:uid:${payload.uid}`);
    if (payload.userCode) pointers.push(`${this.prefix}${this.model}:userCode:${storedUserCode(payload.userCode)}`);
    const keys = [key, ...indexes, ...pointers];
    const consumed = typeof payload.consumed === 'number' ? String(payload.consumed) : '';
    await guardStore('redis', () =>
      this.redis.gatehouseUpsert(keys.length, ...keys, storedPayload(this.model, payload), consumed, expiresIn || 0, indexes.length, stored),
    );
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    return this.findStored(storedId(this.model, id), { id });
  }

  // The pointer keys hold the stored id, not the raw one: what they find comes back without
  // `jti`, which oidc-provider does not need from these two lookups (see payload-row.ts).
  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    const stored = await guardStore('redis', () => this.redis.get(`${this.prefix}${this.model}:uid:${uid}`));
    return stored ? this.findStored(stored, {}) : undefined;
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    const stored = await guardStore('redis', () => this.redis.get(`${this.prefix}${this.model}:userCode:${storedUserCode(userCode)}`));
    return stored ? this.findStored(stored, { userCode }) : undefined;
  }

  async destroy(id: string): Promise<void> {
    await guardStore('redis', () => this.redis.del(this.key(storedId(this.model, id))));
  }

  private async findStored(stored: string, known: { id?: string; userCode?: string }): Promise<AdapterPayload | undefined> {
    const hash = await guardStore('redis', () => this.redis.hgetall(this.key(stored)));
    if (!hash.payload) return undefined;
    const payload = restoredPayload(this.model, hash.payload, known);
    if (hash.consumed) payload.consumed = Number(hash.consumed);
    return payload;
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    await guardStore('redis', () => this.redis.eval(DELETE_INDEXED, 1, `${this.prefix}grant:${grantId}`));
  }

  async consume(id: string): Promise<void> {
    const result = await guardStore('redis', () => this.redis.eval(CONSUME, 1, this.key(storedId(this.model, id)), String(Math.floor(Date.now() / 1000))));
    if (result !== 1) throw alreadyConsumed(this.model);
  }
}

/** Deletes every short-lived artifact a user holds in Redis (the user was disabled). */
export async function deleteRedisAccountArtifacts(redis: Redis, prefix: string, accountId: string): Promise<void> {
  await guardStore('redis', () => redis.eval(DELETE_INDEXED, 1, `${prefix}account:${accountId}`));
}
