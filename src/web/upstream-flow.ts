import type Koa from 'koa';
import { GatehouseError } from '../errors.ts';
import type { Idp, IdpsService } from '../idps/service.ts';
import { providerLabel, type UpstreamPerson, type UpstreamStart, type Upstreams } from '../idps/upstream.ts';
import { securityReporter } from '../observability/request-log.ts';

/**
 * The upstream half of a sign-in through an identity provider, shared by the apps' sign-in
 * (interactions/idp-routes.ts, bound to an interaction) and the account page's
 * (src/account/upstream-sign-in.ts, bound to a cookie of its own): the start, and the callback
 * redeemed once. `bound` is what the flow is held for; `back` says in each refusal where to go
 * back to ("Go back to the application").
 */
export interface UpstreamFlowDeps {
  idps: Pick<IdpsService, 'find' | 'holdFlow' | 'takeFlow'>;
  upstreams: Pick<Upstreams, 'start' | 'finish'>;
}

/** What is kept between the start and the callback, sealed under the state. */
type HeldStart = UpstreamStart['checks'];

/**
 * The account page's flows are held under this prefix (and a hash of their browser's cookie);
 * an interaction's uid never has a colon. The shared callback routes by it: what the stored flow
 * says, never what the request says.
 */
export const ACCOUNT_FLOW_PREFIX = 'account:';

const refused = (status: number, code: string, sentence: string) => new GatehouseError(status, code, sentence);

/** The provider named in the path, while it is enabled; an unknown or disabled one is refused. */
export async function enabledIdp(idps: Pick<IdpsService, 'find'>, name: string, back: string): Promise<Idp> {
  const idp = await idps.find(name);
  if (!idp) throw refused(404, 'unknown_idp', `There is no such sign-in option here. ${back} and start again.`);
  if (!idp.enabled) throw refused(403, 'idp_disabled', `Signing in with ${providerLabel(idp)} is turned off. Sign in another way.`);
  return idp;
}

/** Holds the new flow's checks for `bound` and sends the browser to the upstream. */
export async function startUpstream(ctx: Koa.Context, deps: UpstreamFlowDeps, idp: Idp, bound: string): Promise<void> {
  const started = await deps.upstreams.start(idp);
  await deps.idps.holdFlow('start', bound, idp.name, started.checks, started.state);
  securityReporter(ctx)('login.upstream_started', { idp: idp.name, ip: ctx.ip });
  ctx.status = 303;
  ctx.redirect(started.url);
}

/**
 * The upstream's answer for `bound`: the state used once whatever comes of it (a replayed
 * callback finds nothing), a refusal there or an error named, else the code redeemed with the
 * held PKCE verifier and nonce. `beforeRedeem` refuses what must not go on (already signed in).
 */
export async function redeemUpstreamAnswer(
  ctx: Koa.Context,
  deps: UpstreamFlowDeps,
  idp: Idp,
  bound: string,
  back: string,
  beforeRedeem?: () => void,
): Promise<UpstreamPerson> {
  const query = new URLSearchParams(ctx.querystring);
  const state = query.get('state') ?? '';
  const checks = await deps.idps.takeFlow<HeldStart>('start', state, bound, idp.name);
  if (!checks) throw unknownState(back);
  const who = providerLabel(idp);
  const upstreamError = query.get('error');
  if (upstreamError === 'access_denied') {
    securityReporter(ctx)('login.upstream_denied', { idp: idp.name, ip: ctx.ip });
    throw refused(403, 'access_denied', `${who} did not sign you in (the sign-in was declined there). ${back} to try again or sign in another way.`);
  }
  if (upstreamError)
    throw refused(502, 'upstream_error', `${who} could not sign you in (${upstreamError.slice(0, 60).replace(/[^\w.-]/g, '')}). ${back} and start again.`);
  beforeRedeem?.();
  return deps.upstreams.finish(idp, query, state, checks);
}

/** A state (or link token) Gatehouse is not waiting for: forged, replayed, expired, or another browser's. */
export const unknownState = (back: string) =>
  new GatehouseError(
    400,
    'invalid_state',
    `This answer is not for a sign-in Gatehouse is waiting for: it was already used, it expired, or it belongs to another sign-in. ${back} and start again.`,
  );
