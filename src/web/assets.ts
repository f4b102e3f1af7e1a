import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type Koa from 'koa';

const publicFile = (name: string) => fs.readFileSync(new URL(`../../interactions/public/${name}`, import.meta.url));

// The browser half of @simplewebauthn, served by us (no CDN). Its package exports no path to
// the bundle, so it is found beside the package's entry point.
const simplewebauthnBundle = () => {
  const entry = createRequire(import.meta.url).resolve('@simplewebauthn/browser');
  return fs.readFileSync(path.join(path.dirname(entry), '..', 'dist', 'bundle', 'index.umd.min.js'));
};

/** Every file under /assets/: read once at start-up, so a request never touches the disk. */
const ASSETS: Record<string, { type: string; body: Buffer }> = {
  '/assets/gatehouse.css': { type: 'text/css', body: publicFile('gatehouse.css') },
  '/assets/passkeys.js': { type: 'application/javascript', body: publicFile('passkeys.js') },
  '/assets/simplewebauthn-browser.js': { type: 'application/javascript', body: simplewebauthnBundle() },
};

/** Serves our stylesheet and scripts (script-src 'self': the only scripts pages may run). */
export const servedAssets: Koa.Middleware = async (ctx, next) => {
  const asset = Object.hasOwn(ASSETS, ctx.path) ? ASSETS[ctx.path] : undefined;
  if (!asset || (ctx.method !== 'GET' && ctx.method !== 'HEAD')) return next();
  ctx.type = asset.type;
  ctx.set('cache-control', 'public, max-age=3600');
  ctx.body = asset.body;
};
