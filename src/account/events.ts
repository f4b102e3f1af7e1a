import type { Knex } from 'knex';

/** What a person is shown of their account's history, by kind; a fixed list, so nothing else is stored. */
export const ACCOUNT_EVENT_TEXTS = {
  'login.succeeded': 'Signed in',
  'login.failed': 'Wrong password typed',
  'login.locked': 'Sign-in refused: too many attempts',
  'login.code_failed': 'Wrong authenticator code typed',
  'login.code_locked': 'Code refused: too many wrong codes',
  'login.code_accepted': 'Authenticator or recovery code accepted',
  'account.name_changed': 'Name changed',
  'account.email_change_requested': 'New email address asked for (waiting for its confirmation)',
  'account.password_changed': 'Password changed',
  'account.access_removed': 'An app’s access removed',
  'account.session_ended': 'A session signed out',
  'account.sessions_ended': 'Signed out everywhere',
  'account.passkey_added': 'Passkey added',
  'account.passkey_renamed': 'Passkey renamed',
  'account.passkey_removed': 'Passkey removed',
  'account.totp_added': 'Authenticator app set up',
  'account.totp_removed': 'Authenticator app removed',
  'account.mfa_reset': 'Authenticator app removed by an operator',
  'account.idp_unlinked': 'A linked sign-in unlinked',
} as const;

export type AccountEventKind = keyof typeof ACCOUNT_EVENT_TEXTS;

export interface AccountEvent {
  kind: AccountEventKind;
  text: string;
  address: string | null;
  at: Date;
}

/** An IPv4 client of a dual-stack listener arrives as ::ffff:a.b.c.d; people know it as a.b.c.d. */
const readableAddress = (address: string) => address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '').slice(0, 100);

const isKind = (kind: string): kind is AccountEventKind => Object.hasOwn(ACCOUNT_EVENT_TEXTS, kind);

/**
 * The recent security events of each person, for their account page: the newest KEEP of each,
 * older ones deleted as new ones arrive, so the table stays small however often a name is tried.
 * Recorded from the security events Gatehouse reports anyway (see fromSecurityEvent), never
 * waited for by the request that caused them; a listing waits for those still being written.
 */
export class AccountEvents {
  static readonly KEEP = 30;
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly db: Knex,
    /** The user id a sign-in's username names, if it names one. */
    private readonly userIdOf: (username: string) => Promise<string | undefined>,
    private readonly onError: (err: unknown) => void,
    private readonly now: () => number = Date.now,
  ) {}

  async record(userId: string, kind: AccountEventKind, address: string | null): Promise<void> {
    await this.db('account_events').insert({ user_id: userId, kind, address: address === null ? null : readableAddress(address), at: this.now() });
    const kept = this.db('account_events').select('id').where({ user_id: userId }).orderBy('id', 'desc').limit(AccountEvents.KEEP);
    // The subquery is wrapped: MySQL-style engines refuse LIMIT in IN (…); SQLite and PostgreSQL take both.
    await this.db('account_events')
      .where({ user_id: userId })
      .whereNotIn('id', this.db.select('id').from(kept.as('kept')))
      .delete();
  }

  /**
   * A security event as SecurityEvents reports it: sign-ins name the person by `sub` or
   * `username` (the latter only when it names an account), with the address in `ip`.
   */
  fromSecurityEvent(event: string, fields: Record<string, unknown>): void {
    if (!isKind(event) || !event.startsWith('login.')) return;
    const address = typeof fields.ip === 'string' ? fields.ip : null;
    const work = (async () => {
      const userId = typeof fields.sub === 'string' ? fields.sub : typeof fields.username === 'string' ? await this.userIdOf(fields.username) : undefined;
      if (userId) await this.record(userId, event, address);
    })().catch(this.onError);
    this.pending.add(work);
    void work.finally(() => this.pending.delete(work));
  }

  /** The person's newest events, newest first. */
  async recentOf(userId: string): Promise<AccountEvent[]> {
    await Promise.all(this.pending);
    const rows = await this.db('account_events').where({ user_id: userId }).orderBy('id', 'desc').limit(AccountEvents.KEEP);
    return rows
      .filter((r: { kind: string }) => isKind(r.kind))
      .map((r: { kind: AccountEventKind; address: string | null; at: number | string }) => ({
        kind: r.kind,
        text: ACCOUNT_EVENT_TEXTS[r.kind],
        address: r.address,
        at: new Date(Number(r.at)),
      }));
  }
}
