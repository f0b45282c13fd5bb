import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { Agent, buildConnector, type Dispatcher } from 'undici';
import { type AddressClass, type NetworkList, parseNetworks, refusalOf } from './address-policy.ts';
import { isSensitiveHeader } from './header-rules.ts';

/** One outbound HTTP call (a target dispatch, a poll or a webhook delivery). */
export interface OutboundRequest {
  url: string;
  method: string;
  headers: Record<string, string>;
  /** Ignored for GET and HEAD. */
  body?: string;
  /** Covers connect, headers and body, across every redirect hop. */
  timeoutMs: number;
  /** Default 1 MiB: beyond it the body is cut and `truncated` is set. */
  maxResponseBytes?: number;
  /** Default 0: a 3xx is returned as is; n > 0 follows up to n redirects. */
  maxRedirects?: number;
}

/** The answer as stored on a task or a delivery attempt. */
export interface CapturedResponse {
  statusCode: number;
  /** Lower-case names; repeated headers joined by ", ". */
  headers: Record<string, string>;
  body: string;
  /** Set when the body is not valid UTF-8 (or holds NUL): `body` is then base64. */
  bodyEncoding?: 'base64';
  truncated?: boolean;
  /** Milliseconds from the start of the call to the end of the body. */
  duration: number;
}

/** Never an exception for network trouble: failures are data the caller maps to retries. */
export type OutboundResult =
  | { ok: true; response: CapturedResponse }
  | { ok: false; error: { code: 'timeout' | 'network' | 'invalid_url' | 'refused'; message: string }; duration: number };

/** The relay's only way out to the network (DESIGN §7). */
export interface Outbound {
  send(req: OutboundRequest): Promise<OutboundResult>;
  /** Closes the shared agent once in-flight calls finish. */
  close(): Promise<void>;
}

const DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024;
const DEFAULT_USER_AGENT = 'asyncrelay/0.1';
const REFUSED = 'ERR_OUTBOUND_REFUSED';
const REDIRECT_STATUS = new Set([301, 302, 303, 307, 308]);
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function refusal(host: string, kind: AddressClass): NodeJS.ErrnoException {
  // The class, not the resolved address: a client must not learn how internal names resolve.
  const what = isIP(host) ? `${host} is a ${kind.replace('_', '-')} address` : `${host} resolves to a ${kind.replace('_', '-')} address`;
  return Object.assign(new Error(`destination refused: ${what} (outside RELAY_ALLOWED_NETWORKS)`), { code: REFUSED });
}

/**
 * The undici connector with the SSRF guard (DESIGN §7) applied to every address it would
 * connect to: resolved names via the lookup, IP literals right here. It runs at connect time,
 * on every connection and so on every redirect hop, so DNS rebinding cannot slip past: the
 * address checked is the address connected to.
 */
function createGuardedConnector(allowed: NetworkList): buildConnector.connector {
  const lookup = ((hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err, '', 0);
      const permitted = addresses.filter((a) => refusalOf(a.address, allowed) === undefined);
      if (permitted.length === 0) return callback(refusal(hostname, refusalOf(addresses[0]?.address ?? '', allowed) ?? 'invalid'), '', 0);
      // net.connect asks for all addresses when autoSelectFamily (happy eyeballs) is on.
      if (options.all) return (callback as (e: null, a: LookupAddress[]) => void)(null, permitted);
      callback(null, permitted[0].address, permitted[0].family);
    });
  }) as LookupFunction;
  const connect = buildConnector({ lookup });
  return (options, callback) => {
    // net.connect skips the lookup for IP literals, so they are checked here. WHATWG URL parsing
    // has already turned decimal, octal and hex IPv4 forms into dotted quads.
    const host = options.hostname.replace(/^\[(.*)\]$/, '$1');
    const refused = isIP(host) ? refusalOf(host, allowed) : undefined;
    if (refused) return callback(refusal(host, refused), null);
    connect(options, callback);
  };
}

/**
 * Builds the one shared undici Agent and the `send` every outbound call uses.
 * undici's own header/body timeouts are off: `timeoutMs` of each request governs.
 */
export function createOutbound(opts: { allowedNetworks: string[]; userAgent?: string }): Outbound {
  const agent = new Agent({ connect: createGuardedConnector(parseNetworks(opts.allowedNetworks)), headersTimeout: 0, bodyTimeout: 0 });
  const userAgent = opts.userAgent ?? DEFAULT_USER_AGENT;

  async function send(req: OutboundRequest): Promise<OutboundResult> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    let url = parseHttpUrl(req.url);
    if (!url) return { ok: false, error: { code: 'invalid_url', message: 'not an http(s) URL' }, duration: elapsed() };

    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new Error(`no complete response within ${req.timeoutMs} ms`));
    }, req.timeoutMs);
    let method = req.method.toUpperCase();
    let body = method === 'GET' || method === 'HEAD' ? undefined : req.body;
    let headers = Object.keys(req.headers).some((name) => name.toLowerCase() === 'user-agent')
      ? { ...req.headers } : { ...req.headers, 'user-agent': userAgent };
    // undici sends only the origin, so credentials in the URL become Basic auth, as curl does.
    if ((url.username || url.password) && !Object.keys(headers).some((name) => name.toLowerCase() === 'authorization')) {
      const basic = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
      headers = { ...headers, authorization: `Basic ${Buffer.from(basic).toString('base64')}` };
    }
    try {
      for (let hop = 0; ; hop++) {
        const res = await agent.request({ origin: url.origin, path: url.pathname + url.search, method, headers, body, signal: controller.signal });
        const location = res.headers.location;
        if (!REDIRECT_STATUS.has(res.statusCode) || hop >= (req.maxRedirects ?? 0) || typeof location !== 'string') {
          return { ok: true, response: { ...(await capture(res, req.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES)), duration: elapsed() } };
        }
        await res.body.dump();
        const next = parseHttpUrl(location, url);
        if (!next) return { ok: false, error: { code: 'invalid_url', message: `redirect (${res.statusCode}) to a non-http(s) URL` }, duration: elapsed() };
        // Fetch semantics: 303 (and 301/302 after a POST) continue as a GET without a body.
        if ((res.statusCode === 303 && method !== 'HEAD') || (res.statusCode <= 302 && method === 'POST')) {
          method = 'GET';
          body = undefined;
          headers = Object.fromEntries(Object.entries(headers).filter(([n]) => !/^content-/i.test(n)));
        }
        // Task headers carry provider credentials (the same names views redact): not for another origin.
        if (next.origin !== url.origin) headers = Object.fromEntries(Object.entries(headers).filter(([n]) => !isSensitiveHeader(n)));
        url = next;
      }
    } catch (err) {
      return { ok: false, error: classify(err, timedOut, req.timeoutMs), duration: elapsed() };
    } finally {
      clearTimeout(timer);
    }
  }

  return { send, close: () => agent.close() };
}

function parseHttpUrl(value: string, base?: URL): URL | undefined {
  const url = URL.canParse(value, base?.href) ? new URL(value, base) : undefined;
  return url && (url.protocol === 'http:' || url.protocol === 'https:') ? url : undefined;
}

async function capture(res: Dispatcher.ResponseData, maxBytes: number): Promise<Omit<CapturedResponse, 'duration'>> {
  const chunks: Buffer[] = [];
  let size = 0;
  let truncated = false;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    if (chunk.length > maxBytes - size) {
      chunks.push(chunk.subarray(0, maxBytes - size));
      truncated = true;
      break; // leaving the loop destroys the body, so the rest is never downloaded
    }
    chunks.push(chunk);
    size += chunk.length;
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(res.headers)) {
    if (value !== undefined) headers[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  }
  return { statusCode: res.statusCode, headers, ...storableBody(Buffer.concat(chunks), truncated), ...(truncated && { truncated }) };
}

/**
 * A body as the relay stores it (a task's result, a callback): UTF-8 text as is, anything else
 * as base64 — binary, and also text holding NUL, which PostgreSQL cannot keep in a json string.
 * A `truncated` body may end inside a multi-byte character: up to 3 tail bytes are dropped
 * before giving up on text.
 */
export function storableBody(raw: Uint8Array, truncated = false): Pick<CapturedResponse, 'body' | 'bodyEncoding'> {
  for (let cut = 0; cut <= (truncated ? Math.min(3, raw.length) : 0); cut++) {
    try {
      const body = utf8.decode(raw.subarray(0, raw.length - cut));
      if (body.includes('\0')) break;
      return { body };
    } catch { /* not UTF-8 at this cut */ }
  }
  return { body: Buffer.from(raw).toString('base64'), bodyEncoding: 'base64' };
}

type ErrorLike = { code?: string; message?: string; cause?: unknown; errors?: ErrorLike[] };

function classify(err: unknown, timedOut: boolean, timeoutMs: number): { code: 'timeout' | 'network' | 'refused'; message: string } {
  if (timedOut) return { code: 'timeout', message: `no complete response within ${timeoutMs} ms` };
  const chain: ErrorLike[] = [];
  for (let e = err as ErrorLike | undefined; e && typeof e === 'object' && chain.length < 8; e = e.cause as ErrorLike) chain.push(e);
  const codes = chain.flatMap((e) => [e.code, ...(e.errors ?? []).map((inner) => inner.code)]);
  const first = chain[0] ?? {};
  // Happy-eyeballs failures are an AggregateError with an empty message.
  const message = first.message || first.errors?.[0]?.message || first.code || String(err);
  if (codes.includes(REFUSED)) return { code: 'refused', message };
  if (codes.some((c) => c === 'UND_ERR_CONNECT_TIMEOUT' || c === 'UND_ERR_HEADERS_TIMEOUT' || c === 'UND_ERR_BODY_TIMEOUT')) return { code: 'timeout', message };
  return { code: 'network', message: first.code && !message.includes(first.code) ? `${first.code}: ${message}` : message };
}

/**
 * Reads a Retry-After header (RFC 9110 §10.2.3) as a delay in milliseconds:
 * delta-seconds or an HTTP-date (a date in the past gives 0). Undefined when
 * absent or malformed, so the caller falls back to its own backoff.
 */
export function parseRetryAfter(value: string | undefined, now: number = Date.now()): number | undefined {
  const text = value?.trim();
  if (!text) return undefined;
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // Date.parse accepts almost anything ("1.5" is a date to V8), so only the three
  // HTTP-date forms are let through: IMF-fixdate, RFC 850 and asctime.
  const httpDate = /^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$|^[A-Za-z]+, \d{2}-[A-Za-z]{3}-\d{2} \d{2}:\d{2}:\d{2} GMT$|^[A-Za-z]{3} [A-Za-z]{3} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/;
  if (!httpDate.test(text)) return undefined;
  const at = Date.parse(/GMT$/.test(text) ? text : `${text} GMT`);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
