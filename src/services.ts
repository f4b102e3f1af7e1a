import type { Knex } from 'knex';
import { ClientsService } from './clients/service.ts';
import type { Config } from './config.ts';
import { migrateToLatest, openDatabase } from './db.ts';
import { KeysService } from './keys/service.ts';
import { AccountsService } from './accounts/service.ts';
import { LoginThrottle } from './accounts/throttle.ts';
import { deleteAccountPayloads } from '../adapters/knex.ts';
import { loadClientSecretKey, loadCookieKeys, SettingsStore } from './settings/store.ts';

/** The domain services every entry point (server, CLI, tests) shares: one source of truth. */
export interface Services {
  config: Config;
  db: Knex;
  settings: SettingsStore;
  clients: ClientsService;
  keys: KeysService;
  accounts: AccountsService;
  throttle: LoginThrottle;
  close(): Promise<void>;
}

export async function openServices(config: Config, { migrate = true } = {}): Promise<Services> {
  const db = openDatabase(config.database);
  try {
    if (migrate) await migrateToLatest(db);
    const settings = new SettingsStore(db);
    const clients = new ClientsService(db, await loadClientSecretKey(settings), config.apiScopes);
    const keys = new KeysService(db);
    const accounts = new AccountsService(db, (userId) => deleteAccountPayloads(db, userId));
    const throttle = new LoginThrottle(db);
    return { config, db, settings, clients, keys, accounts, throttle, close: () => db.destroy() };
  } catch (err) {
    await db.destroy();
    throw err;
  }
}

export { loadCookieKeys };
