/**
 * Handlebars templates live in templates/<target>/<name>.hbs. They are compiled
 * once, in strict mode (a missing field is an error, not an empty string) and
 * without HTML escaping (the output is not HTML; emitters pass only validated
 * or commentText()-cleaned strings).
 */
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Handlebars from 'handlebars';

const hb = Handlebars.create();

/**
 * `{{joinLines list~}}`: every string of the list as a line. Equivalent to `{{#each list}}{{this}}`
 * on lines of their own, but one string join instead of a template call per line: for the 100,000
 * lines of 10,000 services that is a few milliseconds instead of a tenth of a second, and a flat
 * string rather than a rope of 100,000 pieces to flatten later.
 */
hb.registerHelper('joinLines', (list: unknown) => {
  if (!Array.isArray(list) || !list.every((x) => typeof x === 'string')) throw new Error('joinLines needs a list of strings');
  return list.length ? `${list.join('\n')}\n` : '';
});
const cache = new Map<string, Handlebars.TemplateDelegate>();

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'templates'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('lbc: cannot find the templates folder next to package.json');
}

export function renderTemplate(target: string, name: string, context: object): string {
  const key = `${target}/${name}`;
  let tpl = cache.get(key);
  if (!tpl) {
    const src = readFileSync(join(packageRoot(), 'templates', target, `${name}.hbs`), 'utf8');
    tpl = hb.compile(src, { strict: true, noEscape: true });
    cache.set(key, tpl);
  }
  return tpl(context);
}
