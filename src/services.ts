import type { Knex } from 'knex';
import { ClientsService } from './clients/service.ts';
import type { Config } from './config.ts';
import { migrateToLatest, openDatabase } from './db.ts';
import { KeysService } from './keys/service.ts';
import { AccountsService } from './accounts/service.ts';
import { CredentialThrottle } from './accounts/throttle.ts';
import { ApiKeysService } from './apikeys/service.ts';
import { UserdataService } from './userdata/service.ts';
import { createAdapterFactory, type Stores } from '../adapters/index.ts';
import { GrantsService } from './oidc/index.ts';
import { AuditLog } from './admin/audit.ts';
import { AdminOperations } from './admin/operations.ts';
import { AdminTokensService } from './admin/tokens.ts';
import { AdminSessionsService } from './admin/sessions.ts';
import { AccountSessionsService } from './account/sessions.ts';
import { AccountEvents } from './account/events.ts';
import { createPasskeys, type PasskeysService } from './accounts/passkeys/index.ts';
import { connectRedis } from './stores/redis.ts';
import { redactUrl } from './observability/redact.ts';
import { SqliteStatements } from '../adapters/sqlite.ts';
import { isConnectionError } from './stores/availability.ts';
import { loadClientSecretKey, loadCookieKeys, SettingsStore } from './settings/store.ts';
import { createQuietLogger, type Logger } from './observability/logger.ts';
import type { HttpMetrics } from './observability/metrics.ts';
import { BackchannelDeliveries } from './logout/backchannel-deliveries.ts';
import { BackchannelLogout } from './logout/backchannel.ts';
import { SecurityEvents } from './observability/security-events.ts';
import { openInvalidations, type Invalidations } from './cache/invalidation.ts';
import { ScopesService } from './scopes/service.ts';
import { loadAtRest } from './settings/at-rest.ts';
import { TotpService } from './accounts/mfa/totp.ts';
import { ResourcesService } from './resources/service.ts';
import { AccountLinks } from './accounts/recovery/links.ts';
import { PasswordResetService } from './accounts/recovery/password-reset.ts';
import { EmailVerificationService } from './accounts/recovery/email-verification.ts';
import { smtpMailer, type Mailer } from './mail/mailer.ts';
import { Outbox } from './mail/outbox.ts';
import { IdpsService } from './idps/service.ts';
import { Upstreams } from './idps/upstream.ts';

/** The domain services every entry point (server, CLI, tests) shares: one source of truth. */
export interface Services {
  config: Config;
  db: Knex;
  stores: Stores;
  settings: SettingsStore;
  clients: ClientsService;
  /** API scopes (rows; GATEHOUSE_API_SCOPES only seeds them), cached per process and dropped by message. */
  scopes: ScopesService;
  /** Resource servers (RFC 8707): the APIs clients ask access tokens for, cached per process and dropped by message. */
  resources: ResourcesService;
  keys: KeysService;
  accounts: AccountsService;
  throttle: CredentialThrottle;
  /** Authenticator apps (TOTP) and recovery codes of people. */
  totp: TotpService;
  apiKeys: ApiKeysService;
  userdata: UserdataService;
  /** The one adapter factory: oidc-provider's storage, also used to revoke grants outside a request. */
  adapters: ReturnType<typeof createAdapterFactory>;
  grants: GrantsService;
  adminTokens: AdminTokensService;
  /** Operators signed in to the admin pages (database rows; the pages keep the cookie). */
  adminSessions: AdminSessionsService;
  /** People signed in to their own account page, /account (database rows; the page keeps the cookie). */
  accountSessions: AccountSessionsService;
  /** Each person's recent security events, shown on /account. */
  accountEvents: AccountEvents;
  passkeys: PasskeysService;
  audit: AuditLog;
  /** Every operator change, audited: what the CLI, admin pages and admin API call. */
  admin: AdminOperations;
  log: Logger;
  events: SecurityEvents;
  /** Set when the operator turned metrics on (GATEHOUSE_METRICS). */
  metrics: HttpMetrics | undefined;
  /** Tells every Gatehouse process that something it may cache changed (clients, keys, scopes, locks). */
  invalidations: Invalidations;
  /** Sends logout tokens to apps whose sign-in ended (OpenID Connect Back-Channel Logout). */
  backchannel: BackchannelLogout;
  /** Forgotten passwords: mailed single-use links (or handed over by an operator). */
  passwordResets: PasswordResetService;
  /** Address verification links; `startChange` for a new address. */
  emailVerification: EmailVerificationService;
  /** Mail sent after the answer (undefined without GATEHOUSE_SMTP_URL). */
  outbox: Outbox | undefined;
  /** Upstream identity providers (Google, GitHub, any OpenID Connect issuer) and the identities linked through them. */
  idps: IdpsService;
  /** Gatehouse as the relying party of those providers (openid-client), every call bounded by GATEHOUSE_IDP_TIMEOUT_MS. */
  upstreams: Upstreams;
  close(): Promise<void>;
}

export interface Observability {
  log?: Logger;
  metrics?: HttpMetrics | undefined;
}

export interface OpenOptions extends Observability {
  migrate?: boolean;
  /** Told the names of the migrations this opening applied (none when the schema was up to date). */
  migrated?: (applied: string[]) => void;
  /**
   * Set by a process that serves requests: it must hear the changes other processes make (see
   * cache/invalidation.ts). The CLI only tells, and opens no connection to listen.
   */
  listen?: boolean;
}

/** Opens the stores and the services over them. Without a logger (the CLI), only warnings reach stderr. */
export async function openServices(config: Config, { migrate = true, migrated, log = createQuietLogger(), metrics, listen = false }: OpenOptions = {}): Promise<Services> {
  const db = openDatabase(config.database, log);
  let redis: Awaited<ReturnType<typeof connectRedis>> | undefined;
  let invalidations: Invalidations | undefined;
  try {
    if (migrate) {
      // Not inside migrated?.(…): an optional call skips evaluating its arguments when absent.
      const applied = await migrateWhenReachable(db).catch((err) => {
        if (!isConnectionError(err)) throw err;
        const where = config.database.client === 'pg' ? redactUrl(config.database.connectionString) : config.database.filename;
        throw new Error(`the database at ${where} is unreachable (${(err as Error).message})`);
      });
      migrated?.(applied);
    }
    if (config.redisUrl) redis = await connectRedis(config.redisUrl, config.redisOptions);
    const sqlite = config.database.client === 'sqlite' ? new SqliteStatements(config.database.filename, config.database.synchronous) : undefined;
    const stores: Stores = { db, ...(sqlite ? { sqlite } : {}), ...(redis ? { redis: { client: redis, prefix: config.redisPrefix } } : {}) };
    invalidations = openInvalidations(config, { db, redis, log, listen });
    const atRest = loadAtRest(config);
    const settings = new SettingsStore(db, atRest);
    const secretKey = await loadClientSecretKey(settings);
    const scopes = new ScopesService(db, invalidations);
    // GATEHOUSE_API_SCOPES seeds the scopes table (each name once; the table is the truth) wherever
    // the schema is brought up to date: a server, and a CLI run before any server started, so
    // `clients create --scope "read write"` on a fresh database finds the scopes it names.
    if (migrate) await scopes.seed(config.apiScopes);
    const resources = new ResourcesService(db, () => scopes.names(), invalidations);
    // The clients service says when a client's tokens end; the oidc boundary (grants, built over
    // the adapters, which read clients) knows how. Called only after everything here is built.
    const clients = new ClientsService(
      db,
      secretKey,
      atRest,
      () => scopes.names(),
      async () => (await resources.list()).map((r) => r.audience),
      invalidations,
      {
        revokeTokens: (clientId) => revokedOrWarned(log, `client ${clientId}`, () => grants.revokeClientTokens(clientId)),
        revokeAll: (clientId) => revokedOrWarned(log, `client ${clientId}`, () => grants.revokeClient(clientId)),
      },
    );
    const apiKeys = new ApiKeysService(db, secretKey, (clientId) => clients.exists(clientId));
    const userdata = new UserdataService(db, config.userdataMaxBytes);
    const keys = new KeysService(db, invalidations, atRest);
    const adapters = createAdapterFactory(stores, clients);
    const backchannel: BackchannelLogout = new BackchannelLogout({
      issuer: config.issuer,
      findClient: (clientId) => clients.find(clientId),
      privateJwks: () => keys.privateJwks(),
      deliveries: () => deliveries,
      log,
    });
    // A serving process also sends what others left (a CLI run's retries, a stopped process's).
    const deliveries = new BackchannelDeliveries({
      db,
      send: (logout) => backchannel.deliver(logout),
      log,
      count: (outcome) => metrics?.backchannelLogout(outcome),
      ...(listen ? { pollMs: 5000 } : {}),
    });
    if (listen) deliveries.start();
    const grants = new GrantsService(stores, adapters, (sub, signIns) => backchannel.notify(sub, signIns));
    const adminSessions = new AdminSessionsService(db);
    const accountSessions = new AccountSessionsService(db);
    // A person's credentials change: their sign-ins end everywhere, the admin pages included.
    const accounts = new AccountsService(
      db,
      {
        revokeAll: async (id) => {
          await adminSessions.endAllOf(id);
          await accountSessions.endAllOf(id);
          await revokedOrWarned(log, `user ${id}`, () => grants.revokeUser(id));
        },
        revokeSignIns: async (id) => {
          await adminSessions.endAllOf(id);
          await accountSessions.endAllOf(id);
          await revokedOrWarned(log, `user ${id}`, () => grants.revokeUserSignIns(id));
        },
      },
      sqlite?.db,
    );
    const throttle = new CredentialThrottle(db);
    const totp = new TotpService(db, atRest, new URL(config.issuer).host);
    const adminTokens = new AdminTokensService(db, secretKey);
    const events = new SecurityEvents(log, metrics);
    const accountEvents = new AccountEvents(
      db,
      async (username) => (await accounts.usernameExists(username) ? (await accounts.resolve(username.trim())).id : undefined),
      (err) => log.warn({ detail: (err as Error).message }, 'an account event could not be recorded'),
    );
    events.listen((event, fields) => accountEvents.fromSecurityEvent(event, fields));
    const audit = new AuditLog(db, events);
    const passkeys = createPasskeys(db, config.issuer);
    const mailer: Mailer | undefined = config.mail ? smtpMailer(config.mail) : undefined;
    const outbox = mailer ? new Outbox(mailer, log) : undefined;
    const links = new AccountLinks(db);
    const passwordResets = new PasswordResetService(links, accounts, throttle, config.issuer, mailer && outbox ? { mailer, outbox } : undefined);
    const emailVerification = new EmailVerificationService(links, accounts, config.issuer, mailer);
    const idps = new IdpsService(db, atRest, config.issuer);
    const upstreams = new Upstreams(idps, config.idpTimeoutMs);
    const admin = new AdminOperations(clients, accounts, apiKeys, grants, keys, adminTokens, audit, userdata, scopes, resources, throttle, passwordResets, totp, idps);
    const close = async () => {
      // Logout tokens on their way get a few seconds to arrive (a CLI run exits right after);
      // retries still waiting stay stored, for the next process to send.
      await Promise.race([Promise.all([deliveries.settled(), outbox?.idle()]), new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
      deliveries.close();
      await invalidations!.close();
      redis?.disconnect();
      sqlite?.close();
      await db.destroy();
    };
    return { config, db, stores, settings, clients, scopes, resources, keys, accounts, throttle, totp, apiKeys, userdata, adapters, grants, adminTokens, adminSessions, accountSessions, accountEvents, passkeys, audit, admin, log, events, metrics, invalidations, backchannel, passwordResets, emailVerification, outbox, idps, upstreams, close };
  } catch (err) {
    await invalidations?.close();
    redis?.disconnect();
    await db.destroy();
    throw err;
  }
}

export { loadCookieKeys };

/**
 * Runs a revocation that follows a change already made (a new secret, a disabled client, a new
 * password). Should a store be unreachable, the change stands and is answered (a new secret is
 * shown: refusing it now would lose it, and keep the old one working), and the log says what
 * may be left: the database is revoked first, so with Redis down only access tokens and codes,
 * which expire within their lifetime.
 */
async function revokedOrWarned(log: Logger, whose: string, revoke: () => Promise<void>): Promise<void> {
  try {
    await revoke();
  } catch (err) {
    if (!isConnectionError(err)) throw err;
    log.warn({ whose, detail: (err as Error).message }, 'a change was made, but not every token it ends could be revoked (a store is unreachable); those left live out their lifetime');
  }
}

const START_ATTEMPTS = 3;

/**
 * Migrates, trying again twice a second apart when the database cannot be reached: a database
 * starting beside Gatehouse (a container, a busy host) may take a few seconds to accept its first
 * connection. Requests later fail fast instead (503).
 */
async function migrateWhenReachable(db: Knex): Promise<string[]> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await migrateToLatest(db);
    } catch (err) {
      if (attempt >= START_ATTEMPTS || !isConnectionError(err)) throw err;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

/** What must exist before several workers start at once: the schema, the first signing keys, the cookie keys. */
export async function prepareStores(config: Config): Promise<void> {
  const services = await openServices(config);
  try {
    await services.keys.ensureSigningKeys();
    await services.clients.sealPlainSecrets();
    await loadCookieKeys(services.settings, config.cookieKeys);
  } finally {
    await services.close();
  }
}
