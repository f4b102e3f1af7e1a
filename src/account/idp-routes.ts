import type Router from '@koa/router';
import type Koa from 'koa';
import type { User } from '../accounts/service.ts';
import type { PasskeysService } from '../accounts/passkeys/index.ts';
import type { IdpsService } from '../idps/service.ts';
import { providerLabel } from '../idps/upstream.ts';
import type { AccountEventKind } from './events.ts';

export const IDP_NOTICES: Record<string, string> = {
  'idp-unlinked': 'That sign-in is unlinked: it no longer signs you in to this account.',
};

interface SignedIn {
  user: User;
}

/** The account page's "Linked sign-ins": who the person is at each upstream provider. */
export async function linkedIdentitiesView(idps: Pick<IdpsService, 'linksOf' | 'list'>, { user }: SignedIn) {
  const [links, providers] = await Promise.all([idps.linksOf(user.id), idps.list()]);
  const byName = new Map(providers.map((p) => [p.name, p]));
  return {
    linkedIdentities: links.map((l) => {
      const idp = byName.get(l.idpName);
      return {
        idp: l.idpName,
        subject: l.subject,
        provider: idp ? providerLabel(idp) : l.idpName,
        email: l.email,
        added: l.createdAt.toISOString().slice(0, 10),
        lastUsed: l.lastUsedAt ? l.lastUsedAt.toISOString().slice(0, 16).replace('T', ' ') : undefined,
      };
    }),
  };
}

export interface IdpAccountRouteDeps {
  idps: Pick<IdpsService, 'unlink'>;
  passkeys: Pick<PasskeysService, 'of'>;
  person(ctx: Koa.Context): SignedIn;
  fields(ctx: Koa.Context): Record<string, unknown>;
  refuse(ctx: Koa.Context, signedIn: SignedIn, status: number, sentence: string): Promise<void>;
  record(ctx: Koa.Context, userId: string, kind: AccountEventKind): Promise<void>;
  done(ctx: Koa.Context, notice: string): void;
}

/**
 * POST /account/idps/unlink: asks what the other removals of the page ask (the page's CSRF
 * token), and keeps a way in: a password, a passkey or another linked sign-in.
 */
export function addIdpAccountRoutes(router: Router, deps: IdpAccountRouteDeps): void {
  router.post('/idps/unlink', async (ctx) => {
    const signedIn = deps.person(ctx);
    const body = deps.fields(ctx);
    const idp = typeof body.idp === 'string' ? body.idp : '';
    const subject = typeof body.subject === 'string' ? body.subject : '';
    const { user } = signedIn;
    let unlinked: boolean;
    try {
      const otherWayIn = user.hasPassword || (await deps.passkeys.of(user.id)).length > 0;
      unlinked = await deps.idps.unlink(user.id, idp, subject, otherWayIn);
    } catch (err) {
      if ((err as { status?: number }).status !== 404) throw err;
      return deps.refuse(ctx, signedIn, 404, 'That sign-in was unlinked already, or is not yours. Nothing was changed.');
    }
    if (!unlinked) {
      return deps.refuse(
        ctx,
        signedIn,
        409,
        'This is your only way to sign in: set a password (Forgot your password? on the sign-in page) or add a passkey first. Nothing was changed.',
      );
    }
    await deps.record(ctx, user.id, 'account.idp_unlinked');
    deps.done(ctx, 'idp-unlinked');
  });
}
