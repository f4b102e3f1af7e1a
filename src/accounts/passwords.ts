import { createHash, randomBytes, scrypt as scryptCallback, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { AsyncLocalStorage } from 'node:async_hooks';
import { availableParallelism } from 'node:os';
import { isDjangoHash, verifyDjangoHash } from './django-hashers.ts';

/**
 * Password hashing with scrypt (memory-hard, in node:crypto, no native add-on).
 * N=2^15, r=8, p=3 is one of OWASP's equivalent minimum settings for scrypt: 32 MiB of memory
 * per hash, which makes GPU guessing expensive, at about a quarter second per hash on one core
 * here. The parameters are stored with each hash, so raising them later re-hashes users as
 * they next sign in (needsRehash).
 */
export const SCRYPT_PARAMS = { N: 2 ** 15, r: 8, p: 3 } as const;
const KEY_LENGTH = 32;

// scrypt runs on libuv's small thread pool, which DNS lookups and file I/O share: a burst of
// sign-ins must not take every thread (nor 32 MiB each without bound), so at most this many
// hash at once and the rest queue here.
export const MAX_CONCURRENT_HASHES = Math.max(1, Math.min(2, availableParallelism()));
/**
 * Slots one key (an address) may hold at once: with two slots, one is always there for someone
 * else, so a flood from one address never holds every slot when an operator signs in.
 */
const MAX_HASHES_PER_KEY = Math.max(1, MAX_CONCURRENT_HASHES - 1);
/** Hashes of operators' own changes (users create, set-password), not of any sign-in. */
const UNATTRIBUTED = 'unattributed';
let running = 0;
const runningByKey = new Map<string, number>();
/**
 * Waiting hashes, one queue per key. A free slot goes to the waiting key served longest ago, a
 * key never served counting from when it first queued, so a key with a hundred hashes waiting
 * gets one slot in turn like a key with one: one address or account flooding sign-ins cannot
 * starve the others, and a newcomer waits for the hashes running and at most one of each key
 * that was waiting before it. Nor does a spray from many new addresses go before someone
 * served before it began (an operator at their usual desk).
 */
const waiting = new Map<string, Array<() => void>>();
/** When each key last got a slot; forgotten wholesale past a bound (a hostile flood of keys). */
const lastServed = new Map<string, number>();
let served = 0;

const mayStart = (key: string) => running < MAX_CONCURRENT_HASHES && (key === UNATTRIBUTED || (runningByKey.get(key) ?? 0) < MAX_HASHES_PER_KEY);

/** Hashes started in this process, and the count at which each key last started one (bounded like lastServed). */
let started = 0;
const startedAt = new Map<string, number>();

function take(key: string): void {
  running++;
  runningByKey.set(key, (runningByKey.get(key) ?? 0) + 1);
  stampLastServed(key);
  if (startedAt.size >= 10_000) startedAt.clear();
  startedAt.set(key, ++started);
}

/**
 * The queue's order, observed: how many hashes this process has started, or (with `key`) the
 * count when that key last started one. Tests of its fairness compare the two, instead of
 * timing sign-ins on a machine whose load they do not control.
 */
export function hashStarts(key?: string): number {
  return key === undefined ? started : (startedAt.get(key) ?? 0);
}

function stampLastServed(key: string): void {
  if (lastServed.size >= 10_000) lastServed.clear();
  lastServed.set(key, ++served);
}

function give(key: string): void {
  running--;
  const left = (runningByKey.get(key) ?? 1) - 1;
  if (left > 0) runningByKey.set(key, left);
  else runningByKey.delete(key);
}

/** Starts the waiting hashes that may start now, longest-unserved key first. */
function startWaiting(): void {
  for (;;) {
    let chosen: string | undefined;
    for (const key of waiting.keys()) {
      if (mayStart(key) && (chosen === undefined || (lastServed.get(key) ?? -1) < (lastServed.get(chosen) ?? -1))) chosen = key;
    }
    if (chosen === undefined) return;
    const queue = waiting.get(chosen)!;
    const start = queue.shift()!;
    if (!queue.length) waiting.delete(chosen);
    take(chosen);
    start();
  }
}

/**
 * Runs `work` (a password hash, or any CPU-heavy verification) in one of the few hash slots,
 * queued fairly under `key` (see currentHashKey). The name and signature are stable: the Django
 * hashers use it too.
 */
export async function withHashSlot<T>(key: string, work: () => Promise<T>): Promise<T> {
  if (mayStart(key) && !waiting.has(key)) take(key);
  else {
    if (!lastServed.has(key)) stampLastServed(key);
    await new Promise<void>((resolve) => {
      const queue = waiting.get(key);
      if (queue) queue.push(resolve);
      else waiting.set(key, [resolve]);
    });
  }
  try {
    return await work();
  } finally {
    give(key);
    startWaiting();
  }
}

/** Whom the hashes of this call chain are for (set by a sign-in), so the queue can be fair without every caller passing it. */
const hashKey = new AsyncLocalStorage<string>();

/** Runs `work` with its hashes queued under `key` (an address): see withHashSlot. */
export function hashesQueuedAs<T>(key: string, work: () => Promise<T>): Promise<T> {
  return hashKey.run(key, work);
}

/** The key hashes of this call chain queue under (hashesQueuedAs), or one shared key outside any. */
export function currentHashKey(): string {
  return hashKey.getStore() ?? UNATTRIBUTED;
}

function scrypt(password: string, salt: Buffer, params: { N: number; r: number; p: number }): Promise<Buffer> {
  const options: ScryptOptions = { ...params, maxmem: 256 * params.N * params.r + 1024 * 1024 };
  return withHashSlot(
    currentHashKey(),
    () =>
      new Promise((resolve, reject) =>
        scryptCallback(password.normalize('NFC'), salt, KEY_LENGTH, options, (err, key) => (err ? reject(err) : resolve(key))),
      ),
  );
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, SCRYPT_PARAMS);
  const { N, r, p } = SCRYPT_PARAMS;
  return `scrypt$N=${N},r=${r},p=${p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

function parseScrypt(stored: string) {
  const match = /^scrypt\$N=(\d+),r=(\d+),p=(\d+)\$([\w-]+)\$([\w-]+)$/.exec(stored);
  if (!match) return undefined;
  const [, N, r, p, salt, key] = match;
  return { params: { N: Number(N), r: Number(r), p: Number(p) }, salt: Buffer.from(salt!, 'base64url'), key: Buffer.from(key!, 'base64url') };
}

/** Checks a password against our scrypt hashes, or a Django hash kept from an import. */
export async function verifyPassword(stored: string, password: string): Promise<boolean> {
  if (isDjangoHash(stored)) return verifyDjangoHash(stored, password);
  const parsed = parseScrypt(stored);
  if (!parsed) return false;
  const actual = await scrypt(password, parsed.salt, parsed.params);
  return actual.length === parsed.key.length && timingSafeEqual(actual, parsed.key);
}

export function needsRehash(stored: string): boolean {
  const parsed = parseScrypt(stored);
  if (!parsed) return true;
  const { N, r, p } = parsed.params;
  return N < SCRYPT_PARAMS.N || r < SCRYPT_PARAMS.r || p < SCRYPT_PARAMS.p;
}

/** Hash of a random password: verified against when a username does not exist, so timing does not tell. */
let decoy: Promise<string> | undefined;
export function decoyHash(): Promise<string> {
  decoy ??= hashPassword(randomBytes(16).toString('hex'));
  return decoy;
}

/**
 * Whether a password and its confirmation (typed twice by the same person) are the same,
 * compared as digests in constant time like every other secret.
 */
export function sameTypedPassword(password: string, confirmation: string): boolean {
  const digest = (v: string) => createHash('sha256').update(v.normalize('NFC')).digest();
  return timingSafeEqual(digest(password), digest(confirmation));
}

export const MIN_PASSWORD_LENGTH = 8;
export const MAX_PASSWORD_LENGTH = 1024;
