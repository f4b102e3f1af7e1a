import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { AtRest } from './at-rest.ts';

/**
 * Server-side secrets Gatehouse generates once and keeps in the database, so every process
 * over the same database shares them and a restart does not invalidate cookies or secrets.
 * Each is stored encrypted (at-rest.ts): a copy of the database forges no cookie with them.
 */
export class SettingsStore {
  constructor(
    private readonly db: Knex,
    private readonly atRest: AtRest,
  ) {}

  /** The value stored under `name`, generating and storing it first if there is none. */
  async getOrCreate(name: string, generate: () => string): Promise<string> {
    const existing = await this.db('settings').where({ name }).first('value');
    if (existing) return this.plain(name, String(existing.value));
    // Two processes may start at once: the first insert wins and both read it back.
    await this.db('settings')
      .insert({ name, value: this.atRest.seal(generate(), context(name)) })
      .onConflict('name')
      .ignore();
    const stored = await this.db('settings').where({ name }).first('value');
    return this.plain(name, String(stored.value));
  }

  /** A stored value in the clear; one stored before encryption at rest is encrypted in place first. */
  private async plain(name: string, stored: string): Promise<string> {
    if (AtRest.isSealed(stored)) return this.atRest.open(stored, context(name));
    await this.db('settings')
      .where({ name, value: stored })
      .update({ value: this.atRest.seal(stored, context(name)) });
    return stored;
  }
}

const context = (name: string) => `settings:${name}`;

export const randomKey = (bytes = 32) => randomBytes(bytes).toString('base64url');

export async function loadCookieKeys(settings: SettingsStore, configured: string[] | undefined): Promise<string[]> {
  if (configured) return configured;
  const stored = await settings.getOrCreate('cookie_keys', () => JSON.stringify([randomKey()]));
  return JSON.parse(stored) as string[];
}

export async function loadClientSecretKey(settings: SettingsStore): Promise<Buffer> {
  return Buffer.from(await settings.getOrCreate('client_secret_hmac_key', () => randomKey()), 'base64url');
}
