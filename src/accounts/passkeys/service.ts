import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { z } from 'zod';
import type { User } from '../service.ts';
import type { PasskeyChallenges } from './challenges.ts';
import type { Passkey, PasskeyStore } from './store.ts';

/**
 * @simplewebauthn/server (with its ASN.1 and CBOR libraries, some 10 MiB resident) is loaded by
 * the first passkey ceremony, not at start: a process that only issues tokens never needs it.
 */
let webauthnLoading: Promise<typeof import('@simplewebauthn/server')> | undefined;
const webauthn = () =>
  (webauthnLoading ??= import('@simplewebauthn/server').catch((err: unknown) => {
    webauthnLoading = undefined;
    throw err;
  }));

/** The acr of a sign-in with two factors; the TOTP work uses the same string. */
export const ACR_MFA = 'urn:gatehouse:acr:mfa';

export const PASSKEY_NAME_MAX = 60;

/** Why a passkey was refused, in words for the person; nothing about keys or signatures. */
export class PasskeyRefused extends Error {}

/** Who a passkey signs in, and the amr/acr that sign-in carries (RFC 8176). */
export interface PasskeySignIn {
  userId: string;
  amr: string[];
  acr: string | undefined;
}

// What the browser posts, checked before the library sees it (it trusts its input's shape).
const b64url = z
  .string()
  .regex(/^[\w-]*$/)
  .max(20_000);
const common = {
  id: b64url.min(1).max(1400),
  rawId: b64url,
  type: z.literal('public-key'),
  clientExtensionResults: z.record(z.string(), z.unknown()).default({}),
  authenticatorAttachment: z.enum(['platform', 'cross-platform']).optional(),
};
const registrationSchema = z.object({
  ...common,
  response: z.object({ clientDataJSON: b64url, attestationObject: b64url, transports: z.array(z.string().max(20)).max(10).optional() }).passthrough(),
});
const authenticationSchema = z.object({
  ...common,
  response: z.object({ clientDataJSON: b64url, authenticatorData: b64url, signature: b64url, userHandle: b64url.optional() }).passthrough(),
});

function parsed<T>(schema: z.ZodType<T>, posted: string): T {
  let json: unknown;
  try {
    json = JSON.parse(posted);
  } catch {
    throw new PasskeyRefused('Your browser sent no passkey. Nothing was changed.');
  }
  const result = schema.safeParse(json);
  if (!result.success) throw new PasskeyRefused('Your browser sent no passkey. Nothing was changed.');
  return result.data;
}

/**
 * Passkeys (WebAuthn) for people: registering on the account page, signing in on the sign-in
 * page. The relying party is the issuer: its host is the RP id and its origin the one origin
 * accepted, so a passkey made for Gatehouse answers nowhere else, and nothing else's here.
 */
export class PasskeysService {
  readonly rpId: string;
  readonly origin: string;

  constructor(
    private readonly store: PasskeyStore,
    private readonly challenges: PasskeyChallenges,
    issuer: string,
    private readonly rpName = 'Gatehouse',
  ) {
    const url = new URL(issuer);
    this.rpId = url.hostname;
    this.origin = url.origin;
  }

  of(userId: string): Promise<Passkey[]> {
    return this.store.of(userId);
  }

  /** Options for creating a passkey, with a challenge bound to `holder` (the account-page session). */
  async registrationOptions(user: User, holder: string): Promise<PublicKeyCredentialCreationOptionsJSON> {
    const existing = await this.store.of(user.id);
    const { generateRegistrationOptions } = await webauthn();
    const options = await generateRegistrationOptions({
      rpName: this.rpName,
      rpID: this.rpId,
      userName: user.username,
      userDisplayName: user.name || user.username,
      userID: new TextEncoder().encode(user.id),
      challenge: new TextEncoder().encode('placeholder'),
      attestationType: 'none',
      // Discoverable, so the sign-in page needs no username; verified, so it is two factors.
      authenticatorSelection: { residentKey: 'required', userVerification: 'preferred' },
      excludeCredentials: existing.map((p) => ({ id: p.credentialId, transports: p.transports as never })),
      timeout: 120_000,
    });
    return { ...options, challenge: await this.challenges.issue('register', holder) };
  }

  /** Verifies a new passkey for `user` answering a challenge `holder` was given, and stores it. */
  async register(user: User, holder: string, posted: string, name: string): Promise<Passkey> {
    const response = parsed(registrationSchema, posted) as RegistrationResponseJSON;
    const { verifyRegistrationResponse } = await webauthn();
    const verification = await verifyRegistrationResponse({
      response,
      expectedChallenge: (challenge) => this.challenges.consume('register', holder, challenge),
      expectedOrigin: this.origin,
      expectedRPID: this.rpId,
      requireUserVerification: false,
    }).catch(() => ({ verified: false as const }));
    if (!verification.verified)
      throw new PasskeyRefused('That passkey could not be checked (the page may be old: reload it and try again). Nothing was changed.');
    const { credential, credentialDeviceType, credentialBackedUp } = verification.registrationInfo;
    if (await this.store.byCredentialId(credential.id)) throw new PasskeyRefused('That passkey is registered already.');
    await this.store.add({
      userId: user.id,
      credentialId: credential.id,
      publicKey: credential.publicKey,
      counter: credential.counter,
      transports: credential.transports ?? [],
      backupEligible: credentialDeviceType === 'multiDevice',
      backedUp: credentialBackedUp,
      name: name || `Passkey ${(await this.store.of(user.id)).length + 1}`,
    });
    return (await this.store.byCredentialId(credential.id))!;
  }

  /** Options for signing in with any passkey of this RP (discoverable: no username asked). */
  async authenticationOptions(holder: string): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const { generateAuthenticationOptions } = await webauthn();
    const options = await generateAuthenticationOptions({ rpID: this.rpId, userVerification: 'preferred', timeout: 120_000 });
    return { ...options, challenge: await this.challenges.issue('sign-in', holder) };
  }

  /**
   * Checks a sign-in answer to a challenge `holder` was given: a passkey we know, its signature
   * over our origin and RP id, a counter that did not go back. The challenge is spent by the
   * check, so the same answer posted again is refused.
   */
  async signIn(holder: string, posted: string): Promise<PasskeySignIn> {
    const response = parsed(authenticationSchema, posted) as AuthenticationResponseJSON;
    const refused = () => new PasskeyRefused('That passkey did not sign you in. Try again, or sign in with your password.');
    const passkey = await this.store.byCredentialId(response.id);
    if (!passkey) throw refused();
    const { verifyAuthenticationResponse } = await webauthn();
    const verification = await verifyAuthenticationResponse({
      response,
      expectedChallenge: (challenge) => this.challenges.consume('sign-in', holder, challenge),
      expectedOrigin: this.origin,
      expectedRPID: this.rpId,
      credential: {
        id: passkey.credentialId,
        publicKey: passkey.publicKey as Uint8Array<ArrayBuffer>,
        counter: passkey.counter,
        transports: passkey.transports as never,
      },
      requireUserVerification: false,
    }).catch(() => undefined);
    if (!verification?.verified) throw refused();
    const info = verification.authenticationInfo;
    if (!(await this.store.recordUse(passkey, info.newCounter, info.credentialBackedUp))) throw refused();
    return { userId: passkey.userId, ...factorsOf(passkey, info.userVerified) };
  }

  rename(userId: string, id: number, name: string): Promise<boolean> {
    return this.store.rename(userId, id, name);
  }

  remove(userId: string, id: number): Promise<boolean> {
    return this.store.remove(userId, id);
  }
}

/**
 * RFC 8176: a synced passkey (backup eligible) is a software-secured key (swk), one bound to
 * its device a hardware-secured key (hwk). With user verification (PIN, fingerprint) it is
 * something held and something known or been: two factors, "mfa".
 */
export function factorsOf(passkey: Pick<Passkey, 'backupEligible'>, userVerified: boolean): { amr: string[]; acr: string | undefined } {
  const key = passkey.backupEligible ? 'swk' : 'hwk';
  return userVerified ? { amr: [key, 'mfa'], acr: ACR_MFA } : { amr: [key], acr: undefined };
}
