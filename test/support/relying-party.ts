import * as oidc from 'openid-client';
import type { TestGatehouse } from './gatehouse.ts';
import { runCli } from './cli.ts';
import { UserAgent, type Page } from './user-agent.ts';

export const REDIRECT_URI = 'http://127.0.0.1:8765/callback';
export const POST_LOGOUT_URI = 'http://127.0.0.1:8765/signed-out';

export interface RegisteredClient {
  clientId: string;
  clientSecret?: string;
}

export async function createUser(gh: TestGatehouse, username: string, password: string, extra: string[] = []): Promise<string> {
  const res = await runCli(['users', 'create', '--username', username, '--email', `${username}@example.com`, '--password-stdin', '--json', ...extra], gh.env, `${password}\n`);
  if (res.code !== 0) throw new Error(res.stderr);
  return res.json().id;
}

export async function createClient(gh: TestGatehouse, args: string[]): Promise<RegisteredClient> {
  const res = await runCli(['clients', 'create', '--json', ...args], gh.env);
  if (res.code !== 0) throw new Error(res.stderr);
  const json = res.json();
  return { clientId: json.client_id, clientSecret: json.client_secret };
}

/** A web app's openid-client configuration, from discovery. */
export async function relyingParty(gh: TestGatehouse, client: RegisteredClient, auth: 'basic' | 'post' | 'none'): Promise<oidc.Configuration> {
  const method =
    auth === 'basic' ? oidc.ClientSecretBasic(client.clientSecret!) : auth === 'post' ? oidc.ClientSecretPost(client.clientSecret!) : oidc.None();
  return oidc.discovery(new URL(gh.config.issuer), client.clientId, undefined, method, { execute: [oidc.allowInsecureRequests] });
}

/** Login form, then (if asked) the consent page with Allow; returns where the browser was sent. */
export async function signInAndAllow(agent: UserAgent, authorizationUrl: string, username: string, password: string): Promise<Page> {
  let page = await agent.open(authorizationUrl);
  if (/name="password"/.test(page.html)) page = await agent.submit(page, /\/login$/, { username, password });
  if (/name="decision"/.test(page.html)) page = await agent.submit(page, /\/consent$/, { decision: 'allow' });
  return page;
}

export { oidc };
