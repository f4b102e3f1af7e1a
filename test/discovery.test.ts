import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { generateKid } from '../src/keys/service.ts';
import { runCli } from './support/cli.ts';
import { restartTestGatehouse, startTestGatehouse, type TestGatehouse } from './support/gatehouse.ts';
import { basicAuth } from './support/http.ts';

/** What a relying party configures itself from: discovery and the JWKS, over real HTTP. */

const test = anyTest as TestFn<{ gh: TestGatehouse }>;

test.before(async (t) => {
  t.context = { gh: await startTestGatehouse() };
});

test.after.always(async (t) => {
  await t.context.gh?.close();
});

type Json = Record<string, any>;

async function discovery(base: string, headers: Record<string, string> = {}): Promise<Json> {
  const res = await fetch(`${base}/.well-known/openid-configuration`, { headers });
  if (res.status !== 200) throw new Error(`discovery answered ${res.status}`);
  return (await res.json()) as Json;
}

async function jwks(base: string): Promise<{ keys: Json[] }> {
  const res = await fetch(`${base}/jwks`);
  if (res.status !== 200) throw new Error(`jwks answered ${res.status}`);
  return (await res.json()) as { keys: Json[] };
}

/** Every URL discovery lists: the *_endpoint members and jwks_uri. */
function listedUrls(doc: Json): [string, string][] {
  return Object.entries(doc).filter(([k, v]) => (k.endsWith('_endpoint') || k === 'jwks_uri') && typeof v === 'string') as [string, string][];
}

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'];

test('discovery names the issuer exactly and the endpoints at the documented paths', async (t) => {
  const { gh } = t.context;
  const doc = await discovery(gh.url);
  t.is(doc.issuer, gh.config.issuer);
  t.is(doc.issuer, gh.env.GATEHOUSE_ISSUER);
  const base = gh.config.issuer;
  t.like(doc, {
    authorization_endpoint: `${base}/authorize`,
    token_endpoint: `${base}/token`,
    userinfo_endpoint: `${base}/userinfo`,
    jwks_uri: `${base}/jwks`,
    introspection_endpoint: `${base}/introspect`,
    revocation_endpoint: `${base}/revoke`,
    end_session_endpoint: `${base}/session/end`,
  });
  t.deepEqual(doc.code_challenge_methods_supported, ['S256']);
  t.deepEqual([...doc.token_endpoint_auth_methods_supported].sort(), ['client_secret_basic', 'client_secret_post', 'none']);
  t.deepEqual(doc.response_types_supported, ['code']);
  t.true(doc.id_token_signing_alg_values_supported.includes('RS256'));
  t.true(doc.id_token_signing_alg_values_supported.includes('ES256'));
});

test('the endpoints discovery lists answer at those URLs', async (t) => {
  const { gh } = t.context;
  const doc = await discovery(gh.url);
  const jwksRes = await fetch(doc.jwks_uri);
  t.is(jwksRes.status, 200);
  // The token endpoint is there: it answers a request without a client as OAuth does.
  const tokenRes = await fetch(doc.token_endpoint, { method: 'POST', body: new URLSearchParams({ grant_type: 'client_credentials' }) });
  t.is(tokenRes.status, 400);
  t.is(((await tokenRes.json()) as Json).error, 'invalid_request');
});

test('the JWKS publishes an RS256 and an ES256 signing key and nothing private', async (t) => {
  const { gh } = t.context;
  const { keys } = await jwks(gh.url);
  const rs = keys.filter((k) => k.alg === 'RS256');
  const es = keys.filter((k) => k.alg === 'ES256');
  t.is(rs.length, 1);
  t.is(es.length, 1);
  t.like(rs[0], { kty: 'RSA', use: 'sig' });
  t.like(es[0], { kty: 'EC', crv: 'P-256', use: 'sig' });
  for (const key of keys) {
    t.is(typeof key.kid, 'string');
    for (const member of PRIVATE_MEMBERS) t.false(member in key, `key ${key.kid} publishes its private member ${member}`);
  }
  t.is(new Set(keys.map((k) => k.kid)).size, keys.length, 'two keys share a kid');
});

test('/healthz answers 200 and /readyz answers 200 with the database ok', async (t) => {
  const { gh } = t.context;
  const health = await fetch(`${gh.url}/healthz`);
  t.is(health.status, 200);
  const ready = await fetch(`${gh.url}/readyz`);
  t.is(ready.status, 200);
  const body = (await ready.json()) as Json;
  t.is(body.checks?.database, 'ok');
});

test('behind a trusted TLS proxy, discovery lists every endpoint at the public https origin', async (t) => {
  const gh = await startTestGatehouse({ env: { GATEHOUSE_TRUST_PROXY: 'true', GATEHOUSE_ISSUER: 'https://id.example.com' } });
  try {
    const doc = await discovery(gh.url, { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'id.example.com' });
    t.is(doc.issuer, 'https://id.example.com');
    const urls = listedUrls(doc);
    t.true(urls.length >= 7, `only ${urls.length} endpoints listed`);
    for (const [name, url] of urls) t.true(url.startsWith('https://id.example.com/'), `${name} is ${url}`);
    t.is(doc.token_endpoint, 'https://id.example.com/token');
    t.is(doc.jwks_uri, 'https://id.example.com/jwks');
  } finally {
    await gh.close();
  }
});

test('without proxy trust, forwarded headers do not change the endpoints', async (t) => {
  const gh = await startTestGatehouse({ env: { GATEHOUSE_TRUST_PROXY: 'false', GATEHOUSE_ISSUER: 'https://id.example.com' } });
  try {
    const doc = await discovery(gh.url, { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example' });
    t.is(doc.issuer, 'https://id.example.com');
    const urls = listedUrls(doc);
    t.true(urls.length >= 7);
    for (const [name, url] of urls) {
      t.false(url.startsWith('https:'), `${name} is ${url}`);
      t.false(url.includes('evil.example'), `${name} is ${url}`);
      t.true(url.startsWith(`${gh.url}/`), `${name} is ${url}`);
    }
  } finally {
    await gh.close();
  }
});

test('a CORS request to /token from an origin the client registered is allowed, and from another origin is not', async (t) => {
  const { gh } = t.context;
  const created = await runCli([
    'clients', 'create', '--name', 'Browser app', '--type', 'public', '--grant', 'authorization_code',
    '--redirect-uri', 'https://app.example.com/cb', '--origin', 'https://app.example.com', '--json',
  ], gh.env);
  t.is(created.code, 0, created.stderr);
  const { client_id } = created.json();

  const preflight = await fetch(`${gh.url}/token`, {
    method: 'OPTIONS',
    headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
  });
  t.is(preflight.status, 204);
  t.is(preflight.headers.get('access-control-allow-origin'), 'https://app.example.com');
  t.regex(preflight.headers.get('access-control-allow-methods') ?? '', /POST/);

  const redeem = (origin: string) =>
    fetch(`${gh.url}/token`, {
      method: 'POST',
      headers: { origin, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        client_id,
        code: 'not-a-real-code',
        redirect_uri: 'https://app.example.com/cb',
        code_verifier: 'a'.repeat(43),
      }),
    });

  const allowed = await redeem('https://app.example.com');
  const allowedBody = (await allowed.json()) as Json;
  t.is(allowed.status, 400);
  t.is(allowedBody.error, 'invalid_grant', 'the request got past client authentication and CORS');
  t.is(allowed.headers.get('access-control-allow-origin'), 'https://app.example.com');

  const refused = await redeem('https://evil.example');
  const refusedBody = (await refused.json()) as Json;
  t.is(refused.headers.get('access-control-allow-origin'), null);
  t.true(refused.status >= 400);
  t.regex(refusedBody.error_description ?? '', /origin/);
});

async function clientCredentialsToken(t: ExecutionContext, gh: TestGatehouse, id: string, secret: string): Promise<string> {
  const res = await fetch(`${gh.url}/token`, {
    method: 'POST',
    headers: { authorization: basicAuth(id, secret) },
    body: new URLSearchParams({ grant_type: 'client_credentials' }),
  });
  t.is(res.status, 200);
  return ((await res.json()) as Json).access_token;
}

async function introspect(gh: TestGatehouse, id: string, secret: string, token: string): Promise<Json> {
  const res = await fetch(`${gh.url}/introspect`, { method: 'POST', headers: { authorization: basicAuth(id, secret) }, body: new URLSearchParams({ token }) });
  return (await res.json()) as Json;
}

test('after keys rotate and a restart, the JWKS publishes the old and the new keys, and issued tokens still introspect', async (t) => {
  let gh = await startTestGatehouse();
  try {
    const oldKids = (await jwks(gh.url)).keys.map((k) => k.kid).sort();
    t.is(oldKids.length, 2);
    const [created, rotated] = await Promise.all([
      runCli(['clients', 'create', '--name', 'Keys service', '--type', 'confidential', '--grant', 'client_credentials', '--json'], gh.env),
      runCli(['keys', 'rotate', '--json'], gh.env),
    ]);
    t.is(created.code, 0, created.stderr);
    const { client_id, client_secret } = created.json();
    // Issued before the restart that puts the new keys to use.
    const token = await clientCredentialsToken(t, gh, client_id, client_secret);
    t.is(rotated.code, 0, rotated.stderr);
    const listed = rotated.json<{ kid: string; alg: string; status: string }[]>();
    t.is(listed.length, 4);
    t.deepEqual(listed.filter((k) => k.status === 'rotated').map((k) => k.kid).sort(), oldKids);
    const newKeys = listed.filter((k) => k.status === 'active');
    t.deepEqual(newKeys.map((k) => k.alg).sort(), ['ES256', 'RS256']);

    gh = await restartTestGatehouse(gh);
    const { keys } = await jwks(gh.url);
    const published = keys.map((k) => k.kid).sort();
    t.deepEqual(published, [...oldKids, ...newKeys.map((k) => k.kid)].sort());
    for (const key of keys) for (const member of PRIVATE_MEMBERS) t.false(member in key, `${key.kid} publishes ${member}`);

    const after = await introspect(gh, client_id, client_secret, token);
    t.true(after.active, 'a token issued before the rotation no longer introspects');
    t.is(after.client_id, client_id);

    // A new token is issued and introspects under the new keys too.
    const fresh = await clientCredentialsToken(t, gh, client_id, client_secret);
    t.true((await introspect(gh, client_id, client_secret, fresh)).active);
  } finally {
    await gh.close();
  }
});

test('keys retire refuses an active key, and removes a rotated one from the JWKS after a restart', async (t) => {
  let gh = await startTestGatehouse();
  try {
    const before = (await jwks(gh.url)).keys;
    const oldRs = before.find((k) => k.alg === 'RS256')!.kid as string;
    const oldEs = before.find((k) => k.alg === 'ES256')!.kid as string;
    const rotated = await runCli(['keys', 'rotate', '--json'], gh.env);
    t.is(rotated.code, 0, rotated.stderr);
    const active = rotated.json<{ kid: string; status: string; alg: string }[]>().filter((k) => k.status === 'active');
    const newRs = active.find((k) => k.alg === 'RS256')!.kid;
    const newEs = active.find((k) => k.alg === 'ES256')!.kid;

    const [refused, unknown] = await Promise.all([runCli(['keys', 'retire', newRs], gh.env), runCli(['keys', 'retire', 'no-such-kid'], gh.env)]);
    t.is(refused.code, 1);
    t.regex(refused.stderr, /active/);
    t.is(unknown.code, 1);
    t.regex(unknown.stderr, /no-such-kid does not exist/);

    const retired = await runCli(['keys', 'retire', oldRs, '--json'], gh.env);
    t.is(retired.code, 0, retired.stderr);
    t.deepEqual(retired.json(), { kid: oldRs, retired: true });

    gh = await restartTestGatehouse(gh);
    const published = (await jwks(gh.url)).keys.map((k) => k.kid).sort();
    t.deepEqual(published, [oldEs, newRs, newEs].sort());
  } finally {
    await gh.close();
  }
});

test('a key id never starts with a dash, which `keys retire` would take for an option', (t) => {
  const kids = Array.from({ length: 5000 }, generateKid);
  t.deepEqual(kids.filter((kid) => kid.startsWith('-')), []);
  t.is(new Set(kids).size, kids.length);
});
