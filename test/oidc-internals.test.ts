import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import test from 'ava';
import Provider, { errors } from 'oidc-provider';
import * as accessToken from 'oidc-provider/lib/shared/access_token.js';
import revoke from 'oidc-provider/lib/helpers/revoke.js';
import instance from 'oidc-provider/lib/helpers/weak_cache.js';
import {
  deviceFormFields,
  forgetClientInSession,
  importedGrantPayload,
  importedRefreshTokenPayload,
  lockedClientError,
  PROVIDER_ERROR_EVENTS,
  providerErrorFacts,
  StoreUnavailableError,
  UPSTREAM_VERSION,
} from '../src/oidc/internals.ts';

/**
 * Each assumption src/oidc/internals.ts makes about oidc-provider, checked against the installed
 * one: an upgrade that breaks one fails here, naming it, before any behaviour test does.
 */

const root = path.dirname(createRequire(import.meta.url).resolve('oidc-provider/package.json'));
const upstream = (file: string) => readFileSync(path.join(root, file), 'utf8');

// A bare provider (in-memory storage) with one client, for the model-level checks.
const provider = new Provider('http://localhost:9', {
  clients: [
    {
      client_id: 'app',
      client_secret: 'secret',
      redirect_uris: ['http://localhost:9/cb'],
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
    },
  ],
  features: { clientCredentials: { enabled: true }, devInteractions: { enabled: false } },
  scopes: ['openid', 'offline_access', 'read'],
});

test('internals.ts was reviewed against the installed oidc-provider version', (t) => {
  const installed = JSON.parse(upstream('package.json')).version;
  t.is(installed, UPSTREAM_VERSION, 'oidc-provider changed: check each assumption in src/oidc/internals.ts, then update UPSTREAM_VERSION');
});

test('authorization parameters are read from the query of a GET and from ctx.oidc.body, the parsed form, of a POST', (t) => {
  t.regex(upstream('lib/shared/assemble_params.js'), /const params = ctx\.method === 'POST' \? ctx\.oidc\.body : ctx\.query;/);
  t.regex(upstream('lib/shared/selective_body.js'), /ctx\.oidc\.body = querystring\.parse\(body\.toString\(\)\);/);
});

test('the device flow hands its pages a form with the verification action and a hidden xsrf value', async (t) => {
  const forms = await import('oidc-provider/lib/helpers/user_code_form.js');
  const input = forms.input('http://localhost:9/device?a=1&b=2', 'secret-1', undefined, 'base-20');
  t.deepEqual(deviceFormFields(input), { action: 'http://localhost:9/device?a=1&b=2', xsrf: 'secret-1' });
  t.deepEqual(deviceFormFields(forms.confirm('http://localhost:9/device', 'secret-2', 'BCDF-GHJK')), { action: 'http://localhost:9/device', xsrf: 'secret-2' });
  t.regex(upstream('lib/shared/xsrf.js'), /throw new InvalidRequest\('xsrf token invalid'\)/);
});

test('a never-stored session has no exp, persist() refuses it, and ensureSessionSave persists only a touched session', async (t) => {
  const NewSession = provider.Session as unknown as new (payload: object) => { exp?: unknown; persist(): Promise<unknown> };
  const session = new NewSession({});
  t.is(typeof session.exp, 'undefined');
  await t.throwsAsync(() => session.persist(), { instanceOf: TypeError, message: /previously persisted/ });
  t.regex(
    upstream('lib/helpers/initialize_app.js'),
    /if \(ctx\.oidc\.session\?\.touched && !ctx\.oidc\.session\.destroyed\) \{\s*await ctx\.oidc\.session\.persist\(\);/,
  );
  t.regex(upstream('lib/shared/session.js'), /case 'touched':\s*Reflect\.defineProperty\(obj, 'touched', \{ writable: true, value \}\);/);
  t.regex(upstream('lib/shared/error_handler.js'), /generateXsrf\(ctx, \(\) => \{\}\);/);
});

test('end_session asks each client of the session to backchannelLogout(accountId, sid) on the Client prototype, when it has a URI', (t) => {
  const endSession = upstream('lib/actions/end_session.js');
  t.regex(endSession, /if \(client\.backchannelLogoutUri\) \{\s*const \{ accountId \} = session;\s*back\.push\(client\.backchannelLogout\(accountId, sid\)/);
  t.is(typeof (provider.Client.prototype as unknown as { backchannelLogout?: unknown }).backchannelLogout, 'function');
});

test('client authentication with a secret awaits the Client prototype compareClientSecret and refuses on falsy', (t) => {
  const source = upstream('lib/shared/client_auth.js');
  t.regex(source, /const matches = await ctx\.oidc\.client\.compareClientSecret\(clientSecret\);\s*if \(!matches\) \{/);
  t.is(typeof provider.Client.prototype.compareClientSecret, 'function');
});

test('the error handler answers with the error statusCode, so a locked client is answered 429 invalid_client', (t) => {
  t.regex(upstream('lib/shared/error_handler.js'), /ctx\.status = err\.statusCode \|\| 500;/);
  const locked = lockedClientError('locked');
  t.true(locked instanceof errors.InvalidClient);
  t.is(locked.statusCode, 429);
  t.is(locked.error, 'invalid_client');
  t.is(locked.error_description, 'locked');
  t.true(locked.expose);
});

test('a store outage subclasses OIDCProviderError with status 503, and allow_redirect=false stops the redirect to the client', (t) => {
  const err = new StoreUnavailableError('redis', new Error('down'));
  t.true(err instanceof errors.OIDCProviderError);
  t.is(err.statusCode, 503);
  t.is(err.error, 'temporarily_unavailable');
  t.is((err as { cause?: unknown }).cause instanceof Error, true);
  t.false(err.allow_redirect);
  t.regex(upstream('lib/shared/authorization_error_handler.js'), /\|\| !err\.allow_redirect/);
});

test('a grant source is checked for consumed (revoking then) before consume() is called, with the revoke helper taking (ctx, grantId)', (t) => {
  const source = upstream('lib/helpers/grant_source.js');
  t.regex(
    source,
    /if \(source\.consumed\) \{\s*await revoke\(ctx, source\.grantId\);\s*throw new InvalidGrant\(`\$\{label\} already consumed`\);\s*\}\s*await source\.consume\(\);/,
  );
  t.regex(upstream('lib/actions/grants/authorization_code.js'), /consumeGrantSource\(ctx, code, 'authorization code'\)/);
  t.regex(upstream('lib/helpers/grant_refresh_token.js') + upstream('lib/actions/grants/refresh_token.js'), /consumeGrantSource|refreshToken\.consume\(\)/);
  t.is(typeof revoke, 'function');
  t.is(revoke.length, 2);
});

test('AuthorizationCode and RefreshToken have consume() on their prototype, one class per provider', (t) => {
  const other = new Provider('http://localhost:8', {});
  for (const name of ['AuthorizationCode', 'RefreshToken'] as const) {
    t.is(typeof provider[name].prototype.consume, 'function', name);
    t.not(provider[name], other[name], `${name} is shared between providers`);
  }
  t.is(typeof Object.getOwnPropertyDescriptor(Provider, 'ctx')?.get, 'function', 'Provider.ctx');
});

test('the provider state holds grantTypeHandlers, a Map with the built-in client_credentials handler the token endpoint calls', (t) => {
  const handlers = (instance(provider) as { grantTypeHandlers?: unknown }).grantTypeHandlers;
  t.true(handlers instanceof Map);
  t.is(typeof (handlers as Map<string, unknown>).get('client_credentials'), 'function');
  t.regex(
    upstream('lib/actions/token.js'),
    /const \{ grantTypeHandlers \} = instance\(ctx\.oidc\.provider\);\s*await grantTypeHandlers\.get\(grantType\)\(ctx\);/,
  );
  t.regex(upstream('lib/actions/grants/client_credentials.js'), /validateClientScope\(ctx\)/);
});

test('the access token checks are exported middleware, and DPoP htu is compared with ctx.oidc.urlFor(ctx.oidc.route)', (t) => {
  t.is(typeof accessToken.getValidateAccessToken, 'function');
  t.is(typeof accessToken.getValidateAccessToken(), 'function');
  t.is(typeof accessToken.loadAccessTokenClient, 'function');
  t.is(typeof accessToken.loadAccessTokenAccount, 'function');
  t.is(typeof accessToken.loadAccessTokenGrant, 'function');
  const shared = upstream('lib/shared/access_token.js');
  t.regex(shared, /ctx\.oidc\.entity\('AccessToken', accessToken\)/);
  t.regex(shared, /new InvalidToken\('failed jkt verification'\)/);
  t.regex(shared, /new InvalidToken\('associated client not found'\)/);
  // The account is read through the configured findAccount, with the token.
  t.regex(shared, /configuration\.findAccount\(\s*ctx,\s*ctx\.oidc\.accessToken\.accountId,\s*ctx\.oidc\.accessToken,\s*\)/);
  t.regex(shared, /new InvalidToken\('associated account not found'\)/);
  t.regex(upstream('lib/helpers/validate_dpop.js'), /const expected = new URL\(ctx\.oidc\.urlFor\(ctx\.oidc\.route\)\)\.href;/);
  // The userinfo endpoint uses the same pieces in the order internals.ts does.
  const userinfo = upstream('lib/actions/userinfo.js');
  t.true(userinfo.indexOf('validateAccessToken,') < userinfo.indexOf('function validateScope'));
  t.true(userinfo.indexOf('function validateScope') < userinfo.lastIndexOf('loadAccessTokenClient,'));
  t.true(userinfo.lastIndexOf('loadAccessTokenClient,') < userinfo.lastIndexOf('loadAccessTokenAccount,'));
  t.true(userinfo.lastIndexOf('loadAccessTokenAccount,') < userinfo.lastIndexOf('loadAccessTokenGrant,'));
  const OIDCContext = provider.OIDCContext as unknown as new (ctx: object) => { urlFor: unknown; route: unknown; entities: unknown };
  t.is(typeof OIDCContext, 'function');
  t.is(typeof OIDCContext.prototype.urlFor, 'function');
});

test('a session keeps its clients under authorizations, which grantIdFor reads; forgetting the last one ends it', async (t) => {
  const Session = provider.Session as unknown as new (payload: object) => InstanceType<typeof provider.Session>;
  const session = new Session({ jti: 'sess', accountId: 'u1', authorizations: { app: { grantId: 'g1' }, other: { grantId: 'g2' } } });
  t.is(session.grantIdFor('app'), 'g1');
  await session.save(60);
  await forgetClientInSession(session as never, 'app');
  const kept = await provider.Session.find('sess');
  // (grantIdFor would add an empty entry for the client: read the stored entries instead.)
  t.deepEqual(kept?.authorizations, { other: { grantId: 'g2' } });
  await forgetClientInSession(kept as never, 'other');
  t.is(await provider.Session.find('sess'), undefined);
});

test('imported Grant and RefreshToken payloads read back as oidc-provider models of that grant and scope', async (t) => {
  const now = Math.floor(Date.now() / 1000);
  const artifact = {
    token: 'imported-refresh-token-value-0123456789abcdef',
    grantId: 'dot-rt-1',
    accountId: 'u1',
    clientId: 'app',
    scope: 'openid read',
    now,
    expiresIn: 600,
  };
  await provider.Grant.adapter.upsert(artifact.grantId, importedGrantPayload(artifact), 600);
  await provider.RefreshToken.adapter.upsert(artifact.token, importedRefreshTokenPayload(artifact), 600);
  const grant = await provider.Grant.find(artifact.grantId);
  t.is(grant?.getOIDCScope(), 'openid read');
  t.is(grant?.accountId, 'u1');
  t.is(grant?.clientId, 'app');
  const refresh = await provider.RefreshToken.find(artifact.token);
  t.truthy(refresh);
  t.true(refresh!.isValid);
  t.is(refresh!.grantId, artifact.grantId);
  t.is(refresh!.scope, 'openid read');
  t.is(refresh!.gty, 'authorization_code');
  t.false(refresh!.expiresWithSession);
});

test('every endpoint of oidc-provider emits NAME.error when it answers an error, and PROVIDER_ERROR_EVENTS names each', (t) => {
  const source = upstream('lib/helpers/initialize_app.js');
  const named = new Set([...source.matchAll(/\berror\('([a-z_]+\.error)'\)/g)].map((m) => m[1]!));
  named.add('authorization.error');
  t.deepEqual([...PROVIDER_ERROR_EVENTS].sort(), [...named].sort());
  t.regex(upstream('lib/shared/error_handler.js'), /provider\.emit\(eventName, ctx, err\);/);
  t.regex(upstream('lib/shared/authorization_error_handler.js'), /provider\.emit\('authorization\.error', ctx, err\);/);
});

test('oidc-provider errors carry the facts the error model reads, and a locked client error carries its Retry-After', (t) => {
  t.deepEqual(providerErrorFacts(new errors.InvalidGrant('grant request is invalid')), {
    status: 400,
    error: 'invalid_grant',
    description: 'grant request is invalid',
    expose: true,
  });
  t.like(providerErrorFacts(new errors.OIDCProviderError(500, 'server_error')), { status: 500, expose: false });
  t.is(providerErrorFacts(new Error('not one of its errors')), undefined);
  t.like(providerErrorFacts(lockedClientError('locked', 60)), { status: 429, error: 'invalid_client', retryAfterSeconds: 60 });
});

test('introspection authenticates the client before it refuses a JWT with unsupported_token_type, and JWT access tokens are not stored', (t) => {
  const introspection = upstream('lib/actions/introspection.js');
  t.true(introspection.indexOf('...clientAuth,') < introspection.indexOf('rejectStructuredTokens,'), 'client authentication runs first');
  t.regex(upstream('lib/shared/reject_structured_tokens.js'), /throw new UnsupportedTokenType\(`Structured JWT Tokens cannot be/);
  t.regex(upstream('lib/helpers/errors.js'), /UnsupportedTokenType/);
  t.is(new errors.UnsupportedTokenType('x').error, 'unsupported_token_type');
  t.is(new errors.UnsupportedTokenType('x').statusCode, 400);
  // The JWT format returns a value and no payload: base_model's save() then stores nothing.
  t.notRegex(upstream('lib/models/formats/jwt.js'), /return \{ value: signed, payload/);
  t.regex(upstream('lib/models/base_model.js'), /if \(payload\) \{\s*await this\.adapter\.upsert/);
});
