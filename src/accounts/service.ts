import { randomUUID } from 'node:crypto';
import type Database from 'better-sqlite3';
import type { Knex } from 'knex';
import { z } from 'zod';
import { GatehouseError, NotFoundError, ValidationError } from '../errors.ts';
import { decoyHash, hashPassword, MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, needsRehash, verifyPassword } from './passwords.ts';

export interface User {
  id: string;
  username: string;
  email: string;
  emailVerified: boolean;
  name: string;
  isAdmin: boolean;
  disabled: boolean;
  mustResetPassword: boolean;
  hasPassword: boolean;
  createdAt: Date;
  updatedAt: Date;
}

const epoch = z.union([z.number(), z.string()]).transform((v) => new Date(Number(v)));
const flag = z.union([z.boolean(), z.number()]).transform(Boolean);
const userRow = z.object({
  id: z.string(),
  username: z.string(),
  email: z.string(),
  email_verified: flag,
  name: z.string(),
  password_hash: z.string().nullable(),
  must_reset_password: flag,
  is_admin: flag,
  disabled: flag,
  created_at: epoch,
  updated_at: epoch,
});
type UserRow = z.output<typeof userRow>;

const toUser = (r: UserRow): User => ({
  id: r.id,
  username: r.username,
  email: r.email,
  emailVerified: r.email_verified,
  name: r.name,
  isAdmin: r.is_admin,
  disabled: r.disabled,
  mustResetPassword: r.must_reset_password,
  hasPassword: r.password_hash !== null,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

// Usernames compare case-insensitively, as people type them.
export const usernameKey = (username: string) => username.normalize('NFKC').toLowerCase();

const newUserInput = z.object({
  username: z
    .string('is required')
    .trim()
    .min(1, 'is required')
    .max(150, 'must be at most 150 characters')
    .regex(/^[\p{L}\p{N}._@+-]+$/u, 'may contain letters, digits and . _ @ + - only'),
  email: z.email('must be an email address').max(254, 'must be at most 254 characters'),
  name: z.string().trim().max(300, 'must be at most 300 characters').optional(),
  password: z.string().optional(),
  isAdmin: z.boolean().optional(),
  emailVerified: z.boolean().optional(),
});

function parseNewUser(input: Record<string, unknown>): z.output<typeof newUserInput> {
  const parsed = newUserInput.safeParse(input);
  if (!parsed.success) {
    const fields: Record<string, string> = {};
    for (const issue of parsed.error.issues) fields[String(issue.path[0])] ??= issue.message;
    throw new ValidationError(fields);
  }
  return parsed.data;
}

function checkPassword(password: string): void {
  if (password.length < MIN_PASSWORD_LENGTH) throw new ValidationError({ password: `must be at least ${MIN_PASSWORD_LENGTH} characters` });
  if (password.length > MAX_PASSWORD_LENGTH) throw new ValidationError({ password: `must be at most ${MAX_PASSWORD_LENGTH} characters` });
}

/** Gatehouse keeps at least one enabled admin: refused, 409, when a change would leave none. */
export class LastAdminError extends GatehouseError {
  override name = 'LastAdminError';
  constructor(what: 'disable' | 'demote') {
    const change = what === 'disable' ? 'disabling them' : 'removing their admin flag';
    super(409, 'last_admin', `this is the only enabled admin: ${change} would leave nobody who can run Gatehouse; make another user an admin first`);
  }
}

/**
 * What ends when a user's credentials change, in oidc-provider's storage (src/oidc/ GrantsService
 * does it): the accounts service decides when, the boundary knows how.
 */
export interface UserArtifacts {
  /** The user is disabled: everything issued to them stops working (sessions, the admin's too, tokens, codes, grants). */
  revokeAll(userId: string): Promise<void>;
  /** The user's password changed: their sessions (the admin's too) end and their tokens and codes are revoked; consent stays. */
  revokeSignIns(userId: string): Promise<void>;
}

/** The one owner of the users table: rules, password hashing, sign-in checks. */
export class AccountsService {
  /** Reads one users row: the lookup every userinfo and /userdata request makes. */
  private readonly userRowById: (id: string) => Promise<unknown>;

  /** `embedded`: the embedded SQLite database, read through a prepared statement (faster than Knex). */
  constructor(
    private readonly db: Knex,
    private readonly artifacts: UserArtifacts,
    embedded?: Database.Database,
  ) {
    const byId = embedded?.prepare('select * from users where id = ?');
    this.userRowById = byId ? async (id) => byId.get(id) : async (id) => db('users').where({ id }).first();
  }

  /** A new account; `db`: a transaction to write it in (an account and its upstream link at once, src/idps/service.ts). */
  async create(
    input: { username: unknown; email: unknown; name?: unknown; password?: string; isAdmin?: boolean; emailVerified?: boolean },
    db: Knex = this.db,
  ): Promise<User> {
    const u = parseNewUser(input);
    if (u.password !== undefined) checkPassword(u.password);
    if (await db('users').where({ username_key: usernameKey(u.username) }).first('id')) {
      throw new ValidationError({ username: `"${u.username}" is taken` });
    }
    const now = Date.now();
    const id = randomUUID();
    await db('users').insert({
      id,
      username: u.username,
      username_key: usernameKey(u.username),
      email: u.email,
      email_verified: u.emailVerified ?? false,
      name: u.name ?? '',
      password_hash: u.password === undefined ? null : await hashPassword(u.password),
      must_reset_password: false,
      is_admin: u.isAdmin ?? false,
      disabled: false,
      created_at: now,
      updated_at: now,
    });
    // Read back through `db`: inside a transaction, the row is not yet visible to other connections.
    return toUser(userRow.parse(await db('users').where({ id }).first()));
  }

  /**
   * A user carried over from another system (the DOT importer): its own id and stored password
   * hash (or none: must reset), under the rules `create` applies to the username, email and
   * name. Written with `db`, the import's transaction; throws ValidationError naming the field.
   */
  async createImported(
    db: Knex,
    input: { id: string; username: unknown; email: unknown; name: unknown; passwordHash: string | null; isAdmin: boolean; disabled: boolean },
  ): Promise<void> {
    const u = parseNewUser({ username: input.username, email: input.email, name: input.name });
    if (await db('users').where({ username_key: usernameKey(u.username) }).first('id')) {
      throw new ValidationError({ username: `"${u.username}" is taken` });
    }
    if (await db('users').where({ id: input.id }).first('id')) throw new ValidationError({ id: `${input.id} is taken` });
    const now = Date.now();
    await db('users').insert({
      id: input.id,
      username: u.username,
      username_key: usernameKey(u.username),
      email: u.email,
      email_verified: false,
      name: u.name ?? '',
      password_hash: input.passwordHash,
      must_reset_password: input.passwordHash === null,
      is_admin: input.isAdmin,
      disabled: input.disabled,
      created_at: now,
      updated_at: now,
    });
  }

  async list(search?: string): Promise<User[]> {
    const q = this.db('users').select('*').orderBy('username_key');
    if (search) {
      const like = `%${search.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      q.where((w) => w.whereRaw("username_key like ? escape '\\'", [like]).orWhereRaw("lower(email) like ? escape '\\'", [like]));
    }
    return (await q).map((r) => toUser(userRow.parse(r)));
  }

  async get(id: string): Promise<User> {
    const row = await this.db('users').where({ id }).first();
    if (!row) throw new NotFoundError(`user ${id}`);
    return toUser(userRow.parse(row));
  }

  /** A user by id or by username, as an operator would name them on the command line. */
  async resolve(idOrUsername: string): Promise<User> {
    const row = (await this.db('users').where({ id: idOrUsername }).first()) ?? (await this.db('users').where({ username_key: usernameKey(idOrUsername) }).first());
    if (!row) throw new NotFoundError(`user ${idOrUsername}`);
    return toUser(userRow.parse(row));
  }

  /** An enabled user by id, or undefined: what oidc-provider's findAccount needs. */
  async findActive(id: string): Promise<User | undefined> {
    const row = await this.userRowById(id);
    if (!row) return undefined;
    const user = toUser(userRow.parse(row));
    return user.disabled ? undefined : user;
  }

  /**
   * Checks a username and password. Returns the user, or undefined for every kind of failure
   * (unknown user, wrong password, disabled, no usable password), taking the same time for each.
   */
  async verifyCredentials(username: string, password: string): Promise<User | undefined> {
    if (password.length > MAX_PASSWORD_LENGTH || username.length > 150) return undefined;
    const row = await this.db('users').where({ username_key: usernameKey(username.trim()) }).first();
    const parsed = row ? userRow.parse(row) : undefined;
    const stored = parsed?.password_hash ?? (await decoyHash());
    const matches = await verifyPassword(stored, password);
    if (!parsed || !matches || parsed.disabled || !parsed.password_hash) return undefined;
    if (needsRehash(parsed.password_hash)) {
      await this.db('users').where({ id: parsed.id }).update({ password_hash: await hashPassword(password), updated_at: Date.now() });
    }
    return toUser(parsed);
  }

  /** The enabled users with this email address (any case), oldest first: whom a reset mail goes to. */
  async activeWithEmail(email: string): Promise<User[]> {
    if (email.length > 254) return [];
    const rows = await this.db('users').whereRaw('lower(email) = ?', [email.trim().toLowerCase()]).andWhere({ disabled: false }).orderBy('created_at');
    return rows.map((r) => toUser(userRow.parse(r)));
  }

  /** Whether a username (as typed at sign-in) names an account: only then may a log line carry it. */
  async usernameExists(username: string): Promise<boolean> {
    if (username.length > 150) return false;
    return Boolean(await this.db('users').where({ username_key: usernameKey(username.trim()) }).first('id'));
  }

  /**
   * Sets a new password (an operator does, or one day the person), and signs the user out
   * everywhere: whoever knew the old password keeps nothing it got them (sessions, tokens).
   */
  async setPassword(id: string, password: string): Promise<User> {
    checkPassword(password);
    await this.get(id);
    await this.db('users')
      .where({ id })
      .update({ password_hash: await hashPassword(password), must_reset_password: false, updated_at: Date.now() });
    await this.artifacts.revokeSignIns(id);
    return this.get(id);
  }

  /** Refused (LastAdminError) when it would disable the last enabled admin. */
  async setDisabled(id: string, disabled: boolean): Promise<User> {
    await this.get(id);
    await this.changeKeepingAnAdmin(id, { disabled }, disabled);
    if (disabled) await this.artifacts.revokeAll(id);
    return this.get(id);
  }

  /** Refused (LastAdminError) when it would take the admin flag from the last enabled admin. */
  async setAdmin(id: string, isAdmin: boolean): Promise<User> {
    await this.get(id);
    await this.changeKeepingAnAdmin(id, { is_admin: isAdmin }, !isAdmin);
    return this.get(id);
  }

  /**
   * Writes `change` to user `id`; when `endsAdmin` (the change disables or demotes), first
   * checks that another enabled admin remains, so nobody is left who can sign in to the admin.
   * The enabled admins' rows are locked for the check (PostgreSQL), or the check and the write
   * are one statement (SQLite), so two operators demoting the last two admins at once cannot
   * both succeed.
   */
  private async changeKeepingAnAdmin(id: string, change: { disabled?: boolean; is_admin?: boolean }, endsAdmin: boolean): Promise<void> {
    if (this.db.client.config.client !== 'pg') {
      // SQLite: one statement, checked and written at once. A transaction that reads before it
      // writes fails at once (SQLITE_BUSY, busy_timeout does not apply) when another process
      // wrote in between; a single statement waits for the write lock instead.
      const anotherAdmin = (q: Knex.QueryBuilder) =>
        q.select('other.id').from('users as other').where('other.is_admin', true).andWhere('other.disabled', false).andWhereNot('other.id', id);
      const updated = await this.db('users')
        .where({ id })
        .andWhere((w) => (endsAdmin ? w.where('is_admin', false).orWhere('disabled', true).orWhereExists(anotherAdmin) : w))
        .update({ ...change, updated_at: Date.now() });
      if (updated === 0 && (await this.db('users').first('id').where({ id }))) throw new LastAdminError(change.disabled ? 'disable' : 'demote');
      return;
    }
    await this.db.transaction(async (trx) => {
      if (endsAdmin) {
        const query = trx('users').select('id').where({ is_admin: true, disabled: false });
        const admins = (await (this.db.client.config.client === 'pg' ? query.forUpdate() : query)).map((r: { id: string }) => String(r.id));
        if (admins.includes(id) && admins.length === 1) throw new LastAdminError(change.disabled ? 'disable' : 'demote');
      }
      await trx('users').where({ id }).update({ ...change, updated_at: Date.now() });
    });
  }

  async update(id: string, changes: { email?: unknown; name?: unknown; emailVerified?: boolean }): Promise<User> {
    const current = await this.get(id);
    const given = Object.fromEntries(Object.entries(changes).filter(([, v]) => v !== undefined));
    const parsed = newUserInput.pick({ email: true, name: true, emailVerified: true }).safeParse({ email: current.email, name: current.name, ...given });
    if (!parsed.success) {
      const fields: Record<string, string> = {};
      for (const issue of parsed.error.issues) fields[String(issue.path[0])] ??= issue.message;
      throw new ValidationError(fields);
    }
    await this.db('users').where({ id }).update({
      email: parsed.data.email,
      name: parsed.data.name ?? '',
      email_verified: parsed.data.emailVerified ?? current.emailVerified,
      updated_at: Date.now(),
    });
    return this.get(id);
  }
}

