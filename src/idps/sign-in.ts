import { randomBytes } from 'node:crypto';
import { GatehouseError, ValidationError } from '../errors.ts';
import type { AccountsService, User } from '../accounts/service.ts';
import type { PasskeysService } from '../accounts/passkeys/index.ts';
import type { Idp, IdpsService } from './service.ts';
import { providerLabel, type UpstreamPerson } from './upstream.ts';

/**
 * Which Gatehouse account an upstream sign-in is. The rules:
 * - an identity is known by (provider, upstream subject), never by its email;
 * - a linked identity signs in its account (while that account is enabled);
 * - an unlinked identity whose verified email belongs to an account is linked only after the
 *   person proves they own that account (its password or a passkey, in this flow): `needsProof`;
 * - an unverified email is never matched, and a new account is never given an address another
 *   account has;
 * - otherwise a new account is created (unless the provider is set not to), with the upstream's
 *   name and email, in one transaction with its link (the same first sign-in twice at once makes
 *   one account: the second signs in to it); its sub is Gatehouse's own.
 */
export type UpstreamOutcome = { kind: 'signedIn'; user: User; created: boolean } | { kind: 'needsProof'; user: User };

export async function accountForUpstream(
  deps: {
    idps: Pick<IdpsService, 'linkOf' | 'createLinkedAccount' | 'touch'>;
    accounts: Pick<AccountsService, 'findActive' | 'activeWithEmail' | 'create' | 'usernameExists'>;
    /** An account with a passkey (and no password) can prove itself with the passkey. */
    passkeys?: Pick<PasskeysService, 'of'>;
  },
  idp: Idp,
  person: UpstreamPerson,
): Promise<UpstreamOutcome> {
  const who = providerLabel(idp);
  const linked = await linkedAccount(deps, idp, person);
  if (linked) return { kind: 'signedIn', user: linked, created: false };
  const holders = person.email ? await deps.accounts.activeWithEmail(person.email) : [];
  if (holders.length) {
    // Only one account can be proven: with an address shared by several, the person links from
    // their account page instead (signed in there, they are the proof).
    const holder = holders[0]!;
    const canProve = holder.hasPassword || (deps.passkeys ? (await deps.passkeys.of(holder.id)).length > 0 : false);
    if (person.emailVerified && holders.length === 1 && canProve) return { kind: 'needsProof', user: holder };
    // The same first sign-in arriving twice at once: the other one made this account and linked it just now.
    if (await deps.idps.linkOf(idp.name, person.subject)) return accountForUpstream(deps, idp, person);
    throw new GatehouseError(
      409,
      'email_in_use',
      `The email address ${who} gave belongs to another Gatehouse account. Sign in to that account with its password, then link ${who} on your account page.`,
    );
  }
  if (!idp.createAccounts) {
    throw new GatehouseError(
      403,
      'no_linked_account',
      `No Gatehouse account is linked to this ${who} sign-in, and new accounts are not created through ${who}. Sign in with your password, then link ${who} on your account page.`,
    );
  }
  if (!person.email)
    throw new GatehouseError(
      400,
      'email_required',
      `${who} did not give an email address, which a new Gatehouse account needs. Allow ${who} to share it, then try again.`,
    );

  const username = await freeUsername(deps.accounts, person);
  const email = person.email;
  let user: User | undefined;
  try {
    user = await deps.idps.createLinkedAccount(idp.name, person.subject, email, (db) =>
      deps.accounts.create({ username, email, name: person.name.slice(0, 300), emailVerified: person.emailVerified }, db),
    );
  } catch (err) {
    if (err instanceof ValidationError)
      throw new GatehouseError(400, 'invalid_upstream_profile', `The profile ${who} gave cannot make a Gatehouse account (${err.description}).`);
    throw err;
  }
  // Two first sign-ins of the same identity at once: the second finds it linked and signs in there.
  if (!user) return accountForUpstream(deps, idp, person);
  return { kind: 'signedIn', user, created: true };
}

/**
 * The account an upstream identity is linked to (its last use noted), or undefined when it is
 * linked to none; a link to a disabled account is refused. Creates and links nothing: the account
 * page signs in with this alone.
 */
export async function linkedAccount(
  deps: { idps: Pick<IdpsService, 'linkOf' | 'touch'>; accounts: Pick<AccountsService, 'findActive'> },
  idp: Idp,
  person: Pick<UpstreamPerson, 'subject'>,
): Promise<User | undefined> {
  const link = await deps.idps.linkOf(idp.name, person.subject);
  if (!link) return undefined;
  const user = await deps.accounts.findActive(link.userId);
  if (!user)
    throw new GatehouseError(403, 'account_disabled', `The Gatehouse account linked to this ${providerLabel(idp)} sign-in is disabled. Ask an administrator.`);
  await deps.idps.touch(link);
  return user;
}

const USERNAME_CHARS = /[^\p{L}\p{N}._@+-]/gu;

/** The upstream's suggestion (username, else the email's local part), made unique with a number. */
async function freeUsername(accounts: Pick<AccountsService, 'usernameExists'>, person: UpstreamPerson): Promise<string> {
  const base = (person.username ?? person.email?.split('@')[0] ?? '').replace(USERNAME_CHARS, '').slice(0, 140) || 'user';
  for (const candidate of [base, ...Array.from({ length: 8 }, (_, i) => `${base}${i + 2}`)]) {
    if (!(await accounts.usernameExists(candidate))) return candidate;
  }
  return `${base}-${randomBytes(4).toString('hex')}`;
}
