import { GatehouseError, LOCKS, LockedOutError } from '../errors.ts';
import type { AccountsService, User } from './service.ts';
import { LOGIN_THROTTLE, CredentialThrottle } from './throttle.ts';
import type { ReportSecurityEvent } from '../observability/security-events.ts';

export type SignInResult =
  | { ok: true; user: User }
  /** Refused: a LockedOutError (429) while locked, else 401 with one generic description. */
  | { ok: false; refused: GatehouseError };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Checks a username and password the way every sign-in form does (people's and operators'):
 * throttled per username and per address with shared counters, one generic message for wrong
 * credentials, a clear one when locked.
 */
export async function signInWithPassword(
  accounts: AccountsService,
  throttle: CredentialThrottle,
  username: string,
  password: string,
  address: string,
  report: ReportSecurityEvent = () => undefined,
): Promise<SignInResult> {
  const subjects = CredentialThrottle.subjects(username, address);
  const state = await throttle.state(subjects);
  // The username as typed, clipped: what an operator needs to see an attack, never the password.
  const who = { username: username.slice(0, 100), ip: address };
  if (state.lockedForSeconds > 0) {
    report('login.locked', { ...who, locked_for_seconds: state.lockedForSeconds });
    return { ok: false, refused: new LockedOutError(LOCKS.signIn, state.lockedForSeconds) };
  }
  if (state.delayMs) await sleep(state.delayMs);

  const user = await accounts.verifyCredentials(username, password);
  if (!user) {
    await throttle.recordFailure(subjects.username, LOGIN_THROTTLE.lockUsernameAfter);
    await throttle.recordFailure(subjects.address, LOGIN_THROTTLE.lockAddressAfter);
    report('login.failed', who);
    return { ok: false, refused: new GatehouseError(401, 'access_denied', 'the username or password is not correct') };
  }
  await throttle.clear(subjects.username);
  report('login.succeeded', { ...who, sub: user.id }, 'info');
  return { ok: true, user };
}
