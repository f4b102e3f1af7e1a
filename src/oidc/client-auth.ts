import Provider from 'oidc-provider';
import { hashesQueuedAs } from '../accounts/passwords.ts';
import { CredentialThrottle } from '../accounts/throttle.ts';
import type { ClientsService } from '../clients/service.ts';
import { LOCKS, lockedDescription } from '../errors.ts';
import { guardStore } from '../stores/availability.ts';
import { installClientSecretCheck, lockedClientError } from './internals.ts';

/**
 * Client authentication with a secret. Stored secrets are hashes (see clients/secrets.ts);
 * oidc-provider's compareClientSecret is the supported place to compare a presented secret
 * against what the client metadata carries. Each attempt is counted per (client, address) and
 * per address before the secret is checked (shared counters, as for sign-in), never per client
 * alone: a client_id is public, so guessing from one place must not lock the app out everywhere.
 * While a counter refuses, no secret is checked at all, so the answer (429 invalid_client with
 * Retry-After) says nothing about the secret.
 */
export function authenticateClientsWithStoredSecrets(provider: Provider, clients: ClientsService, throttle: CredentialThrottle): void {
  installClientSecretCheck(provider, async (client, presented) => {
    const ctx = Provider.ctx;
    const address = ctx?.ip ?? 'unknown';
    const limits = CredentialThrottle.clientLimits(client.clientId, address);
    // Guarded: an unreachable database is a 503 here too, not a 500 from oidc-provider.
    // Together: the client exists (oidc-provider found it), so its counters' subjects are bounded.
    const reservation = await guardStore('database', () => throttle.reserve(limits, { together: true }));
    // Answered as oidc-provider answers any refused client (invalid_client), with status 429 and
    // the one wording of a lock; the error model sets Retry-After from it.
    if (!reservation.ok) {
      throw lockedClientError(lockedDescription(LOCKS.clientAuthentication, reservation.retryAfterSeconds), reservation.retryAfterSeconds);
    }
    const stored = client['gatehouse:stored_secret'];
    let matches: boolean;
    try {
      // Imported Django hashes are slow to verify: their work queues under this address too.
      matches = typeof stored === 'string' && (await hashesQueuedAs(address, () => clients.verifySecret(client.clientId, stored, presented)));
    } catch (err) {
      await guardStore('database', () => reservation.cancel());
      throw err;
    }
    await guardStore('database', () => (matches ? reservation.succeeded() : reservation.failed()));
    return matches;
  });
}
