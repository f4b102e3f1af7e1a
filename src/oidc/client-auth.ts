import Provider from 'oidc-provider';
import { CREDENTIAL_THROTTLE, CredentialThrottle } from '../accounts/throttle.ts';
import type { ClientsService } from '../clients/service.ts';
import { LOCKS, lockedDescription } from '../errors.ts';
import { guardStore } from '../stores/availability.ts';
import { installClientSecretCheck, lockedClientError } from './internals.ts';

/**
 * Client authentication with a secret. Stored secrets are hashes (see clients/secrets.ts);
 * oidc-provider's compareClientSecret is the supported place to compare a presented secret
 * against what the client metadata carries. Wrong secrets are counted per client_id and per
 * address (shared counters, as for sign-in); while either is locked, no secret is checked at
 * all, so the answer (429 invalid_client with Retry-After) says nothing about the secret.
 */
export function authenticateClientsWithStoredSecrets(provider: Provider, clients: ClientsService, throttle: CredentialThrottle): void {
  const lockCheck = throttle.locks;
  installClientSecretCheck(provider, async (client, presented) => {
    const ctx = Provider.ctx;
    const subjects = CredentialThrottle.clientSubjects(client.clientId, ctx?.ip ?? 'unknown');
    // Guarded: an unreachable database is a 503 here too, not a 500 from oidc-provider.
    const lockedForSeconds = await guardStore('database', () => lockCheck.lockedForSeconds(subjects));
    // Answered as oidc-provider answers any refused client (invalid_client), with status 429 and
    // the one wording of a lock; the error model sets Retry-After from it.
    if (lockedForSeconds > 0) throw lockedClientError(lockedDescription(LOCKS.clientAuthentication, lockedForSeconds), lockedForSeconds);
    const stored = client['gatehouse:stored_secret'];
    const matches = typeof stored === 'string' && (await clients.verifySecret(client.clientId, stored, presented));
    if (!matches) {
      lockCheck.forget(subjects);
      await guardStore('database', () => throttle.recordFailure(subjects.username, CREDENTIAL_THROTTLE.lockClientAfter));
      await guardStore('database', () => throttle.recordFailure(subjects.address, CREDENTIAL_THROTTLE.lockClientAddressAfter));
    }
    return matches;
  });
}
