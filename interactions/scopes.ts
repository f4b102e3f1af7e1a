/** What each scope shares, in the words the consent page uses. */
const DESCRIPTIONS: Record<string, string> = {
  openid: 'Know who you are: your Gatehouse account identifier',
  profile: 'Your name and username',
  email: 'Your email address and whether it is verified',
  offline_access: 'Stay connected while you are away, until you revoke access',
  read: 'Read data on your behalf',
  write: 'Change data on your behalf',
  // What a token with this scope reaches: /userdata/me, the token's own app's document only.
  userdata: 'Read and change the settings this app keeps for you in Gatehouse (its own, never another app’s)',
};

/** `stored`: the API scopes' own descriptions (the scopes table), which win over the words here. */
export function describeScope(scope: string, stored?: ReadonlyMap<string, string>): string {
  return stored?.get(scope) ?? DESCRIPTIONS[scope] ?? `Use the "${scope}" permission on your behalf`;
}
