import { errors, type AdapterPayload } from 'oidc-provider';

export const nowInSeconds = () => Math.floor(Date.now() / 1000);

/** The `oidc_payloads` row of an artifact: its payload, and the columns lookups are indexed by. */
export function payloadRow(model: string, id: string, payload: AdapterPayload, expiresIn: number) {
  return {
    model,
    id,
    payload: JSON.stringify(payload),
    grant_id: payload.grantId ?? null,
    uid: payload.uid ?? null,
    user_code: payload.userCode ?? null,
    account_id: payload.accountId ?? null,
    client_id: payload.clientId ?? null,
    expires_at: expiresIn ? nowInSeconds() + expiresIn : null,
    consumed_at: typeof payload.consumed === 'number' ? payload.consumed : null,
  };
}

/** What a request that lost the race to consume an artifact is answered with. */
export function alreadyConsumed(model: string): Error {
  return model === 'PushedAuthorizationRequest'
    ? new errors.InvalidRequestUri('request_uri is invalid, expired, or was already used')
    : new errors.InvalidGrant('grant request is invalid: it was already used');
}
