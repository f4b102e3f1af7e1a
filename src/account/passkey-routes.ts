import type Router from '@koa/router';
import type Koa from 'koa';
import { PASSKEY_NAME_MAX, PasskeyRefused, type PasskeysService } from '../accounts/passkeys/index.ts';
import type { User } from '../accounts/service.ts';
import type { AccountEventKind } from './events.ts';
import type { AccountSession } from './sessions.ts';

/** What the redirect after a passkey change says (merged into the page's fixed notices). */
export const PASSKEY_NOTICES: Record<string, string> = {
  'passkey-added': 'Your passkey is added: you can sign in with it alone.',
  'passkey-renamed': 'Your passkey is renamed.',
  'passkey-removed': 'That passkey is removed: it no longer signs you in.',
};

interface SignedIn {
  user: User;
  session: AccountSession;
}

/** What the passkey routes need of the account page they are part of. */
export interface PasskeyRouteDeps {
  passkeys: Pick<PasskeysService, 'registrationOptions' | 'register' | 'rename' | 'remove'>;
  person(ctx: Koa.Context): SignedIn;
  fields(ctx: Koa.Context): Record<string, unknown>;
  /** The current password asked again: undefined when right, else the status and sentence to show. */
  confirmPassword(ctx: Koa.Context, signedIn: SignedIn, password: string): Promise<{ status: number; sentence: string } | undefined>;
  /** Shows the account page with an error in its passkeys section. */
  refuse(ctx: Koa.Context, signedIn: SignedIn, status: number, sentence: string): Promise<void>;
  /** Shows the account page with more in its context (the step that creates a passkey). */
  show(ctx: Koa.Context, signedIn: SignedIn, context: Record<string, unknown>): Promise<void>;
  record(ctx: Koa.Context, userId: string, kind: AccountEventKind): Promise<void>;
  done(ctx: Koa.Context, notice: keyof typeof PASSKEY_NOTICES): void;
}

/** The passkeys section of the page: the person's passkeys. */
export async function passkeysView(passkeys: Pick<PasskeysService, 'of'>, { user }: SignedIn) {
  const list = await passkeys.of(user.id);
  return {
    passkeys: list.map((p) => ({
      id: p.id,
      name: p.name,
      added: p.createdAt.toISOString().slice(0, 10),
      lastUsed: p.lastUsedAt ? p.lastUsedAt.toISOString().slice(0, 16).replace('T', ' ') : undefined,
      synced: p.backupEligible,
    })),
    passkeyNameMax: PASSKEY_NAME_MAX,
  };
}

const text = (v: unknown): string => (typeof v === 'string' ? v : '');

/** A name as typed, or why it cannot be one. */
function passkeyName(raw: string): { name: string } | { error: string } {
  const name = raw.trim();
  if (/\p{Cc}/u.test(name)) return { error: 'A passkey’s name cannot contain line breaks or control characters.' };
  if (name.length > PASSKEY_NAME_MAX) return { error: `A passkey’s name is at most ${PASSKEY_NAME_MAX} characters.` };
  return { name };
}

const passkeyId = (raw: unknown) => (typeof raw === 'string' && /^\d{1,15}$/.test(raw) ? Number(raw) : undefined);

/**
 * /account/passkeys/…: add (the current password again, then the browser's new passkey),
 * rename, remove (the current password again). Registered on the account page's router, so its
 * sign-in and CSRF checks run first.
 */
export function addPasskeyRoutes(router: Router, deps: PasskeyRouteDeps): void {
  const { passkeys, person, fields, confirmPassword, refuse, record, done, show } = deps;

  // Step one: the password, checked before the device makes anything (a wrong one would leave a
  // passkey on the device that Gatehouse never took). The challenge handed out after it is the
  // proof of it: bound to this session, five minutes, used once.
  router.post('/passkeys/add', async (ctx) => {
    const signedIn = person(ctx);
    const body = fields(ctx);
    const named = passkeyName(text(body.name));
    if ('error' in named) return refuse(ctx, signedIn, 400, named.error);
    if (!text(body.current_password)) return refuse(ctx, signedIn, 400, 'Enter your current password to add a passkey.');
    const wrong = await confirmPassword(ctx, signedIn, text(body.current_password));
    if (wrong) return refuse(ctx, signedIn, wrong.status, wrong.sentence);
    const options = await passkeys.registrationOptions(signedIn.user, signedIn.session.csrf);
    await show(ctx, signedIn, { passkeyCreate: { name: named.name, options: JSON.stringify(options) } });
  });

  // Step two: the browser's new passkey, answering that challenge.
  router.post('/passkeys/create', async (ctx) => {
    const signedIn = person(ctx);
    const body = fields(ctx);
    const named = passkeyName(text(body.name));
    if ('error' in named) return refuse(ctx, signedIn, 400, named.error);
    try {
      await passkeys.register(signedIn.user, signedIn.session.csrf, text(body.credential), named.name);
    } catch (err) {
      if (err instanceof PasskeyRefused) return refuse(ctx, signedIn, 400, err.message);
      throw err;
    }
    await record(ctx, signedIn.user.id, 'account.passkey_added');
    done(ctx, 'passkey-added');
  });

  router.post('/passkeys/rename', async (ctx) => {
    const signedIn = person(ctx);
    const body = fields(ctx);
    const named = passkeyName(text(body.name));
    if ('error' in named) return refuse(ctx, signedIn, 400, named.error);
    if (!named.name) return refuse(ctx, signedIn, 400, 'Give the passkey a name.');
    const id = passkeyId(body.passkey);
    if (id === undefined || !(await passkeys.rename(signedIn.user.id, id, named.name)))
      return refuse(ctx, signedIn, 404, 'That passkey was removed already, or is not yours. Nothing was changed.');
    await record(ctx, signedIn.user.id, 'account.passkey_renamed');
    done(ctx, 'passkey-renamed');
  });

  router.post('/passkeys/remove', async (ctx) => {
    const signedIn = person(ctx);
    const body = fields(ctx);
    const id = passkeyId(body.passkey);
    if (!text(body.current_password)) return refuse(ctx, signedIn, 400, 'Enter your current password to remove a passkey.');
    const wrong = await confirmPassword(ctx, signedIn, text(body.current_password));
    if (wrong) return refuse(ctx, signedIn, wrong.status, wrong.sentence);
    if (id === undefined || !(await passkeys.remove(signedIn.user.id, id)))
      return refuse(ctx, signedIn, 404, 'That passkey was removed already, or is not yours. Nothing was changed.');
    await record(ctx, signedIn.user.id, 'account.passkey_removed');
    done(ctx, 'passkey-removed');
  });
}
