import type { Knex } from 'knex';
import { z } from 'zod';
import { NotFoundError, ValidationError } from '../errors.ts';
import {
  AUTH_METHODS,
  CLIENT_TYPES,
  GRANT_TYPES,
  STORED_ID_TOKEN_ALGS,
  checkClientSettings,
  effectiveDefaultScope,
  type ClientSettings,
  type ClientSettingsInput,
} from './rules.ts';
import type { Invalidations } from '../cache/invalidation.ts';
import { AtRest } from '../settings/at-rest.ts';
import { checkClientSecret, generateClientId, generateClientSecret, hashClientSecret, plainClientSecret, storePlainClientSecret } from './secrets.ts';

/**
 * How long a process may serve a client as it read it, should the message about a change to it
 * be lost; see ClientsService.cache.
 */
export const CLIENT_CACHE_MS = 500;
/** The invalidation topic of client metadata; the key is the client_id. */
export const CLIENTS_TOPIC = 'clients';
const MAX_CACHED_CLIENTS = 10_000;
/** Client ids brought from elsewhere: URL- and Basic-safe (ours are base64url, DOT's alphanumeric). */
const IMPORTED_CLIENT_ID = /^[A-Za-z0-9._~-]{1,100}$/;

export interface Client extends ClientSettings {
  clientId: string;
  disabled: boolean;
  createdAt: Date;
  updatedAt: Date;
}

/** A client as just created or re-keyed: the only moment its plain secret exists. */
export interface ClientWithSecret {
  client: Client;
  clientSecret: string | null;
}

// Rows are checked as they come out of the database, so the rest of the code can trust them.
const storedSettings = z.object({
  grantTypes: z.array(z.enum(GRANT_TYPES)),
  redirectUris: z.array(z.string()),
  postLogoutRedirectUris: z.array(z.string()),
  allowedOrigins: z.array(z.string()),
  scope: z.array(z.string()),
  // Rows written before default scopes existed follow their registered scope.
  defaultScope: z.array(z.string()).nullable().default(null),
  authMethod: z.enum(AUTH_METHODS),
  requirePkce: z.boolean(),
  requirePar: z.boolean().default(false),
  requireDpop: z.boolean().default(false),
  skipConsent: z.boolean().default(false),
  // Rows written before the MFA policy existed ask for no second factor.
  requireMfa: z.boolean().default(false),
  allowInsecureRedirect: z.boolean().default(false),
  idTokenSignedResponseAlg: z.enum(STORED_ID_TOKEN_ALGS),
  logoUri: z.string().nullable(),
  clientUri: z.string().nullable(),
  defaultResource: z.string().nullable().default(null),
  backchannelLogoutUri: z.string().nullable().default(null),
  backchannelLogoutSessionRequired: z.boolean().default(false),
});
const clientRow = z.object({
  client_id: z.string(),
  name: z.string(),
  type: z.enum(CLIENT_TYPES),
  secret_hash: z.string().nullable(),
  settings: z.string().transform((s) => storedSettings.parse(JSON.parse(s))),
  disabled: z.union([z.boolean(), z.number()]).transform(Boolean),
  created_at: z.union([z.number(), z.string()]).transform((v) => new Date(Number(v))),
  updated_at: z.union([z.number(), z.string()]).transform((v) => new Date(Number(v))),
});
type ClientRow = z.output<typeof clientRow>;

const toClient = (row: ClientRow): Client => ({
  clientId: row.client_id,
  name: row.name,
  type: row.type,
  ...row.settings,
  disabled: row.disabled,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

/** The `settings` column: everything but the name and type, which have columns of their own. */
export function settingsColumn(s: ClientSettings): string {
  const { name: _name, type: _type, ...rest } = s;
  return JSON.stringify(rest);
}

/**
 * What ends when a client's credentials change, in oidc-provider's storage (src/oidc/
 * GrantsService does it): the clients service decides when, the boundary knows how.
 */
export interface ClientArtifacts {
  /** Its tokens and codes (its users' and its own client credentials tokens); its users' consent stays. */
  revokeTokens(clientId: string): Promise<void>;
  /** Everything issued to it, the grants included: the client is deleted. */
  revokeAll(clientId: string): Promise<void>;
}

/** The one owner of the clients table: rules, secrets and storage. */
export class ClientsService {
  /**
   * oidc-provider reads a client on every request (sometimes twice). Reads are kept for a
   * moment. A change, made by any process (the CLI, another worker, another host), is published
   * and every process drops its entry before the change's answer is sent (see
   * cache/invalidation.ts); `cacheMs` only bounds how long a lost message could leave it.
   */
  private readonly cache = new Map<string, { metadata: Record<string, unknown>; until: number }>();
  /** Counts invalidations, so that a read started before one is not kept after it. */
  private invalidated = 0;

  constructor(
    private readonly db: Knex,
    private readonly secretKey: Buffer,
    /** Encrypts the plain secrets HS256 clients keep (see secrets.ts), which cannot be hashed. */
    private readonly atRest: AtRest,
    /** The API scopes a client may hold now (the scopes service's list). */
    private readonly knownScopes: () => Promise<readonly string[]>,
    /** The audiences of the resource servers there are now: a default resource must be one. */
    private readonly knownResources: () => Promise<readonly string[]>,
    private readonly invalidations: Invalidations,
    private readonly artifacts: ClientArtifacts,
    private readonly cacheMs = CLIENT_CACHE_MS,
  ) {
    invalidations.subscribe(CLIENTS_TOPIC, (clientId) => {
      this.invalidated++;
      if (clientId === undefined) this.cache.clear();
      else this.cache.delete(clientId);
    });
  }

  async create(input: ClientSettingsInput): Promise<ClientWithSecret> {
    const settings = checkClientSettings(input, await this.knownScopes(), { resources: await this.knownResources() });
    const clientId = generateClientId();
    const clientSecret = settings.type === 'confidential' ? generateClientSecret() : null;
    const now = Date.now();
    await this.db('clients').insert({
      client_id: clientId,
      name: settings.name,
      type: settings.type,
      secret_hash: clientSecret ? hashClientSecret(clientSecret, this.secretKey) : null,
      settings: settingsColumn(settings),
      disabled: false,
      created_at: now,
      updated_at: now,
    });
    return { client: await this.get(clientId), clientSecret };
  }

  /**
   * A client carried over from another system (the DOT importer) with its own client_id and
   * stored secret; `settings` have passed checkClientSettings. Written with `db`, the import's
   * transaction. A new id needs no invalidation message: unknown ids are never cached.
   */
  async createImported(db: Knex, clientId: string, settings: ClientSettings, storedSecret: string | null): Promise<void> {
    if (!IMPORTED_CLIENT_ID.test(clientId)) {
      throw new ValidationError({ client_id: 'must be 1 to 100 characters, letters, digits and . _ ~ - only (it travels in URLs and HTTP Basic credentials)' });
    }
    if (await db('clients').first('client_id').where({ client_id: clientId })) throw new ValidationError({ client_id: `${clientId} is taken` });
    const now = Date.now();
    await db('clients').insert({
      client_id: clientId,
      name: settings.name,
      type: settings.type,
      secret_hash: storedSecret,
      settings: settingsColumn(settings),
      disabled: false,
      created_at: now,
      updated_at: now,
    });
  }

  /** Turns consent back on for a client (written with `db`); announce it with `announce` once committed. */
  async requireConsent(db: Knex, clientId: string): Promise<void> {
    const row = await this.findRow(clientId, db);
    if (!row) throw new NotFoundError(`client ${clientId}`);
    const settings = { ...row.settings, skipConsent: false };
    await db('clients').where({ client_id: clientId }).update({ settings: JSON.stringify(settings), updated_at: Date.now() });
  }

  /** Every process drops what it keeps of these clients: changes written in a caller's transaction, now committed. */
  async announce(clientIds: readonly string[]): Promise<void> {
    for (const clientId of clientIds) await this.changed(clientId);
  }

  async list(): Promise<Client[]> {
    const rows = await this.db('clients').select('*').orderBy('created_at', 'asc');
    return rows.map((row) => toClient(clientRow.parse(row)));
  }

  async exists(clientId: string): Promise<boolean> {
    return (await this.db('clients').first('client_id').where({ client_id: clientId })) !== undefined;
  }

  /** The client, or undefined; `db`: a transaction the caller runs (the importer's). */
  async find(clientId: string, db: Knex = this.db): Promise<Client | undefined> {
    const row = await this.findRow(clientId, db);
    return row ? toClient(row) : undefined;
  }

  /** `db`: a transaction the caller runs (the importer's), which must see its own writes. */
  async get(clientId: string, db: Knex = this.db): Promise<Client> {
    const row = await this.findRow(clientId, db);
    if (!row) throw new NotFoundError(`client ${clientId}`);
    return toClient(row);
  }

  /**
   * Applies a partial change. A confidential client turned public loses its secret; a public
   * client turned confidential gets one, returned here once. Disabling the client, or any change
   * of its secret, revokes every token it holds: enabling it again brings none back.
   */
  async update(clientId: string, changes: ClientSettingsInput & { disabled?: boolean }): Promise<ClientWithSecret> {
    const row = await this.findRow(clientId);
    if (!row) throw new NotFoundError(`client ${clientId}`);
    const current = toClient(row);
    const { disabled, ...settingChanges } = changes;
    if (disabled !== undefined && typeof disabled !== 'boolean') throw new ValidationError({ disabled: 'must be true or false' });
    const merged: ClientSettingsInput = { ...current, ...stripUndefined(settingChanges) };
    if (changes.type && changes.type !== current.type && changes.authMethod === undefined) {
      // The old auth method belongs to the old type; let the new type pick its default.
      delete merged.authMethod;
    }
    const settings = checkClientSettings(merged, await this.knownScopes(), {
      keepsPlainSecret: plainClientSecret(row.secret_hash ?? '') !== undefined,
      // Checked only when it changes: a resource deleted under a client does not block its other edits.
      ...(changes.defaultResource !== undefined && changes.defaultResource !== current.defaultResource ? { resources: await this.knownResources() } : {}),
    });
    let clientSecret: string | null = null;
    let secretHash = row.secret_hash;
    if (settings.type === 'public') secretHash = null;
    if (settings.type === 'confidential' && !secretHash) {
      clientSecret = generateClientSecret();
      secretHash = hashClientSecret(clientSecret, this.secretKey);
    }
    await this.db('clients')
      .where({ client_id: clientId })
      .update({
        name: settings.name,
        type: settings.type,
        secret_hash: secretHash === null ? null : this.sealed(clientId, secretHash),
        settings: settingsColumn(settings),
        disabled: disabled ?? current.disabled,
        updated_at: Date.now(),
      });
    await this.changed(clientId);
    // The secret changed: a new one was made, or the client turned public and lost its own.
    const secretChanged = clientSecret !== null || (secretHash === null && row.secret_hash !== null);
    if ((disabled === true && !current.disabled) || secretChanged) await this.artifacts.revokeTokens(clientId);
    return { client: await this.get(clientId), clientSecret };
  }

  /** Deletes the client with its API keys, the /userdata documents it kept, and everything issued to it. */
  async delete(clientId: string): Promise<void> {
    const removed = await this.db.transaction(async (trx): Promise<number> => {
      await trx('api_keys').where({ client_id: clientId }).delete();
      await trx('userdata').where({ client_id: clientId }).delete();
      return trx('clients').where({ client_id: clientId }).delete();
    });
    if (!removed) throw new NotFoundError(`client ${clientId}`);
    await this.changed(clientId);
    await this.artifacts.revokeAll(clientId);
  }

  /** A new secret; the old one stops working with the next request, and every token the client holds is revoked. */
  async rotateSecret(clientId: string): Promise<ClientWithSecret> {
    const client = await this.get(clientId);
    if (client.type !== 'confidential') {
      throw new ValidationError({ type: 'a public client has no secret to rotate' });
    }
    const row = (await this.findRow(clientId))!;
    const clientSecret = generateClientSecret();
    // An HS256 client's secret is its HMAC key, so it stays plain (see secrets.ts).
    const stored = plainClientSecret(row.secret_hash ?? '') !== undefined ? storePlainClientSecret(clientSecret) : hashClientSecret(clientSecret, this.secretKey);
    await this.db('clients').where({ client_id: clientId }).update({ secret_hash: this.sealed(clientId, stored), updated_at: Date.now() });
    await this.changed(clientId);
    await this.artifacts.revokeTokens(clientId);
    return { client: await this.get(clientId), clientSecret };
  }

  /**
   * Checks a presented secret against what the client row stores; a secret imported in a
   * slower foreign hash is re-hashed our way after its first successful use.
   */
  async verifySecret(clientId: string, stored: string, presented: string): Promise<boolean> {
    const { matches, shouldRehash } = await checkClientSecret(stored, presented, this.secretKey);
    if (matches && shouldRehash) {
      await this.db('clients').where({ client_id: clientId, secret_hash: stored }).update({ secret_hash: hashClientSecret(presented, this.secretKey) });
      await this.changed(clientId);
    }
    return matches;
  }

  /**
   * The client as oidc-provider's Client model reads it, or undefined for unknown and disabled
   * clients (which the provider then answers with invalid_client). `client_secret` carries the
   * hash: oidc-provider only hands it to compareClientSecret, which we override.
   */
  async providerMetadata(clientId: string): Promise<Record<string, unknown> | undefined> {
    const now = Date.now();
    const cached = this.cache.get(clientId);
    if (cached && cached.until > now) return cached.metadata;
    const invalidatedBefore = this.invalidated;
    const metadata = await this.readProviderMetadata(clientId);
    // Unknown ids are not kept: anyone can send random ones (so a new client needs no message).
    // Nor is a read that a change overtook: it may hold the state from before the change.
    if (metadata && this.cacheMs > 0 && this.invalidated === invalidatedBefore) {
      if (this.cache.size >= MAX_CACHED_CLIENTS) this.cache.clear();
      this.cache.set(clientId, { metadata, until: now + this.cacheMs });
    } else {
      this.cache.delete(clientId);
    }
    return metadata;
  }

  /** Every process (this one first) drops what it keeps of the client; never fails the change. */
  private async changed(clientId: string): Promise<void> {
    await this.invalidations.publish(CLIENTS_TOPIC, clientId);
  }

  private async readProviderMetadata(clientId: string): Promise<Record<string, unknown> | undefined> {
    const row = await this.findRow(clientId);
    if (!row || row.disabled) return undefined;
    const c = toClient(row);
    return {
      client_id: c.clientId,
      // oidc-provider wants a client_secret for confidential clients; it only uses it itself as
      // the HMAC key of HS256, so only clients that keep a plain secret hand it the real one.
      ...(row.secret_hash ? { client_secret: plainClientSecret(row.secret_hash) ?? row.secret_hash, 'gatehouse:stored_secret': row.secret_hash } : {}),
      client_name: c.name,
      grant_types: c.grantTypes,
      response_types: c.grantTypes.includes('authorization_code') ? ['code'] : [],
      redirect_uris: c.redirectUris,
      post_logout_redirect_uris: c.postLogoutRedirectUris,
      token_endpoint_auth_method: c.authMethod,
      id_token_signed_response_alg: c.idTokenSignedResponseAlg,
      scope: c.scope.join(' '),
      'gatehouse:default_scope': effectiveDefaultScope(c).join(' '),
      ...(c.logoUri ? { logo_uri: c.logoUri } : {}),
      ...(c.clientUri ? { client_uri: c.clientUri } : {}),
      'gatehouse:allowed_origins': c.allowedOrigins,
      'gatehouse:require_pkce': c.requirePkce,
      require_pushed_authorization_requests: c.requirePar,
      dpop_bound_access_tokens: c.requireDpop,
      'gatehouse:skip_consent': c.skipConsent,
      'gatehouse:require_mfa': c.requireMfa,
      ...(c.defaultResource ? { 'gatehouse:default_resource': c.defaultResource } : {}),
      ...(c.backchannelLogoutUri ? { backchannel_logout_uri: c.backchannelLogoutUri, backchannel_logout_session_required: c.backchannelLogoutSessionRequired } : {}),
    };
  }

  /**
   * Encrypts every plain secret still stored in the clear (written before encryption at rest,
   * or by the DOT importer): run at start-up and after an import.
   */
  async sealPlainSecrets(db: Knex = this.db): Promise<void> {
    const rows: { client_id: string; secret_hash: string }[] = await db('clients').select('client_id', 'secret_hash').where('secret_hash', 'like', `${PLAIN_SECRET}%`);
    for (const row of rows) {
      const plain = plainClientSecret(row.secret_hash);
      if (plain === undefined || AtRest.isSealed(plain)) continue;
      await db('clients').where({ client_id: row.client_id, secret_hash: row.secret_hash }).update({ secret_hash: this.sealed(row.client_id, row.secret_hash) });
    }
  }

  /** The secret_hash column as stored: a plain secret (plain$…) encrypted, any other form as it is. */
  private sealed(clientId: string, stored: string): string {
    const plain = plainClientSecret(stored);
    if (plain === undefined || AtRest.isSealed(plain)) return stored;
    return `${PLAIN_SECRET}${this.atRest.seal(plain, secretContext(clientId))}`;
  }

  /** A client row with its plain secret, if it keeps one, decrypted (in memory only). */
  private async findRow(clientId: string, db: Knex = this.db): Promise<ClientRow | undefined> {
    const row = await db('clients').where({ client_id: clientId }).first();
    if (!row) return undefined;
    const parsed = clientRow.parse(row);
    const plain = plainClientSecret(parsed.secret_hash ?? '');
    if (plain !== undefined && AtRest.isSealed(plain)) parsed.secret_hash = storePlainClientSecret(this.atRest.open(plain, secretContext(clientId)));
    return parsed;
  }
}

/** What a client's sealed secret is bound to: its own row. */
const secretContext = (clientId: string) => `clients:${clientId}`;
const PLAIN_SECRET = storePlainClientSecret('');

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
