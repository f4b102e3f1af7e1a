/**
 * Where the pages of mailed links (password reset, address verification) live: src/app.ts serves
 * them as its own routes, and loads reset-routes.ts by the first request under one of them.
 */
export const ACCOUNT_LINK_PREFIXES = ['/password-reset', '/verify-email/'];
