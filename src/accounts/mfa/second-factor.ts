import { GatehouseError, LockedOutError, type Lock } from '../../errors.ts';
import type { ReportSecurityEvent } from '../../observability/security-events.ts';
import { boundedSubject, type CredentialThrottle, type Limit, LOGIN_THROTTLE } from '../throttle.ts';
import type { TotpService } from './totp.ts';

const CODE_LOCK: Lock = { failures: 'wrong codes', subject: 'entering codes' };

/** Wrong codes for one person from anywhere after which that person's code step is locked: six digits must not be guessable from many addresses. */
const LOCK_USER_AFTER = 20;

/**
 * Counters for codes, like passwords': per person (slowed after a few wrong ones, locked after
 * more) and per (person, address) (locked after LOCK_USER_ADDRESS_AFTER). Only someone who
 * passed the password step gets here, so a lock never touches anyone else.
 */
export function codeLimits(userId: string, address: string): Limit[] {
  return [
    { subject: boundedSubject('code-user-addr', userId, address), lockAfter: LOGIN_THROTTLE.lockUsernameAddressAfter, onSuccess: 'clear' },
    {
      subject: boundedSubject('code-user', userId),
      lockAfter: LOCK_USER_AFTER,
      backoff: { after: LOGIN_THROTTLE.slowUsernameAfter, stepMs: LOGIN_THROTTLE.slowStepMs, maxMs: LOGIN_THROTTLE.slowMaxMs, mode: 'wait' },
      onSuccess: 'clear',
    },
  ];
}

/** Every code counter of one person (codeLimits): the one from anywhere and those of every address. */
export function codeSubjects(userId: string): { exact: string; prefix: string } {
  const exact = boundedSubject('code-user', userId);
  return { exact, prefix: `${boundedSubject('code-user-addr', userId)}|` };
}

export type SecondFactorResult = { ok: true; kind: 'otp' | 'recovery' } | { ok: false; refused: GatehouseError };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Checks the code a person typed after their password (an authenticator code or a recovery
 * code), counted before it is checked, as passwords are (CredentialThrottle.reserve). A replayed
 * code counts as a wrong one: to someone who saw it, it is a guess.
 */
export async function checkSecondFactor(
  totp: Pick<TotpService, 'verify'>,
  throttle: CredentialThrottle,
  userId: string,
  code: string,
  address: string,
  report: ReportSecurityEvent = () => undefined,
): Promise<SecondFactorResult> {
  const reservation = await throttle.reserve(codeLimits(userId, address));
  if (!reservation.ok) {
    report('login.code_locked', { sub: userId, ip: address, locked_for_seconds: reservation.retryAfterSeconds });
    return { ok: false, refused: new LockedOutError(CODE_LOCK, reservation.retryAfterSeconds) };
  }
  if (reservation.waitMs) await sleep(reservation.waitMs);
  let check: Awaited<ReturnType<TotpService['verify']>>;
  try {
    check = await totp.verify(userId, code);
  } catch (err) {
    await reservation.cancel();
    throw err;
  }
  if (!check.ok) {
    await reservation.failed();
    report('login.code_failed', { sub: userId, ip: address, reason: check.reason });
    const description = check.reason === 'replayed' ? 'that code was used already: wait for the next one in your app' : 'the code is not correct';
    return { ok: false, refused: new GatehouseError(401, 'access_denied', description) };
  }
  await reservation.succeeded();
  report('login.code_accepted', { sub: userId, ip: address, kind: check.kind }, 'info');
  return { ok: true, kind: check.kind };
}

export const ACR = { password: 'urn:gatehouse:acr:pwd', mfa: 'urn:gatehouse:acr:mfa' } as const;

/**
 * What a sign-in began with: the account's password, an upstream identity provider (RFC 8176
 * "fed"), or both (an upstream sign-in linked to an account by that account's password).
 */
export const FIRST_FACTORS = ['password', 'federated', 'federated_password'] as const;
export type FirstFactor = (typeof FIRST_FACTORS)[number];
const FIRST_FACTOR_AMR: Record<FirstFactor, readonly string[]> = { password: ['pwd'], federated: ['fed'], federated_password: ['fed', 'pwd'] };

/**
 * The ID token's `amr` and `acr` for a sign-in (RFC 8176): the first factor alone, or with a code
 * ("otp", and "mfa": two factors, the MFA level). An upstream sign-in alone keeps no acr of ours:
 * Gatehouse cannot say what the upstream checked, and `urn:gatehouse:acr:pwd` would claim a password.
 */
export function authenticationOf(withCode: boolean, first: FirstFactor = 'password'): { amr: string[]; acr?: string } {
  const amr = [...FIRST_FACTOR_AMR[first]];
  if (withCode) return { amr: [...amr, 'otp', 'mfa'], acr: ACR.mfa };
  return first === 'password' ? { amr, acr: ACR.password } : { amr };
}
