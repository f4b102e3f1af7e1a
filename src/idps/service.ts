import { createHash, randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { z } from 'zod';
import { GatehouseError, NotFoundError, ValidationError } from '../errors.ts';
import type { AtRest } from '../settings/at-rest.ts';
import { checkClientSecret, checkIdpSettings, checkPosition, type IdpInput, type IdpSettings } from './rules.ts';

/**
 * Upstream identity providers are data: who may sign a person in here (an OpenID Connect issuer,
 * GitHub), in which order their buttons show, and for which clients. Also the storage of what
 * hangs off them: the linked identities (account ↔ (provider, upstream subject)), and the sign-ins
 * on their way through an upstream (state, nonce, PKCE verifier), each used once.
 */

export interface Idp extends IdpSettings {
  position: number;
  createdAt: Date;
  updatedAt: Date;
}

export interface LinkedIdentity {
  idpName: string;
  subject: string;
  userId: string;
  email: string;
  createdAt: Date;
  lastUsedAt: Date | null;
}

/** How long a person has between leaving for the upstream and coming back, or to enter a password to link. */
export const FLOW_TTL_MS = 10 * 60 * 1000;
export type FlowPurpose = 'start' | 'link';

const epoch = z.union([z.number(), z.string()]).transform((v) => new Date(Number(v)));
const flag = z.union([z.boolean(), z.number()]).transform(Boolean);
const idpRow = z.object({
  name: z.string(),
  protocol: z.enum(['oidc', 'github']),
  preset: z.string().nullable(),
  issuer: z.string(),
  client_id: z.string(),
  scope: z.string(),
  button: z.string(),
  position: z.coerce.number(),
  enabled: flag,
  create_accounts: flag,
  created_at: epoch,
  updated_at: epoch,
});
const toIdp = (r: unknown): Idp => {
  const p = idpRow.parse(r);
  return {
    name: p.name,
    protocol: p.protocol,
    preset: p.preset,
    issuer: p.issuer,
    clientId: p.client_id,
    scope: p.scope,
    button: p.button,
    position: p.position,
    enabled: p.enabled,
    createAccounts: p.create_accounts,
    createdAt: p.created_at,
    updatedAt: p.updated_at,
  };
};
const linkRow = z.object({
  idp_name: z.string(),
  subject: z.string(),
  user_id: z.string(),
  email: z.string(),
  created_at: epoch,
  last_used_at: epoch.nullable(),
});
const toLink = (r: unknown): LinkedIdentity => {
  const p = linkRow.parse(r);
  return { idpName: p.idp_name, subject: p.subject, userId: p.user_id, email: p.email, createdAt: p.created_at, lastUsedAt: p.last_used_at };
};

const sha256 = (v: string) => createHash('sha256').update(v).digest('base64url');
const secretContext = (name: string) => `identity_providers:${name}`;

/** Refused: the identity is already linked to an account (this one or another). 409. */
export class AlreadyLinkedError extends GatehouseError {
  override name = 'AlreadyLinkedError';
  constructor() {
    super(409, 'already_linked', 'this sign-in is already linked to a Gatehouse account');
  }
}

export class IdpsService {
  constructor(
    private readonly db: Knex,
    private readonly atRest: AtRest,
    /** Gatehouse's issuer: the redirect URIs registered upstream start with it. */
    private readonly issuer: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** The address the upstream sends people back to; registered there by the operator. */
  redirectUri(name: string): string {
    return `${this.issuer.replace(/\/$/, '')}/idp/${name}/callback`;
  }

  /** Every provider, in the order their buttons show. */
  async list(): Promise<Idp[]> {
    return (
      await this.db('identity_providers')
        .select('*')
        .orderBy([{ column: 'position' }, { column: 'name' }])
    ).map(toIdp);
  }

  async find(name: string): Promise<Idp | undefined> {
    const found = typeof name === 'string' ? await this.db('identity_providers').where({ name }).first() : undefined;
    return found ? toIdp(found) : undefined;
  }

  async get(name: string): Promise<Idp> {
    const found = await this.find(name);
    if (!found) throw new NotFoundError(`identity provider ${name}`);
    return found;
  }

  /** The client secret to present upstream; read only by the sign-in flow. */
  async clientSecret(name: string): Promise<string> {
    const row = await this.db('identity_providers').where({ name }).first('client_secret_sealed');
    if (!row) throw new NotFoundError(`identity provider ${name}`);
    return this.atRest.open(String(row.client_secret_sealed), secretContext(name));
  }

  async create(input: IdpInput): Promise<Idp> {
    const fields: Record<string, string> = {};
    const attempt = <T>(check: () => T): T | undefined => {
      try {
        return check();
      } catch (err) {
        if (!(err instanceof ValidationError)) throw err;
        Object.assign(fields, err.fields);
        return undefined;
      }
    };
    const s = attempt(() => checkIdpSettings(input));
    const secret = attempt(() => checkClientSecret(input.clientSecret));
    const given = input.position === undefined ? undefined : attempt(() => checkPosition(input.position));
    if (Object.keys(fields).length) throw new ValidationError(fields);
    const position = given ?? (Number((await this.db('identity_providers').max({ p: 'position' }).first())?.p ?? 0) || 0) + 10;
    const now = this.now();
    const inserted = await this.db('identity_providers')
      .insert({ ...columns(s!), client_secret_sealed: this.atRest.seal(secret!, secretContext(s!.name)), position, created_at: now, updated_at: now })
      .onConflict('name')
      .ignore()
      .returning('name');
    if (inserted.length === 0) throw new ValidationError({ name: `an identity provider named ${s!.name} already exists` });
    return this.get(s!.name);
  }

  /** Changes what is given; `changed` names the fields that differ (none: nothing written). */
  async update(name: string, input: IdpInput): Promise<{ idp: Idp; changed: string[] }> {
    const current = await this.get(name);
    const s = checkIdpSettings(input, current);
    const position = input.position === undefined ? current.position : checkPosition(input.position);
    const secret = input.clientSecret === undefined ? undefined : checkClientSecret(input.clientSecret);
    const before = { ...columns(current), position: current.position };
    const after = { ...columns(s), position };
    const changed = Object.keys(after).filter((k) => before[k as keyof typeof before] !== after[k as keyof typeof after]);
    if (secret !== undefined) changed.push('client_secret');
    if (changed.length === 0) return { idp: current, changed };
    await this.db('identity_providers')
      .where({ name })
      .update({ ...after, ...(secret !== undefined ? { client_secret_sealed: this.atRest.seal(secret, secretContext(name)) } : {}), updated_at: this.now() });
    return { idp: await this.get(name), changed };
  }

  /** Deletes the provider and the identities linked through it (the accounts stay). */
  async delete(name: string): Promise<Idp> {
    return this.db.transaction(async (trx) => {
      const found = await trx('identity_providers').where({ name }).first();
      if (!found) throw new NotFoundError(`identity provider ${name}`);
      await trx('linked_identities').where({ idp_name: name }).delete();
      await trx('client_identity_providers').where({ idp_name: name }).delete();
      await trx('idp_flows').where({ idp_name: name }).delete();
      await trx('identity_providers').where({ name }).delete();
      return toIdp(found);
    });
  }

  /** The providers a client's sign-in page offers: the enabled ones, limited by the client's list when it has one. */
  async offeredTo(clientId: unknown): Promise<Idp[]> {
    const enabled = (await this.list()).filter((i) => i.enabled);
    if (!enabled.length || typeof clientId !== 'string') return enabled;
    const limit = await this.clientLimit(clientId);
    return limit.length ? enabled.filter((i) => limit.includes(i.name)) : enabled;
  }

  /** The names a client is limited to; empty: every enabled provider. */
  async clientLimit(clientId: string): Promise<string[]> {
    return (await this.db('client_identity_providers').where({ client_id: clientId }).orderBy('idp_name').select('idp_name')).map((r) => String(r.idp_name));
  }

  /** Limits a client's sign-in page to `names` (each must exist); an empty list lifts the limit. */
  async setClientLimit(clientId: string, names: string[]): Promise<string[]> {
    const wanted = [...new Set(names.map((n) => n.trim()).filter(Boolean))];
    const known = new Set((await this.list()).map((i) => i.name));
    const unknown = wanted.filter((n) => !known.has(n));
    if (unknown.length) throw new ValidationError({ idps: `unknown identity provider ${unknown.join(', ')} (idps list shows them)` });
    await this.db.transaction(async (trx) => {
      await trx('client_identity_providers').where({ client_id: clientId }).delete();
      if (wanted.length) await trx('client_identity_providers').insert(wanted.map((idp_name) => ({ client_id: clientId, idp_name })));
    });
    return this.clientLimit(clientId);
  }

  // Linked identities.

  async linkOf(idpName: string, subject: string): Promise<LinkedIdentity | undefined> {
    const found = await this.db('linked_identities').where({ idp_name: idpName, subject }).first();
    return found ? toLink(found) : undefined;
  }

  async linksOf(userId: string): Promise<LinkedIdentity[]> {
    return (
      await this.db('linked_identities')
        .where({ user_id: userId })
        .orderBy([{ column: 'idp_name' }, { column: 'created_at' }])
    ).map(toLink);
  }

  /** Links (provider, subject) to the account; an identity already linked (to anyone) is refused. */
  async link(idpName: string, subject: string, userId: string, email: string): Promise<LinkedIdentity> {
    const now = this.now();
    const inserted = await this.db('linked_identities')
      .insert({ idp_name: idpName, subject, user_id: userId, email: email.slice(0, 254), created_at: now, last_used_at: now })
      .onConflict(['idp_name', 'subject'])
      .ignore()
      .returning('subject');
    if (inserted.length === 0) throw new AlreadyLinkedError();
    return (await this.linkOf(idpName, subject))!;
  }

  /**
   * A new account made through an upstream and its link, in one transaction: two first sign-ins
   * of the same identity at once cannot leave a spare account without a link. The loser (its link
   * or its username taken under the unique keys, or waiting on the winner's lock) rolls back and
   * gets undefined: the identity is linked now, to the winner's account.
   */
  async createLinkedAccount<T extends { id: string }>(
    idpName: string,
    subject: string,
    email: string,
    create: (db: Knex) => Promise<T>,
  ): Promise<T | undefined> {
    try {
      return await this.db.transaction(async (trx) => {
        const user = await create(trx);
        const now = this.now();
        const inserted = await trx('linked_identities')
          .insert({ idp_name: idpName, subject, user_id: user.id, email: email.slice(0, 254), created_at: now, last_used_at: now })
          .onConflict(['idp_name', 'subject'])
          .ignore()
          .returning('subject');
        if (inserted.length === 0) throw new AlreadyLinkedError();
        return user;
      });
    } catch (err) {
      if (await this.linkOf(idpName, subject)) return undefined;
      throw err;
    }
  }

  async touch(link: LinkedIdentity): Promise<void> {
    await this.db('linked_identities').where({ idp_name: link.idpName, subject: link.subject }).update({ last_used_at: this.now() });
  }

  /**
   * Removes one of the account's links, unless it is the last way in (`otherWayIn`: a password or
   * a passkey). The links are counted under lock, so two unlinks at once cannot both remove "not the last".
   */
  async unlink(userId: string, idpName: string, subject: string, otherWayIn: boolean): Promise<boolean> {
    return this.db.transaction(async (trx) => {
      const mine = await trx('linked_identities').where({ user_id: userId }).forUpdate().select('idp_name', 'subject');
      if (!mine.some((r) => r.idp_name === idpName && r.subject === subject)) throw new NotFoundError('that linked sign-in');
      if (mine.length === 1 && !otherWayIn) return false;
      await trx('linked_identities').where({ user_id: userId, idp_name: idpName, subject }).delete();
      return true;
    });
  }

  // Sign-ins on their way: stored under the SHA-256 of their handle, the rest sealed under it.

  /** Keeps `payload` for one interaction; returns the handle (the state, or a link token). */
  async holdFlow(
    purpose: FlowPurpose,
    interactionUid: string,
    idpName: string,
    payload: object,
    handle = randomBytes(32).toString('base64url'),
  ): Promise<string> {
    const id = sha256(`${purpose}:${handle}`);
    await this.db('idp_flows').where('expires_at', '<', this.now()).delete();
    await this.db('idp_flows').insert({
      id,
      purpose,
      interaction_uid: interactionUid,
      idp_name: idpName,
      sealed: this.atRest.seal(JSON.stringify(payload), `idp_flows:${id}`),
      expires_at: this.now() + FLOW_TTL_MS,
    });
    return handle;
  }

  /** Which interaction and provider a live handle belongs to, without using it. */
  async peekFlow(purpose: FlowPurpose, handle: unknown): Promise<{ interactionUid: string; idpName: string } | undefined> {
    if (typeof handle !== 'string' || !handle || handle.length > 200) return undefined;
    const row = await this.db('idp_flows')
      .where({ id: sha256(`${purpose}:${handle}`) })
      .where('expires_at', '>', this.now())
      .first();
    return row ? { interactionUid: String(row.interaction_uid), idpName: String(row.idp_name) } : undefined;
  }

  /** A live handle's payload, left in place (a form shown again after a wrong password). */
  async readFlow<T>(purpose: FlowPurpose, handle: unknown, interactionUid: string, idpName: string): Promise<T | undefined> {
    if (typeof handle !== 'string' || !handle || handle.length > 200) return undefined;
    const id = sha256(`${purpose}:${handle}`);
    const row = await this.db('idp_flows').where({ id, interaction_uid: interactionUid, idp_name: idpName }).where('expires_at', '>', this.now()).first();
    return row ? (JSON.parse(this.atRest.open(String(row.sealed), `idp_flows:${id}`)) as T) : undefined;
  }

  /**
   * Uses a handle once: of two requests with it at once, exactly one deletes the row and gets the
   * payload; the other, like a replay later, gets undefined. Bound to the interaction and provider.
   */
  async takeFlow<T>(purpose: FlowPurpose, handle: unknown, interactionUid: string, idpName: string): Promise<T | undefined> {
    if (typeof handle !== 'string' || !handle || handle.length > 200) return undefined;
    const id = sha256(`${purpose}:${handle}`);
    const row = await this.db('idp_flows').where({ id, interaction_uid: interactionUid, idp_name: idpName }).where('expires_at', '>', this.now()).first();
    if (!row) return undefined;
    const deleted = await this.db('idp_flows').where({ id }).delete();
    if (deleted !== 1) return undefined;
    return JSON.parse(this.atRest.open(String(row.sealed), `idp_flows:${id}`)) as T;
  }
}

function columns(s: IdpSettings) {
  return {
    name: s.name,
    protocol: s.protocol,
    preset: s.preset,
    issuer: s.issuer,
    client_id: s.clientId,
    scope: s.scope,
    button: s.button,
    enabled: s.enabled,
    create_accounts: s.createAccounts,
  };
}
