import http from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import Router from '@koa/router';
import Koa from 'koa';
import { problemOf, respondWithJson } from '../src/problem.ts';
import { lazyRoutes, type RouteTable } from '../src/web/lazy-routes.ts';
import { startTestGatehouse } from './support/gatehouse.ts';

/**
 * The pages of browsers and operators are loaded by their first request (src/web/lazy-routes.ts).
 * That first request, and many arriving at once on a fresh process, must be answered exactly as
 * every later one is.
 */

/** What a request's answer is made of, less what differs on every answer (ids, dates, tokens). */
async function answerOf(url: string, init: RequestInit = {}) {
  const res = await fetch(url, { redirect: 'manual', ...init });
  const body = await res.text();
  const header = (name: string) => res.headers.get(name) ?? undefined;
  return {
    status: res.status,
    headers: Object.fromEntries(
      [
        'content-type',
        'cache-control',
        'content-security-policy',
        'x-frame-options',
        'x-content-type-options',
        'referrer-policy',
        'allow',
        'www-authenticate',
        'location',
      ].map((h) => [h, header(h)]),
    ),
    cookies: res.headers
      .getSetCookie()
      .map((c) => c.slice(0, c.indexOf('=')))
      .sort(),
    // JSON answers whole; pages by whether they hold a form with its CSRF field.
    body: header('content-type')?.startsWith('application/json') ? body : { form: /<form/.test(body), csrf: /name="csrf"/.test(body) },
  };
}

test('the first requests to each lazily loaded page, many at once on a fresh process, are answered as every later one', async (t) => {
  const gh = await startTestGatehouse();
  t.teardown(() => gh.close());
  const forged = { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'username=ada&password=wrong-password-1234' };
  const requests: Array<[string, RequestInit?]> = [
    ['/admin/login'],
    ['/admin/clients'],
    ['/admin/api/clients'],
    ['/admin/api/clients', { method: 'DELETE' }],
    ['/account/login'],
    ['/account/login', forged],
    ['/admin/login', forged],
    ['/password-reset'],
    ['/verify-email/not-a-token'],
    ['/interaction/not-an-interaction', { headers: { accept: 'text/html' } }],
    ['/idp/nobody/callback'],
  ];
  // Three of each at once, before any of these routes was loaded.
  const wave = () => Promise.all(requests.flatMap(([path, init]) => [1, 2, 3].map(() => answerOf(`${gh.url}${path}`, init))));
  const first = await wave();
  const later = await wave();
  t.deepEqual(first, later);
  // They were answered by the pages, not by a loading error.
  t.false(
    first.some((a) => a.status >= 500),
    JSON.stringify(first.filter((a) => a.status >= 500)),
  );
  // Three answers per request, in order: /admin/login first, /admin/api/clients third.
  const adminLogin = first[0]!;
  const adminApi = first[6]!;
  t.is(adminLogin.status, 200);
  t.true((adminLogin.body as { csrf: boolean }).csrf);
  t.is(adminApi.status, 401);
});

/** A real listening Koa app in front of `routes`, answering errors as Gatehouse's own routes do. */
async function serve(t: { teardown(fn: () => unknown): void }, routes: Koa.Middleware): Promise<string> {
  const app = new Koa();
  app.silent = true;
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      respondWithJson(ctx, problemOf(err));
    }
  });
  app.use(routes);
  app.use((ctx) => {
    ctx.status = 404;
    ctx.body = 'outside';
  });
  const server = http.createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const helloRoutes = (): RouteTable => {
  const router = new Router({ prefix: '/lazy' });
  router.get('/hello', (ctx) => {
    ctx.body = { hello: 'world' };
  });
  return router;
};

test('concurrent first requests load the routes once; a path outside the prefixes never loads them', async (t) => {
  let loads = 0;
  const url = await serve(
    t,
    lazyRoutes('test', ['/lazy'], async () => {
      loads++;
      await new Promise((resolve) => setTimeout(resolve, 100));
      return helloRoutes();
    }),
  );
  t.is((await fetch(`${url}/elsewhere`)).status, 404);
  t.is(loads, 0);
  const answers = await Promise.all(
    Array.from({ length: 20 }, () => fetch(`${url}/lazy/hello`).then(async (res) => ({ status: res.status, body: await res.json() }))),
  );
  t.is(loads, 1);
  t.deepEqual(
    answers,
    Array.from({ length: 20 }, () => ({ status: 200, body: { hello: 'world' } })),
  );
  // The router's own answers too: a method the path does not take.
  const wrongMethod = await fetch(`${url}/lazy/hello`, { method: 'POST' });
  t.is(wrongMethod.status, 405);
  t.is(wrongMethod.headers.get('allow'), 'HEAD, GET');
  t.is(loads, 1);
});

test('routes that fail to load answer 503 with a clear error, never crash, and load at a later request', async (t) => {
  let failing = true;
  let loads = 0;
  const url = await serve(
    t,
    lazyRoutes('test', ['/lazy'], async () => {
      loads++;
      if (failing) throw new Error('Cannot find module ./missing.js');
      return helloRoutes();
    }),
  );
  const refused = await Promise.all(Array.from({ length: 5 }, () => fetch(`${url}/lazy/hello`)));
  for (const res of refused) {
    t.is(res.status, 503);
    t.truthy(res.headers.get('retry-after'));
    t.deepEqual(await res.json(), { error: 'temporarily_unavailable', error_description: 'The test pages could not be loaded; try again shortly.' });
  }
  // Outside the prefixes nothing changed.
  t.is((await fetch(`${url}/elsewhere`)).status, 404);
  failing = false;
  const res = await fetch(`${url}/lazy/hello`);
  t.is(res.status, 200);
  t.deepEqual(await res.json(), { hello: 'world' });
  const attempts = loads;
  await fetch(`${url}/lazy/hello`);
  t.is(loads, attempts);
});
