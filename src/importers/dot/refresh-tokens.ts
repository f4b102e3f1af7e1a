import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import { importRefreshToken, refreshTokenIsStored } from '../../oidc/index.ts';
import type { Services } from '../../services.ts';
import type { ClientHere } from './clients.ts';
import { clip, type ImportReport, type UserReport } from './report.ts';
import type { DotData } from './source.ts';
import { refreshTokenValueProblem } from './token-rules.ts';

/**
 * DOT's live refresh tokens keep working: each is carried over for an imported, enabled user
 * and client, with only the scopes its client has in Gatehouse, and only once (its SHA-256 is
 * remembered); a value that does not look random, or is already live, is refused.
 */

export async function importRefreshTokens(
  trx: Knex,
  data: DotData,
  services: Services,
  users: UserReport[],
  clients: Map<number, ClientHere>,
): Promise<ImportReport['refresh_tokens']> {
  const result: ImportReport['refresh_tokens'] = { imported: 0, already_present: 0, not_imported: [], notes: [] };
  const usersById = new Map(data.users.map((u) => [u.id, u]));
  const userOutcome = new Map(users.map((u) => [u.sub, u.outcome]));
  const appsById = new Map(data.applications.map((a) => [a.id, a]));
  const { refreshToken, grant } = services.config.lifetimes;

  for (const rt of data.refreshTokens) {
    if (rt.revoked) continue; // used or revoked in DOT: nothing to carry over
    const user = usersById.get(rt.userId);
    const app = appsById.get(rt.applicationId);
    const client = clients.get(rt.applicationId);
    const skip = (reason: string) => result.not_imported.push({ id: rt.id, reason });
    if (!user || userOutcome.get(String(user.id)) === 'refused') {
      skip('its user was not imported');
      continue;
    }
    if (!user.isActive) {
      skip(`user ${clip(user.username)} is inactive (DOT 1.7 would still honour it; Gatehouse does not)`);
      continue;
    }
    const here = await trx('users')
      .first('disabled')
      .where({ id: String(user.id) });
    if (here?.disabled) {
      skip(`user ${clip(user.username)} is disabled in Gatehouse`);
      continue;
    }
    if (!client?.grantTypes.includes('refresh_token')) {
      skip(`its application ${clip(app?.name || app?.clientId || String(rt.applicationId))} was refused or has no refresh_token grant`);
      continue;
    }
    if (client.disabled) {
      skip(`its client ${clip(client.clientId)} is disabled in Gatehouse`);
      continue;
    }
    const valueProblem = refreshTokenValueProblem(rt.token);
    if (valueProblem) {
      skip(`refused: ${valueProblem}`);
      continue;
    }
    // Only what the client may hold in Gatehouse now: the dump does not choose the grant's scope.
    const scopes = [...new Set(rt.scope.split(/\s+/).filter(Boolean))];
    const dropped = scopes.filter((s) => !client.scope.includes(s));
    const scope = scopes.filter((s) => client.scope.includes(s)).join(' ');
    if (!scope) {
      skip(`its scope "${clip(rt.scope, 100)}" holds no scope its client ${clip(client.clientId)} has`);
      continue;
    }
    const tokenSha256 = createHash('sha256').update(rt.token).digest('hex');
    if (await trx('dot_imported_refresh_tokens').first('token_sha256').where({ token_sha256: tokenSha256 })) {
      // Imported before: whether it is still live, used or revoked is Gatehouse's business now.
      result.already_present++;
      continue;
    }
    if (await refreshTokenIsStored(trx, rt.token)) {
      skip('refused: a refresh token of this value is already live in Gatehouse');
      continue;
    }
    if (dropped.length)
      result.notes.push(
        `refresh token ${rt.id}: scope ${dropped.map((s) => clip(s, 100)).join(' ')} dropped (not in the scope of its client ${clip(client.clientId)})`,
      );
    result.imported++;
    await trx('dot_imported_refresh_tokens').insert({ token_sha256: tokenSha256, imported_at: Date.now() });
    // The grant is named after the token, so two sources' token #6 never share (and overwrite) one.
    const grantId = `dot-rt-${tokenSha256.slice(0, 32)}`;
    await importRefreshToken(trx, {
      token: rt.token,
      grantId,
      accountId: String(user.id),
      clientId: client.clientId,
      scope,
      lifetimes: { grant, refreshToken },
    });
  }
  return result;
}
