/**
 * The request workloads, each with a functional check run before and after its measurement:
 * a 200 that says "inactive" or an empty userinfo would otherwise pass as throughput.
 */
import type { RequestSpec } from './load.ts';
import { clientCredentialsToken, ensureIntrospectToken, ensureUserToken, introspect, userinfo, type Target } from './targets.ts';
import { basicAuth } from '../test/support/http.ts';

export type WorkloadKey = 'cc' | 'introspect' | 'userinfo' | 'discovery' | 'userdata';

export interface Workload {
  key: WorkloadKey;
  title: string;
  /** Whether the bare provider has a counterpart. */
  bare: boolean;
  /** Prepares what the requests present (fresh tokens) and returns the request. */
  spec(t: Target): Promise<RequestSpec>;
  /** undefined when one request of this workload gets the right answer; else what is wrong. */
  check(t: Target): Promise<string | undefined>;
}

const form = 'application/x-www-form-urlencoded';

export const WORKLOADS: Workload[] = [
  {
    key: 'cc',
    title: 'client-credentials token (Basic)',
    bare: true,
    async spec(t) {
      return {
        method: 'POST',
        path: t.paths.token,
        headers: { authorization: basicAuth(t.cc.clientId, t.cc.clientSecret), 'content-type': form },
        body: 'grant_type=client_credentials&scope=read+write',
      };
    },
    async check(t) {
      try {
        await clientCredentialsToken(t);
        return undefined;
      } catch (err) {
        return (err as Error).message;
      }
    },
  },
  {
    key: 'introspect',
    title: 'introspection (Basic)',
    bare: true,
    async spec(t) {
      const token = await ensureIntrospectToken(t);
      return {
        method: 'POST',
        path: t.paths.introspect,
        headers: { authorization: basicAuth(t.cc.clientId, t.cc.clientSecret), 'content-type': form },
        body: new URLSearchParams({ token }).toString(),
      };
    },
    async check(t) {
      const r = await introspect(t, t.introspectToken ?? '');
      return r.status === 200 && r.active ? undefined : `introspection answered ${r.status}, active=${r.active}`;
    },
  },
  {
    key: 'userinfo',
    title: "userinfo (user's access token)",
    bare: true,
    async spec(t) {
      const token = await ensureUserToken(t);
      return { method: 'GET', path: t.paths.userinfo, headers: { authorization: `Bearer ${token}` } };
    },
    async check(t) {
      const r = await userinfo(t, t.userToken ?? '');
      return r.status === 200 && r.sub ? undefined : `userinfo answered ${r.status}, sub=${r.sub}`;
    },
  },
  {
    key: 'discovery',
    title: 'discovery document',
    bare: true,
    async spec(t) {
      return { method: 'GET', path: t.paths.discovery, headers: {} };
    },
    async check(t) {
      const res = await fetch(new URL(t.paths.discovery, t.server.url));
      const body = (await res.json()) as { issuer?: string };
      return res.status === 200 && body.issuer ? undefined : `discovery answered ${res.status}`;
    },
  },
  {
    key: 'userdata',
    title: 'GET /userdata/:sub (X-API-Key)',
    bare: false,
    async spec(t) {
      if (!t.userdata) throw new Error(`${t.label} has no /userdata`);
      return { method: 'GET', path: `/userdata/${t.userdata.sub}`, headers: { 'x-api-key': t.userdata.apiKey } };
    },
    async check(t) {
      if (!t.userdata) return 'no /userdata';
      const res = await fetch(new URL(`/userdata/${t.userdata.sub}`, t.server.url), { headers: { 'x-api-key': t.userdata.apiKey } });
      const body = (await res.json()) as { theme?: string };
      return res.status === 200 && body.theme === 'dark' ? undefined : `/userdata answered ${res.status} ${JSON.stringify(body).slice(0, 200)}`;
    },
  },
];
