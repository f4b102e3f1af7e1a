import { createHash, randomBytes } from 'node:crypto';
import type Router from '@koa/router';
import type Koa from 'koa';
import type { User } from '../accounts/service.ts';
import type { AccountsService } from '../accounts/service.ts';
import { GatehouseError } from '../errors.ts';
import { FLOW_TTL_MS, type IdpsService } from '../idps/service.ts';
import { linkedAccount } from '../idps/sign-in.ts';
import { providerLabel, type Upstreams } from '../idps/upstream.ts';
import { securityReporter } from '../observability/request-log.ts';
import { csrfValid } from '../web/csrf.ts';
import type { SignInSteps, SignInSurface } from '../web/sign-in-steps.ts';
import { ACCOUNT_FLOW_PREFIX, enabledIdp, redeemUpstreamAnswer, startUpstream } from '../web/upstream-flow.ts';

export interface AccountUpstreamDeps {
  idps: Pick<IdpsService, 'find' | 'holdFlow' | 'takeFlow' | 'linkOf' | 'touch'>;
  upstreams: Pick<Upstreams, 'start' | 'finish'>;
  accounts: Pick<AccountsService, 'findActive'>;
  steps: SignInSteps;
  surface: SignInSurface;
  /** Whether this person must sign in with two factors (the MFA policy). */
  secondFactorRequired(user: User): boolean;
  fields(ctx: Koa.Context): Record<string, unknown>;
}

/** Before any account session: these paths are the sign-in's, checked by the form's own CSRF token. */
export const UPSTREAM_SIGN_IN_PATH = /^\/account\/login\/idp\/[^/]+\/(start|callback)$/;

const BACK = 'Go back to the account sign-in page';
const FLOW_COOKIE = 'gh_account_idp';
const FLOW_COOKIE_PATH = '/account/login/idp';

/**
 * Signing in to /account through an upstream provider: POST /account/login/idp/NAME/start (the
 * sign-in page's button, CSRF) → the upstream → GET /idp/NAME/callback (the one redirect URI
 * registered there; it hands a flow held under ACCOUNT_FLOW_PREFIX here) → GET
 * /account/login/idp/NAME/callback. The flow is bound to this browser by a random cookie (only
 * its hash is stored), as an app's is to its interaction's cookie. Only an identity already
 * linked to an account signs in here: no account is created and nothing is linked (that needs an
 * app's sign-in, which can ask for proof); then the account page's own steps (code, enrolment).
 */
export function addUpstreamSignInRoutes(router: Router, deps: AccountUpstreamDeps): void {
  const flows = { idps: deps.idps, upstreams: deps.upstreams };
  const boundTo = (binding: string) => `${ACCOUNT_FLOW_PREFIX}${createHash('sha256').update(binding).digest('base64url')}`;

  router.post('/login/idp/:name/start', async (ctx) => {
    const idp = await enabledIdp(deps.idps, ctx.params.name!, BACK);
    if (!csrfValid(ctx, deps.fields(ctx).csrf))
      throw new GatehouseError(403, 'invalid_csrf', 'Your form expired. Go back to the account sign-in page and try again.');
    const binding = randomBytes(32).toString('base64url');
    ctx.cookies.set(FLOW_COOKIE, binding, {
      signed: true,
      httpOnly: true,
      sameSite: 'lax',
      secure: ctx.secure,
      path: FLOW_COOKIE_PATH,
      maxAge: FLOW_TTL_MS,
      overwrite: true,
    });
    await startUpstream(ctx, flows, idp, boundTo(binding));
  });

  router.get('/login/idp/:name/callback', async (ctx) => {
    const idp = await enabledIdp(deps.idps, ctx.params.name!, BACK);
    const binding = ctx.cookies.get(FLOW_COOKIE, { signed: true }) ?? '';
    // Another browser's answer (or none of ours) finds no flow under this browser's binding.
    const person = await redeemUpstreamAnswer(ctx, flows, idp, binding ? boundTo(binding) : '', BACK);
    ctx.cookies.set(FLOW_COOKIE, '', { signed: true, httpOnly: true, sameSite: 'lax', secure: ctx.secure, path: FLOW_COOKIE_PATH, overwrite: true });
    const user = await linkedAccount(deps, idp, person);
    if (!user) {
      securityReporter(ctx)('login.upstream_unlinked', { idp: idp.name, ip: ctx.ip, surface: 'account' });
      const who = providerLabel(idp);
      throw new GatehouseError(
        403,
        'no_linked_account',
        `No Gatehouse account is linked to this ${who} sign-in, and your account page does not create or link accounts. Sign in to an application with ${who} first (it can create your account or link it), or sign in here with your password.`,
      );
    }
    securityReporter(ctx)(
      'login.upstream_passed',
      { username: user.username, sub: user.id, idp: idp.name, created: false, ip: ctx.ip, surface: 'account' },
      'info',
    );
    await deps.steps.afterFirstFactor(ctx, deps.surface, user, deps.secondFactorRequired(user), 'federated');
  });
}
