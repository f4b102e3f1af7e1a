import type Router from '@koa/router';
import type Koa from 'koa';
import { koaBody } from 'koa-body';
import type { CredentialThrottle } from '../src/accounts/throttle.ts';
import { authenticationOf, checkSecondFactor } from '../src/accounts/mfa/second-factor.ts';
import { PasswordPassedCookie } from '../src/web/password-passed.ts';
import type { TotpService } from '../src/accounts/mfa/totp.ts';
import type { InteractionResults, Interactions } from '../src/oidc/index.ts';
import { securityReporter } from '../src/observability/request-log.ts';
import { formRefusal } from '../src/problem.ts';
import { csrfValid } from '../src/web/csrf.ts';

export interface CodeStepDeps {
  interactions: Interactions;
  totp: Pick<TotpService, 'isEnrolled' | 'verify'>;
  throttle: CredentialThrottle;
}

type Page = (ctx: Koa.Context, template: string, context: Record<string, unknown>, status?: number) => void;
type Finish = (ctx: Koa.Context, result: InteractionResults, merge: boolean) => Promise<void>;

const passed = new PasswordPassedCookie('gh_pwd_ok');
// The same small urlencoded bodies as the sign-in form's.
const formBody = koaBody({ urlencoded: true, json: false, multipart: false, text: false, formLimit: '16kb' });
const cookiePath = (uid: string) => `/interaction/${uid}`;

/**
 * The second page of a sign-in for a person with an authenticator app: after the right password
 * (`afterPassword`), a form asking for a code (field `code`), posted to /interaction/:uid/code.
 * The sign-in finishes with amr ["pwd", "otp", "mfa"] only there.
 */
export function codeStep({ interactions, totp, throttle }: CodeStepDeps, page: Page, finish: Finish) {
  const codePage = (ctx: Koa.Context, uid: string, client: unknown, error?: string, status = 200) =>
    page(ctx, 'login-code.njk', { title: 'Enter your code', uid, client, error }, status);

  return {
    /** After the right password: finishes the sign-in, or asks for a code when the person has an app. */
    async afterPassword(ctx: Koa.Context, uid: string, client: unknown, userId: string): Promise<void> {
      if (!(await totp.isEnrolled(userId))) return finish(ctx, { login: { accountId: userId, ...authenticationOf(false) } }, false);
      passed.set(ctx, cookiePath(uid), userId, uid);
      codePage(ctx, uid, client);
    },

    routes(router: Router, clientView: (clientId: unknown) => Promise<unknown>, formFields: (ctx: Koa.Context) => Record<string, unknown>): void {
      router.post('/:uid/code', formBody, async (ctx) => {
        const { uid, prompt, params } = await interactions.details(ctx);
        const client = await clientView(params.client_id);
        const body = formFields(ctx);
        const code = typeof body.code === 'string' ? body.code.trim() : '';
        if (!csrfValid(ctx, body.csrf)) return codePage(ctx, uid, client, 'Your form expired. Please enter the code again.', 403);
        const userId = passed.userId(ctx, uid);
        if (prompt.name !== 'login' || !userId) {
          return page(ctx, 'login.njk', { title: 'Sign in', uid, client, username: '', error: 'Please sign in with your password first.' }, 400);
        }
        if (!code) return codePage(ctx, uid, client, 'Enter the code from your authenticator app, or a recovery code.', 400);
        if (code.length > 64) return codePage(ctx, uid, client, 'That is not a code from your authenticator app or a recovery code.', 400);
        const result = await checkSecondFactor(totp, throttle, userId, code, ctx.ip, securityReporter(ctx));
        if (!result.ok) {
          const { status, sentence } = formRefusal(ctx, result.refused);
          return codePage(ctx, uid, client, sentence, status);
        }
        passed.clear(ctx, cookiePath(uid));
        await finish(ctx, { login: { accountId: userId, ...authenticationOf(true) } }, false);
      });
    },
  };
}
