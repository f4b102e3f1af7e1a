import { interactionPolicy, type KoaContextWithOIDC } from 'oidc-provider';
import { acrValuesAskMfa, amrHasTwoFactors, secondFactorRequired, type MfaPolicy } from '../accounts/mfa/policy.ts';

/** The reason of the login prompt asked again for two factors (the interaction's prompt.reasons). */
export const MFA_REQUIRED_REASON = 'mfa_required';

/**
 * oidc-provider's default prompts (login, then consent), with two checks more on the login prompt:
 * - a browser session whose account is no longer found (the person was disabled or deleted while
 *   signed in) asks for the login page again. Upstream, such a session counts as signed in (it
 *   has an account id), while no account and no grant are loaded for it, and the consent checks
 *   then fail with a 500;
 * - a session signed in with one factor asks for the login page again where two are required
 *   (the MFA policy, the app's require_mfa, acr_values naming the MFA level): the old session's
 *   password never stands in for a second factor. The sign-in pages then ask for every factor.
 */
export function gatehouseInteractionPolicy(mfaPolicy: MfaPolicy): interactionPolicy.DefaultPolicy {
  const policy = interactionPolicy.base();
  const login = policy.get('login')!;
  login.checks.add(
    new interactionPolicy.Check(
      'account_not_found',
      'the signed-in account is disabled or was deleted',
      (ctx: KoaContextWithOIDC) => ctx.oidc.session?.accountId !== undefined && ctx.oidc.account === undefined,
    ),
  );
  login.checks.add(
    new interactionPolicy.Check(MFA_REQUIRED_REASON, 'a second factor is required', 'login_required', (ctx: KoaContextWithOIDC) => {
      const { session, account, client, params } = ctx.oidc;
      if (session?.accountId === undefined || account === undefined || amrHasTwoFactors(session.amr)) return interactionPolicy.Check.NO_NEED_TO_PROMPT;
      return secondFactorRequired(
        mfaPolicy,
        { isAdmin: account[OPERATOR_FLAG] === true },
        { byClient: client?.['gatehouse:require_mfa'] === true, byRequest: acrValuesAskMfa(params?.acr_values) },
      );
    }),
  );
  return policy;
}

/** Set on the Account findAccount loads (oidc/accounts.ts): whether the person is an operator. */
export const OPERATOR_FLAG = 'gatehouse:operator';
