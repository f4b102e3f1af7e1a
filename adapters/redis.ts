import type { Redis } from 'ioredis';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { alreadyConsumed } from './payload-row.ts';
import { guardStore } from '../src/stores/availability.ts';

/**
 * The oidc-provider adapter contract over Redis, for short-lived artifacts. Each artifact is a
 * hash {payload, consumed?} that expires with the artifact (Redis TTL). Sets index artifacts by
 * grant and by account, and plain keys map uid and user code to an id. Index entries may
 * outlive what they point to; every lookup goes through the artifact key, which has expired.
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

export class RedisAdapter implements Adapter {
  constructor(
    private readonly redis: Redis,
    private readonly model: string,
    private readonly prefix: string,
  ) {}

  private key(id: string) {
    return `${this.prefix}${this.model}:${id}`;
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
    const key = this.key(id);
    await guardStore('redis', async () => {
      const tx = this.redis.multi();
      tx.del(key);
      tx.hset(key, 'payload', JSON.stringify(payload));
      if (typeof payload.consumed === 'number') tx.hset(key, 'consumed', String(payload.consumed));
      if (expiresIn) tx.expire(key, expiresIn);
      const index = (indexKey: string) => {
        tx.sadd(indexKey, key);
        // Keep the index as long as its longest-lived member.
        if (expiresIn) {
          tx.expire(indexKey, expiresIn, 'NX');
          tx.expire(indexKey, expiresIn, 'GT');
        }
      };
      if (payload.grantId) index(`${this.prefix}grant:${payload.grantId}`);
      if (payload.accountId) index(`${this.prefix}account:${payload.accountId}`);
      const pointer = (pointerKey: string) => (expiresIn ? tx.set(pointerKey, id, 'EX', expiresIn) : tx.set(pointerKey, id));
      if (payload.uid) pointer(`${this.prefix}${this.model}:uid:${payload.uid}`);
      if (payload.userCode) pointer(`${this.prefix}${this.model}:userCode:${payload.userCode}`);
      await tx.exec();
    });
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    const stored = await guardStore('redis', () => this.redis.hgetall(this.key(id)));
    if (!stored.payload) return undefined;
    const payload = JSON.parse(stored.payload) as AdapterPayload;
    if (stored.consumed) payload.consumed = Number(stored.consumed);
    return payload;
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    const id = await guardStore('redis', () => this.redis.get(`${this.prefix}${this.model}:uid:${uid}`));
    return id ? this.find(id) : undefined;
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    const id = await guardStore('redis', () => this.redis.get(`${this.prefix}${this.model}:userCode:${userCode}`));
    return id ? this.find(id) : undefined;
  }

  async destroy(id: string): Promise<void> {
    await guardStore('redis', () => this.redis.del(this.key(id)));
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    await guardStore('redis', () => this.redis.eval(DELETE_INDEXED, 1, `${this.prefix}grant:${grantId}`));
  }

  async consume(id: string): Promise<void> {
    const result = await guardStore('redis', () => this.redis.eval(CONSUME, 1, this.key(id), String(Math.floor(Date.now() / 1000))));
    if (result !== 1) throw alreadyConsumed(this.model);
  }
}

/** Deletes every short-lived artifact a user holds in Redis (the user was disabled). */
export async function deleteRedisAccountArtifacts(redis: Redis, prefix: string, accountId: string): Promise<void> {
  await guardStore('redis', () => redis.eval(DELETE_INDEXED, 1, `${prefix}account:${accountId}`));
}
