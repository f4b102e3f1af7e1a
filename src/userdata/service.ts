import type { Knex } from 'knex';
import { GatehouseError, NotFoundError } from '../errors.ts';
import type { Json } from './merge-patch.ts';

export interface UserDocument {
  document: Record<string, Json>;
  /** 0 until the first write; every write adds one. Backs the ETag. */
  version: number;
  updatedAt: Date | null;
}

/** A stored document as an operator's list shows it: whose it is, how big, how recent. */
export interface StoredDocument {
  clientId: string;
  version: number;
  updatedAt: Date;
  /** The size of its JSON, in bytes. */
  bytes: number;
}

/**
 * The owner of documents the per-app migration (20261203000000) could give to no client: no
 * client wrote them, or their writer was deleted, and no client could read them. No API key
 * reaches them; the admin shows and clears them.
 */
export const UNASSIGNED_OWNER = '(unassigned)';

/** An If-Match header, parsed: '*' or the versions it lists. */
export type Precondition = '*' | number[] | undefined;

const MAX_ATTEMPTS = 50;

const isUniqueViolation = (err: unknown) => {
  const code = (err as { code?: string }).code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE';
};

interface Row {
  sub: string;
  client_id: string;
  document: string;
  version: number | string;
  updated_at: number | string;
}

/**
 * One JSON object per (user, app): an app reaches its own document of a user and never another
 * app's. Writes are compare-and-set on the version, retried on a race, so two writers changing
 * different fields at once both land and nothing is lost.
 */
export class UserdataService {
  constructor(
    private readonly db: Knex,
    private readonly maxBytes: number,
  ) {}

  /** The app's document of the user; {} at version 0 until its first write. */
  async get(sub: string, clientId: string): Promise<UserDocument> {
    return (await this.find(sub, clientId)) ?? { document: {}, version: 0, updatedAt: null };
  }

  /** The stored document, or undefined when the app never wrote one for the user. */
  async find(sub: string, clientId: string): Promise<UserDocument | undefined> {
    const row: Row | undefined = await this.db('userdata').where({ sub, client_id: clientId }).first();
    if (!row) return undefined;
    return {
      document: JSON.parse(row.document) as Record<string, Json>,
      version: Number(row.version),
      updatedAt: new Date(Number(row.updated_at)),
    };
  }

  /** Every document stored for the user, one per app, by client id. */
  async listForUser(sub: string): Promise<StoredDocument[]> {
    const rows: Row[] = await this.db('userdata').where({ sub }).orderBy('client_id');
    return rows.map((row) => ({ clientId: row.client_id, version: Number(row.version), updatedAt: new Date(Number(row.updated_at)), bytes: Buffer.byteLength(row.document) }));
  }

  /**
   * Empties a stored document (an operator's "clear"), as the app's DELETE does: {} at the next
   * version, so an ETag never names two different contents.
   */
  async clear(sub: string, clientId: string): Promise<UserDocument> {
    if (!(await this.find(sub, clientId))) throw new NotFoundError(`a document of app ${clientId} for user ${sub}`);
    return this.write(sub, clientId, undefined, () => ({}));
  }

  /** Replaces the app's document with what `change` makes of the current one. */
  async write(sub: string, clientId: string, precondition: Precondition, change: (current: Record<string, Json>) => Json): Promise<UserDocument> {
    const key = { sub, client_id: clientId };
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const current = await this.get(sub, clientId);
      if (precondition !== undefined && precondition !== '*' && !precondition.includes(current.version)) {
        throw new GatehouseError(412, 'precondition_failed', `the document has changed: its version is ${current.version}; read it again and retry`);
      }
      const next = change(current.document) as Record<string, Json>;
      if (typeof next !== 'object' || next === null || Array.isArray(next)) {
        throw new GatehouseError(400, 'invalid_document', 'the document must stay a JSON object');
      }
      const serialized = JSON.stringify(next);
      if (Buffer.byteLength(serialized) > this.maxBytes) {
        throw new GatehouseError(413, 'document_too_large', `the document would be larger than ${this.maxBytes} bytes`);
      }
      const values = { document: serialized, version: current.version + 1, updated_at: Date.now() };
      // What this write made, answered as is: reading it back could see a later writer's.
      const written: UserDocument = { document: next, version: values.version, updatedAt: new Date(values.updated_at) };
      if (current.version === 0) {
        try {
          await this.db('userdata').insert({ ...key, ...values });
          return written;
        } catch (err) {
          if (isUniqueViolation(err)) continue; // another writer created it first: start over
          throw err;
        }
      }
      const changed = await this.db('userdata').where({ ...key, version: current.version }).update(values);
      if (changed === 1) return written;
      // Another writer got in between: read again and re-apply our change to theirs.
    }
    throw new GatehouseError(409, 'conflict', 'too many concurrent writes to this document; retry');
  }
}
