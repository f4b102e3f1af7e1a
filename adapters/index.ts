import type { Redis } from 'ioredis';
import type { Knex } from 'knex';
import type { Adapter, AdapterFactory, AdapterPayload } from 'oidc-provider';
import type { ClientsService } from '../src/clients/service.ts';
import { guardStore } from '../src/stores/availability.ts';
import { KnexAdapter } from './knex.ts';
import { RedisAdapter } from './redis.ts';
import { SqliteAdapter, type SqliteStatements } from './sqlite.ts';

/**
 * Where each oidc-provider model is stored when REDIS_URL is set. Without Redis, every
 * "redis" model goes to the database too, so the embedded default loses nothing on restart.
 *
 * - Redis: artifacts that live minutes to an hour, are read on hot paths, and whose loss
 *   costs at most a retry: codes, interactions, PAR, replay detection, device/CIBA requests,
 *   access tokens (a client refreshes or re-authenticates if Redis is flushed).
 * - Database: what a person would notice losing: sessions (single sign-on for weeks), grants
 *   (remembered consent), refresh tokens (signed-in apps), and registration tokens.
 * - Clients are always our own clients table, owned by the clients service.
 */
export const MODEL_STORES = {
  Client: 'clients-table',
  Session: 'database',
  Grant: 'database',
  RefreshToken: 'database',
  InitialAccessToken: 'database',
  RegistrationAccessToken: 'database',
  AccessToken: 'redis',
  ClientCredentials: 'redis',
  AuthorizationCode: 'redis',
  Interaction: 'redis',
  PushedAuthorizationRequest: 'redis',
  ReplayDetection: 'redis',
  DeviceCode: 'redis',
  BackchannelAuthenticationRequest: 'redis',
  PreAuthorizedCode: 'redis',
} as const satisfies Record<string, 'clients-table' | 'database' | 'redis'>;

export type ModelName = keyof typeof MODEL_STORES;

/** Read-only view of the clients table for oidc-provider; clients are written by the clients service. */
class ClientsTableAdapter implements Adapter {
  constructor(private readonly clients: ClientsService) {}

  async find(id: string): Promise<AdapterPayload | undefined> {
    return (await guardStore('database', () => this.clients.providerMetadata(id))) as AdapterPayload | undefined;
  }

  async upsert(): Promise<void> {
    throw new Error('clients are managed by the clients service, not by oidc-provider');
  }
  async destroy(): Promise<void> {
    throw new Error('clients are managed by the clients service, not by oidc-provider');
  }
  async findByUid(): Promise<undefined> {
    return undefined;
  }
  async findByUserCode(): Promise<undefined> {
    return undefined;
  }
  async consume(): Promise<void> {}
  async revokeByGrantId(): Promise<void> {}
}

export interface Stores {
  db: Knex;
  /** The embedded SQLite default: prepared statements on a connection of their own (hot path). */
  sqlite?: SqliteStatements;
  redis?: { client: Redis; prefix: string };
}

export function storeFor(name: string, stores: Stores): 'clients-table' | 'database' | 'redis' {
  const store = MODEL_STORES[name as ModelName] ?? 'database';
  return store === 'redis' && !stores.redis ? 'database' : store;
}

export function createAdapterFactory(stores: Stores, clients: ClientsService): AdapterFactory {
  const adapters = new Map<string, Adapter>();
  return (name: string) => {
    let adapter = adapters.get(name);
    if (!adapter) {
      const store = storeFor(name, stores);
      adapter =
        store === 'clients-table'
          ? new ClientsTableAdapter(clients)
          : store === 'redis'
            ? new RedisAdapter(stores.redis!.client, name, stores.redis!.prefix)
            : stores.sqlite
              ? new SqliteAdapter(stores.sqlite, name)
              : new KnexAdapter(stores.db, name);
      adapters.set(name, adapter);
    }
    return adapter;
  };
}
