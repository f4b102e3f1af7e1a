import type { Knex } from 'knex';
import { GatehouseError } from '../errors.ts';
import type { Json } from './merge-patch.ts';

export interface UserDocument {
  document: Record<string, Json>;
  /** 0 until the first write; every write adds one. Backs the ETag. */
  version: number;
  updatedAt: Date | null;
  updatedByClient: string | null;
}

/** An If-Match header, parsed: '*' or the versions it lists. */
export type Precondition = '*' | number[] | undefined;

const MAX_ATTEMPTS = 50;

const isUniqueViolation = (err: unknown) => {
  const code = (err as { code?: string }).code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE';
};

/**
 * One JSON object per user. Writes are compare-and-set on the version, retried on a race, so
 * two writers changing different fields at once both land and nothing is lost.
 */
export class UserdataService {
  constructor(
    private readonly db: Knex,
    private readonly maxBytes: number,
  ) {}

  async get(sub: string): Promise<UserDocument> {
    const row = await this.db('userdata').where({ sub }).first();
    if (!row) return { document: {}, version: 0, updatedAt: null, updatedByClient: null };
    return {
      document: JSON.parse(row.document) as Record<string, Json>,
      version: Number(row.version),
      updatedAt: new Date(Number(row.updated_at)),
      updatedByClient: row.updated_by_client,
    };
  }

  /** Replaces the document with what `change` makes of the current one. */
  async write(sub: string, clientId: string | null, precondition: Precondition, change: (current: Record<string, Json>) => Json): Promise<UserDocument> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const current = await this.get(sub);
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
      const values = { document: serialized, version: current.version + 1, updated_at: Date.now(), updated_by_client: clientId };
      // What this write made, answered as is: reading it back could see a later writer's.
      const written: UserDocument = { document: next, version: values.version, updatedAt: new Date(values.updated_at), updatedByClient: clientId };
      if (current.version === 0) {
        try {
          await this.db('userdata').insert({ sub, ...values });
          return written;
        } catch (err) {
          if (isUniqueViolation(err)) continue; // another writer created it first: start over
          throw err;
        }
      }
      const changed = await this.db('userdata').where({ sub, version: current.version }).update(values);
      if (changed === 1) return written;
      // Another writer got in between: read again and re-apply our change to theirs.
    }
    throw new GatehouseError(409, 'conflict', 'too many concurrent writes to this document; retry');
  }
}
