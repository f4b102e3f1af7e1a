/**
 * Client registration refuses what it cannot honour: metadata names that only an object's
 * prototype "knows" (`constructor`, `toString`, `__proto__` …), values that are prototype names,
 * and an ID token algorithm no key of Gatehouse signs (PS256). Through the admin API, as a script
 * sends it, and through the CLI, as an operator types it.
 */
import anyTest, { type TestFn } from 'ava';
import { adminApi, type AdminApi } from './support/admin-api.ts';
import { runCli } from './support/cli.ts';
import { startTestGatehouse, type TestGatehouse } from './support/gatehouse.ts';

const test = anyTest as TestFn<{ gh: TestGatehouse; api: AdminApi }>;

test.before(async (t) => {
  const gh = await startTestGatehouse();
  const { token } = await gh.services.adminTokens.create('metadata');
  t.context = { gh, api: adminApi(gh, token) };
});

test.after.always(async (t) => t.context.gh?.close());

const SERVICE = { client_name: 'Billing', grant_types: ['client_credentials'] };
/** Names a plain object answers through Object.prototype. `__proto__` the JSON parser refuses already. */
const PROTOTYPE_NAMES = ['constructor', 'toString', 'valueOf', 'hasOwnProperty', '__defineGetter__', 'isPrototypeOf'];

const clientNamed = async (gh: TestGatehouse, name: string) => (await gh.services.clients.list()).find((c) => c.name === name);

for (const field of PROTOTYPE_NAMES) {
  test(`a script that sends the metadata field "${field}" is told it is not one, and nothing is created or changed`, async (t) => {
    const { gh, api } = t.context;
    const created = await api('POST', '/clients', { body: { client_name: `Billing ${field}`, grant_types: ['client_credentials'], [field]: 'x' } });
    t.is(created.status, 400, created.text);
    t.is(created.body.error, 'invalid_client_metadata');
    t.is(created.body.error_description, `${field}: is not a client metadata field Gatehouse knows`);
    t.is(await clientNamed(gh, `Billing ${field}`), undefined);

    const existing = await api('POST', '/clients', { body: { ...SERVICE, client_name: `Kept ${field}` } });
    t.is(existing.status, 201);
    const changed = await api('PATCH', `/clients/${existing.body.client_id}`, { body: { client_name: 'Renamed', [field]: 'x' } });
    t.is(changed.status, 400, changed.text);
    t.is(changed.body.error_description, `${field}: is not a client metadata field Gatehouse knows`);
    t.is((await api('GET', `/clients/${existing.body.client_id}`)).body.client_name, `Kept ${field}`);
  });
}

test('a body with a "__proto__" field is refused as bad JSON, and nothing is created', async (t) => {
  const { gh, api } = t.context;
  const res = await api('POST', '/clients', { raw: '{"client_name":"Billing proto","grant_types":["client_credentials"],"__proto__":{"client_name":"x"}}' });
  t.is(res.status, 400, res.text);
  t.is(await clientNamed(gh, 'Billing proto'), undefined);
});

test('a prototype name as the value of a field is refused as any unknown value, naming the field', async (t) => {
  const { api } = t.context;
  for (const [field, value] of [
    ['token_endpoint_auth_method', 'constructor'],
    ['token_endpoint_auth_method', 'toString'],
    ['id_token_signed_response_alg', 'constructor'],
    ['id_token_signed_response_alg', '__proto__'],
  ] as const) {
    const res = await api('POST', '/clients', { body: { ...SERVICE, [field]: value } });
    t.is(res.status, 400, `${field}=${value}: ${res.text}`);
    t.regex(res.body.error_description, new RegExp(`^${field}: must be one of `), `${field}=${value}`);
  }
});

test('an operator who types a prototype name as an option or a value gets a usage error or a field error', async (t) => {
  const { gh } = t.context;
  const base = ['clients', 'create', '--name', 'Billing', '--type', 'confidential', '--grant', 'client_credentials'];
  const option = await runCli([...base, '--constructor', 'x'], gh.env);
  t.is(option.code, 2, option.stderr);
  t.regex(option.stderr, /^error: unknown option --constructor$/m);
  const value = await runCli([...base, '--auth-method', 'constructor'], gh.env);
  t.is(value.code, 1, value.stderr);
  t.regex(value.stderr, /^error: --auth-method: must be one of client_secret_basic, client_secret_post, none/m);
});

test('PS256, which no signing key of Gatehouse can sign, is refused at registration, and discovery offers only what the keys sign', async (t) => {
  const { gh, api } = t.context;
  const web = { client_name: 'Web', grant_types: ['authorization_code'], redirect_uris: ['https://app.example.com/cb'] };
  const viaApi = await api('POST', '/clients', { body: { ...web, id_token_signed_response_alg: 'PS256' } });
  t.is(viaApi.status, 400, viaApi.text);
  t.is(
    viaApi.body.error_description,
    'id_token_signed_response_alg: Gatehouse has no PS256 signing key, so no ID token of this client could be signed. Use RS256 or ES256',
  );

  const created = await api('POST', '/clients', { body: web });
  const update = await api('PATCH', `/clients/${created.body.client_id}`, { body: { id_token_signed_response_alg: 'PS256' } });
  t.is(update.status, 400, update.text);
  t.is((await api('GET', `/clients/${created.body.client_id}`)).body.id_token_signed_response_alg, 'RS256');

  const viaCli = await runCli(
    [
      'clients',
      'create',
      '--name',
      'Web',
      '--type',
      'confidential',
      '--grant',
      'authorization_code',
      '--redirect-uri',
      'https://app.example.com/cb',
      '--id-token-alg',
      'PS256',
    ],
    gh.env,
  );
  t.is(viaCli.code, 1, viaCli.stderr);
  t.regex(viaCli.stderr, /--id-token-alg: Gatehouse has no PS256 signing key/m);

  const es = await api('POST', '/clients', { body: { ...web, id_token_signed_response_alg: 'ES256' } });
  t.is(es.status, 201, 'ES256, which a key signs, is registered');

  const discovery = (await (await fetch(`${gh.url}/.well-known/openid-configuration`)).json()) as Record<string, string[]>;
  const { keys } = (await (await fetch(`${gh.url}/jwks`)).json()) as { keys: Array<{ alg: string }> };
  const signable = new Set(keys.map((k) => k.alg));
  // HS256 is signed with the client's own secret (imported clients that keep it), not a key.
  for (const alg of discovery.id_token_signing_alg_values_supported!) t.true(signable.has(alg) || alg === 'HS256', `${alg} is offered and no key signs it`);
  for (const alg of signable) t.true(discovery.id_token_signing_alg_values_supported!.includes(alg), `${alg} has a key and is not offered`);
  t.false(discovery.id_token_signing_alg_values_supported!.includes('PS256'));
});
