/**
 * GATEHOUSE_COMPAT_PATHS: django-oauth-toolkit's URL layout under /o/ (`dot`) or under any
 * prefix (`dot:/oauth`, the Flask guide's layout). Every DOT path is sent beside its standard
 * counterpart and must answer the same: status, headers (CORS included) and body.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { ConfigError, loadConfig } from '../src/config.ts';
import { OWN_PREFIXES } from '../src/app.ts';
import { RESERVED_SEGMENTS } from '../src/compat/dot-paths.ts';
import { basicAuth } from './support/http.ts';
import type { TestGatehouse } from './support/gatehouse.ts';
import { readAnswer, type RawAnswer } from './support/http-answer.ts';
import { createClient, REDIRECT_URI, startLoopbackGatehouse, type RegisteredClient } from './support/relying-party.ts';
import { createApiKeyWithCli, userWhoAuthorized } from './support/userdata.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const ORIGIN = 'http://127.0.0.1:8765';

interface Layout {
  env: string;
  prefix: string;
}

const LAYOUTS: Layout[] = [
  { env: 'dot', prefix: '/o' },
  { env: 'dot:/oauth', prefix: '/oauth' },
];

interface Server {
  gh: TestGatehouse;
  app: RegisteredClient;
  apiKey: string;
  /** A person who signed in to the app and allowed it (scope openid userdata). */
  sub: string;
  accessToken: string;
}

const servers = new Map<string, Promise<Server>>();

/** A Gatehouse per layout, started once, with an app (CORS origin, API key) and a signed-in person. */
function serverFor(layout: Layout): Promise<Server> {
  let server = servers.get(layout.env);
  if (!server) {
    server = (async () => {
      const gh = await startLoopbackGatehouse({ env: { GATEHOUSE_COMPAT_PATHS: layout.env } });
      const app = await createClient(gh, [
        '--name', 'Flask app', '--type', 'confidential', '--auth-method', 'client_secret_post',
        '--grant', 'authorization_code', '--grant', 'refresh_token', '--grant', 'client_credentials',
        '--redirect-uri', REDIRECT_URI, '--origin', ORIGIN, '--scope', 'openid profile email userdata read',
      ]);
      const { key } = await createApiKeyWithCli(gh, app.clientId, ['userdata:read', 'userdata:write']);
      const { sub, tokens } = await userWhoAuthorized(gh, `person-${layout.prefix.slice(1)}`, [app]);
      // A document to read back, so GETs compare a real one (and its ETag).
      const put = await send(gh, 'PUT', `/userdata/${sub}`, { 'x-api-key': key, 'content-type': 'application/json' }, '{"theme":"dark"}');
      if (put.status !== 200) throw new Error(`PUT /userdata: ${put.status} ${put.text}`);
      return { gh, app, apiKey: key, sub, accessToken: tokens[0]! };
    })();
    servers.set(layout.env, server);
  }
  return server;
}

test.after.always(async () => {
  for (const server of servers.values()) await (await server.catch(() => undefined))?.gh.close();
});

/** One request over a connection of its own (path with its query, any method and headers). */
function send(gh: TestGatehouse, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<RawAnswer> {
  const url = new URL(gh.url);
  return new Promise((resolve, reject) => {
    const all: Record<string, string | number> = { ...headers };
    if (body !== undefined) all['content-length'] = Buffer.byteLength(body);
    const req = http.request({ host: '127.0.0.1', port: url.port, path, method, headers: all, agent: false }, (res) => readAnswer(res).then(resolve, reject));
    req.on('error', reject);
    req.end(body);
  });
}

/** What must be equal between two answers: everything but what differs per request by design. */
function comparable(answer: RawAnswer) {
  const volatile = new Set(['date', 'x-request-id', 'set-cookie', 'content-length', 'connection', 'keep-alive']);
  const headers = Object.fromEntries(
    Object.entries(answer.headers)
      .filter(([name]) => !volatile.has(name))
      .map(([name, value]) => [name, String(value).replace(/\/interaction\/[\w-]+/g, '/interaction/UID').replace(/'nonce-[^']+'/g, "'nonce-N'")]),
  );
  const body = answer.json
    ? JSON.stringify(answer.json, (key, value) => (['access_token', 'id_token', 'refresh_token'].includes(key) ? 'TOKEN' : value))
    // Pages carry a fresh CSRF token and CSP nonce each time.
    : answer.text.replace(/(name="xsrf" value=")[^"]+/g, '$1X').replace(/nonce="[^"]+"/g, 'nonce="N"').replace(/\/interaction\/[\w-]+/g, '/interaction/UID');
  return { status: answer.status, headers, body };
}

interface Row {
  title: string;
  method: string;
  /** DOT's path after the prefix, as DOT writes it. */
  dot: string;
  standard: string;
  query?: (s: Server) => string;
  headers?: (s: Server) => Record<string, string>;
  body?: (s: Server) => string;
  status: number;
  /** Headers the standard answer must carry, so that comparing them means something. */
  carries?: string[];
}

const form = { 'content-type': 'application/x-www-form-urlencoded' };
const authorizeQuery = (redirectUri: string) => (s: Server) =>
  `?${new URLSearchParams({ client_id: s.app.clientId, redirect_uri: redirectUri, response_type: 'code', scope: 'openid', state: 'random_state_string' })}`;

const ROWS: Row[] = [
  { title: 'the authorization endpoint sends the browser to the sign-in', method: 'GET', dot: 'authorize/', standard: '/authorize', query: authorizeQuery(REDIRECT_URI), status: 303 },
  { title: 'the authorization endpoint refuses an unregistered redirect URI', method: 'GET', dot: 'authorize/', standard: '/authorize', query: authorizeQuery('https://evil.example/cb'), status: 400 },
  {
    title: 'the token endpoint issues a client credentials token (client_secret_post, from an allowed origin)',
    method: 'POST', dot: 'token/', standard: '/token', status: 200,
    headers: () => ({ ...form, origin: ORIGIN }),
    body: (s) => new URLSearchParams({ grant_type: 'client_credentials', scope: 'read', client_id: s.app.clientId, client_secret: s.app.clientSecret! }).toString(),
    carries: ['access-control-allow-origin'],
  },
  {
    title: 'the token endpoint refuses a wrong secret',
    method: 'POST', dot: 'token/', standard: '/token', status: 401,
    headers: (s) => ({ ...form, authorization: basicAuth(s.app.clientId, 'not-the-secret') }),
    body: () => 'grant_type=client_credentials',
  },
  {
    title: 'the token endpoint answers a CORS preflight from an allowed origin',
    method: 'OPTIONS', dot: 'token/', standard: '/token', status: 204,
    headers: () => ({ origin: ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' }),
    carries: ['access-control-allow-origin', 'access-control-allow-methods'],
  },
  { title: 'userinfo answers the person\'s claims', method: 'GET', dot: 'userinfo/', standard: '/userinfo', status: 200, headers: (s) => ({ authorization: `Bearer ${s.accessToken}`, accept: 'application/json', origin: ORIGIN }), carries: ['access-control-allow-origin'] },
  { title: 'userinfo refuses a request without a token', method: 'GET', dot: 'userinfo/', standard: '/userinfo', status: 401, carries: ['www-authenticate'] },
  {
    title: 'introspection describes the access token',
    method: 'POST', dot: 'introspect/', standard: '/introspect', status: 200, headers: () => form,
    body: (s) => new URLSearchParams({ token: s.accessToken, client_id: s.app.clientId, client_secret: s.app.clientSecret! }).toString(),
  },
  {
    title: 'revocation accepts an unknown token',
    method: 'POST', dot: 'revoke_token/', standard: '/revoke', status: 200, headers: () => form,
    body: (s) => new URLSearchParams({ token: 'no-such-token', client_id: s.app.clientId, client_secret: s.app.clientSecret! }).toString(),
  },
  { title: 'discovery is the standard document', method: 'GET', dot: '.well-known/openid-configuration/', standard: '/.well-known/openid-configuration', status: 200 },
  { title: 'the JWKS is the standard one', method: 'GET', dot: '.well-known/jwks.json', standard: '/jwks', status: 200 },
  { title: 'the app\'s key reads the person\'s document', method: 'GET', dot: 'userdata/{sub}/', standard: '/userdata/{sub}', status: 200, headers: (s) => ({ 'x-api-key': s.apiKey, accept: 'application/json' }), carries: ['etag'] },
  { title: 'the app\'s key is refused a person who never signed in to it', method: 'GET', dot: 'userdata/12345/', standard: '/userdata/12345', status: 403, headers: (s) => ({ 'x-api-key': s.apiKey }) },
  { title: 'a wrong API key is refused', method: 'GET', dot: 'userdata/{sub}/', standard: '/userdata/{sub}', status: 401, headers: () => ({ 'x-api-key': 'ghk_wrong' }) },
  { title: 'a method userdata does not serve is refused', method: 'POST', dot: 'userdata/{sub}/', standard: '/userdata/{sub}', status: 405, headers: (s) => ({ 'x-api-key': s.apiKey, 'content-type': 'application/json' }), body: () => '{}', carries: ['allow'] },
  { title: 'the person\'s own token reads userdata/me/', method: 'GET', dot: 'userdata/me/', standard: '/userdata/me', status: 200, headers: (s) => ({ authorization: `Bearer ${s.accessToken}` }) },
  { title: 'the bearer logout refuses a POST without a token', method: 'POST', dot: 'logout/', standard: '/logout', status: 401, headers: () => ({ 'content-type': 'application/json' }), body: () => '{}', carries: ['www-authenticate'] },
  { title: 'the bearer logout refuses an unknown token', method: 'POST', dot: 'logout/', standard: '/logout', status: 401, headers: () => ({ authorization: 'Bearer not-a-token', 'content-type': 'application/json' }) },
  { title: 'a browser sent to logout/ gets the RP-initiated logout page', method: 'GET', dot: 'logout/', standard: '/session/end', status: 200, carries: ['content-security-policy'] },
  { title: 'a form posted to logout/ without a token is the bearer logout\'s 401 (/session/end takes no POST)', method: 'POST', dot: 'logout/', standard: '/logout', status: 401, headers: () => form, body: () => 'state=abc' },
  { title: 'a GET with a Bearer token is the bearer logout\'s 405', method: 'GET', dot: 'logout/', standard: '/logout', status: 405, headers: () => ({ authorization: 'Bearer abc' }), carries: ['allow'] },
];

const withSub = (path: string, s: Server) => path.replace('{sub}', s.sub);

for (const layout of LAYOUTS) {
  for (const row of ROWS) {
    test(`GATEHOUSE_COMPAT_PATHS=${layout.env}: ${row.method} ${layout.prefix}/${row.dot} answers as ${row.method} ${row.standard} does, with or without the trailing slash: ${row.title}`, async (t) => {
      const s = await serverFor(layout);
      const query = row.query?.(s) ?? '';
      const standard = await send(s.gh, row.method, `${withSub(row.standard, s)}${query}`, row.headers?.(s), row.body?.(s));
      t.is(standard.status, row.status, `the standard path itself: ${standard.text.slice(0, 300)}`);
      for (const name of row.carries ?? []) t.truthy(standard.headers[name], `the standard answer carries ${name}`);
      const asDotWrites = `${layout.prefix}/${withSub(row.dot, s)}`;
      const other = asDotWrites.endsWith('/') ? asDotWrites.slice(0, -1) : `${asDotWrites}/`;
      for (const path of [asDotWrites, other]) {
        const dot = await send(s.gh, row.method, `${path}${query}`, row.headers?.(s), row.body?.(s));
        t.deepEqual(comparable(dot), comparable(standard), `${row.method} ${path}`);
      }
    });
  }
}

for (const layout of LAYOUTS) {
  test(`GATEHOUSE_COMPAT_PATHS=${layout.env}: the Flask guide's POST ${layout.prefix}/logout/ with a Bearer token and Content-Type: application/json revokes the sign-in, as POST /logout does`, async (t) => {
    const s = await serverFor(layout);
    // Two people: both sign-ins of one person to one app share a grant, which a logout revokes.
    const [one, other] = await Promise.all(['a', 'b'].map((n) => userWhoAuthorized(s.gh, `leaver-${n}-${layout.prefix.slice(1)}`, [s.app])));
    const headers = (token: string) => ({ authorization: `Bearer ${token}`, 'content-type': 'application/json' });
    const viaDot = await send(s.gh, 'POST', `${layout.prefix}/logout/`, headers(one!.tokens[0]!));
    const viaStandard = await send(s.gh, 'POST', '/logout', headers(other!.tokens[0]!));
    t.is(viaDot.status, 204, viaDot.text);
    t.deepEqual(comparable(viaDot), comparable(viaStandard));
    const after = await send(s.gh, 'GET', `${layout.prefix}/userinfo/`, { authorization: `Bearer ${one!.tokens[0]}` });
    t.is(after.status, 401, 'the token stopped working');
  });

  test(`GATEHOUSE_COMPAT_PATHS=${layout.env}: a write through ${layout.prefix}/userdata/{sub}/ is the document /userdata/{sub} reads`, async (t) => {
    const s = await serverFor(layout);
    const { sub } = await userWhoAuthorized(s.gh, `writer-${layout.prefix.slice(1)}`, [s.app]);
    const put = await send(s.gh, 'PUT', `${layout.prefix}/userdata/${sub}/`, { 'x-api-key': s.apiKey, 'content-type': 'application/json' }, '{"lang":"en"}');
    t.is(put.status, 200, put.text);
    const patch = await send(s.gh, 'PATCH', `${layout.prefix}/userdata/${sub}`, { 'x-api-key': s.apiKey, 'content-type': 'application/merge-patch+json', 'if-match': put.headers.etag! }, '{"tz":"UTC"}');
    t.is(patch.status, 200, patch.text);
    const read = await send(s.gh, 'GET', `/userdata/${sub}`, { 'x-api-key': s.apiKey });
    t.deepEqual(read.json, { lang: 'en', tz: 'UTC' });
    t.is(read.headers.etag, patch.headers.etag);
    const deleted = await send(s.gh, 'DELETE', `${layout.prefix}/userdata/${sub}/`, { 'x-api-key': s.apiKey });
    t.is(deleted.status, 204);
    t.deepEqual((await send(s.gh, 'GET', `/userdata/${sub}`, { 'x-api-key': s.apiKey })).json, {});
  });

  test(`GATEHOUSE_COMPAT_PATHS=${layout.env}: paths DOT does not have under ${layout.prefix}/ are not found, and discovery lists the standard endpoints`, async (t) => {
    const s = await serverFor(layout);
    for (const path of [`${layout.prefix}/applications/`, `${layout.prefix}/`, `${layout.prefix}/userdata/`, `${layout.prefix}/userdata/a/b/`, `${layout.prefix}/tokens/`, `${layout.prefix}/authorize/extra`]) {
      const res = await send(s.gh, 'GET', path);
      t.is(res.status, 404, path);
      t.is(res.json?.error, 'not_found', path);
    }
    const discovery = (await send(s.gh, 'GET', `${layout.prefix}/.well-known/openid-configuration/`)).json;
    t.is(discovery.token_endpoint, `${s.gh.config.issuer}/token`);
    t.is(discovery.authorization_endpoint, `${s.gh.config.issuer}/authorize`);
    t.is(discovery.issuer, s.gh.config.issuer);
  });
}

test('GATEHOUSE_COMPAT_PATHS=dot:/oauth serves DOT\'s paths under /oauth/ only, not under /o/', async (t) => {
  const s = await serverFor(LAYOUTS[1]!);
  const res = await send(s.gh, 'POST', '/o/token/', { ...form, authorization: basicAuth(s.app.clientId, s.app.clientSecret!) }, 'grant_type=client_credentials');
  t.is(res.status, 404);
  const ok = await send(s.gh, 'POST', '/oauth/token/', { ...form, authorization: basicAuth(s.app.clientId, s.app.clientSecret!) }, 'grant_type=client_credentials');
  t.is(ok.status, 200, ok.text);
});

// ---- the setting itself ---------------------------------------------------------------------

test('GATEHOUSE_COMPAT_PATHS reads dot as DOT\'s /o/ and dot:/PREFIX as any prefix', (t) => {
  t.deepEqual(loadConfig({ GATEHOUSE_COMPAT_PATHS: 'dot' }).compatPaths, { layout: 'dot', prefix: '/o' });
  t.deepEqual(loadConfig({ GATEHOUSE_COMPAT_PATHS: 'dot:/oauth' }).compatPaths, { layout: 'dot', prefix: '/oauth' });
  t.deepEqual(loadConfig({ GATEHOUSE_COMPAT_PATHS: 'dot:/api/v1.2/auth_~x' }).compatPaths, { layout: 'dot', prefix: '/api/v1.2/auth_~x' });
  t.is(loadConfig({}).compatPaths, undefined);
});

const BAD_VALUES: Array<[string, RegExp]> = [
  ['django', /must be "dot" .* or "dot:\/PREFIX"/],
  ['dot:', /must start with "\/"/],
  ['dot:oauth', /must start with "\/"/],
  ['dot:/', /must be a path below "\/"/],
  ['dot:/oauth/', /must not end with "\/" \(dot:\/oauth, not dot:\/oauth\/\)/],
  ['dot:/a//b', /empty segment/],
  ['dot:/oauth/..', /"\." or "\.\." segments/],
  ['dot:/./oauth', /"\." or "\.\." segments/],
  ['dot:/o auth', /only letters, digits/],
  ['dot:/oauth?x=1', /only letters, digits/],
  ['dot:/oauth#top', /only letters, digits/],
  ['dot:/o%2Fauth', /only letters, digits/],
  ['dot:/ö', /only letters, digits/],
  ['dot:/admin', /clashes with Gatehouse's own \/admin paths/],
  ['dot:/interaction', /clashes/],
  ['dot:/userdata', /clashes/],
  ['dot:/admin/oauth', /clashes/],
  ['dot:/.well-known', /clashes/],
  [`dot:/${'a'.repeat(201)}`, /at most 200 characters/],
];

for (const [value, message] of BAD_VALUES) {
  test(`GATEHOUSE_COMPAT_PATHS=${value.slice(0, 40)} is refused in one line naming the variable`, (t) => {
    const err = t.throws(() => loadConfig({ GATEHOUSE_COMPAT_PATHS: value }), { instanceOf: ConfigError });
    t.regex(err!.message, /^invalid GATEHOUSE_COMPAT_PATHS: /);
    t.regex(err!.message, message);
    t.notRegex(err!.message, /\n/);
  });
}

test('no prefix may take the first segment of a path Gatehouse or discovery serves', async (t) => {
  const s = await serverFor(LAYOUTS[0]!);
  const discovery = (await send(s.gh, 'GET', '/.well-known/openid-configuration')).json as Record<string, unknown>;
  const served = [
    ...OWN_PREFIXES,
    '/.well-known/openid-configuration',
    ...Object.entries(discovery).filter(([k]) => k.endsWith('_endpoint') || k === 'jwks_uri').map(([, v]) => new URL(String(v)).pathname),
  ];
  t.true(served.length > 10);
  for (const path of served) {
    const segment = path.split('/')[1]!;
    t.true(RESERVED_SEGMENTS.has(segment), `${segment} (of ${path}) is not reserved`);
    t.throws(() => loadConfig({ GATEHOUSE_COMPAT_PATHS: `dot:/${segment}` }), { message: /clashes/ }, segment);
  }
});

test('Gatehouse started with a bad prefix stops at once with one line naming GATEHOUSE_COMPAT_PATHS', async (t) => {
  const child = spawn(process.execPath, ['--import=tsx', 'src/server.ts'], {
    cwd: root,
    env: { ...process.env, GATEHOUSE_COMPAT_PATHS: 'dot:/oauth/', PORT: '0', GATEHOUSE_WORKERS: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  t.is(code, 2);
  t.is(stdout, '');
  const lines = stderr.split('\n').filter((l) => l.trim() && !/oidc-provider WARNING/.test(l));
  t.deepEqual(lines, ['gatehouse: invalid GATEHOUSE_COMPAT_PATHS: the prefix must not end with "/" (dot:/oauth, not dot:/oauth/)']);
});
