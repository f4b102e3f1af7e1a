import type Router from '@koa/router';
import type Koa from 'koa';
import { koaBody } from 'koa-body';
import { acrValuesAskMfa, secondFactorRequired, type MfaPolicy } from '../src/accounts/mfa/policy.ts';
import type { FirstFactor } from '../src/accounts/mfa/second-factor.ts';
import type { User } from '../src/accounts/service.ts';
import type { Interactions } from '../src/oidc/index.ts';
import { PasswordPassedCookie } from '../src/web/password-passed.ts';
import { signInSteps, type SignInStepsDeps, type SignInSurface } from '../src/web/sign-in-steps.ts';

/** What the interaction pages show of the app asking, and whether it requires two factors (require_mfa). */
export async function clientViewOf(interactions: Pick<Interactions, 'client'>, clientId: unknown) {
  const client = await interactions.client(clientId);
  return {
    id: clientId,
    name: client?.clientName ?? 'An application',
    logoUri: client?.logoUri,
    clientUri: client?.clientUri,
    requireMfa: client?.requireMfa === true,
  };
}

/** The MFA policy, applied once for every way into an app (password, passkey, upstream): the person's, the app's, the request's. */
export const twoFactorsNeeded = (policy: MfaPolicy, user: { isAdmin: boolean }, client: { requireMfa: boolean }, params: Record<string, unknown>) =>
  secondFactorRequired(policy, user, { byClient: client.requireMfa, byRequest: acrValuesAskMfa(params.acr_values) });

export type CodeStepDeps = SignInStepsDeps & { interactions: Interactions };

type Page = (ctx: Koa.Context, template: string, context: Record<string, unknown>, status?: number) => void;

const passed = new PasswordPassedCookie('gh_pwd_ok');
// The same small urlencoded bodies as the sign-in form's.
const formBody = koaBody({ urlencoded: true, json: false, multipart: false, text: false, formLimit: '16kb' });

/**
 * The steps of an app's sign-in after the right password (src/web/sign-in-steps.ts, shared with
 * /admin and /account), at /interaction/:uid/…: `code` for a person with an authenticator app,
 * `enrol` for one who needs a second factor and has none. The sign-in finishes (amr ["pwd",
 * "otp", "mfa"]) only with a right code in one of them.
 */
export function codeStep(deps: CodeStepDeps, page: Page) {
  const { interactions } = deps;
  const steps = signInSteps(deps, passed);

  const surface = (uid: string, client: unknown): SignInSurface => ({
    bound: uid,
    path: `/interaction/${uid}`,
    pages: {
      code: (ctx, error, status = 200) => page(ctx, 'login-code.njk', { title: 'Enter your code', uid, client, error }, status),
      enrol: (ctx, setup, error, status = 200) =>
        page(
          ctx,
          'sign-in-enrol.njk',
          { title: 'Set up an authenticator app', uid, client, ...setup, confirmAction: `/interaction/${uid}/enrol`, error },
          status,
        ),
      recoveryCodes: (ctx, codes, continueTo) => page(ctx, 'sign-in-recovery-codes.njk', { title: 'Your recovery codes', client, codes, continueTo }),
      passwordFirst: (ctx) => page(ctx, 'login.njk', { title: 'Sign in', uid, client, username: '', error: 'Please sign in with your password first.' }, 400),
    },
    // The result is stored with the interaction; the browser resumes the authorization at the address answered.
    complete: (ctx, user, authentication) => interactions.finish(ctx, { login: { accountId: user.id, ...authentication } }, { mergeWithLastSubmission: false }),
  });

  return {
    /** After the right password: the session at once, a code, or setting up an app first. */
    afterPassword: (ctx: Koa.Context, uid: string, client: unknown, user: User, required: boolean) =>
      steps.afterPassword(ctx, surface(uid, client), user, required),
    /** The same after another first factor (an upstream identity provider's sign-in, interactions/idp-routes.ts). */
    afterFirstFactor: (ctx: Koa.Context, uid: string, client: unknown, user: User, required: boolean, first: FirstFactor) =>
      steps.afterFirstFactor(ctx, surface(uid, client), user, required, first),

    routes(router: Router, clientView: (clientId: unknown) => Promise<unknown>, formFields: (ctx: Koa.Context) => Record<string, unknown>): void {
      const step = (name: 'code' | 'enrol') => async (ctx: Koa.Context) => {
        const { uid, prompt, params } = await interactions.details(ctx);
        const at = surface(uid, await clientView(params.client_id));
        // Once the login step is done (or another step is asked), none of these forms signs anyone in.
        if (prompt.name !== 'login') return at.pages.passwordFirst(ctx);
        await steps[name](ctx, at, formFields(ctx));
      };
      router.post('/:uid/code', formBody, step('code'));
      router.post('/:uid/enrol', formBody, step('enrol'));
    },
  };
}
