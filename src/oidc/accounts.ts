import type { Account, FindAccount } from 'oidc-provider';
import type { AccountsService, User } from '../accounts/service.ts';
import { OPERATOR_FLAG } from './interaction-policy.ts';

/** The claims of a user, by scope; oidc-provider filters them to what was granted. */
export function claimsOf(user: User): Record<string, unknown> {
  return {
    sub: user.id,
    name: user.name || user.username,
    preferred_username: user.username,
    updated_at: Math.floor(user.updatedAt.getTime() / 1000),
    email: user.email,
    email_verified: user.emailVerified,
  };
}

/** oidc-provider's findAccount: disabled or deleted users are not found, so their tokens stop working. */
export function findAccountIn(accounts: AccountsService): FindAccount {
  return async (_ctx, sub): Promise<Account | undefined> => {
    const user = await accounts.findActive(sub);
    if (!user) return undefined;
    // The operator flag lets the interaction policy hold operators to GATEHOUSE_REQUIRE_MFA=admins.
    return { accountId: user.id, [OPERATOR_FLAG]: user.isAdmin, claims: async () => claimsOf(user) as Awaited<ReturnType<Account['claims']>> };
  };
}
