import type { Knex } from 'knex';
import type { Adapter, AdapterFactory, AdapterPayload } from 'oidc-provider';
import type { ClientsService } from '../src/clients/service.ts';
import { KnexAdapter } from './knex.ts';

/**
 * Where each oidc-provider model is stored. Clients come from our own clients table (owned by
 * the clients service); every other model goes through the generic Knex adapter.
 */
export const MODEL_STORES = {
  Client: 'clients-table',
  Session: 'knex',
  Grant: 'knex',
  AccessToken: 'knex',
  AuthorizationCode: 'knex',
  RefreshToken: 'knex',
  ClientCredentials: 'knex',
  DeviceCode: 'knex',
  BackchannelAuthenticationRequest: 'knex',
  PushedAuthorizationRequest: 'knex',
  Interaction: 'knex',
  ReplayDetection: 'knex',
  InitialAccessToken: 'knex',
  RegistrationAccessToken: 'knex',
  PreAuthorizedCode: 'knex',
} as const;

/** Read-only view of the clients table for oidc-provider; clients are written by the clients service. */
class ClientsTableAdapter implements Adapter {
  constructor(private readonly clients: ClientsService) {}

  async find(id: string): Promise<AdapterPayload | undefined> {
    return (await this.clients.providerMetadata(id)) as AdapterPayload | undefined;
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

export function createAdapterFactory(db: Knex, clients: ClientsService): AdapterFactory {
  const adapters = new Map<string, Adapter>();
  return (name: string) => {
    let adapter = adapters.get(name);
    if (!adapter) {
      adapter = name === 'Client' ? new ClientsTableAdapter(clients) : new KnexAdapter(db, name);
      adapters.set(name, adapter);
    }
    return adapter;
  };
}
