import { randomBytes } from 'node:crypto';
import { CALLBACK_PLACEHOLDER } from '../callbacks/token.ts';

/** `{asyncqueue_callback_url}`, the only hole a target URL template has. */
const CALLBACK_HOLE = new RegExp(CALLBACK_PLACEHOLDER.replace(/[{}]/g, '\\$&'), 'g');

/**
 * A URL template as the WHATWG URL parser (ours, and undici's when it sends the request)
 * understands it, written in its canonical serialisation: `http:alice:pw@host`,
 * `http:\\alice:pw@host`, ` ht\ttp://alice:pw@host` all become `http://alice:pw@host/`.
 * Credentials are then judged on one spelling, the one that is sent, not on a regex of whatever
 * the client wrote.
 *
 * The holes (`{…}` matches of `holes`) must survive as written: serialisation would
 * percent-encode their braces in a path, and substitution looks for them verbatim. Each stands in
 * the probe as a random lower-case token, which every part of a URL (host included) keeps as is,
 * and goes back in afterwards. Undefined when the template is not an absolute http(s) URL.
 */
export function canonicalUrl(template: string, holes: RegExp = CALLBACK_HOLE): string | undefined {
  const stand = `zq${randomBytes(8).toString('hex')}`;
  const found: string[] = [];
  const probe = template.replace(holes, (hole) => `${stand}${found.push(hole) - 1}x`);
  if (!URL.canParse(probe)) return undefined;
  const url = new URL(probe);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  return url.href.replace(new RegExp(`${stand}(\\d+)x`, 'g'), (_, i: string) => found[Number(i)]);
}
