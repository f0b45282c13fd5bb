import { isIP } from 'node:net';

/**
 * Why an address may or may not be reached (DESIGN §7). Everything but `public` is refused
 * unless RELAY_ALLOWED_NETWORKS lets it through.
 */
export type AddressClass =
  | 'public'
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'link_local'
  | 'cgnat'
  | 'unique_local'
  | 'multicast'
  | 'documentation'
  | 'reserved'
  | 'invalid';

/** A parsed address: 32 bits for IPv4, 128 for IPv6. */
interface Ip {
  family: 4 | 6;
  bits: bigint;
}

function parseV4(text: string): bigint | undefined {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return undefined;
  return parts.reduce((acc, p) => (acc << 8n) | BigInt(Number(p)), 0n);
}

function parseV6(text: string): bigint | undefined {
  let rest = text.replace(/%.*$/, ''); // a zone id names an interface, not an address
  // A trailing dotted quad (::ffff:1.2.3.4) becomes its two hex groups.
  const dotted = /:(\d+\.\d+\.\d+\.\d+)$/.exec(rest);
  if (dotted) {
    const v4 = parseV4(dotted[1]);
    if (v4 === undefined) return undefined;
    rest = `${rest.slice(0, dotted.index)}:${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const halves = rest.split('::');
  if (halves.length > 2) return undefined;
  const groups = (s: string) => (s === '' ? [] : s.split(':'));
  const head = groups(halves[0]);
  const back = halves.length === 2 ? groups(halves[1]) : [];
  if (![...head, ...back].every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return undefined;
  const known = head.length + back.length;
  if (halves.length === 1 ? known !== 8 : known > 7) return undefined;
  const all = [...head.map((g) => BigInt(`0x${g}`)), ...Array<bigint>(8 - known).fill(0n), ...back.map((g) => BigInt(`0x${g}`))];
  return all.reduce((acc, g) => (acc << 16n) | g, 0n);
}

function parseIp(text: string): Ip | undefined {
  const bare = text.replace(/^\[(.*)\]$/, '$1');
  const family = isIP(bare.replace(/%.*$/, ''));
  if (family === 4) {
    const bits = parseV4(bare);
    return bits === undefined ? undefined : { family: 4, bits };
  }
  if (family === 6) {
    const bits = parseV6(bare);
    return bits === undefined ? undefined : { family: 6, bits };
  }
  return undefined;
}

interface Range {
  family: 4 | 6;
  base: bigint;
  prefix: number;
}

function range(cidr: string): Range {
  const [address, prefixText] = cidr.split('/');
  const ip = parseIp(address);
  const width = ip?.family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? width : Number(prefixText);
  if (!ip || !Number.isInteger(prefix) || prefix < 0 || prefix > width) throw new Error(`"${cidr}" is not a CIDR`);
  return { family: ip.family, base: ip.bits >> BigInt(width - prefix), prefix };
}

function contains(r: Range, ip: Ip): boolean {
  if (r.family !== ip.family) return false;
  const width = ip.family === 4 ? 32 : 128;
  return ip.bits >> BigInt(width - r.prefix) === r.base;
}

// IANA's special-purpose registries, IPv4 and IPv6, grouped by the reason shown to users.
const V4: Array<[string, AddressClass]> = [
  ['0.0.0.0/8', 'unspecified'], // "this network"; 0.0.0.0 reaches the local host on Linux
  ['10.0.0.0/8', 'private'],
  ['100.64.0.0/10', 'cgnat'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link_local'], // cloud metadata (169.254.169.254) lives here
  ['172.16.0.0/12', 'private'],
  ['192.0.0.0/24', 'reserved'],
  ['192.0.2.0/24', 'documentation'],
  ['192.88.99.0/24', 'reserved'],
  ['192.168.0.0/16', 'private'],
  ['198.18.0.0/15', 'reserved'],
  ['198.51.100.0/24', 'documentation'],
  ['203.0.113.0/24', 'documentation'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved'], // includes 255.255.255.255
];
const V6: Array<[string, AddressClass]> = [
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['::/96', 'reserved'], // deprecated IPv4-compatible form
  ['64:ff9b:1::/48', 'private'], // local-use NAT64
  ['100::/64', 'reserved'],
  ['2001::/23', 'reserved'], // IETF assignments, Teredo among them
  ['2001:db8::/32', 'documentation'],
  ['3fff::/20', 'documentation'],
  ['5f00::/16', 'reserved'],
  ['fc00::/7', 'unique_local'],
  ['fe80::/10', 'link_local'],
  ['fec0::/10', 'private'], // deprecated site-local
  ['ff00::/8', 'multicast'],
];
const V4_RANGES = V4.map(([c, k]) => ({ r: range(c), k }));
const V6_RANGES = V6.map(([c, k]) => ({ r: range(c), k }));
const GLOBAL_UNICAST = range('2000::/3');
const MAPPED = range('::ffff:0:0/96');
const TRANSLATED = range('::ffff:0:0:0/96');
const NAT64 = range('64:ff9b::/96');
const SIX_TO_FOUR = range('2002::/16');

/**
 * The IPv4 address an IPv6 address stands for, when it embeds one that a host or gateway will
 * reach: mapped (::ffff:a.b.c.d), SIIT-translated, NAT64 well-known prefix and 6to4.
 */
function embeddedV4(ip: Ip): Ip | undefined {
  if (ip.family !== 6) return undefined;
  if (contains(MAPPED, ip) || contains(TRANSLATED, ip) || contains(NAT64, ip)) return { family: 4, bits: ip.bits & 0xffffffffn };
  if (contains(SIX_TO_FOUR, ip)) return { family: 4, bits: (ip.bits >> 80n) & 0xffffffffn };
  return undefined;
}

function classifyIp(ip: Ip): AddressClass {
  const v4 = embeddedV4(ip);
  if (v4) return classifyIp(v4);
  if (ip.family === 4) return V4_RANGES.find(({ r }) => contains(r, ip))?.k ?? 'public';
  const special = V6_RANGES.find(({ r }) => contains(r, ip))?.k;
  if (special) return special;
  // Everything outside 2000::/3 is unallocated or special: only global unicast is public.
  return contains(GLOBAL_UNICAST, ip) ? 'public' : 'reserved';
}

/** The class of an IP literal (brackets and zone ids allowed); `invalid` for anything else. Pure: no DNS. */
export function classifyAddress(address: string): AddressClass {
  const ip = parseIp(address);
  return ip ? classifyIp(ip) : 'invalid';
}

/** RELAY_ALLOWED_NETWORKS, parsed once. */
export interface NetworkList {
  includes(address: string): boolean;
}

/** Parses CIDRs (bare addresses mean one host). An IPv4-mapped IPv6 address matches its IPv4 network. */
export function parseNetworks(cidrs: string[]): NetworkList {
  const ranges = cidrs.map(range);
  return {
    includes(address) {
      const ip = parseIp(address);
      if (!ip) return false;
      const mapped = ip.family === 6 && contains(MAPPED, ip) ? embeddedV4(ip) : undefined;
      return ranges.some((r) => contains(r, ip) || (mapped !== undefined && contains(r, mapped)));
    },
  };
}

/** Why `address` is refused, or undefined when the guard lets it through. */
export function refusalOf(address: string, allowed: NetworkList): AddressClass | undefined {
  const kind = classifyAddress(address);
  if (kind === 'public' || allowed.includes(address)) return undefined;
  return kind;
}
