import test, { type ExecutionContext } from 'ava';
import Database from 'better-sqlite3';
import * as oidc from 'openid-client';
import { createTestDatabase, freePort } from './support/gatehouse.ts';
import { exitCode, spawnGatehouse, type GatehouseProcess } from './support/processes.ts';
import { REDIRECT_URI } from './support/relying-party.ts';
import { findForm } from './support/http.ts';
import { accepts, browserSignIn, PASSWORD, RawConnection, seed, waitFor } from './support/faults.ts';

/**
 * SIGTERM (what an orchestrator sends before replacing a process) with requests in flight: a
 * userdata PUT whose body is still arriving slowly, and a sign-in whose form is still arriving
 * (its password hash then runs after the signal). Both complete with their normal success
 * answers; new connections are refused as soon as the signal is handled; and the process exits
 * with code 0 within seconds, though the clients (as a load balancer does) keep their
 * connections open after the answers.
 */

/** The login page of a fresh sign-in, as a browser holds it: where the form posts, its fields, the cookies. */
async function loginForm(base: string, clientId: string, username: string) {
  const jar = new Map<string, string>();
  const get = async (url: string) => {
    const res = await fetch(url, { redirect: 'manual', headers: jar.size ? { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') } : {} });
    for (const line of res.headers.getSetCookie()) {
      const pair = line.split(';')[0]!;
      const eq = pair.indexOf('=');
      jar.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
    }
    return res;
  };
  const authorize = new URL('/authorize', base);
  authorize.search = new URLSearchParams({
    client_id: clientId,
    response_type: 'code',
    redirect_uri: REDIRECT_URI,
    scope: 'openid',
    code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
    code_challenge_method: 'S256',
  }).toString();
  let url = authorize.href;
  let res = await get(url);
  for (let hops = 0; hops < 10 && res.status >= 300 && res.status < 400; hops++) {
    url = new URL(res.headers.get('location')!, url).href;
    res = await get(url);
  }
  const html = await res.text();
  const form = findForm({ url, status: res.status, html, headers: res.headers }, { action: /\/login$/ });
  form.fields.set('username', username);
  form.fields.set('password', PASSWORD);
  return { target: new URL(form.target), body: form.fields.toString(), cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') };
}

/**
 * `keepAlive`: the clients of the requests in flight keep their connections open after the
 * answers, as a load balancer's pool does; otherwise they send Connection: close, as curl and
 * most one-off clients do.
 */
async function sigtermWithRequestsInFlight(t: ExecutionContext, { workers, keepAlive }: { workers: number; keepAlive: boolean }) {
  const database = await createTestDatabase('sqlite');
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const env = { PORT: String(port), DATABASE_URL: database.url, GATEHOUSE_ISSUER: base, GATEHOUSE_WORKERS: String(workers) };
  const seeded = await seed(env, 2);
  const [writer, person] = seeded.users as [Seeded['users'][0], Seeded['users'][0]];
  let proc: GatehouseProcess | undefined = await spawnGatehouse(env);
  const connections: RawConnection[] = [];
  try {
    t.truthy(await browserSignIn(base, seeded.client.id, writer.username, 'openid userdata'), 'the writer allowed the app their userdata');
    const login = await loginForm(base, seeded.client.id, person.username);

    // An idle kept-alive connection, as a balancer's pool holds: it must not delay the exit.
    const idle = await RawConnection.open(port);
    connections.push(idle);
    idle.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
    t.is((await idle.next()).status, 200);

    // A userdata PUT: head sent, the server has the request (100 Continue), half the body sent.
    const document = { theme: 'dark', note: 'x'.repeat(2000), n: 1 };
    const putBody = Buffer.from(JSON.stringify(document));
    const put = await RawConnection.open(port);
    connections.push(put);
    put.write(
      `PUT /userdata/${writer.sub} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nX-API-Key: ${seeded.apiKey}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${putBody.length}\r\nExpect: 100-continue\r\nConnection: ${keepAlive ? 'keep-alive' : 'close'}\r\n\r\n`,
    );
    t.is((await put.next()).status, 100, 'the server has the PUT');
    put.write(putBody.subarray(0, putBody.length / 2));

    // The sign-in form: head sent, acknowledged, all of the body but its last byte sent.
    const signIn = await RawConnection.open(port);
    connections.push(signIn);
    const form = Buffer.from(login.body);
    signIn.write(
      `POST ${login.target.pathname} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nCookie: ${login.cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\n` +
        `Content-Length: ${form.length}\r\nExpect: 100-continue\r\nConnection: ${keepAlive ? 'keep-alive' : 'close'}\r\n\r\n`,
    );
    t.is((await signIn.next()).status, 100, 'the server has the sign-in');
    signIn.write(form.subarray(0, form.length - 1));

    const signalled = Date.now();
    proc.child.kill('SIGTERM');
    t.true(await waitFor(async () => !(await accepts(port)), 5000, 20), 'new connections are refused after SIGTERM');
    const refusedAfter = Date.now() - signalled;
    t.false(put.closed || signIn.closed, 'the connections with requests in flight stay open');

    // Now the rest: the sign-in's last byte (its password hash runs after the signal) and the
    // PUT's body, slowly, in five pieces.
    signIn.write(form.subarray(form.length - 1));
    const rest = putBody.subarray(putBody.length / 2);
    for (let i = 0; i < 5; i++) {
      put.write(rest.subarray(Math.floor((i * rest.length) / 5), Math.floor(((i + 1) * rest.length) / 5)));
      await new Promise((r) => setTimeout(r, 150));
    }
    const [putAnswer, signInAnswer] = await Promise.all([put.next(), signIn.next()]);
    const answered = Date.now();
    t.is(putAnswer.status, 200, putAnswer.body);
    t.is(putAnswer.headers.etag, '"1"');
    t.deepEqual(JSON.parse(putAnswer.body), document);
    t.is(signInAnswer.status, 303, signInAnswer.body.slice(0, 300));
    t.regex(signInAnswer.headers.location ?? '', /\/authorize\/[^/]+$/, 'the sign-in succeeded and resumes the authorization');

    const code = await exitCode(proc, 8000).catch(() => 'still running 8 s after the last answer');
    const exitedAfter = Date.now() - answered;
    t.is(code, 0, proc.output().slice(-2000));
    t.true(exitedAfter < 5000, `exited ${exitedAfter} ms after the last answer`);
    t.true(idle.closed, 'the idle connection was closed');
    proc = undefined;

    // What the PUT acknowledged is in the database.
    const file = new Database(database.url.slice('sqlite:'.length), { readonly: true });
    try {
      const row = file.prepare('select document, version from userdata where sub = ?').get(writer.sub) as { document: string; version: number } | undefined;
      t.is(row?.version, 1);
      t.deepEqual(JSON.parse(row?.document ?? 'null'), document);
    } finally {
      file.close();
    }
    t.log(`${workers} worker${workers === 1 ? '' : 's'}, ${keepAlive ? 'connections kept alive' : 'Connection: close'}: new connections refused ${refusedAfter} ms after SIGTERM; in-flight PUT 200 and sign-in 303; exit code 0 ${exitedAfter} ms after the last answer`);
  } finally {
    for (const c of connections) c.destroy();
    await proc?.stop('SIGKILL');
    await database.drop();
  }
}

type Seeded = Awaited<ReturnType<typeof seed>>;

test.serial('SIGTERM with a userdata PUT and a sign-in in flight: both complete, new connections are refused, exit code 0', (t) =>
  sigtermWithRequestsInFlight(t, { workers: 1, keepAlive: false }));

test.serial('SIGTERM to the primary of two workers (the npm start default on two cores), requests in flight: the same', (t) =>
  sigtermWithRequestsInFlight(t, { workers: 2, keepAlive: false }));

// A connection whose request was in flight at SIGTERM must close once answered: a client that
// keeps it (a load balancer) would otherwise hold the process for the 65 s keep-alive timeout,
// past an orchestrator's grace period (SIGKILL).
test.serial('SIGTERM: connections kept alive after their in-flight answers (a load balancer) do not hold the process open', (t) =>
  sigtermWithRequestsInFlight(t, { workers: 1, keepAlive: true }));
