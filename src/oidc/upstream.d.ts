// Types for the oidc-provider modules src/oidc/internals.ts imports by path (the package ships
// no types for them). Only what internals.ts uses; checked by test/oidc-internals.test.ts.
declare module 'oidc-provider/lib/shared/access_token.js' {
  type Middleware = (ctx: unknown, next: () => Promise<void>) => Promise<void>;
  export function getValidateAccessToken(options?: { afterFind?: (ctx: unknown, token: unknown) => unknown }): Middleware;
  export const loadAccessTokenClient: Middleware;
  export const loadAccessTokenAccount: Middleware;
  export const loadAccessTokenGrant: Middleware;
}

declare module 'oidc-provider/lib/helpers/revoke.js' {
  export default function revoke(ctx: unknown, grantId: string): Promise<void>;
}

declare module 'oidc-provider/lib/helpers/weak_cache.js' {
  export default function instance(provider: object): Record<string, unknown>;
}

// Only test/oidc-internals.test.ts imports this one, to check the form deviceFormFields reads.
declare module 'oidc-provider/lib/helpers/user_code_form.js' {
  export function input(action: string, csrfToken: string, code: string | undefined, charset: string): string;
  export function confirm(action: string, csrfToken: string, code: string): string;
}

declare module 'oidc-provider/lib/helpers/re_render_errors.js' {
  export class AlreadyUsedError extends Error {
    constructor(userCode?: string);
  }
}
