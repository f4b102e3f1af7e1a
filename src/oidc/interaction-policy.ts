import { interactionPolicy, type KoaContextWithOIDC } from 'oidc-provider';

/**
 * oidc-provider's default prompts (login, then consent), with one check more: a browser session
 * whose account is no longer found (the person was disabled or deleted while signed in) asks for
 * the login page again. Upstream, such a session counts as signed in (it has an account id),
 * while no account and no grant are loaded for it, and the consent checks then fail with a 500.
 */
export function interactionPolicyForGoneAccounts(): interactionPolicy.DefaultPolicy {
  const policy = interactionPolicy.base();
  policy
    .get('login')!
    .checks.add(
      new interactionPolicy.Check(
        'account_not_found',
        'the signed-in account is disabled or was deleted',
        (ctx: KoaContextWithOIDC) => ctx.oidc.session?.accountId !== undefined && ctx.oidc.account === undefined,
      ),
    );
  return policy;
}
