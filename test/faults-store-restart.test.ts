import test from 'ava';
import { freePort } from './support/gatehouse.ts';
import { spawnGatehouse, type GatehouseProcess } from './support/processes.ts';
import { startPrivatePostgres, type PrivatePostgres } from './support/private-postgres.ts';
import { startPrivateRedis, type PrivateRedis } from './support/private-redis.ts';
import { browserSignIn, call, etagVersion, oauthPost, redeemCode, seed, userdataCall, waitFor, type Answer, type Seeded } from './support/faults.ts';

/**
 * PostgreSQL and Redis restarted under a steady load of tokens, sign-ins and userdata writes:
 * meanwhile Gatehouse answers clear 503s (temporarily_unavailable with Retry-After, never a 500,
 * never a dropped connection, never a wait beyond a few seconds), and it serves again by itself
 * once the store is back. Both stores are private instances of this test (their own port and
 * directory), so restarting them disturbs no other test file running beside this one.
 */

/** The longest any answer may take, outage or not ("a few seconds"). */
const HANG_MS = 5000;
/** The longest a successful login (its password hash) may take on a busy machine. */
const SIGN_IN_HASH_MS = 10_000;
/** How soon after the store is back every kind of request must succeed again. */
const RECOVERY_MS = 10_000;
/** Each outage lasts at least this long: past Redis' reconnect backoff and the pool's acquire timeout. */
const MIN_DOWN_MS = 3500;

type Kind = 'token' | 'userdata' | 'sign-in' | 'readyz';

interface Outcome {
  kind: Kind;
  /** HTTP status, or 0 for a network error (a dropped or refused connection, a timeout). */
  status: number;
  ms: number;
  /** When the answer arrived. */
  at: number;
}

test('PostgreSQL and Redis restarted under load: 503 temporarily_unavailable meanwhile, service resumes by itself', async (t) => {
  const [pg, redis]: [PrivatePostgres, PrivateRedis] = await Promise.all([startPrivatePostgres(), startPrivateRedis()]);
  let proc: GatehouseProcess | undefined;
  try {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const env = { PORT: String(port), DATABASE_URL: pg.url, REDIS_URL: redis.url, GATEHOUSE_ISSUER: base };
    const seeded: Seeded = await seed(env, 3);
    const { client, apiKey } = seeded;
    proc = await spawnGatehouse(env);
    for (const user of seeded.users.slice(0, 2)) t.truthy(await browserSignIn(base, client.id, user.username, 'openid userdata'), `${user.username} allowed userdata`);

    const outcomes: Outcome[] = [];
    const problems: string[] = [];
    const problem = (what: string) => problems.push(`[${phase}] ${what}`);
    const lastAcked = new Map<string, number>();
    let stopping = false;
    let phase = 'before the restarts';

    /** Every API answer is a success, or a 503 temporarily_unavailable with Retry-After. */
    const apiAnswer = (kind: Kind, res: Answer, ok: (res: Answer) => boolean, what: string) => {
      outcomes.push({ kind, status: res.status, ms: res.ms, at: Date.now() });
      if (res.ms > HANG_MS) problem(`${what}: answered after ${res.ms} ms`);
      if (res.status === 503) {
        if (res.json?.error !== 'temporarily_unavailable') problem(`${what}: 503 without temporarily_unavailable: ${res.text.slice(0, 200)}`);
        if (!/^\d+$/.test(String(res.headers['retry-after'] ?? ''))) problem(`${what}: 503 without Retry-After (${JSON.stringify(res.headers)})`);
        return false;
      }
      if (!ok(res)) problem(`${what}: ${res.status} ${res.text.slice(0, 200)}`);
      return res.status < 300;
    };
    const networkError = (kind: Kind, what: string, err: unknown, started: number) => {
      outcomes.push({ kind, status: 0, ms: Date.now() - started, at: Date.now() });
      problem(`${what}: ${(err as Error).message}`);
    };
    const pause = (ms = 25) => new Promise((r) => setTimeout(r, ms));

    const tokenWorker = async () => {
      while (!stopping) {
        const started = Date.now();
        try {
          const res = await oauthPost(base, '/token', client, { grant_type: 'client_credentials' }, 15_000);
          if (!apiAnswer('token', res, (r) => r.status === 200 && Boolean(r.json?.access_token), 'client credentials')) await pause();
        } catch (err) {
          networkError('token', 'client credentials', err, started);
          await pause();
        }
      }
    };

    // One writer per document: read, then PATCH with If-Match. A version below the last
    // acknowledged one is a lost write; a 412 cannot happen with one writer.
    const userdataWorker = async (sub: string) => {
      for (let n = 1; !stopping; n++) {
        const started = Date.now();
        try {
          const read = await userdataCall(base, apiKey, sub, 'GET', undefined, undefined, 15_000);
          if (!apiAnswer('userdata', read, (r) => r.status === 200, 'userdata GET')) {
            await pause();
            continue;
          }
          const version = etagVersion(read)!;
          if (version < (lastAcked.get(sub) ?? 0)) problem(`userdata of ${sub}: version ${version} after ${lastAcked.get(sub)} was acknowledged`);
          const write = await userdataCall(base, apiKey, sub, 'PATCH', { n, [`k${n % 3}`]: n }, version, 15_000);
          if (apiAnswer('userdata', write, (r) => r.status === 200 && etagVersion(r) === version + 1, 'userdata PATCH')) lastAcked.set(sub, version + 1);
          else await pause();
        } catch (err) {
          networkError('userdata', 'userdata', err, started);
          await pause();
        }
      }
    };

    // A person signing in. Pages are HTML: a 503 is our error page; a 400 is the "sign-in has
    // expired" page when Redis lost the interaction or the code in its restart.
    let expiredSignIns = 0;
    const signInWorker = async (username: string) => {
      while (!stopping) {
        const started = Date.now();
        try {
          let failed = false;
          const got = await browserSignIn(base, client.id, username, 'openid userdata', (step) => {
            outcomes.push({ kind: 'sign-in', status: step.status, ms: step.ms, at: Date.now() });
            // The password check is a deliberately slow hash (scrypt), queued behind others on a busy machine.
            const limit = step.step === 'login' && step.status !== 503 ? SIGN_IN_HASH_MS : HANG_MS;
            if (step.ms > limit) problem(`sign-in ${step.step}: ${step.status} after ${step.ms} ms`);
            if (step.status === 503 || step.status === 400) failed = true;
            else if (step.status >= 400) problem(`sign-in ${step.step}: ${step.status} ${step.page.html.slice(0, 200)}`);
            if (step.status === 400) expiredSignIns++;
          });
          if (!got) {
            if (!failed) problem('a sign-in stopped without an error status');
            await pause();
            continue;
          }
          const res = await redeemCode(base, client, got.code, got.verifier, 15_000);
          const redeemed = apiAnswer('sign-in', res, (r) => (r.status === 200 && Boolean(r.json?.refresh_token)) || (r.status === 400 && r.json?.error === 'invalid_grant'), 'code exchange');
          if (res.status === 400) expiredSignIns++;
          if (!redeemed) await pause();
        } catch (err) {
          networkError('sign-in', 'sign-in', err, started);
          await pause();
        }
      }
    };

    const readyzWorker = async () => {
      while (!stopping) {
        const started = Date.now();
        try {
          const res = await call(base, 'GET', '/readyz', { timeoutMs: 15_000 });
          outcomes.push({ kind: 'readyz', status: res.status, ms: res.ms, at: Date.now() });
          if (res.ms > HANG_MS) problem(`/readyz answered after ${res.ms} ms`);
          if (![200, 503].includes(res.status)) problem(`/readyz: ${res.status}`);
        } catch (err) {
          networkError('readyz', '/readyz', err, started);
        }
        await pause(200);
      }
    };

    const workers = [tokenWorker(), tokenWorker(), ...seeded.users.slice(0, 2).map((u) => userdataWorker(u.sub)), signInWorker(seeded.users[2]!.username), readyzWorker()];

    const count = (kind: Kind, status: number, since: number) => outcomes.filter((o) => o.kind === kind && o.status === status && o.at >= since).length;
    const successSince = (kind: Kind, since: number) => outcomes.find((o) => o.kind === kind && o.at >= since && o.status >= 200 && o.status < 400);
    const steady = (since: number, n: number) => waitFor(() => (['token', 'userdata', 'sign-in'] as Kind[]).every((k) => outcomes.filter((o) => o.kind === k && o.at >= since && o.status === 200).length >= n), 60_000);
    const report: string[] = [];

    /** Takes a store down under the load, waits until `affected` answer 503, brings it back, and times the recovery. */
    const outage = async (name: string, down: () => Promise<void>, up: () => Promise<void>, affected: Kind[]) => {
      const before = Date.now();
      phase = `${name} (down)`;
      await down();
      const saw503 = await waitFor(() => affected.every((k) => count(k, 503, before) >= 3) && count('readyz', 503, before) >= 1, 20_000);
      // …and stays down a while longer, as a real restart does.
      await waitFor(() => Date.now() - before >= MIN_DOWN_MS, MIN_DOWN_MS + 1000);
      t.true(saw503, `${name}: ${affected.join(', ')} and /readyz answered 503 while it was down (${JSON.stringify(outcomes.filter((o) => o.at >= before).slice(-10))})`);
      phase = `${name} (coming back)`;
      await up();
      phase = `${name} (back)`;
      const back = Date.now();
      const recovered = await waitFor(() => [...affected, 'readyz' as Kind].every((k) => successSince(k, back)), 30_000);
      const recoveryMs = Math.max(...[...affected, 'readyz' as Kind].map((k) => (successSince(k, back)?.at ?? Date.now()) - back));
      const seen503 = (['token', 'userdata', 'sign-in', 'readyz'] as Kind[]).map((k) => `${k} ${count(k, 503, before)}`).join(', ');
      report.push(`${name}: down ${back - before} ms, 503s (${seen503}), all of ${[...affected, 'readyz'].join('/')} served again ${recoveryMs} ms after the store was back`);
      t.true(recovered, `${name}: service resumed by itself`);
      t.true(recoveryMs <= RECOVERY_MS, `${name}: recovered within ${RECOVERY_MS} ms (took ${recoveryMs})`);
    };

    try {
      t.true(await steady(0, 3), 'steady load before the restarts');
      await outage('Redis killed (SIGKILL) and restarted', () => redis.stop('SIGKILL'), () => redis.start(), ['token', 'sign-in']);
      t.true(await steady(Date.now(), 2), 'steady again after Redis');
      await outage('PostgreSQL restarted (pg_ctl stop -m fast)', () => pg.stop('fast'), () => pg.start(), ['token', 'userdata', 'sign-in']);
      t.true(await steady(Date.now(), 2), 'steady again after PostgreSQL (fast)');
      await outage('PostgreSQL crashed (pg_ctl stop -m immediate) and restarted', () => pg.stop('immediate'), () => pg.start(), ['token', 'userdata', 'sign-in']);
      t.true(await steady(Date.now(), 3), 'steady again after PostgreSQL (immediate)');
    } finally {
      stopping = true;
      await Promise.all(workers);
    }

    // Every acknowledged userdata write is still there after the restarts.
    for (const [sub, version] of lastAcked) {
      const res = await userdataCall(base, apiKey, sub, 'GET');
      t.is(res.status, 200);
      t.true((etagVersion(res) ?? -1) >= version, `userdata of ${sub}: version ${etagVersion(res)}, ${version} acknowledged`);
    }

    const slowest = Math.max(...outcomes.map((o) => o.ms));
    const slowestBy = (['token', 'userdata', 'sign-in', 'readyz'] as Kind[]).map((k) => {
      const mine = outcomes.filter((o) => o.kind === k);
      const of = (status: (s: number) => boolean) => Math.max(0, ...mine.filter((o) => status(o.status)).map((o) => o.ms));
      return `${k} ${of((s) => s !== 503)}/${of((s) => s === 503)}`;
    });
    const total503 = outcomes.filter((o) => o.status === 503).length;
    t.log(report.join('\n'));
    t.log(`${outcomes.length} answers, ${total503} of them 503, none slower than ${slowest} ms (slowest other/503 answer by kind, ms: ${slowestBy.join(', ')}); sign-ins that expired in a Redis restart: ${expiredSignIns}; userdata versions acknowledged: ${[...lastAcked.values()].join(', ')}`);
    // The same problem repeats under load: show each kind once, with how often it happened.
    const distinct = new Map<string, number>();
    for (const p of problems) {
      const key = p.replace(/"(x-request-id|date)":"[^"]*"/g, '"$1":…').slice(0, 400);
      distinct.set(key, (distinct.get(key) ?? 0) + 1);
    }
    // For the diagnosis: the last lines Gatehouse wrote (its log), when something went wrong.
    if (problems.length && proc) t.log(proc.output().split('\n').slice(-30).join('\n'));
    t.deepEqual([...distinct].map(([p, n]) => `${n}× ${p}`), [], `${problems.length} answers were neither a success nor a clear 503`);
    t.is(outcomes.filter((o) => o.status >= 500 && o.status !== 503).length, 0, 'never a 500');
  } finally {
    await proc?.stop('SIGKILL');
    await Promise.all([pg.close(), redis.close()]);
  }
});
