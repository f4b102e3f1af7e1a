import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';

/**
 * Server-side secrets Gatehouse generates once and keeps in the database, so every process
 * over the same database shares them and a restart does not invalidate cookies or secrets.
 */
export class SettingsStore {
  constructor(private readonly db: Knex) {}

  /** The value stored under `name`, generating and storing it first if there is none. */
  async getOrCreate(name: string, generate: () => string): Promise<string> {
    const existing = await this.db('settings').where({ name }).first('value');
    if (existing) return existing.value as string;
    // Two processes may start at once: the first insert wins and both read it back.
    await this.db('settings').insert({ name, value: generate() }).onConflict('name').ignore();
    const stored = await this.db('settings').where({ name }).first('value');
    return stored.value as string;
  }
}

export const randomKey = (bytes = 32) => randomBytes(bytes).toString('base64url');

export async function loadCookieKeys(settings: SettingsStore, configured: string[] | undefined): Promise<string[]> {
  if (configured) return configured;
  const stored = await settings.getOrCreate('cookie_keys', () => JSON.stringify([randomKey()]));
  return JSON.parse(stored) as string[];
}

export async function loadClientSecretKey(settings: SettingsStore): Promise<Buffer> {
  return Buffer.from(await settings.getOrCreate('client_secret_hmac_key', () => randomKey()), 'base64url');
}
