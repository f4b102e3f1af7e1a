import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { errors, type AdapterPayload } from 'oidc-provider';

export const nowInSeconds = () => Math.floor(Date.now() / 1000);

/**
 * Models whose ids are not bearer secrets and are stored as they are: a Grant's id is named by
 * every artifact issued under it (grant_id columns, revokeByGrantId) and opens nothing by itself.
 * Every other model's id is what a client or browser presents (a code, a token, a session
 * cookie, an interaction cookie), so only its SHA-256 is stored: a copy of the database holds no
 * id that works.
 */
const RAW_ID_MODELS = new Set(['Grant']);

/** The id an artifact is stored under: SHA-256 (base64url) of a bearer id, a Grant's id as is. */
export function storedId(model: string, id: string): string {
  return RAW_ID_MODELS.has(model) ? id : sha256(id);
}

/** The user code column of a device code: hashed too, since typing it in binds the device. */
export const storedUserCode = (userCode: string) => sha256(userCode);

const sha256 = (value: string) => createHash('sha256').update(value).digest('base64url');

/**
 * A device code is found twice: by its id when the device polls, and by its user code when
 * the person types it, and what the second finds is saved again under its id (oidc-provider
 * marks it confirmed, then signed in). So that save reaches the row the device polls, the
 * id is kept with the row, encrypted under a key derived from the user code: the person's
 * typing opens it, the row alone does not.
 *
 * What a copy of the store still allows: trying every user code (20^8) against the stored
 * hash of one of a device sign-in still waiting (ten minutes at most) finds it, and with it
 * the device code; the attacker would then race the device for the tokens, if the person
 * finishes signing in within that time.
 */
function deviceIdKey(userCode: string): Buffer {
  return Buffer.from(hkdfSync('sha256', userCode, 'gatehouse', 'device code id', 32));
}

function sealDeviceId(id: string, userCode: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', deviceIdKey(userCode), iv);
  const body = Buffer.concat([cipher.update(id, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
}

function openDeviceId(sealed: string, userCode: string): string | undefined {
  try {
    const raw = Buffer.from(sealed, 'base64url');
    const decipher = createDecipheriv('aes-256-gcm', deviceIdKey(userCode), raw.subarray(0, 12));
    decipher.setAuthTag(raw.subarray(12, 28));
    return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
  } catch {
    return undefined;
  }
}

/**
 * The payload as stored: oidc-provider puts the raw id in `jti`, an Interaction its session's
 * cookie value in `session.cookie`, a DeviceCode its user code in `userCode`; none of those is
 * kept. `jti` comes back from the id the artifact is looked up by, `userCode` from the user code.
 */
export function storedPayload(model: string, payload: AdapterPayload): string {
  if (RAW_ID_MODELS.has(model)) return JSON.stringify(payload);
  const { jti, userCode, ...kept } = payload;
  if (typeof jti === 'string' && typeof userCode === 'string') kept.sealedId = sealDeviceId(jti, userCode);
  const session = kept.session as Record<string, unknown> | undefined;
  if (session && typeof session === 'object' && 'cookie' in session) {
    const { cookie: _cookie, ...rest } = session;
    kept.session = rest;
  }
  return JSON.stringify(kept);
}

/** The payload oidc-provider stored, from its row: `jti` (and a device code's `userCode`) restored. */
export function restoredPayload(model: string, json: string, known: { id?: string; userCode?: string }): AdapterPayload {
  const payload = JSON.parse(json) as AdapterPayload;
  if (!RAW_ID_MODELS.has(model)) {
    if (known.id !== undefined) payload.jti = known.id;
    if (known.userCode !== undefined) {
      payload.userCode = known.userCode;
      const id = typeof payload.sealedId === 'string' ? openDeviceId(payload.sealedId, known.userCode) : undefined;
      if (id !== undefined) payload.jti = id;
    }
    delete payload.sealedId;
  }
  return payload;
}

/** The `oidc_payloads` row of an artifact: its payload, and the columns lookups are indexed by. */
export function payloadRow(model: string, id: string, payload: AdapterPayload, expiresIn: number) {
  return {
    model,
    id: storedId(model, id),
    payload: storedPayload(model, payload),
    grant_id: payload.grantId ?? null,
    uid: payload.uid ?? null,
    user_code: payload.userCode ? storedUserCode(payload.userCode) : null,
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
