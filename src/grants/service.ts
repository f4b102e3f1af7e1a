import type { Knex } from 'knex';
import type { AdapterFactory } from 'oidc-provider';
import { NotFoundError } from '../errors.ts';

export interface UserGrant {
  grantId: string;
  clientId: string;
  scope: string;
  createdAt: Date;
  expiresAt: Date | null;
}

/** A user's authorized apps (oidc-provider Grants), and revoking one with everything it issued. */
export class GrantsService {
  constructor(
    private readonly db: Knex,
    private readonly adapterFor: AdapterFactory,
  ) {}

  async listForUser(sub: string): Promise<UserGrant[]> {
    const now = Math.floor(Date.now() / 1000);
    const rows = await this.db('oidc_payloads')
      .select('id', 'client_id', 'payload', 'expires_at')
      .where({ account_id: sub, model: 'Grant' })
      .andWhere((w) => w.whereNull('expires_at').orWhere('expires_at', '>', now));
    return rows
      .map((r: { id: string; client_id: string; payload: string; expires_at: number | string | null }) => {
        const payload = JSON.parse(r.payload) as { iat?: number; openid?: { scope?: string } };
        return {
          grantId: r.id,
          clientId: r.client_id,
          scope: payload.openid?.scope ?? '',
          createdAt: new Date((payload.iat ?? 0) * 1000),
          expiresAt: r.expires_at === null ? null : new Date(Number(r.expires_at) * 1000),
        };
      })
      .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime());
  }

  /** Revokes a grant: its access tokens, refresh tokens and codes (wherever they are stored), then the grant. */
  async revoke(grantId: string): Promise<void> {
    await Promise.all(['AccessToken', 'RefreshToken', 'AuthorizationCode'].map((model) => this.adapterFor(model).revokeByGrantId(grantId)));
    await this.adapterFor('Grant').destroy(grantId);
  }

  async revokeForUser(sub: string, grantId: string): Promise<void> {
    const grants = await this.listForUser(sub);
    if (!grants.some((g) => g.grantId === grantId)) throw new NotFoundError(`grant ${grantId} of user ${sub}`);
    await this.revoke(grantId);
  }
}
