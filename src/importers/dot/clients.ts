import type { Knex } from 'knex';
import { djangoHashProblem, isDjangoHash } from '../../accounts/django-hashers.ts';
import { checkClientSettings, type ClientSettings, type GrantType } from '../../clients/rules.ts';
import { hashClientSecret, storePlainClientSecret } from '../../clients/secrets.ts';
import type { Client } from '../../clients/service.ts';
import { ValidationError } from '../../errors.ts';
import type { Services } from '../../services.ts';
import { collisionReason, provenanceOf, recordImported } from './provenance.ts';
import { clip, fieldErrors, type ClientReport, type Collision } from './report.ts';
import type { DotApplication, DotData } from './source.ts';

/**
 * DOT's applications become clients with the same client_id and secret, through the clients'
 * own rules; grant types Gatehouse does not serve are refused with the reason. A client
 * Gatehouse has that this source did not import is a collision; one it imported before is
 * kept as the operator has it, at most asked for consent again.
 */

const GRANT_MAPPING: Record<string, { grants: GrantType[]; note?: string } | { refused: string }> = {
  'authorization-code': { grants: ['authorization_code', 'refresh_token'] },
  'client-credentials': { grants: ['client_credentials'] },
  'openid-hybrid': {
    grants: ['authorization_code', 'refresh_token'],
    note: 'openid-hybrid became authorization_code: hybrid response types (code id_token, code token) are not served; the app must use response_type=code',
  },
  implicit: {
    refused:
      'the implicit grant is removed by OAuth 2.1 and the Security BCP (tokens in the URL leak); move the app to the authorization code flow with PKCE as a public client',
  },
  password: {
    refused:
      'the password grant is removed by OAuth 2.1 (the app sees the password); move the app to the authorization code flow, or to client_credentials if it acts for itself',
  },
};

const splitList = (v: string | undefined) => (v ?? '').split(/\s+/).filter(Boolean);

interface PlannedClient {
  settings: ClientSettings;
  storedSecret: string | null;
  notes: string[];
}

function planClient(app: DotApplication, siteScopes: readonly string[], secretKey: Buffer): PlannedClient | { refused: string[] } {
  const notes: string[] = [];
  // Own keys only: a grant type named "constructor" is unknown, not Object's constructor.
  const mapping = Object.hasOwn(GRANT_MAPPING, app.grantType) ? GRANT_MAPPING[app.grantType] : undefined;
  if (!mapping) return { refused: [`unknown grant type "${clip(app.grantType, 100)}"`] };
  if ('refused' in mapping) return { refused: [`grant type ${app.grantType} refused: ${mapping.refused}`] };
  if (mapping.note) notes.push(mapping.note);

  const type = app.clientType === 'public' ? 'public' : 'confidential';
  const grantTypes = mapping.grants.filter((g) => !(type === 'public' && g === 'client_credentials'));
  const checkUris = (field: 'redirectUris' | 'postLogoutRedirectUris' | 'allowedOrigins', values: string[]) =>
    values.filter((uri) => {
      try {
        checkClientSettings(
          { name: 'x', type: 'public', grantTypes: ['authorization_code'], redirectUris: ['https://example.com/'], [field]: [uri] },
          siteScopes,
        );
        return true;
      } catch (err) {
        notes.push(
          `${field === 'redirectUris' ? 'redirect URI' : field === 'allowedOrigins' ? 'allowed origin' : 'post-logout redirect URI'} refused: ${(err as ValidationError).fields?.[field] ?? (err as Error).message}`,
        );
        return false;
      }
    });
  const redirectUris = checkUris('redirectUris', splitList(app.redirectUris));
  const postLogoutRedirectUris = checkUris('postLogoutRedirectUris', splitList(app.postLogoutRedirectUris));
  const allowedOrigins = checkUris('allowedOrigins', splitList(app.allowedOrigins));
  if (grantTypes.includes('authorization_code') && redirectUris.length === 0) {
    return { refused: [...notes, 'no usable redirect URI is left for the authorization code grant'] };
  }

  const name = app.name.trim() || app.clientId;
  if (!app.name.trim()) notes.push('had no name: named after its client_id');

  // Scopes: sign-in scopes with the authorization code grant, and every API scope of the DOT
  // site (DOT keeps scopes site-wide, so any application could ask for any of them).
  const scope = [...(grantTypes.includes('authorization_code') ? ['openid', 'profile', 'email', 'offline_access'] : []), ...siteScopes];

  let storedSecret: string | null = null;
  let idTokenSignedResponseAlg: ClientSettings['idTokenSignedResponseAlg'] = 'RS256';
  const secretIsHashed = app.hashClientSecret === true || (app.hashClientSecret == null && isDjangoHash(app.clientSecret));
  if (app.algorithm === 'HS256') {
    if (secretIsHashed) {
      notes.push('HS256 needs the plain secret, but DOT stored it hashed: ID tokens are signed with RS256 instead');
    } else {
      idTokenSignedResponseAlg = 'HS256';
      notes.push('HS256: its secret is the HMAC key of its ID tokens, so it is kept as it is, not hashed');
    }
  } else if (app.algorithm === '' && grantTypes.includes('authorization_code')) {
    notes.push('had no OIDC algorithm in DOT: ID tokens (when openid is asked for) are signed with RS256');
  }
  if (type === 'confidential') {
    if (!app.clientSecret) return { refused: [...notes, 'a confidential application without a secret'] };
    if (idTokenSignedResponseAlg === 'HS256') storedSecret = storePlainClientSecret(app.clientSecret);
    else if (secretIsHashed) {
      const hashProblem = djangoHashProblem(app.clientSecret);
      if (hashProblem) return { refused: [...notes, `secret hash refused: ${hashProblem}`] };
      storedSecret = app.clientSecret;
      notes.push('secret kept as DOT hashed it (Django PBKDF2); re-hashed our way at its first successful use');
    } else {
      storedSecret = hashClientSecret(app.clientSecret, secretKey);
      notes.push('secret kept (now stored as an HMAC)');
    }
  } else {
    notes.push('public client: authenticates with PKCE and no secret; its DOT secret is no longer used');
  }
  if (app.skipAuthorization) notes.push('skip_authorization: first-party, no consent page');

  try {
    const settings = checkClientSettings(
      {
        name,
        type,
        grantTypes,
        redirectUris,
        postLogoutRedirectUris,
        allowedOrigins,
        scope,
        skipConsent: app.skipAuthorization,
        idTokenSignedResponseAlg,
        // DOT required PKCE of public clients only when configured; we always do (OAuth 2.1).
        requirePkce: false,
      },
      siteScopes,
      { keepsPlainSecret: idTokenSignedResponseAlg === 'HS256' },
    );
    return { settings, storedSecret, notes };
  } catch (err) {
    return { refused: [...notes, (err as Error).message] };
  }
}

/** What a client of this import is in Gatehouse once the run is through: refresh tokens are checked against it. */
export interface ClientHere {
  clientId: string;
  scope: string[];
  grantTypes: GrantType[];
  disabled: boolean;
}

export interface ClientsOutcome {
  reports: ClientReport[];
  collisions: Collision[];
  /** By DOT application id: the clients this source owns (imported now or before). */
  here: Map<number, ClientHere>;
  /** Clients this run changed that existed before: every process must drop its copy once committed. */
  tightened: string[];
}

const readClient = async (trx: Knex, services: Services, clientId: string): Promise<ClientHere> => {
  const c = await services.clients.get(clientId, trx);
  return { clientId, scope: c.scope, grantTypes: c.grantTypes, disabled: c.disabled };
};

/**
 * What a re-run says about a client this source imported before, and the one change it may
 * make: asking for consent again when DOT stopped skipping it. Everything else stays as the
 * operator has it; what DOT would add is reported, not applied.
 */
function reRunNotes(current: Client, planned: ClientSettings): { notes: string[]; requireConsent: boolean } {
  const notes = ['already imported; kept as it is in Gatehouse (a re-run never loosens: it can only ask for consent again)'];
  const fields = [
    ['redirect URI', 'redirectUris'],
    ['post-logout redirect URI', 'postLogoutRedirectUris'],
    ['allowed origin', 'allowedOrigins'],
  ] as const;
  for (const [words, field] of fields) {
    const added = planned[field].filter((uri) => !current[field].includes(uri));
    if (added.length)
      notes.push(
        `DOT lists ${words}${added.length === 1 ? '' : 's'} ${added.map((u) => clip(u, 100)).join(' ')} that Gatehouse does not: not added (add ${added.length === 1 ? 'it' : 'them'} with clients update if wanted)`,
      );
  }
  if (current.disabled) notes.push('disabled in Gatehouse: stays disabled, and no refresh token is carried over to it');
  const requireConsent = current.skipConsent && !planned.skipConsent;
  if (requireConsent) notes.push('DOT no longer skips authorization: people are asked for consent again');
  else if (planned.skipConsent && !current.skipConsent) notes.push('DOT skips authorization but Gatehouse asks for consent: consent is still asked');
  return { notes, requireConsent };
}

export async function importClients(
  trx: Knex,
  data: DotData,
  services: Services,
  siteScopes: readonly string[],
  secretKey: Buffer,
  label: string,
): Promise<ClientsOutcome> {
  const out: ClientsOutcome = { reports: [], collisions: [], here: new Map(), tightened: [] };
  for (const app of data.applications) {
    const plan = planClient(app, siteScopes, secretKey);
    const report: ClientReport = { client_id: clip(app.clientId), name: clip(app.name.trim() || app.clientId), outcome: 'imported', notes: [] };
    out.reports.push(report);
    if ('refused' in plan) {
      report.outcome = 'refused';
      report.notes = plan.refused;
      continue;
    }
    report.notes = plan.notes;
    const existing = await services.clients.find(app.clientId, trx);
    if (existing) {
      const provenance = await provenanceOf(trx, 'client', app.clientId, label);
      if (provenance.from !== 'this source') {
        const reason = collisionReason(`client_id ${clip(app.clientId)} is Gatehouse client "${clip(existing.name)}", which`, provenance);
        report.outcome = 'refused';
        report.notes = [reason];
        out.collisions.push({ kind: 'client', id: report.client_id, name: report.name, reason });
        continue;
      }
      // Its secret is left alone too: it may have been upgraded or rotated since the first import.
      const { notes, requireConsent } = reRunNotes(existing, plan.settings);
      report.notes = notes;
      report.outcome = requireConsent ? 'updated' : 'unchanged';
      if (requireConsent) {
        await services.clients.requireConsent(trx, app.clientId);
        out.tightened.push(app.clientId);
      }
    } else {
      try {
        await services.clients.createImported(trx, app.clientId, plan.settings, plan.storedSecret);
      } catch (err) {
        if (!(err instanceof ValidationError)) throw err;
        report.outcome = 'refused';
        report.notes = [`refused: ${fieldErrors(err)}`];
        continue;
      }
      await recordImported(trx, 'client', app.clientId, label);
    }
    out.here.set(app.id, await readClient(trx, services, app.clientId));
  }
  return out;
}
