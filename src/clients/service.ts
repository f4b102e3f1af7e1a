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
import { checkClientSecret, generateClientId, generateClientSecret, hashClientSecret, plainClientSecret, storePlainClientSecret } from './secrets.ts';

/**
 * How long a process may serve a client as it read it, should the message about a change to it
 * be lost; see ClientsService.cache.
 */
export const CLIENT_CACHE_MS = 500;
/** The invalidation topic of client metadata; the key is the client_id. */
export const CLIENTS_TOPIC = 'clients';
const MAX_CACHED_CLIENTS = 10_000;

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
  skipConsent: z.boolean().default(false),
  allowInsecureRedirect: z.boolean().default(false),
  idTokenSignedResponseAlg: z.enum(STORED_ID_TOKEN_ALGS),
  logoUri: z.string().nullable(),
  clientUri: z.string().nullable(),
  defaultResource: z.string().nullable().default(null),
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
    /** The API scopes a client may hold now (the scopes service's list). */
    private readonly knownScopes: () => Promise<readonly string[]>,
    /** The audiences of the resource servers there are now: a default resource must be one. */
    private readonly knownResources: () => Promise<readonly string[]>,
    private readonly invalidations: Invalidations,
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

  async list(): Promise<Client[]> {
    const rows = await this.db('clients').select('*').orderBy('created_at', 'asc');
    return rows.map((row) => toClient(clientRow.parse(row)));
  }

  async exists(clientId: string): Promise<boolean> {
    return (await this.db('clients').first('client_id').where({ client_id: clientId })) !== undefined;
  }

  async get(clientId: string): Promise<Client> {
    const row = await this.findRow(clientId);
    if (!row) throw new NotFoundError(`client ${clientId}`);
    return toClient(row);
  }

  /**
   * Applies a partial change. A confidential client turned public loses its secret; a public
   * client turned confidential gets one, returned here once.
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
        secret_hash: secretHash,
        settings: settingsColumn(settings),
        disabled: disabled ?? current.disabled,
        updated_at: Date.now(),
      });
    await this.changed(clientId);
    return { client: await this.get(clientId), clientSecret };
  }

  /** Deletes the client with its API keys and the /userdata documents it kept. */
  async delete(clientId: string): Promise<void> {
    const removed = await this.db.transaction(async (trx): Promise<number> => {
      await trx('api_keys').where({ client_id: clientId }).delete();
      await trx('userdata').where({ client_id: clientId }).delete();
      return trx('clients').where({ client_id: clientId }).delete();
    });
    if (!removed) throw new NotFoundError(`client ${clientId}`);
    await this.changed(clientId);
  }

  /** A new secret; the old one stops working with the next request. */
  async rotateSecret(clientId: string): Promise<ClientWithSecret> {
    const client = await this.get(clientId);
    if (client.type !== 'confidential') {
      throw new ValidationError({ type: 'a public client has no secret to rotate' });
    }
    const row = (await this.findRow(clientId))!;
    const clientSecret = generateClientSecret();
    // An HS256 client's secret is its HMAC key, so it stays plain (see secrets.ts).
    const stored = plainClientSecret(row.secret_hash ?? '') !== undefined ? storePlainClientSecret(clientSecret) : hashClientSecret(clientSecret, this.secretKey);
    await this.db('clients').where({ client_id: clientId }).update({ secret_hash: stored, updated_at: Date.now() });
    await this.changed(clientId);
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
      'gatehouse:skip_consent': c.skipConsent,
      ...(c.defaultResource ? { 'gatehouse:default_resource': c.defaultResource } : {}),
    };
  }

  private async findRow(clientId: string): Promise<ClientRow | undefined> {
    const row = await this.db('clients').where({ client_id: clientId }).first();
    return row ? clientRow.parse(row) : undefined;
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
