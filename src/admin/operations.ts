import type { TotpService } from '../accounts/mfa/totp.ts';
import { codeSubjects } from '../accounts/mfa/second-factor.ts';
import type { CredentialThrottle } from '../accounts/throttle.ts';
import type { AccountsService, User } from '../accounts/service.ts';
import type { ApiKeysService } from '../apikeys/service.ts';
import type { ClientSettingsInput } from '../clients/rules.ts';
import type { Client, ClientsService, ClientWithSecret } from '../clients/service.ts';
import type { GrantsService, UserGrant } from '../oidc/index.ts';
import type { KeysService } from '../keys/service.ts';
import type { StoredDocument, UserdataService, UserDocument } from '../userdata/service.ts';
import { GatehouseError, NotFoundError } from '../errors.ts';
import type { Scope, ScopesService } from '../scopes/service.ts';
import type { Resource, ResourceInput, ResourcesService } from '../resources/service.ts';
import type { Actor, AuditLog } from './audit.ts';
import type { AdminTokensService } from './tokens.ts';
import type { PasswordResetService } from '../accounts/recovery/password-reset.ts';
import type { Idp, IdpsService } from '../idps/service.ts';
import type { IdpInput } from '../idps/rules.ts';

/** A stored /userdata document as the admin lists it. */
export type AppDocument = StoredDocument & { clientName: string | null };

/** A user's grant as the admin lists it; `clientName` is null once the client is deleted. */
export type NamedGrant = UserGrant & { clientName: string | null };

type ClientChanges = ClientSettingsInput & { disabled?: boolean };

/** A client's settings as an update would give them, to tell which of an update's fields change. */
const settingsOf = (c: Client): Required<ClientChanges> => ({
  name: c.name,
  type: c.type,
  grantTypes: c.grantTypes,
  redirectUris: c.redirectUris,
  postLogoutRedirectUris: c.postLogoutRedirectUris,
  allowedOrigins: c.allowedOrigins,
  scope: c.scope,
  defaultScope: c.defaultScope,
  authMethod: c.authMethod,
  requirePkce: c.requirePkce,
  requirePar: c.requirePar,
  requireDpop: c.requireDpop,
  skipConsent: c.skipConsent,
  requireMfa: c.requireMfa,
  allowInsecureRedirect: c.allowInsecureRedirect,
  idTokenSignedResponseAlg: c.idTokenSignedResponseAlg,
  // No logo and an empty one are the same setting.
  logoUri: c.logoUri ?? '',
  clientUri: c.clientUri ?? '',
  defaultResource: c.defaultResource ?? '',
  backchannelLogoutUri: c.backchannelLogoutUri ?? '',
  backchannelLogoutSessionRequired: c.backchannelLogoutSessionRequired,
  disabled: c.disabled,
});
const NULL_MEANS_EMPTY = new Set(['logoUri', 'clientUri', 'defaultResource', 'backchannelLogoutUri']);

/**
 * Only the fields of `submitted` whose value differs from the client's, so an update changes
 * and audits exactly those (a form sends every field, changed or not).
 */
export function changedSettings(current: Client, submitted: ClientChanges): ClientChanges {
  const before = settingsOf(current) as Record<string, unknown>;
  const same = (k: string, v: unknown) => JSON.stringify(v === null && NULL_MEANS_EMPTY.has(k) ? '' : v) === JSON.stringify(Object.hasOwn(before, k) ? before[k] : undefined);
  return Object.fromEntries(Object.entries(submitted).filter(([k, v]) => v !== undefined && !same(k, v)));
}

/** Locking yourself out is never what was meant; another operator can do it. */
const NOT_YOURSELF = 'You cannot disable yourself or remove your own admin flag. Ask another operator.';

/**
 * Every change an operator can make, from the CLI, the admin pages or the admin API: the same
 * services underneath, and one audit entry per change (never with a secret in it).
 */
export class AdminOperations {
  constructor(
    private readonly clients: ClientsService,
    private readonly accounts: AccountsService,
    private readonly apiKeys: ApiKeysService,
    private readonly grants: GrantsService,
    private readonly keys: KeysService,
    private readonly adminTokens: AdminTokensService,
    readonly audit: AuditLog,
    private readonly userdata: UserdataService,
    private readonly scopes: ScopesService,
    private readonly resources: ResourcesService,
    private readonly throttle: CredentialThrottle,
    private readonly passwordResets: PasswordResetService,
    /** Second factors a person set up (authenticator apps); an operator's reset removes them. */
    private readonly totp: Pick<TotpService, 'remove'>,
    /** Upstream identity providers (src/idps/). */
    private readonly idps: IdpsService,
  ) {}

  async createIdp(actor: Actor, input: IdpInput): Promise<Idp> {
    const idp = await this.idps.create(input);
    await this.audit.record(actor, 'idp.create', `idp:${idp.name}`, { issuer: idp.issuer, preset: idp.preset });
    return idp;
  }

  /** Applies what differs; the audit names the fields (a new client secret as "client_secret", never its value). */
  async updateIdp(actor: Actor, name: string, input: IdpInput): Promise<{ idp: Idp; changed: string[] }> {
    const updated = await this.idps.update(name, input);
    if (updated.changed.length) await this.audit.record(actor, 'idp.update', `idp:${name}`, { fields: updated.changed });
    return updated;
  }

  /** The identities linked through it go too; the accounts stay. */
  async deleteIdp(actor: Actor, name: string): Promise<Idp> {
    const idp = await this.idps.delete(name);
    await this.audit.record(actor, 'idp.delete', `idp:${name}`);
    return idp;
  }

  /** Limits which providers a client's sign-in page shows (empty: all enabled ones). */
  async setClientIdps(actor: Actor, clientId: string, names: string[]): Promise<string[]> {
    await this.clients.get(clientId);
    const limit = await this.idps.setClientLimit(clientId, names);
    await this.audit.record(actor, 'client.update', `client:${clientId}`, { fields: ['idps'], idps: limit });
    return limit;
  }

  async createClient(actor: Actor, input: ClientSettingsInput): Promise<ClientWithSecret> {
    const created = await this.clients.create(input);
    await this.audit.record(actor, 'client.create', `client:${created.client.clientId}`, { name: created.client.name, type: created.client.type });
    return created;
  }

  /**
   * Applies the fields of `submitted` that differ from the client's (`changed` names them; none:
   * nothing is written or audited).
   */
  async updateClient(actor: Actor, clientId: string, submitted: ClientChanges): Promise<ClientWithSecret & { changed: string[] }> {
    const current = await this.clients.get(clientId);
    const changes = changedSettings(current, submitted);
    const changed = Object.keys(changes);
    if (changed.length === 0) return { client: current, clientSecret: null, changed };
    const updated = await this.clients.update(clientId, changes);
    await this.audit.record(actor, 'client.update', `client:${clientId}`, { fields: changed });
    return { ...updated, changed };
  }

  /** The clients whose name or client_id contains `search` (any case), and how many there are in all. */
  async searchClients(search?: string): Promise<{ clients: Client[]; total: number }> {
    const needle = search?.trim().toLowerCase() ?? '';
    const all = await this.clients.list();
    return { clients: all.filter((c) => !needle || c.name.toLowerCase().includes(needle) || c.clientId.toLowerCase().includes(needle)), total: all.length };
  }

  async deleteClient(actor: Actor, clientId: string): Promise<void> {
    const client = await this.clients.get(clientId);
    await this.clients.delete(clientId);
    await this.audit.record(actor, 'client.delete', `client:${clientId}`, { name: client.name });
  }

  async rotateClientSecret(actor: Actor, clientId: string): Promise<ClientWithSecret> {
    const rotated = await this.clients.rotateSecret(clientId);
    await this.audit.record(actor, 'client.rotate_secret', `client:${clientId}`);
    return rotated;
  }

  async createUser(actor: Actor, input: Parameters<AccountsService['create']>[0]): Promise<User> {
    const user = await this.accounts.create(input);
    await this.audit.record(actor, 'user.create', `user:${user.id}`, { username: user.username, admin: user.isAdmin });
    return user;
  }

  async updateUser(actor: Actor, id: string, changes: { email?: unknown; name?: unknown; emailVerified?: boolean }): Promise<User> {
    const user = await this.accounts.update(id, changes);
    await this.audit.record(actor, 'user.update', `user:${id}`, { fields: Object.keys(changes) });
    return user;
  }

  async setUserPassword(actor: Actor, id: string, password: string): Promise<User> {
    const user = await this.accounts.setPassword(id, password);
    await this.audit.record(actor, 'user.set_password', `user:${id}`);
    return user;
  }

  /**
   * A password reset link for a user (valid 30 minutes, once; older ones stop working): shown to
   * the operator to hand over, or with `send` mailed to the user's address. The audit entry never
   * holds the link.
   */
  async createResetLink(actor: Actor, id: string, { send = false }: { send?: boolean } = {}): Promise<{ user: User; url?: string; expiresAt: Date; sent: boolean }> {
    const user = await this.accounts.get(id);
    if (send) {
      const { expiresAt } = await this.passwordResets.mailLinkTo(user.id);
      await this.audit.record(actor, 'user.reset_link', `user:${id}`, { sent: true });
      return { user, expiresAt, sent: true };
    }
    const { url, expiresAt } = await this.passwordResets.linkFor(user.id);
    await this.audit.record(actor, 'user.reset_link', `user:${id}`, { sent: false });
    return { user, url, expiresAt, sent: false };
  }

  /**
   * Lifts every sign-in lock and slow-down of a user, from every address: what an operator does
   * for a person locked out by someone guessing. The one way to unlock (CLI, pages and API call it).
   */
  async unlockUser(actor: Actor, id: string): Promise<{ user: User; cleared: number }> {
    const user = await this.accounts.get(id);
    // Wrong passwords and wrong codes alike: a person locked out of the code step is locked out too.
    const cleared = (await this.throttle.clearUsername(user.username)) + (await this.throttle.clearSubjects(codeSubjects(user.id)));
    await this.audit.record(actor, 'user.unlock', `user:${id}`, { counters_cleared: cleared });
    return { user, cleared };
  }

  /**
   * Removes a person's second factors (their authenticator app and its recovery codes): for
   * someone who lost their phone and their codes. They sign in with the password alone after
   * this, and may set up a new app on /account.
   */
  async resetUserMfa(actor: Actor, id: string): Promise<{ user: User; removed: boolean }> {
    const user = await this.accounts.get(id);
    const removed = await this.totp.remove(user.id);
    await this.audit.record(actor, 'user.mfa_reset', `user:${id}`, { authenticator_removed: removed });
    return { user, removed };
  }

  /** Refused for the operator's own account, and for the last enabled admin (LastAdminError). */
  async setUserDisabled(actor: Actor, id: string, disabled: boolean): Promise<User> {
    if (disabled && actor.userId === id) throw new GatehouseError(400, 'invalid_request', NOT_YOURSELF);
    const user = await this.accounts.setDisabled(id, disabled);
    await this.audit.record(actor, disabled ? 'user.disable' : 'user.enable', `user:${id}`);
    return user;
  }

  /** Removing the flag is refused for the operator's own account, and for the last enabled admin (LastAdminError). */
  async setUserAdmin(actor: Actor, id: string, isAdmin: boolean): Promise<User> {
    if (!isAdmin && actor.userId === id) throw new GatehouseError(400, 'invalid_request', NOT_YOURSELF);
    const user = await this.accounts.setAdmin(id, isAdmin);
    await this.audit.record(actor, isAdmin ? 'user.grant_admin' : 'user.remove_admin', `user:${id}`);
    return user;
  }

  async revokeUserGrant(actor: Actor, sub: string, grantId: string): Promise<void> {
    await this.grants.revokeForUser(sub, grantId);
    await this.audit.record(actor, 'grant.revoke', `grant:${grantId}`, { user: sub });
  }

  /** A user's live grants, each with its client's name. */
  async userGrants(sub: string): Promise<NamedGrant[]> {
    await this.accounts.get(sub);
    const names = await this.clientNames();
    return (await this.grants.listForUser(sub)).map((g) => ({ ...g, clientName: names.get(g.clientId) ?? null }));
  }

  /** A user's /userdata documents, one per app; `clientName` is null for a deleted client or the unassigned owner. */
  async userDocuments(sub: string): Promise<AppDocument[]> {
    await this.accounts.get(sub);
    const names = await this.clientNames();
    return (await this.userdata.listForUser(sub)).map((d) => ({ ...d, clientName: names.get(d.clientId) ?? null }));
  }

  /** One app's stored document of a user, with its contents. */
  async userDocument(sub: string, clientId: string): Promise<AppDocument & Pick<UserDocument, 'document'>> {
    await this.accounts.get(sub);
    const stored = await this.userdata.find(sub, clientId);
    if (!stored) throw new NotFoundError(`a document of app ${clientId} for user ${sub}`);
    const names = await this.clientNames();
    return { clientId, clientName: names.get(clientId) ?? null, version: stored.version, updatedAt: stored.updatedAt!, bytes: Buffer.byteLength(JSON.stringify(stored.document)), document: stored.document };
  }

  /** Empties one app's document of a user (the app sees {} at the next version). */
  async clearUserDocument(actor: Actor, sub: string, clientId: string): Promise<void> {
    await this.accounts.get(sub);
    const cleared = await this.userdata.clear(sub, clientId);
    await this.audit.record(actor, 'userdata.clear', `user:${sub}`, { client: clientId, version: cleared.version });
  }

  private async clientNames(): Promise<Map<string, string>> {
    return new Map((await this.clients.list()).map((c) => [c.clientId, c.name]));
  }

  async createApiKey(actor: Actor, clientId: string, scopes: unknown[], name?: string) {
    const created = await this.apiKeys.create(clientId, scopes, name);
    await this.audit.record(actor, 'api_key.create', `api_key:${created.apiKey.id}`, { client: clientId, scopes: created.apiKey.scopes });
    return created;
  }

  async revokeApiKey(actor: Actor, id: string) {
    const revoked = await this.apiKeys.revoke(id);
    await this.audit.record(actor, 'api_key.revoke', `api_key:${id}`, { client: revoked.clientId });
    return revoked;
  }

  async createAdminToken(actor: Actor, name: unknown) {
    const created = await this.adminTokens.create(name);
    await this.audit.record(actor, 'admin_token.create', `admin_token:${created.adminToken.id}`, { name: created.adminToken.name });
    return created;
  }

  async revokeAdminToken(actor: Actor, id: string) {
    const revoked = await this.adminTokens.revoke(id);
    await this.audit.record(actor, 'admin_token.revoke', `admin_token:${id}`);
    return revoked;
  }

  async rotateSigningKeys(actor: Actor) {
    const keys = await this.keys.rotate();
    await this.audit.record(actor, 'keys.rotate', 'signing_keys');
    return keys;
  }

  async retireSigningKey(actor: Actor, kid: string) {
    await this.keys.retire(kid);
    await this.audit.record(actor, 'keys.retire', `signing_key:${kid}`);
  }

  async createScope(actor: Actor, input: { name?: unknown; description?: unknown }): Promise<Scope> {
    const scope = await this.scopes.create(input);
    await this.audit.record(actor, 'scope.create', `scope:${scope.name}`, { description: scope.description });
    return scope;
  }

  /** Refused (ScopeInUseError, naming them) while a client holds the scope. */
  async deleteScope(actor: Actor, name: string): Promise<Scope> {
    const scope = await this.scopes.delete(name);
    await this.audit.record(actor, 'scope.delete', `scope:${scope.name}`);
    return scope;
  }

  async createResource(actor: Actor, input: ResourceInput): Promise<Resource> {
    const resource = await this.resources.create(input);
    await this.audit.record(actor, 'resource.create', `resource:${resource.audience}`, { scopes: resource.scopes, token_format: resource.tokenFormat });
    return resource;
  }

  async updateResource(actor: Actor, audience: string, changes: ResourceInput): Promise<Resource> {
    const resource = await this.resources.update(audience, changes);
    const fields = Object.entries(changes)
      .filter(([, v]) => v !== undefined)
      .map(([k]) => k);
    await this.audit.record(actor, 'resource.update', `resource:${audience}`, { fields });
    return resource;
  }

  /** Refused (409, naming them) while a client gets the resource by default. */
  async deleteResource(actor: Actor, audience: string): Promise<Resource> {
    const resource = await this.resources.delete(audience);
    await this.audit.record(actor, 'resource.delete', `resource:${audience}`);
    return resource;
  }
}
