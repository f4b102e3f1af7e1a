import { ID_TOKEN_ALGS } from '../clients/rules.ts';

/** The OpenAPI 3.1 description of /admin/api, served at /admin/api/openapi.json. */
export function openApiDocument(issuer: string) {
  const json = (schema: object) => ({ content: { 'application/json': { schema } } });
  const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
  const error = { description: 'Error', ...json(ref('Error')) };
  const idParam = (name: string, description: string) => ({ name, in: 'path', required: true, schema: { type: 'string' }, description });
  const errors = { '400': error, '401': error, '404': error };

  return {
    openapi: '3.1.0',
    info: {
      title: 'Gatehouse admin API',
      version: '1',
      description: 'Manage clients, users, API keys, grants and scopes, and read the audit log. Authenticate with an admin API token (`npm run -s cli -- admin-tokens create --name N`).',
    },
    servers: [{ url: `${issuer.replace(/\/$/, '')}/admin/api` }],
    security: [{ adminToken: [] }],
    components: {
      securitySchemes: { adminToken: { type: 'http', scheme: 'bearer', description: 'gha_… token' } },
      schemas: {
        Error: { type: 'object', required: ['error', 'error_description'], properties: { error: { type: 'string' }, error_description: { type: 'string' } } },
        ClientMetadata: {
          type: 'object',
          description: 'RFC 7591 client metadata plus Gatehouse fields. token_endpoint_auth_method "none" makes a public client.',
          properties: {
            client_name: { type: 'string' },
            client_type: { enum: ['confidential', 'public'] },
            grant_types: { type: 'array', items: { enum: ['authorization_code', 'refresh_token', 'client_credentials', 'urn:ietf:params:oauth:grant-type:device_code'] } },
            redirect_uris: { type: 'array', items: { type: 'string', format: 'uri' } },
            post_logout_redirect_uris: { type: 'array', items: { type: 'string', format: 'uri' } },
            allowed_origins: { type: 'array', items: { type: 'string' }, description: 'browser origins allowed CORS on /token and /userinfo' },
            scope: { type: 'string' },
            default_scope: {
              type: ['string', 'null'],
              description: 'what an authorization request without scope asks for, within scope; null: all of scope; "": no default (such requests get invalid_scope)',
            },
            token_endpoint_auth_method: { enum: ['client_secret_basic', 'client_secret_post', 'none'] },
            require_pkce: { type: 'boolean' },
            require_pushed_authorization_requests: { type: 'boolean', description: 'authorization requests must be pushed to /request first (RFC 9126)' },
            dpop_bound_access_tokens: { type: 'boolean', description: 'access tokens must be DPoP-bound: a token request without a DPoP proof is refused (RFC 9449)' },
            skip_consent: { type: 'boolean', description: 'first-party app: no consent page' },
            require_mfa: { type: 'boolean', description: 'signing in to this app takes a second factor (authenticator code or verified passkey); people without one set one up first' },
            allow_insecure_redirect: { type: 'boolean', description: 'accept plain-http redirect URIs on any host (off: https, or http on loopback only)' },
            id_token_signed_response_alg: { enum: [...ID_TOKEN_ALGS] },
            logo_uri: { type: ['string', 'null'], format: 'uri' },
            client_uri: { type: ['string', 'null'], format: 'uri' },
            default_resource: {
              type: ['string', 'null'],
              format: 'uri',
              description: 'the audience of the resource server (RFC 8707) a request naming no resource gets its access token for; null: Gatehouse itself',
            },
            backchannel_logout_uri: {
              type: ['string', 'null'],
              format: 'uri',
              description: 'where a logout token is POSTed when a person\'s sign-in to this app ends (OpenID Connect Back-Channel Logout 1.0); null: none',
            },
            backchannel_logout_session_required: { type: 'boolean', description: 'the logout token carries the session id (sid)' },
            disabled: { type: 'boolean' },
          },
        },
        Client: {
          allOf: [
            ref('ClientMetadata'),
            {
              type: 'object',
              properties: {
                client_id: { type: 'string' },
                client_secret: { type: 'string', description: 'only in the response to create and rotate-secret' },
                response_types: { type: 'array', items: { type: 'string' } },
                created_at: { type: 'string', format: 'date-time' },
                updated_at: { type: 'string', format: 'date-time' },
              },
            },
          ],
        },
        Resource: {
          type: 'object',
          description: 'A resource server (RFC 8707): an API clients ask access tokens for with resource=AUDIENCE',
          required: ['audience', 'scopes'],
          properties: {
            audience: { type: 'string', format: 'uri', description: 'https URL (http only on loopback); the aud of its tokens; fixed once created' },
            name: { type: 'string', description: 'what the consent page calls it (default: the audience)' },
            scopes: { type: 'array', items: { type: 'string' }, description: 'API scopes (rows of /scopes) its tokens may carry' },
            token_format: { enum: ['opaque', 'jwt'], description: 'opaque (default; check at /introspect) or an RFC 9068 JWT (check against /jwks)' },
            signing_alg: { enum: ['ES256', 'RS256'], description: 'how its JWT access tokens are signed (default ES256)' },
            access_token_ttl: { type: ['integer', 'null'], minimum: 1, maximum: 86400, description: "seconds; null: Gatehouse's access token lifetime" },
            created_at: { type: 'string', format: 'date-time', readOnly: true },
            updated_at: { type: 'string', format: 'date-time', readOnly: true },
          },
        },
        IdentityProvider: {
          type: 'object',
          description: 'An upstream identity provider people may sign in with (an OpenID Connect issuer, or GitHub)',
          required: ['name', 'client_id', 'client_secret'],
          properties: {
            name: { type: 'string', pattern: '^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$', description: 'part of the redirect URI; fixed once created' },
            preset: { type: ['string', 'null'], description: 'google, github, gitlab, microsoft or microsoft:TENANT_ID: fills in issuer, scope and button' },
            issuer: { type: 'string', format: 'uri', description: 'https (http only for localhost); required without a preset' },
            client_id: { type: 'string' },
            client_secret: { type: 'string', writeOnly: true, description: 'stored encrypted; never returned' },
            scope: { type: 'string', description: 'space-separated; must include openid for OpenID Connect' },
            button: { type: 'string', description: 'the sign-in button (default "Sign in with NAME")' },
            position: { type: 'integer', minimum: 0, maximum: 10000, description: 'button order, smallest first' },
            enabled: { type: 'boolean' },
            create_accounts: { type: 'boolean', description: 'a first sign-in creates an account (else only linked people get in)' },
            protocol: { enum: ['oidc', 'github'], readOnly: true },
            redirect_uri: { type: 'string', format: 'uri', readOnly: true, description: 'register it at the provider' },
            created_at: { type: 'string', format: 'date-time', readOnly: true },
            updated_at: { type: 'string', format: 'date-time', readOnly: true },
          },
        },
        User: {
          type: 'object',
          properties: {
            id: { type: 'string', description: 'the OpenID Connect sub' },
            username: { type: 'string' },
            email: { type: 'string' },
            email_verified: { type: 'boolean' },
            name: { type: 'string' },
            admin: { type: 'boolean' },
            disabled: { type: 'boolean' },
            must_reset_password: { type: 'boolean' },
            created_at: { type: 'string', format: 'date-time' },
            updated_at: { type: 'string', format: 'date-time' },
          },
        },
        NewUser: {
          type: 'object',
          required: ['username', 'email'],
          properties: { username: { type: 'string' }, email: { type: 'string' }, name: { type: 'string' }, password: { type: 'string', minLength: 8 }, admin: { type: 'boolean' }, email_verified: { type: 'boolean' } },
        },
        UserChanges: {
          type: 'object',
          properties: { email: { type: 'string' }, name: { type: 'string' }, email_verified: { type: 'boolean' }, admin: { type: 'boolean' }, disabled: { type: 'boolean' } },
        },
        ApiKey: {
          type: 'object',
          properties: {
            id: { type: 'string' },
            key: { type: 'string', description: 'only in the response to create' },
            client_id: { type: 'string' },
            name: { type: 'string' },
            scopes: { type: 'array', items: { enum: ['userdata:read', 'userdata:write'] } },
            created_at: { type: 'string', format: 'date-time' },
            last_used_at: { type: ['string', 'null'], format: 'date-time' },
            revoked_at: { type: ['string', 'null'], format: 'date-time' },
          },
        },
        Grant: {
          type: 'object',
          properties: { grant_id: { type: 'string' }, client_id: { type: 'string' }, client_name: { type: 'string' }, scope: { type: 'string' }, created_at: { type: 'string' }, expires_at: { type: ['string', 'null'] } },
        },
        AppDocument: {
          type: 'object',
          description: "One app's /userdata document of a user (one per user and app)",
          properties: {
            client_id: { type: 'string', description: 'the app whose document it is; "(unassigned)" for a document the per-app migration could give to no app' },
            client_name: { type: ['string', 'null'], description: 'null when the client is gone or for "(unassigned)"' },
            version: { type: 'integer', description: 'the ETag the app sees' },
            updated_at: { type: 'string', format: 'date-time' },
            bytes: { type: 'integer', description: 'size of the JSON document' },
          },
        },
        Scope: {
          type: 'object',
          required: ['name', 'description'],
          properties: {
            name: { type: 'string', maxLength: 100, description: 'printable ASCII without spaces, quotes or backslashes (RFC 6749 scope-token), e.g. invoices:read' },
            description: { type: 'string', maxLength: 200, description: 'what the consent page shows for it' },
            built_in: { type: 'boolean', readOnly: true, description: 'openid profile email offline_access userdata: listed, never created or deleted' },
            created_at: { type: ['string', 'null'], format: 'date-time', readOnly: true },
          },
        },
        AuditEntry: {
          type: 'object',
          properties: { id: { type: 'integer' }, at: { type: 'string' }, actor: { type: 'string' }, action: { type: 'string' }, target: { type: 'string' }, details: { type: 'object' }, address: { type: ['string', 'null'] } },
        },
      },
    },
    paths: {
      '/clients': {
        get: { summary: 'List clients', parameters: [{ name: 'search', in: 'query', schema: { type: 'string' } }], responses: { '200': { description: 'Clients', ...json({ type: 'array', items: ref('Client') }) }, '401': error } },
        post: { summary: 'Create a client (the secret is in this response only)', requestBody: { required: true, ...json(ref('ClientMetadata')) }, responses: { '201': { description: 'Created', ...json(ref('Client')) }, ...errors } },
      },
      '/clients/{client_id}': {
        parameters: [idParam('client_id', 'client id')],
        get: { summary: 'Show a client', responses: { '200': { description: 'Client', ...json(ref('Client')) }, ...errors } },
        patch: { summary: 'Change a client', requestBody: { required: true, ...json(ref('ClientMetadata')) }, responses: { '200': { description: 'Client', ...json(ref('Client')) }, ...errors } },
        delete: { summary: 'Delete a client, its API keys and its /userdata documents', responses: { '204': { description: 'Deleted' }, ...errors } },
      },
      '/clients/{client_id}/rotate-secret': {
        parameters: [idParam('client_id', 'client id')],
        post: { summary: 'New secret; the old one stops working at once', responses: { '200': { description: 'Client with its new client_secret', ...json(ref('Client')) }, ...errors } },
      },
      '/clients/{client_id}/api-keys': {
        parameters: [idParam('client_id', 'client id')],
        get: { summary: "List a client's API keys", responses: { '200': { description: 'Keys', ...json({ type: 'array', items: ref('ApiKey') }) }, ...errors } },
        post: {
          summary: 'Create an API key (shown once)',
          requestBody: { required: true, ...json({ type: 'object', required: ['scopes'], properties: { scopes: { type: 'array', items: { type: 'string' } }, name: { type: 'string' } } }) },
          responses: { '201': { description: 'Key', ...json(ref('ApiKey')) }, ...errors },
        },
      },
      '/api-keys/{id}': { parameters: [idParam('id', 'API key id')], delete: { summary: 'Revoke an API key', responses: { '200': { description: 'Revoked key', ...json(ref('ApiKey')) }, ...errors } } },
      '/users': {
        get: { summary: 'List users', parameters: [{ name: 'search', in: 'query', schema: { type: 'string' } }], responses: { '200': { description: 'Users', ...json({ type: 'array', items: ref('User') }) }, '401': error } },
        post: { summary: 'Create a user', requestBody: { required: true, ...json(ref('NewUser')) }, responses: { '201': { description: 'Created', ...json(ref('User')) }, ...errors } },
      },
      '/users/{id}': {
        parameters: [idParam('id', 'user id (sub)')],
        get: { summary: 'Show a user', responses: { '200': { description: 'User', ...json(ref('User')) }, ...errors } },
        patch: {
          summary: 'Change a user (disable revokes their sessions and tokens); disabling or demoting the last enabled admin is refused (409 last_admin)',
          requestBody: { required: true, ...json(ref('UserChanges')) },
          responses: { '200': { description: 'User', ...json(ref('User')) }, '409': error, ...errors },
        },
      },
      '/users/{id}/password': {
        parameters: [idParam('id', 'user id (sub)')],
        post: { summary: 'Set a new password', requestBody: { required: true, ...json({ type: 'object', required: ['password'], properties: { password: { type: 'string' } } }) }, responses: { '204': { description: 'Changed' }, ...errors } },
      },
      '/users/{id}/unlock': {
        parameters: [idParam('id', 'user id (sub)')],
        post: {
          summary: 'Lift every sign-in lock and slow-down of a user, from every address (audited as user.unlock)',
          responses: { '200': { description: 'User, with counters_cleared: how many failure counters were removed', ...json(ref('User')) }, ...errors },
        },
      },
      '/users/{id}/mfa/reset': {
        parameters: [idParam('id', 'user id (sub)')],
        post: {
          summary: 'Remove the user’s authenticator app and recovery codes (they sign in with the password alone, and may set up a new app); audited as user.mfa_reset',
          responses: { '200': { description: 'User, with authenticator_removed: whether there was one', ...json(ref('User')) }, ...errors },
        },
      },
      '/users/{id}/reset-link': {
        parameters: [idParam('id', 'user id (sub)')],
        post: {
          summary: 'A single-use password reset link, valid 30 minutes, for the operator to hand over; with {"send": true} mailed to the user instead (needs SMTP). Older links stop working. Audited as user.reset_link',
          requestBody: { required: false, content: { 'application/json': { schema: { type: 'object', properties: { send: { type: 'boolean' } }, additionalProperties: false } } } },
          responses: {
            '200': {
              description: 'The link ({url, expires_at}), or that it was mailed ({sent, email, expires_at})',
              ...json({ type: 'object', properties: { url: { type: 'string', format: 'uri' }, sent: { type: 'boolean' }, email: { type: 'string' }, expires_at: { type: 'string', format: 'date-time' } } }),
            },
            ...errors,
          },
        },
      },
      '/users/{id}/grants': {
        parameters: [idParam('id', 'user id (sub)')],
        get: { summary: "A user's authorized apps", responses: { '200': { description: 'Grants', ...json({ type: 'array', items: ref('Grant') }) }, ...errors } },
      },
      '/users/{id}/grants/{grant_id}': {
        parameters: [idParam('id', 'user id (sub)'), idParam('grant_id', 'grant id')],
        delete: { summary: 'Revoke an authorization (its tokens stop working)', responses: { '204': { description: 'Revoked' }, ...errors } },
      },
      '/users/{id}/userdata': {
        parameters: [idParam('id', 'user id (sub)')],
        get: { summary: "A user's /userdata documents, one per app", responses: { '200': { description: 'Documents', ...json({ type: 'array', items: ref('AppDocument') }) }, ...errors } },
      },
      '/users/{id}/userdata/{client_id}': {
        parameters: [idParam('id', 'user id (sub)'), idParam('client_id', 'the app (client id) whose document it is')],
        get: {
          summary: "One app's document of a user, with its contents",
          responses: { '200': { description: 'Document', ...json({ allOf: [ref('AppDocument'), { type: 'object', properties: { document: { type: 'object' } } }] }) }, ...errors },
        },
        delete: { summary: "Clear one app's document of a user (the app then reads {} at the next version)", responses: { '204': { description: 'Cleared' }, ...errors } },
      },
      '/scopes': {
        get: { summary: 'List the scopes: the built-in ones, then the API scopes', responses: { '200': { description: 'Scopes', ...json({ type: 'array', items: ref('Scope') }) }, '401': error } },
        post: { summary: 'Create an API scope; every process serves it at once', requestBody: { required: true, ...json(ref('Scope')) }, responses: { '201': { description: 'Created', ...json(ref('Scope')) }, ...errors } },
      },
      '/scopes/{name}': {
        parameters: [idParam('name', 'scope name (percent-encoded)')],
        delete: { summary: 'Delete an API scope; refused (409 scope_in_use, naming them) while a client holds it', responses: { '204': { description: 'Deleted' }, '409': error, ...errors } },
      },
      '/resources': {
        get: { summary: 'List the resource servers', responses: { '200': { description: 'Resources', ...json({ type: 'array', items: ref('Resource') }) }, '401': error } },
        post: {
          summary: 'Register a resource server; every process serves it at once',
          requestBody: { required: true, ...json(ref('Resource')) },
          responses: { '201': { description: 'Created', ...json(ref('Resource')) }, ...errors },
        },
      },
      '/resources/{audience}': {
        parameters: [idParam('audience', 'the audience (percent-encoded)')],
        get: { summary: 'One resource server', responses: { '200': { description: 'Resource', ...json(ref('Resource')) }, ...errors } },
        patch: {
          summary: 'Change a resource server (not its audience)',
          requestBody: { required: true, ...json(ref('Resource')) },
          responses: { '200': { description: 'Changed', ...json(ref('Resource')) }, ...errors },
        },
        delete: {
          summary: 'Delete a resource server; refused (409 resource_in_use) while a client has it as default_resource. Its tokens live until they expire',
          responses: { '204': { description: 'Deleted' }, '409': error, ...errors },
        },
      },
      '/idps': {
        get: { summary: 'List the identity providers, in button order', responses: { '200': { description: 'Providers', ...json({ type: 'array', items: ref('IdentityProvider') }) }, '401': error } },
        post: { summary: 'Add an identity provider', requestBody: { required: true, ...json(ref('IdentityProvider')) }, responses: { '201': { description: 'Created', ...json(ref('IdentityProvider')) }, ...errors } },
      },
      '/idps/{name}': {
        parameters: [idParam('name', 'provider name')],
        get: { summary: 'One identity provider', responses: { '200': { description: 'Provider', ...json(ref('IdentityProvider')) }, ...errors } },
        patch: { summary: 'Change an identity provider (not its name)', requestBody: { required: true, ...json(ref('IdentityProvider')) }, responses: { '200': { description: 'Changed', ...json(ref('IdentityProvider')) }, ...errors } },
        delete: { summary: 'Delete an identity provider and the sign-ins linked through it (the accounts stay)', responses: { '204': { description: 'Deleted' }, ...errors } },
      },
      '/clients/{id}/idps': {
        parameters: [idParam('id', 'client_id')],
        get: { summary: "The providers the client's sign-in page is limited to ([]: every enabled one)", responses: { '200': { description: 'Limit', ...json({ type: 'object', properties: { idps: { type: 'array', items: { type: 'string' } } } }) }, ...errors } },
        put: {
          summary: "Limit the client's sign-in page to these providers ([] lifts the limit)",
          requestBody: { required: true, ...json({ type: 'object', required: ['idps'], properties: { idps: { type: 'array', items: { type: 'string' } } } }) },
          responses: { '200': { description: 'Limit', ...json({ type: 'object', properties: { idps: { type: 'array', items: { type: 'string' } } } }) }, ...errors },
        },
      },
      '/audit': {
        get: {
          summary: 'The audit log, newest first',
          parameters: [{ name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 500 } }, { name: 'before', in: 'query', schema: { type: 'integer' } }],
          responses: { '200': { description: 'Entries', ...json({ type: 'array', items: ref('AuditEntry') }) }, ...errors },
        },
      },
    },
  };
}
