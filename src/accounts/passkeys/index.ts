import type { Knex } from 'knex';
import { PasskeyChallenges } from './challenges.ts';
import { PasskeysService } from './service.ts';
import { PasskeyStore } from './store.ts';

export { ACR_MFA, PASSKEY_NAME_MAX, PasskeyRefused, PasskeysService, type PasskeySignIn } from './service.ts';
export type { Passkey } from './store.ts';

/** The passkeys of the issuer's relying party, over the database (`now` injectable for tests). */
export function createPasskeys(db: Knex, issuer: string, now: () => number = Date.now): PasskeysService {
  return new PasskeysService(new PasskeyStore(db, now), new PasskeyChallenges(db, now), issuer);
}
