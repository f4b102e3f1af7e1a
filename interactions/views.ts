import { fileURLToPath } from 'node:url';
import nunjucks from 'nunjucks';

/** The nunjucks environment for every page Gatehouse renders (interactions, errors, admin). */
export interface Views {
  render(template: string, context: Record<string, unknown>): string;
}

export function createViews(): Views {
  const root = fileURLToPath(new URL('./views', import.meta.url));
  const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(root, { noCache: false }), {
    autoescape: true,
    throwOnUndefined: false,
  });
  return {
    render: (template, context) => env.render(template, context),
  };
}
