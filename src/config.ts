import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { z } from 'zod';
import { parseEncryptionKeys, type EncryptionKey } from './secrets/keyring.ts';

/** The validated environment (DESIGN §3). Built once at boot by {@link loadConfig}. */
export interface Config {
  /** DATABASE_URL; unset → embedded PostgreSQL in `dataDir`. */
  databaseUrl?: string;
  /** PORT, 1–65535, default 3000. */
  port: number;
  /** HOST, default 0.0.0.0. */
  host: string;
  /** RELAY_PUBLIC_URL, base of minted callback URLs; default http://localhost:$PORT, never a trailing slash. */
  publicUrl: string;
  /** RELAY_API_KEYS: bootstrap keys of the default project (comma list, each ≥ 32 chars). */
  apiKeys: string[];
  /** RELAY_WEBHOOK_SECRET: `whsec_…` signing secret of the default project; unset → generated. */
  webhookSecret?: string;
  /** RELAY_ENCRYPTION_KEY: keys for secrets at rest, first seals; unset only in embedded mode (main generates one). */
  encryptionKeys?: EncryptionKey[];
  /** RELAY_ALLOWED_NETWORKS: CIDRs outbound calls may reach despite the SSRF guard. */
  allowedNetworks: string[];
  /** RELAY_TRUSTED_PROXIES: CIDRs of proxies whose X-Forwarded-For is believed. */
  trustedProxies: string[];
  /** Rate limits (DESIGN §5); a limit of 0 turns that limit off. */
  rateLimits: RateLimitConfig;
  /** RELAY_CREATE_CONCURRENCY: task creations handled at once per process, 1–1000, default 12 (the rest queue; see http/admission.ts). */
  createConcurrency: number;
  /** RELAY_CREATE_CONCURRENCY_PER_KEY: of those, at most this many for one API key; default one less than createConcurrency (11 of 12; 1 when that is 1), never more than it. */
  createConcurrencyPerKey: number;
  /** RELAY_CREATE_QUEUE_PER_KEY: creations of one API key waiting for a slot, 0–10000, default 256; past it 429. */
  createQueuePerKey: number;
  /** RELAY_HEADERS_TIMEOUT_SECONDS: a request's headers must arrive within this, 1–600, default 10; else 408 and the connection is closed. */
  headersTimeoutSeconds: number;
  /** RELAY_REQUEST_TIMEOUT_SECONDS: a whole request (headers and body) must arrive within this, 1–3600, default 30, at least headersTimeoutSeconds. */
  requestTimeoutSeconds: number;
  /** RELAY_LONG_POLLS_PER_KEY: concurrent `GET /v1/tasks/:id?wait=` of one API key per process, 0–100000 (0 = no cap), default 100; past it 429. */
  longPollsPerKey: number;
  /** RELAY_ROLE: which half of the relay this process runs; default all. */
  role: 'api' | 'worker' | 'all';
  /** RELAY_FAL_JWKS_URL: where fal publishes its webhook verification keys (Ed25519 JWKS). */
  falJwksUrl: string;
  /** RELAY_DATA_DIR, absolute; default ./.relay (embedded PostgreSQL, generated keys). */
  dataDir: string;
  /** LOG_LEVEL, default info. */
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

export interface RateLimitConfig {
  /** RELAY_RATE_LIMIT_WINDOW_SECONDS: length of every fixed window, 1–3600, default 60. */
  windowSeconds: number;
  /** RELAY_CALLBACK_REJECT_LIMIT: rejected (400/404/409/413) callback or signal attempts per client IP per window, shared by all replicas; default 30. */
  callbackRejects: number;
  /** RELAY_CALLBACK_IP_CEILING: callback and signal requests per window, per process, of a client IP that is past the rejection limit (any outcome); default 1200. Other addresses are never throttled. */
  callbackCeiling: number;
  /**
   * RELAY_API_RATE_LIMIT: authenticated API requests per API key per window, per process; off (0) by
   * default — a self-hosted relay's own client gets its full speed; an operator who hands keys to
   * others turns it on. Creates stay fair between keys regardless (RELAY_CREATE_CONCURRENCY_PER_KEY).
   */
  apiPerKey: number;
  /** RELAY_AUTH_FAILURE_LIMIT: failed API authentications (401) per client IP per window, shared by all replicas; default 30. */
  authFailures: number;
}

/** Thrown by {@link loadConfig}; `problems` holds one "VARIABLE: what is wrong" line per problem. */
export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** RELAY_API_KEYS shorter than this are refused at boot (issue 15: a 16-hex key fell in seconds). */
export const MIN_API_KEY_LENGTH = 32;

const list = (value: string) => value.split(',').map((item) => item.trim()).filter((item) => item !== '');

/** A comma list of CIDRs; a bare address means just that host and is normalised to /32 or /128. */
const cidrList = z.string().transform((value, ctx) =>
  list(value).map((entry) => {
    if (isIP(entry)) return `${entry}/${isIP(entry) === 4 ? 32 : 128}`;
    if (z.cidrv4().safeParse(entry).success || z.cidrv6().safeParse(entry).success) return entry;
    ctx.addIssue({ code: 'custom', message: `"${entry}" is not a CIDR (e.g. 10.0.0.0/8 or fd00::/8)` });
    return entry;
  }),
);

const count = (max: number) =>
  z.string().regex(/^\d+$/, `must be an integer from 0 to ${max}`).transform(Number)
    .refine((n) => n <= max, `must be an integer from 0 to ${max}`).optional();

const positive = (max: number) =>
  z.string().regex(/^\d+$/, `must be an integer from 1 to ${max}`).transform(Number)
    .refine((n) => n >= 1 && n <= max, `must be an integer from 1 to ${max}`).optional();

// Messages never echo secret values (keys, URLs with passwords): they land in boot logs.
const Env = z.object({
  DATABASE_URL: z.string().refine((v) => URL.canParse(v) && /^postgres(ql)?:$/.test(new URL(v).protocol), 'must be a postgres:// or postgresql:// URL').optional(),
  PORT: z.string().regex(/^\d+$/, 'must be an integer from 1 to 65535').transform(Number)
    .refine((n) => n >= 1 && n <= 65535, 'must be an integer from 1 to 65535').optional(),
  HOST: z.string().default('0.0.0.0'),
  RELAY_PUBLIC_URL: z.string().transform((value, ctx) => {
    const url = URL.canParse(value) ? new URL(value) : undefined;
    // Providers receive URLs built on this base, so it must be plain: no credentials, query or fragment.
    if (!url || !/^https?:$/.test(url.protocol) || url.username || url.password || url.search || url.hash) {
      ctx.addIssue({ code: 'custom', message: 'must be an http(s) URL without credentials, query or fragment' });
      return value;
    }
    return url.href.replace(/\/+$/, '');
  }).optional(),
  RELAY_API_KEYS: z.string().transform((value, ctx) => {
    const keys = list(value);
    // Named by position and length, never by value: the message lands in boot logs.
    keys.forEach((key, i) => {
      if (key.length < MIN_API_KEY_LENGTH) {
        ctx.addIssue({ code: 'custom', message: `key #${i + 1} of ${keys.length} has ${key.length} characters, at least ${MIN_API_KEY_LENGTH} are required (e.g. openssl rand -hex 24)` });
      }
    });
    return keys;
  }).optional(),
  RELAY_WEBHOOK_SECRET: z.string().refine((v) => {
    const match = /^whsec_([A-Za-z0-9+/]+={0,2})$/.exec(v);
    return match !== null && Buffer.from(match[1], 'base64').length >= 16;
  }, 'must be whsec_ followed by the base64 of at least 16 bytes').optional(),
  RELAY_ENCRYPTION_KEY: z.string().transform((value, ctx) => {
    try {
      return parseEncryptionKeys(value);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `${(err as Error).message} (one base64 32-byte key, or kid:base64,kid2:base64)` });
      return z.NEVER;
    }
  }).optional(),
  RELAY_ALLOWED_NETWORKS: cidrList.optional(),
  RELAY_TRUSTED_PROXIES: cidrList.optional(),
  RELAY_RATE_LIMIT_WINDOW_SECONDS: count(3600).refine((n) => n !== 0, 'must be an integer from 1 to 3600'),
  RELAY_CALLBACK_REJECT_LIMIT: count(1_000_000_000),
  RELAY_CALLBACK_IP_CEILING: count(1_000_000_000),
  RELAY_API_RATE_LIMIT: count(1_000_000_000),
  RELAY_AUTH_FAILURE_LIMIT: count(1_000_000_000),
  RELAY_CREATE_CONCURRENCY: count(1000).refine((n) => n !== 0, 'must be an integer from 1 to 1000'),
  RELAY_CREATE_CONCURRENCY_PER_KEY: positive(1000),
  RELAY_CREATE_QUEUE_PER_KEY: count(10_000),
  RELAY_HEADERS_TIMEOUT_SECONDS: positive(600),
  RELAY_REQUEST_TIMEOUT_SECONDS: positive(3600),
  RELAY_LONG_POLLS_PER_KEY: count(100_000),
  RELAY_ROLE: z.enum(['api', 'worker', 'all'], 'must be one of api, worker, all').default('all'),
  RELAY_FAL_JWKS_URL: z.string().refine((v) => URL.canParse(v) && /^https?:$/.test(new URL(v).protocol), 'must be an http(s) URL')
    .default('https://rest.fal.ai/.well-known/jwks.json'),
  RELAY_DATA_DIR: z.string().default('.relay'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
    'must be one of fatal, error, warn, info, debug, trace, silent').default('info'),
});

/**
 * Validates the environment once at boot. Blank variables count as unset
 * (compose files often write `FOO=`). Every problem is collected before
 * throwing, so an operator fixes them all in one round.
 * @throws {ConfigError} listing every invalid variable.
 */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const raw: Record<string, string | undefined> = {};
  for (const name of Object.keys(Env.shape)) {
    const value = env[name]?.trim();
    raw[name] = value === '' ? undefined : value;
  }
  const result = Env.safeParse(raw);
  const problems = result.success ? [] : result.error.issues.map((issue) => `${String(issue.path[0])}: ${issue.message}`);
  // Checked on the raw values so it is reported even when other variables fail.
  if (raw.DATABASE_URL !== undefined && raw.RELAY_ENCRYPTION_KEY === undefined) {
    problems.push('RELAY_ENCRYPTION_KEY: required when DATABASE_URL is set (a key is generated only for the embedded database)');
  }
  // Node refuses a header deadline past the request deadline (the request includes its headers).
  if (Number(raw.RELAY_HEADERS_TIMEOUT_SECONDS ?? 10) > Number(raw.RELAY_REQUEST_TIMEOUT_SECONDS ?? 30)) {
    problems.push('RELAY_HEADERS_TIMEOUT_SECONDS: must not exceed RELAY_REQUEST_TIMEOUT_SECONDS (the request deadline includes the headers)');
  }
  if (!result.success || problems.length > 0) throw new ConfigError(problems);

  const e = result.data;
  const port = e.PORT ?? 3000;
  const createConcurrency = e.RELAY_CREATE_CONCURRENCY ?? 12;
  return {
    databaseUrl: e.DATABASE_URL,
    port,
    host: e.HOST,
    publicUrl: e.RELAY_PUBLIC_URL ?? `http://localhost:${port}`,
    apiKeys: e.RELAY_API_KEYS ?? [],
    webhookSecret: e.RELAY_WEBHOOK_SECRET,
    encryptionKeys: e.RELAY_ENCRYPTION_KEY,
    allowedNetworks: e.RELAY_ALLOWED_NETWORKS ?? [],
    trustedProxies: e.RELAY_TRUSTED_PROXIES ?? [],
    rateLimits: {
      windowSeconds: e.RELAY_RATE_LIMIT_WINDOW_SECONDS ?? 60,
      callbackRejects: e.RELAY_CALLBACK_REJECT_LIMIT ?? 30,
      callbackCeiling: e.RELAY_CALLBACK_IP_CEILING ?? 1200,
      apiPerKey: e.RELAY_API_RATE_LIMIT ?? 0,
      authFailures: e.RELAY_AUTH_FAILURE_LIMIT ?? 30,
    },
    createConcurrency,
    // One slot short of all by default: another key always finds one free, and a lone key loses
    // little (the round-robin hand-over does the rest of the sharing).
    createConcurrencyPerKey: Math.min(createConcurrency, e.RELAY_CREATE_CONCURRENCY_PER_KEY ?? Math.max(1, createConcurrency - 1)),
    createQueuePerKey: e.RELAY_CREATE_QUEUE_PER_KEY ?? 256,
    headersTimeoutSeconds: e.RELAY_HEADERS_TIMEOUT_SECONDS ?? 10,
    requestTimeoutSeconds: e.RELAY_REQUEST_TIMEOUT_SECONDS ?? 30,
    longPollsPerKey: e.RELAY_LONG_POLLS_PER_KEY ?? 100,
    role: e.RELAY_ROLE,
    falJwksUrl: e.RELAY_FAL_JWKS_URL,
    dataDir: resolve(e.RELAY_DATA_DIR),
    logLevel: e.LOG_LEVEL,
  };
}
