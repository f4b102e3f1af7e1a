import { errors, type Adapter, type AdapterFactory, type AdapterPayload } from 'oidc-provider';

/**
 * oidc-provider refuses a stored client whose scope holds a value its configuration does not
 * list, with "invalid_client_metadata: scope must only contain Authorization Server supported
 * scope values" and nothing else: not which client, not which scope. Scopes are rows now, so this
 * only happens when a client outlived its scope (a row deleted by hand, a process that has not
 * heard of a new scope yet); the answer, and the request's log line that carries it, then name
 * both, and what to do.
 */
export function clientsNamingUnknownScopes(adapters: AdapterFactory, supportedScopes: ReadonlySet<string>): AdapterFactory {
  // The factory is a plain function in Gatehouse (adapters/index.ts), never a class.
  const factory = adapters as (name: string) => Adapter;
  return ((name: string) => (name === 'Client' ? new ScopeCheckedClients(factory(name), supportedScopes) : factory(name))) as AdapterFactory;
}

class ScopeCheckedClients implements Adapter {
  constructor(
    private readonly inner: Adapter,
    private readonly supported: ReadonlySet<string>,
  ) {}

  async find(id: string): Promise<AdapterPayload | undefined> {
    const found = (await this.inner.find(id)) || undefined;
    const scope = typeof found?.scope === 'string' ? found.scope.split(' ').filter(Boolean) : [];
    const unknown = scope.filter((s) => !this.supported.has(s));
    if (unknown.length) {
      const named = typeof found?.client_name === 'string' ? `"${found.client_name}" (${id})` : id;
      throw new errors.InvalidClientMetadata(
        `client ${named} has scope ${unknown.join(' ')}, which this server does not know: create ${unknown.length === 1 ? 'it' : 'them'} (npm run -s cli -- scopes create --name ${unknown[0]} --description …) or remove ${unknown.length === 1 ? 'it' : 'them'} from the client`,
      );
    }
    return found;
  }

  upsert(...args: Parameters<Adapter['upsert']>) {
    return this.inner.upsert(...args);
  }
  destroy(id: string) {
    return this.inner.destroy(id);
  }
  findByUid(uid: string) {
    return this.inner.findByUid(uid);
  }
  findByUserCode(userCode: string) {
    return this.inner.findByUserCode(userCode);
  }
  consume(id: string) {
    return this.inner.consume(id);
  }
  revokeByGrantId(grantId: string) {
    return this.inner.revokeByGrantId(grantId);
  }
}
