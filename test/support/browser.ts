import fs from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export const chromiumAvailable = () => fs.existsSync(CHROMIUM);

/** Debian's Chromium, headless, with the flags this sandboxed, offline machine needs. */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

const DOCS = new URL('../../docs/', import.meta.url);

/**
 * The README's pictures (docs/NAME.png, tracked files) are taken only on purpose, by
 * `npm run screenshots` (GATEHOUSE_SCREENSHOTS=1): `npm test` leaves them as they are.
 */
export async function screenshotForDocs(page: Page, name: string, options: { fullPage?: boolean } = {}): Promise<void> {
  if (process.env.GATEHOUSE_SCREENSHOTS !== '1') return;
  fs.mkdirSync(DOCS, { recursive: true });
  await page.screenshot({ path: new URL(`${name}.png`, DOCS).pathname, ...options });
}
