import { randomBytes } from 'node:crypto';
import anyTest, { type TestFn } from 'ava';
import { decodeJwt } from 'jose';
import { CLI_ACTOR } from '../src/admin/audit.ts';
import { adminApi, type AdminApi } from './support/admin-api.ts';
import { runCli } from './support/cli.ts';
import type { TestGatehouse } from './support/gatehouse.ts';
import { basicAuth, FORM_CONTENT_TYPE, postForm } from './support/http.ts';
import { startLoopbackGatehouse } from './support/relying-party.ts';
import { operatorAgent } from './support/attacks.ts';

/**
 * Resource servers are data: an operator registers, lists, changes and deletes them with the CLI
 * and the admin API (every change audited), a client may get one by default, and a resource the
 * CLI (another process) just created is served by the running Gatehouse at once.
 */

interface Context {
  gh: TestGatehouse;
  api: AdminApi;
}

const test = anyTest as TestFn<Context>;
const tag = () => randomBytes(4).toString('hex');

test.before(async (t) => {
  const gh = await startLoopbackGatehouse();
  const created = await runCli(['admin-tokens', 'create', '--name', 'resources-test', '--json'], gh.env);
  if (created.code !== 0) throw new Error(created.stderr);
  await gh.services.scopes.create({ name: 'invoices:read', description: 'Read your invoices' });
  await gh.services.scopes.create({ name: 'invoices:write', description: 'Change your invoices' });
  t.context = { gh, api: adminApi(gh, created.json().token) };
});

test.after.always(async (t) => {
  await t.context.gh?.close();
});

async function clientCredentials(gh: TestGatehouse, id: string, secret: string, params: Record<string, string> = {}) {
  const res = await fetch(`${gh.url}/token`, {
    method: 'POST',
    headers: { ...FORM_CONTENT_TYPE, authorization: basicAuth(id, secret) },
    body: new URLSearchParams({ grant_type: 'client_credentials', ...params }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

// ---- the CLI ---------------------------------------------------------------------------------

test('an operator registers an API with the CLI and the running server serves it at once, by message', async (t) => {
  const { gh } = t.context;
  const audience = `https://api-${tag()}.example.com`;
  const service = await runCli(
    ['clients', 'create', '--name', `Service ${tag()}`, '--type', 'confidential', '--grant', 'client_credentials', '--scope', 'invoices:read', '--json'],
    gh.env,
  );
  t.is(service.code, 0, service.stderr);
  const { client_id, client_secret } = service.json();
  // The server reads (and keeps) the list of resources: the API is not one yet.
  t.is((await clientCredentials(gh, client_id, client_secret, { resource: audience })).body.error, 'invalid_target');

  const created = await runCli(
    [
      'resources',
      'create',
      '--audience',
      audience,
      '--scope',
      'invoices:read',
      '--scope',
      'invoices:write',
      '--token-format',
      'jwt',
      '--access-token-ttl',
      '300',
      '--name',
      'Invoices',
      '--json',
    ],
    gh.env,
  );
  t.is(created.code, 0, created.stderr);
  t.like(created.json(), {
    audience,
    name: 'Invoices',
    scopes: ['invoices:read', 'invoices:write'],
    token_format: 'jwt',
    signing_alg: 'ES256',
    access_token_ttl: 300,
  });

  // The CLI is another process: its message dropped the server's copy, long before the cache's TTL.
  const token = await clientCredentials(gh, client_id, client_secret, { resource: audience });
  t.is(token.status, 200, JSON.stringify(token.body));
  t.is(decodeJwt(token.body.access_token).aud, audience);
  t.is(token.body.expires_in, 300);

  t.is((await runCli(['resources', 'update', audience, '--access-token-ttl', '120'], gh.env)).code, 0);
  t.is((await clientCredentials(gh, client_id, client_secret, { resource: audience })).body.expires_in, 120);
});

test('an operator lists, shows, changes and deletes a resource with the CLI', async (t) => {
  const { gh } = t.context;
  const audience = `https://ledger-${tag()}.example.com`;
  t.is((await runCli(['resources', 'create', '--audience', audience, '--scope', 'invoices:read'], gh.env)).code, 0);

  const listed = await runCli(['resources', 'list', '--json'], gh.env);
  t.is(listed.code, 0, listed.stderr);
  t.true((listed.json() as Array<{ audience: string }>).some((r) => r.audience === audience));
  const shown = await runCli(['resources', 'show', audience], gh.env);
  t.regex(shown.stdout, /token format: {2}opaque/);

  const updated = await runCli(
    ['resources', 'update', audience, '--scope', 'invoices:write', '--token-format', 'jwt', '--signing-alg', 'RS256', '--json'],
    gh.env,
  );
  t.is(updated.code, 0, updated.stderr);
  t.like(updated.json(), { scopes: ['invoices:write'], token_format: 'jwt', signing_alg: 'RS256', name: audience });

  const deleted = await runCli(['resources', 'delete', audience, '--json'], gh.env);
  t.is(deleted.code, 0, deleted.stderr);
  t.deepEqual(deleted.json(), { audience, deleted: true });
  const gone = await runCli(['resources', 'show', audience, '--json'], gh.env);
  t.is(gone.code, 1);
  t.regex(gone.stderr, /"error":"not_found"/);
});

test('the CLI refuses a bad resource naming each option at fault, and a missing --audience as a usage error', async (t) => {
  const { gh } = t.context;
  const bad = await runCli(['resources', 'create', '--audience', 'http://api.example.com', '--scope', 'nope:read', '--token-format', 'paseto'], gh.env);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /--audience: "http:\/\/api\.example\.com" must use https/);
  t.regex(bad.stderr, /--scope: unknown scope nope:read/);
  t.regex(bad.stderr, /--token-format: must be opaque or jwt/);

  const missing = await runCli(['resources', 'create', '--scope', 'invoices:read'], gh.env);
  t.is(missing.code, 2);
  t.regex(missing.stderr, /missing --audience/);

  const unknownOption = await runCli(['resources', 'list', '--scope', 'x'], gh.env);
  t.is(unknownOption.code, 2);
});

test('a client gets a default resource with --default-resource, and the resource cannot be deleted while it does', async (t) => {
  const { gh } = t.context;
  const audience = `https://default-${tag()}.example.com`;
  t.is((await runCli(['resources', 'create', '--audience', audience, '--scope', 'invoices:read', '--token-format', 'jwt'], gh.env)).code, 0);
  const unknown = await runCli(
    ['clients', 'create', '--name', 'x', '--type', 'confidential', '--grant', 'client_credentials', '--default-resource', 'https://nowhere.example.com'],
    gh.env,
  );
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /--default-resource: no resource server has the audience https:\/\/nowhere\.example\.com/);

  const client = await runCli(
    [
      'clients',
      'create',
      '--name',
      `Defaulted ${tag()}`,
      '--type',
      'confidential',
      '--grant',
      'client_credentials',
      '--scope',
      'invoices:read',
      '--default-resource',
      audience,
      '--json',
    ],
    gh.env,
  );
  t.is(client.code, 0, client.stderr);
  t.is(client.json().default_resource, audience);
  const token = await clientCredentials(gh, client.json().client_id, client.json().client_secret);
  t.is(decodeJwt(token.body.access_token).aud, audience);

  const refused = await runCli(['resources', 'delete', audience, '--json'], gh.env);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /"error":"resource_in_use"/);

  const cleared = await runCli(['clients', 'update', client.json().client_id, '--no-default-resource', '--json'], gh.env);
  t.is(cleared.code, 0, cleared.stderr);
  t.is(cleared.json().default_resource, null);
  t.is((await runCli(['resources', 'delete', audience], gh.env)).code, 0);
});

// ---- the admin API ---------------------------------------------------------------------------

test('a script manages resources through the admin API, and each change is audited', async (t) => {
  const { api } = t.context;
  const audience = `https://reports-${tag()}.example.com`;
  const created = await api('POST', '/resources', { body: { audience, name: 'Reports', scopes: ['invoices:read'], token_format: 'jwt' } });
  t.is(created.status, 201, created.text);
  t.like(created.body, { audience, name: 'Reports', token_format: 'jwt', signing_alg: 'ES256', access_token_ttl: null });

  const path = `/resources/${encodeURIComponent(audience)}`;
  t.is((await api('GET', path)).body.name, 'Reports');
  t.true(((await api('GET', '/resources')).body as Array<{ audience: string }>).some((r) => r.audience === audience));

  const patched = await api('PATCH', path, { body: { access_token_ttl: 120, scopes: ['invoices:read', 'invoices:write'] } });
  t.is(patched.status, 200, patched.text);
  t.like(patched.body, { access_token_ttl: 120, scopes: ['invoices:read', 'invoices:write'] });

  const renamed = await api('PATCH', path, { body: { audience: 'https://other.example.com' } });
  t.is(renamed.status, 400);
  t.regex(renamed.body.error_description, /audience: cannot change/);

  t.is((await api('DELETE', path)).status, 204);
  t.is((await api('GET', path)).status, 404);

  const actions = ((await api('GET', '/audit?limit=20')).body as Array<{ action: string; target: string }>)
    .filter((e) => e.target === `resource:${audience}`)
    .map((e) => e.action);
  t.deepEqual(actions.sort(), ['resource.create', 'resource.delete', 'resource.update']);
});

test('the admin API refuses a bad resource by field name, an unknown field, and a duplicate', async (t) => {
  const { api } = t.context;
  const bad = await api('POST', '/resources', { body: { audience: 'not a url', scopes: [], token_format: 'jwt', access_token_ttl: -1 } });
  t.is(bad.status, 400);
  t.regex(bad.body.error_description, /audience: "not a url" is not an absolute URL/);
  t.regex(bad.body.error_description, /scopes: name at least one API scope/);
  t.regex(bad.body.error_description, /access_token_ttl: must be a whole number/);

  const unknown = await api('POST', '/resources', { body: { audience: 'https://x.example.com', scopes: ['invoices:read'], algorithm: 'HS256' } });
  t.is(unknown.status, 400);
  t.regex(unknown.body.error_description, /algorithm: is not a resource field/);

  const audience = `https://twice-${tag()}.example.com`;
  t.is((await api('POST', '/resources', { body: { audience, scopes: ['invoices:read'] } })).status, 201);
  const twice = await api('POST', '/resources', { body: { audience, scopes: ['invoices:read'] } });
  t.is(twice.status, 400);
  t.regex(twice.body.error_description, /already exists/);
});

test('a client gets default_resource through the admin API; a scope a resource accepts cannot be deleted', async (t) => {
  const { api, gh } = t.context;
  await gh.services.scopes.create({ name: `held-${tag()}`, description: 'Held by a resource' }).then(async (scope) => {
    const audience = `https://held-${tag()}.example.com`;
    t.is((await api('POST', '/resources', { body: { audience, scopes: [scope.name] } })).status, 201);
    const refused = await api('DELETE', `/scopes/${encodeURIComponent(scope.name)}`);
    t.is(refused.status, 409);
    t.is(refused.body.error, 'scope_in_use');
    t.regex(refused.body.error_description, new RegExp(`accepted by resource ${audience.replace(/\./g, '\\.')}`));

    const client = await api('POST', '/clients', {
      body: { client_name: 'API default', grant_types: ['client_credentials'], scope: scope.name, default_resource: audience },
    });
    t.is(client.status, 201, client.text);
    t.is(client.body.default_resource, audience);
    const inUse = await api('DELETE', `/resources/${encodeURIComponent(audience)}`);
    t.is(inUse.status, 409);
    t.is(inUse.body.error, 'resource_in_use');
  });
});

// ---- the admin pages -------------------------------------------------------------------------

test('an operator registers, edits and deletes a resource on the admin pages', async (t) => {
  const { gh } = t.context;
  await gh.services.accounts.create({ username: 'resource-keeper', email: 'keeper@example.com', password: 'resources-are-rows-2026', isAdmin: true });
  const { agent } = await operatorAgent(gh, 'resource-keeper', 'resources-are-rows-2026');
  const listed = await agent.open(`${gh.url}/admin/resources`);
  t.is(listed.status, 200);
  t.regex(listed.html, /value="invoices:read"/, 'the scopes to choose from');

  const audience = `https://pages-${tag()}.example.com`;
  const refused = await agent.submit(listed, /\/admin\/resources$/, { audience: 'ftp://nope', tokenFormat: 'jwt', signingAlg: 'ES256' });
  t.is(refused.status, 400);
  t.regex(refused.html, /must use https/);
  t.regex(refused.html, /name at least one API scope/);

  const form = new URLSearchParams({
    csrf: /name="csrf" value="([^"]+)"/.exec(listed.html)![1]!,
    audience,
    name: 'Pages API',
    tokenFormat: 'jwt',
    signingAlg: 'RS256',
    accessTokenTtl: '90',
  });
  form.append('scopes', 'invoices:read');
  form.append('scopes', 'invoices:write');
  const created = await agent.request(`${gh.url}/admin/resources`, { method: 'POST', headers: FORM_CONTENT_TYPE, body: form });
  t.is(created.status, 303);
  t.like(await gh.services.resources.get(audience), {
    name: 'Pages API',
    scopes: ['invoices:read', 'invoices:write'],
    tokenFormat: 'jwt',
    signingAlg: 'RS256',
    accessTokenTtl: 90,
  });
  const shown = await agent.open(`${gh.url}/admin/resources?notice=resource-created`);
  t.regex(shown.html, new RegExp(`data-audience="${audience.replace(/\./g, '\\.')}"`));

  // Edited on its own page: another lifetime and one scope fewer; a bad lifetime is shown in place.
  const edit = await agent.open(`${gh.url}/admin/resources/${encodeURIComponent(audience)}`);
  t.is(edit.status, 200);
  t.regex(edit.html, /value="Pages API"/);
  const badTtl = await agent.submit(edit, /\/admin\/resources\/[^/]+$/, { accessTokenTtl: 'soon' });
  t.is(badTtl.status, 400);
  t.like(await gh.services.resources.get(audience), { accessTokenTtl: 90 }, 'nothing saved');
  const editForm = new URLSearchParams({
    csrf: /name="csrf" value="([^"]+)"/.exec(edit.html)![1]!,
    name: 'Pages API v2',
    tokenFormat: 'opaque',
    signingAlg: 'ES256',
    accessTokenTtl: '300',
  });
  editForm.append('scopes', 'invoices:read');
  const saved = await agent.request(`${gh.url}/admin/resources/${encodeURIComponent(audience)}`, {
    method: 'POST',
    headers: FORM_CONTENT_TYPE,
    body: editForm,
  });
  t.is(saved.status, 303);
  t.like(await gh.services.resources.get(audience), { name: 'Pages API v2', scopes: ['invoices:read'], tokenFormat: 'opaque', accessTokenTtl: 300 });
  t.is((await agent.open(`${gh.url}/admin/resources/${encodeURIComponent('https://no-such.example.com')}`)).status, 404);

  const csrf = /name="csrf" value="([^"]+)"/.exec(shown.html)![1]!;
  const deleted = await postForm(agent, `${gh.url}/admin/resources/${encodeURIComponent(audience)}/delete`, { csrf });
  t.is(deleted.status, 303, deleted.html);
  await t.throwsAsync(gh.services.resources.get(audience), { message: /does not exist/ });
});

// ---- PostgreSQL ------------------------------------------------------------------------------

test('resources live in PostgreSQL as in SQLite: created, served, refused twice, deleted', async (t) => {
  const pg = await startLoopbackGatehouse({ database: 'pg' });
  try {
    const { admin, scopes, resources } = pg.services;
    await scopes.create({ name: 'pg:read', description: 'Read over PostgreSQL' });
    const created = await admin.createResource(CLI_ACTOR, {
      audience: 'https://pg-api.example.com',
      scopes: ['pg:read'],
      tokenFormat: 'jwt',
      accessTokenTtl: 90,
    });
    t.like(created, { audience: 'https://pg-api.example.com', scopes: ['pg:read'], tokenFormat: 'jwt', accessTokenTtl: 90 });
    await t.throwsAsync(admin.createResource(CLI_ACTOR, { audience: 'https://pg-api.example.com', scopes: ['pg:read'] }), {
      message: /already exists/,
    });
    const { client, clientSecret } = await admin.createClient(CLI_ACTOR, {
      name: 'pg service',
      type: 'confidential',
      grantTypes: ['client_credentials'],
      scope: ['pg:read'],
    });
    const token = await clientCredentials(pg, client.clientId, clientSecret!, { resource: 'https://pg-api.example.com' });
    t.is(token.status, 200, JSON.stringify(token.body));
    t.is(decodeJwt(token.body.access_token).aud, 'https://pg-api.example.com');
    await admin.deleteResource(CLI_ACTOR, 'https://pg-api.example.com');
    t.deepEqual(await resources.list(), []);
  } finally {
    await pg.close();
  }
});
