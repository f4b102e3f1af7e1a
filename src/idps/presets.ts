/**
 * The providers people ask for by name. A preset fills in what the operator would otherwise look
 * up (issuer, scopes, the button); the operator still brings the client id and secret registered
 * there. GitHub is OAuth 2.0 only: no discovery, no ID token; who the person is comes from its API.
 */

export type Protocol = 'oidc' | 'github';

export interface Preset {
  protocol: Protocol;
  issuer: string;
  scope: string;
  /** The provider's own name, for the default button ("Sign in with Google"). */
  displayName: string;
}

/** Personal Microsoft accounts: the one Microsoft tenant whose issuer is one fixed URL. */
export const MICROSOFT_CONSUMERS = '9188040d-6c67-4c5b-b112-36a304b66dad';

const PRESETS: Record<string, (tenant: string | undefined) => Preset | string> = {
  google: (tenant) =>
    tenant ? 'google takes no tenant' : { protocol: 'oidc', issuer: 'https://accounts.google.com', scope: 'openid email profile', displayName: 'Google' },
  gitlab: (tenant) =>
    tenant ? 'gitlab takes no tenant' : { protocol: 'oidc', issuer: 'https://gitlab.com', scope: 'openid email profile', displayName: 'GitLab' },
  github: (tenant) =>
    tenant ? 'github takes no tenant' : { protocol: 'github', issuer: 'https://github.com', scope: 'read:user user:email', displayName: 'GitHub' },
  // The ID token's iss names the directory (tenant) by its ID: the multi-tenant "common" and
  // "organizations" endpoints answer with a templated issuer that no ID token matches.
  microsoft: (tenant) => {
    if (tenant !== undefined && !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(tenant)) {
      return 'microsoft:TENANT takes the directory (tenant) ID, a GUID, as Entra shows it under Overview';
    }
    return {
      protocol: 'oidc',
      issuer: `https://login.microsoftonline.com/${(tenant ?? MICROSOFT_CONSUMERS).toLowerCase()}/v2.0`,
      scope: 'openid email profile',
      displayName: 'Microsoft',
    };
  },
};

export const PRESET_NAMES = ['google', 'microsoft[:TENANT]', 'github', 'gitlab'];

/** The preset named `given` ("microsoft:TENANT" included), or the sentence saying what is wrong. */
export function presetNamed(given: string): Preset | string {
  const [name = '', tenant, ...more] = given.split(':');
  const build = Object.hasOwn(PRESETS, name) ? PRESETS[name] : undefined;
  if (!build || more.length) return `must be one of ${PRESET_NAMES.join(', ')}`;
  return build(tenant);
}

/** GitHub's REST API for a GitHub web address: api.github.com, or /api/v3 on GitHub Enterprise Server. */
export function githubApiBase(issuer: string): string {
  const url = new URL(issuer);
  return url.host === 'github.com' ? 'https://api.github.com' : `${url.origin}/api/v3`;
}
