import fs from 'node:fs';
import type Router from '@koa/router';
import { NotFoundError } from '../../errors.ts';

const asset = (file: string, type: string) => ({ type, body: fs.readFileSync(new URL(`../../../interactions/public/${file}`, import.meta.url)) });
const ASSETS: Record<string, { type: string; body: Buffer }> = {
  'admin.js': asset('admin.js', 'application/javascript; charset=utf-8'),
  'admin.css': asset('admin.css', 'text/css; charset=utf-8'),
};

/** The admin's script and stylesheet: served to anyone (the sign-in page needs them). */
export const ASSET_PATHS: readonly string[] = Object.keys(ASSETS).map((name) => `/admin/assets/${name}`);

export function assetRoutes(router: Router): void {
  router.get('/assets/:file', (ctx) => {
    const name = ctx.params.file!;
    if (!Object.hasOwn(ASSETS, name)) throw new NotFoundError(`asset ${name}`);
    const found = ASSETS[name]!;
    ctx.type = found.type;
    ctx.set('cache-control', 'public, max-age=3600');
    ctx.body = found.body;
  });
}
