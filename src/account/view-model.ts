import type { User } from '../accounts/service.ts';
import type { ClientsService } from '../clients/service.ts';
import type { Oidc } from '../oidc/index.ts';
import type { AccountEvents } from './events.ts';

/** Times as people read them, in UTC (the server does not know the reader's zone). */
const when = (d: Date | null) => (d ? `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC` : 'unknown');

/** What the account page shows beside the forms: the apps allowed, the sessions, the recent events. */
export async function accountPageView(
  user: User,
  { oidc, clients, accountEvents }: { oidc: Pick<Oidc, 'grantsOf' | 'sessionsOf'>; clients: Pick<ClientsService, 'find'>; accountEvents: AccountEvents },
) {
  const names = new Map<string, string>();
  const nameOf = async (clientId: string) => {
    if (!names.has(clientId)) names.set(clientId, (await clients.find(clientId))?.name || clientId);
    return names.get(clientId)!;
  };
  const apps = await Promise.all(
    (await oidc.grantsOf(user.id)).map(async (g) => ({
      grantId: g.grantId,
      name: await nameOf(g.clientId),
      scopes: g.scope.split(' ').filter(Boolean),
      since: when(g.createdAt),
    })),
  );
  const sessions = await Promise.all(
    (await oidc.sessionsOf(user.id)).map(async (s) => ({ handle: s.handle, signedInAt: when(s.signedInAt), apps: await Promise.all(s.clientIds.map(nameOf)) })),
  );
  const events = (await accountEvents.recentOf(user.id)).map((e) => ({
    text: e.text,
    at: when(e.at),
    iso: e.at.toISOString(),
    address: e.address ?? 'unknown',
  }));
  return { user: { username: user.username, email: user.email, name: user.name }, apps, sessions, events };
}
