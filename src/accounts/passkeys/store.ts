import type { Knex } from 'knex';

export interface Passkey {
  id: number;
  userId: string;
  credentialId: string;
  publicKey: Uint8Array;
  counter: number;
  transports: string[];
  backupEligible: boolean;
  backedUp: boolean;
  name: string;
  createdAt: Date;
  lastUsedAt: Date | undefined;
}

export type NewPasskey = Omit<Passkey, 'id' | 'createdAt' | 'lastUsedAt'>;

interface Row {
  id: number;
  user_id: string;
  credential_id: string;
  public_key: string;
  counter: number | string;
  transports: string;
  backup_eligible: number | boolean;
  backed_up: number | boolean;
  name: string;
  created_at: number | string;
  last_used_at: number | string | null;
}

const fromRow = (r: Row): Passkey => ({
  id: Number(r.id),
  userId: String(r.user_id),
  credentialId: r.credential_id,
  publicKey: new Uint8Array(Buffer.from(r.public_key, 'base64url')),
  counter: Number(r.counter),
  transports: r.transports ? r.transports.split(',') : [],
  backupEligible: Boolean(r.backup_eligible),
  backedUp: Boolean(r.backed_up),
  name: r.name,
  createdAt: new Date(Number(r.created_at)),
  lastUsedAt: r.last_used_at === null ? undefined : new Date(Number(r.last_used_at)),
});

/** The passkeys table: public keys and counters, nothing that signs anyone in by itself. */
export class PasskeyStore {
  constructor(
    private readonly db: Knex,
    private readonly now: () => number = Date.now,
  ) {}

  async of(userId: string): Promise<Passkey[]> {
    const rows: Row[] = await this.db('passkeys').where({ user_id: userId }).orderBy('id');
    return rows.map(fromRow);
  }

  async byCredentialId(credentialId: string): Promise<Passkey | undefined> {
    const row: Row | undefined = await this.db('passkeys').where({ credential_id: credentialId }).first();
    return row ? fromRow(row) : undefined;
  }

  async add(p: NewPasskey): Promise<void> {
    await this.db('passkeys').insert({
      user_id: p.userId,
      credential_id: p.credentialId,
      public_key: Buffer.from(p.publicKey).toString('base64url'),
      counter: p.counter,
      transports: p.transports.join(','),
      backup_eligible: p.backupEligible,
      backed_up: p.backedUp,
      name: p.name,
      created_at: this.now(),
    });
  }

  /**
   * Records a use. The counter only moves forward: the update matches the counter it read, so
   * of two sign-ins racing with one authenticator response only one is recorded.
   */
  async recordUse(p: Passkey, counter: number, backedUp: boolean): Promise<boolean> {
    const updated = await this.db('passkeys').where({ id: p.id, counter: p.counter }).update({ counter, backed_up: backedUp, last_used_at: this.now() });
    return updated === 1;
  }

  /** Renames one of the user's passkeys; false when it is not theirs (or gone). */
  async rename(userId: string, id: number, name: string): Promise<boolean> {
    return (await this.db('passkeys').where({ id, user_id: userId }).update({ name })) === 1;
  }

  async remove(userId: string, id: number): Promise<boolean> {
    return (await this.db('passkeys').where({ id, user_id: userId }).delete()) === 1;
  }
}
