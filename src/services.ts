import type { Knex } from 'knex';
import { ClientsService } from './clients/service.ts';
import type { Config } from './config.ts';
import { migrateToLatest, openDatabase } from './db.ts';
import { KeysService } from './keys/service.ts';
import { loadClientSecretKey, loadCookieKeys, SettingsStore } from './settings/store.ts';

/** The domain services every entry point (server, CLI, tests) shares: one source of truth. */
export interface Services {
  config: Config;
  db: Knex;
  settings: SettingsStore;
  clients: ClientsService;
  keys: KeysService;
  close(): Promise<void>;
}

export async function openServices(config: Config, { migrate = true } = {}): Promise<Services> {
  const db = openDatabase(config.database);
  try {
    if (migrate) await migrateToLatest(db);
    const settings = new SettingsStore(db);
    const clients = new ClientsService(db, await loadClientSecretKey(settings), config.apiScopes);
    const keys = new KeysService(db);
    return { config, db, settings, clients, keys, close: () => db.destroy() };
  } catch (err) {
    await db.destroy();
    throw err;
  }
}

export { loadCookieKeys };
