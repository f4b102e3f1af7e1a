import { GatehouseError, LOCKS, LockedOutError } from '../errors.ts';
import { hashesQueuedAs } from './passwords.ts';
import type { AccountsService, User } from './service.ts';
import { CredentialThrottle } from './throttle.ts';
import type { ReportSecurityEvent } from '../observability/security-events.ts';

export type SignInResult =
  | { ok: true; user: User }
  /** Refused: a LockedOutError (429) while locked or busy, else 401 with one generic description. */
  | { ok: false; refused: GatehouseError };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Who a log line is about: the username only when it names an account, so a password typed
 * into the username field never reaches the log.
 */
async function named(accounts: AccountsService, username: string): Promise<{ username: string } | { username_known: false }> {
  return (await accounts.usernameExists(username)) ? { username: username.trim() } : { username_known: false };
}

/** Refused before anything was checked because another check for the same username or address is running. */
const busy = () => new LockedOutError(LOCKS.signInsAtOnce, 1);

/**
 * Checks a username and password the way every sign-in form does (people's and operators'):
 * - the attempt is counted before the password is hashed (CredentialThrottle.reserve), so a
 *   burst of parallel attempts is checked no more often than the limits allow;
 * - a username is slowed down from anywhere (backoff), locked only per (username, address), and
 *   an address trying many names is locked later;
 * - in this process, one check runs per username and 16 per address, a few more wait their
 *   turn (briefly), others are refused at once (429, try again in a second), and hashes queue
 *   fairly by address (withHashSlot);
 * - one generic message for wrong credentials, a clear one when locked.
 */
export async function signInWithPassword(
  accounts: AccountsService,
  throttle: CredentialThrottle,
  username: string,
  password: string,
  address: string,
  report: ReportSecurityEvent = () => undefined,
): Promise<SignInResult> {
  const ip = { ip: address };
  const leaveAddress = await throttle.signInsInFlight.perAddress.enter(address);
  if (!leaveAddress) {
    report('login.busy', ip);
    return { ok: false, refused: busy() };
  }
  // One check per username at a time, before anything is counted: the same person signing in
  // twice at once waits its turn instead of finding its own attempt counted against it.
  const leaveUsername = await throttle.signInsInFlight.perUsername.enter(CredentialThrottle.usernameSubjects(username).exact);
  if (!leaveUsername) {
    leaveAddress();
    report('login.busy', ip);
    return { ok: false, refused: busy() };
  }
  try {
    const reservation = await throttle.reserve(CredentialThrottle.signInLimits(username, address));
    if (!reservation.ok) {
      report('login.locked', { ...(await named(accounts, username)), ...ip, locked_for_seconds: reservation.retryAfterSeconds });
      return { ok: false, refused: new LockedOutError(LOCKS.signIn, reservation.retryAfterSeconds) };
    }
    if (reservation.waitMs) await sleep(reservation.waitMs);

    let user: User | undefined;
    try {
      user = await hashesQueuedAs(address, () => accounts.verifyCredentials(username, password));
    } catch (err) {
      await reservation.cancel();
      throw err;
    }
    if (!user) {
      await reservation.failed();
      report('login.failed', { ...(await named(accounts, username)), ...ip });
      return { ok: false, refused: new GatehouseError(401, 'access_denied', 'the username or password is not correct') };
    }
    await reservation.succeeded();
    // Not "signed in" yet: the code step, or setting up a second factor, may follow
    // (src/web/sign-in-steps.ts reports login.succeeded when the session starts).
    report('login.password_accepted', { ...ip, username: user.username, sub: user.id }, 'info');
    return { ok: true, user };
  } finally {
    leaveUsername();
    leaveAddress();
  }
}
