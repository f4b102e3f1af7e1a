import { fileURLToPath } from 'node:url';
import nunjucks from 'nunjucks';

/** The nunjucks environment for every page Gatehouse renders (interactions, errors, admin). */
export interface Views {
  render(template: string, context: Record<string, unknown>): string;
}

/** Template names under this prefix are the admin's, kept beside its code in src/admin/views. */
const ADMIN_PREFIX = 'admin/';

export function createViews(): Views {
  const root = fileURLToPath(new URL('../../interactions/views', import.meta.url));
  const adminRoot = fileURLToPath(new URL('../admin/views', import.meta.url));
  const interactionViews = new nunjucks.FileSystemLoader(root, { noCache: false });
  const adminViews = new nunjucks.FileSystemLoader(adminRoot, { noCache: false });
  // "admin/NAME" is looked up in src/admin/views only, every other name here only: the two
  // folders both have a layout.njk, an error.njk and a login.njk.
  const byPrefix: nunjucks.ILoader = {
    getSource: (name) => (name.startsWith(ADMIN_PREFIX) ? adminViews.getSource(name.slice(ADMIN_PREFIX.length)) : interactionViews.getSource(name)),
  };
  const env = new nunjucks.Environment(byPrefix, {
    autoescape: true,
    throwOnUndefined: false,
  });
  return {
    render: (template, context) => env.render(template, context),
  };
}
