/**
 * Dotted paths into provider JSON (`status`, `urls.get`, `output.0`, `assets.video`) and the
 * `{root.path}` templates of pollConfig (`{startResult.body.status_url}`, `{target.origin}`).
 */

/** A dotted path: names of letters, digits, `_`, `-` or `$`; array elements by index. */
export const PATH_SHAPE = /^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$/;

/** The value at `path` inside `value`, or undefined when any step is missing. */
export function readPath(value: unknown, path: string): unknown {
  let current = value;
  for (const step of path.split('.')) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[step];
  }
  return current;
}

/** Parsed JSON of a body, or undefined when it is not JSON (or is base64 binary). */
export function parseJsonBody(body: string, bodyEncoding?: 'base64'): unknown {
  if (bodyEncoding === 'base64') return undefined;
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}

/** What a template may refer to: `{startResult.body.x}`, `{pollResult.headers.x}`, `{target.origin}`. */
export interface TemplateContext {
  startResult?: { statusCode: number; headers: Record<string, string>; body: unknown };
  pollResult?: { statusCode: number; headers: Record<string, string>; body: unknown };
  target?: { origin: string };
}

const REF = /\{([A-Za-z]+)\.([^{}]*)\}/g;
const ROOTS = new Set(['startResult', 'pollResult', 'target']);

/** Every `{…}` reference of a template, for validation: `[{ root, path, at }]`. */
export function templateRefs(template: string): Array<{ root: string; path: string; at: number; text: string }> {
  return [...template.matchAll(REF)].map((m) => ({ root: m[1], path: m[2], at: m.index, text: m[0] }));
}

/** Why a reference is not valid, or undefined when it is. */
export function invalidRef(root: string, path: string): string | undefined {
  if (!ROOTS.has(root)) return `unknown template root "${root}" (use startResult, pollResult or target)`;
  if (root === 'target') return path === 'origin' ? undefined : 'target offers only {target.origin}';
  if (path === 'statusCode') return undefined;
  const [part, ...rest] = path.split('.');
  if ((part !== 'body' && part !== 'headers') || rest.length === 0 || !PATH_SHAPE.test(rest.join('.'))) {
    return `{${root}.${path}} must be {${root}.body.<path>}, {${root}.headers.<name>} or {${root}.statusCode}`;
  }
  return undefined;
}

function lookup(context: TemplateContext, root: string, path: string): unknown {
  const source = context[root as keyof TemplateContext] as Record<string, unknown> | undefined;
  if (!source) return undefined;
  if (root === 'target' || path === 'statusCode') return source[path];
  const [part, ...rest] = path.split('.');
  if (part === 'headers') return (source.headers as Record<string, string>)[rest.join('.').toLowerCase()];
  return readPath(source.body, rest.join('.'));
}

/**
 * Renders the references whose root the context has; others stay as written (a resultUrlTemplate
 * is rendered against startResult at submit time and against pollResult at poll time). A reference
 * at the very start stands for a whole URL (`{startResult.body.status_url}`) and goes in as is;
 * anywhere else it is one URL component and is percent-encoded, so an id cannot add path segments.
 * Returns `missing` for references the context should have had but did not.
 */
export function renderTemplate(template: string, context: TemplateContext): { text: string; missing: string[] } {
  const missing: string[] = [];
  const text = template.replace(REF, (whole, root: string, path: string, at: number) => {
    if (!(root in context) || context[root as keyof TemplateContext] === undefined) return whole;
    const value = lookup(context, root, path);
    if (value === undefined || value === null || typeof value === 'object') {
      missing.push(whole);
      return whole;
    }
    return at === 0 || root === 'target' ? String(value) : encodeURIComponent(String(value));
  });
  return { text, missing };
}
