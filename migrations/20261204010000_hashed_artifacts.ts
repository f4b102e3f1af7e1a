import { createHash } from 'node:crypto';
import type { Knex } from 'knex';

// Until now oidc_payloads held every artifact under its raw id, the value a client or browser
// presents: a copy of the database redeemed refresh tokens and opened sessions. From here on
// bearer artifacts are stored under the SHA-256 of their id, without the raw id in the payload
// (adapters/payload-row.ts). This rewrites the rows already there the same way, so everyone stays
// signed in: the cookie or token they hold hashes to the new id.
//
// Self-contained on purpose (no import of the adapters): a migration must keep doing what it did
// when it was written, whatever the code becomes.

const RAW_ID_MODELS = ['Grant'];
const BATCH = 500;

const sha256 = (value: string) => createHash('sha256').update(value).digest('base64url');

function strippedPayload(json: string): string {
  const { jti: _jti, userCode: _userCode, ...kept } = JSON.parse(json) as Record<string, unknown>;
  const session = kept.session as Record<string, unknown> | undefined;
  if (session && typeof session === 'object' && 'cookie' in session) {
    const { cookie: _cookie, ...rest } = session;
    kept.session = rest;
  }
  return JSON.stringify(kept);
}

export async function up(knex: Knex): Promise<void> {
  // The keys to rewrite, read before any is rewritten: a hashed id looks like a raw one (both
  // 43 characters of base64url), so the rows cannot tell which they are once the work started.
  const keys: { model: string; id: string }[] = await knex('oidc_payloads').select('model', 'id').whereNotIn('model', RAW_ID_MODELS);
  for (let i = 0; i < keys.length; i += BATCH) {
    const batch = keys.slice(i, i + BATCH);
    for (const { model, id } of batch) {
      const row = await knex('oidc_payloads').first('payload', 'user_code').where({ model, id });
      if (!row) continue;
      await knex('oidc_payloads')
        .where({ model, id })
        .update({
          id: sha256(id),
          payload: strippedPayload(String(row.payload)),
          user_code: row.user_code === null ? null : sha256(String(row.user_code)),
        });
    }
  }
}

export async function down(): Promise<void> {
  // A hash cannot be turned back into the id it came from. The rows stay; code from before this
  // migration finds none of them (its users sign in again) and sweeps them as they expire.
}
