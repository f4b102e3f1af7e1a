/** Polls `check` until it holds or `ms` pass; true if it held. A test waits for a condition, not for a time. */
export async function waitFor(check: () => boolean | Promise<boolean>, ms: number, every = 50): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await Promise.resolve(check()).catch(() => false)) return true;
    await new Promise((r) => setTimeout(r, every));
  }
  return Boolean(await Promise.resolve(check()).catch(() => false));
}
