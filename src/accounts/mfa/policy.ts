import { ACR } from './second-factor.ts';

/**
 * GATEHOUSE_REQUIRE_MFA: who must sign in with a second factor whatever the app. `off`: only the
 * apps registered with require_mfa (and requests with acr_values naming MFA) ask for one;
 * `admins`: operators always (for apps and for /admin); `all`: everyone, everywhere.
 */
export const MFA_POLICIES = ['off', 'admins', 'all'] as const;
export type MfaPolicy = (typeof MFA_POLICIES)[number];

/** What asks for a second factor beyond the person: the app (require_mfa), the request (acr_values). */
export interface MfaAsked {
  byClient?: boolean;
  byRequest?: boolean;
}

/** Whether this person's sign-in must end with two factors. One rule for apps, /admin and /account. */
export function secondFactorRequired(policy: MfaPolicy, person: { isAdmin: boolean }, asked: MfaAsked = {}): boolean {
  return policy === 'all' || (policy === 'admins' && person.isAdmin) || asked.byClient === true || asked.byRequest === true;
}

/**
 * An authorization request's acr_values (space-separated, OIDC Core 3.1.2.1) ask for the MFA
 * level: they name it and not the password level. "pwd mfa" lists both as acceptable (in order
 * of preference), so a password alone answers it.
 */
export function acrValuesAskMfa(acrValues: unknown): boolean {
  if (typeof acrValues !== 'string') return false;
  const asked = acrValues.split(' ');
  return asked.includes(ACR.mfa) && !asked.includes(ACR.password);
}

/** A sign-in's amr (RFC 8176) shows two factors. */
export function amrHasTwoFactors(amr: unknown): boolean {
  return Array.isArray(amr) && amr.includes('mfa');
}
