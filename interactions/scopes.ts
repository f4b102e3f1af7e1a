/** What each scope shares, in the words the consent page uses. */
const DESCRIPTIONS: Record<string, string> = {
  openid: 'Know who you are: your Gatehouse account identifier',
  profile: 'Your name and username',
  email: 'Your email address and whether it is verified',
  // The app gets a refresh token that keeps working after the person leaves (see
  // src/oidc/authorization-scope.ts): the page says so, since Allow is the consent to it.
  offline_access: 'Keep access when you are not using it: the app stays connected until you take access back',
  read: 'Read data on your behalf',
  write: 'Change data on your behalf',
  // What a token with this scope reaches: /userdata/me, the token's own app's document only.
  userdata: 'Read and change the settings this app keeps for you in Gatehouse (its own, never another app’s)',
};

/** `stored`: the API scopes' own descriptions (the scopes table), which win over the words here. */
export function describeScope(scope: string, stored?: ReadonlyMap<string, string>): string {
  // Object.hasOwn: an API scope may be named "constructor", which a plain lookup finds on the prototype.
  return stored?.get(scope) ?? (Object.hasOwn(DESCRIPTIONS, scope) ? DESCRIPTIONS[scope] : undefined) ?? `Use the "${scope}" permission on your behalf`;
}
