import { createHash } from 'node:crypto';
import type Provider from 'oidc-provider';
import type { Configuration, KoaContextWithOIDC } from 'oidc-provider';
import { boundedSubject, type CredentialThrottle, type Limit } from '../accounts/throttle.ts';
import { LOCKS, LockedOutError } from '../errors.ts';
import { interactionErrorPage, problemOf, respondWithPage } from '../problem.ts';
import type { Views } from '../web/views.ts';
import { confirmDeviceCodesOnce, deviceFormFields, dropUnstoredDeviceSession } from './internals.ts';

/**
 * Device sign-in (RFC 8628) for clients with the device_code grant: a CLI or a TV shows a short
 * code, the person enters it at ISSUER/device in a browser, confirms, signs in and consents on
 * Gatehouse's own pages, and the device's polling gets its tokens.
 *
 * oidc-provider runs the flow; Gatehouse renders its three pages (the same look and page rules
 * as sign-in: a labelled field, no inline script) and throttles guessing: a user code is the
 * only thing the person types, so wrong codes from one address are counted like passwords.
 */

/** Codes are 8 letters from 20 consonants (no vowels, so no words; no 0/O or 1/I to confuse), typed as XXXX-XXXX. */
export const USER_CODE = { charset: 'base-20', mask: '****-****' } as const;

/** Wrong codes from one address within the throttle's window after which it is locked. */
export const WRONG_CODES_BEFORE_LOCK = 10;
const limitsFor = (address: string): Limit[] => [
  { subject: boundedSubject('devicecode-addr', address), lockAfter: WRONG_CODES_BEFORE_LOCK, onSuccess: 'refund' },
];
/** Set on the request by the code page when oidc-provider found no such code: a wrong guess. */
const WRONG_CODE = Symbol('wrong device code');

/** What oidc-provider says about a code a person typed, in the words our page uses. */
const WORDING: Record<string, string> = {
  NoCodeError: 'Enter the code your device shows.',
  NotFoundError: 'That code is not right. Check the code on your device and try again.',
  ExpiredError: 'That code has expired. Start again on your device to get a new one.',
  AlreadyUsedError: 'That code was used already. Start again on your device to get a new one.',
  // The form's own token is missing or wrong (lib/shared/xsrf.js).
  InvalidRequest: 'This form has expired or was changed. Enter the code again.',
};

export function deviceFlowFeature(views: Views): NonNullable<Configuration['features']>['deviceFlow'] {
  return {
    enabled: true,
    ...USER_CODE,
    userCodeInputSource: async (ctx, form, _out, err) => {
      const { action, xsrf } = deviceFormFields(form);
      if (err?.name === 'AbortedError') {
        ctx.status = 200;
        ctx.type = 'html';
        ctx.body = views.render('device-done.njk', { title: 'Device not signed in', denied: true, clientName: clientName(ctx) });
        return;
      }
      if (err && dropUnstoredDeviceSession(ctx)) {
        // A form with no stored session behind it (forged, or kept open past its session).
        ctx.status = 400;
        ctx.type = 'html';
        ctx.body = views.render('device.njk', { title: 'Sign in a device', expired: true, error: 'This form has expired. Open the code page again.' });
        return;
      }
      if (err?.name === 'NotFoundError') (ctx.state as Record<symbol, boolean>)[WRONG_CODE] = true;
      const error = err ? (WORDING[err.name] ?? problemOf(err).description) : undefined;
      const userCode = err && 'userCode' in err && typeof err.userCode === 'string' ? err.userCode : '';
      ctx.type = 'html';
      ctx.body = views.render('device.njk', { title: 'Sign in a device', action, xsrf, error, userCode });
    },
    userCodeConfirmSource: async (ctx, form, client, _deviceInfo, userCode) => {
      const { action, xsrf } = deviceFormFields(form);
      ctx.type = 'html';
      ctx.body = views.render('device-confirm.njk', {
        title: 'Sign in on this device?',
        action,
        xsrf,
        userCode,
        clientName: client.clientName ?? client.clientId,
      });
    },
    successSource: async (ctx) => {
      ctx.type = 'html';
      ctx.body = views.render('device-done.njk', { title: 'Your device is signed in', denied: false, clientName: clientName(ctx) });
    },
  };
}

/**
 * Every code a person submits is counted per address before oidc-provider looks it up, and
 * counts as a failure only when no such code exists: while an address is locked, its
 * submissions are answered 429 on the code page with no lookup. Parallel guesses are each
 * counted as they arrive (CredentialThrottle.reserve), so a burst checks no more than the limit.
 */
export function throttleCodeGuessing(provider: Provider, views: Views, throttle: CredentialThrottle, path: string): void {
  provider.use(async (ctx, next) => {
    if (ctx.method !== 'POST' || ctx.path !== path) return next();
    const reservation = await throttle.reserve(limitsFor(ctx.ip));
    if (!reservation.ok) {
      const problem = problemOf(new LockedOutError(LOCKS.deviceCodes, reservation.retryAfterSeconds));
      respondWithPage(ctx, problem, views.render('error.njk', interactionErrorPage(problem)));
      return;
    }
    try {
      await next();
    } catch (err) {
      await reservation.cancel();
      throw err;
    }
    await ((ctx.state as Record<symbol, boolean>)[WRONG_CODE] ? reservation.failed() : reservation.succeeded());
  });
}

/**
 * Two people pressing Continue for one code at once (one read it off the screen): only the first
 * signs the device in, the other is told the code was used. The claim is kept in the shared
 * counters under the code's hash (a device code is a bearer secret), so it holds across processes.
 */
export function confirmEachCodeOnce(provider: Provider, throttle: CredentialThrottle): void {
  confirmDeviceCodesOnce(provider, (id) => throttle.claimOnce(boundedSubject('devicecode-confirmed', createHash('sha256').update(id).digest('base64url'))));
}

const clientName = (ctx: KoaContextWithOIDC) => ctx.oidc.client?.clientName ?? ctx.oidc.client?.clientId ?? 'The app';
