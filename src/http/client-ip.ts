import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context } from 'hono';
import { isIP } from 'node:net';
import type { NetworkList } from '../outbound/address-policy.ts';

/** `1.2.3.4`, `1.2.3.4:5678`, `[2001:db8::1]:443` or a bare IPv6 → the address; undefined if none. */
function hopAddress(entry: string): string | undefined {
  const text = entry.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(text);
  const withPort = /^(\d+\.\d+\.\d+\.\d+):\d+$/.exec(text);
  const address = bracketed?.[1] ?? withPort?.[1] ?? text;
  return isIP(address) ? normalise(address) : undefined;
}

/** Dual-stack sockets report IPv4 peers as ::ffff:a.b.c.d. */
function normalise(address: string): string {
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(address) ? address.slice(7) : address;
}

/**
 * The client's address: the socket peer, or, when the peer is a trusted proxy, the right-most
 * X-Forwarded-For hop that is not itself a trusted proxy (entries further left are whatever the
 * client chose to send, so they are never believed). Unknown when there is no socket (app.request).
 */
export function clientIp(c: Context, trustedProxies: NetworkList): string {
  let peer: string | undefined;
  try {
    peer = getConnInfo(c).remote.address;
  } catch { /* no node socket */ }
  if (!peer) return 'unknown';
  let client = normalise(peer);
  if (!trustedProxies.includes(client)) return client;
  const hops = (c.req.header('x-forwarded-for') ?? '').split(',');
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hopAddress(hops[i]);
    if (!hop) break;
    client = hop;
    if (!trustedProxies.includes(hop)) break;
  }
  return client;
}

/**
 * The key a client is counted under: its IPv4 address, or the /64 of its IPv6 address, since
 * one IPv6 subscriber usually holds a whole /64 and could otherwise rotate through it.
 */
export function clientKey(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  const [head, tail = ''] = ip.split('::');
  const groups = head === '' ? [] : head.split(':');
  const fill = 8 - groups.length - (tail === '' ? 0 : tail.split(':').length);
  const full = [...groups, ...Array<string>(Math.max(0, fill)).fill('0'), ...(tail === '' ? [] : tail.split(':'))];
  return `${full.slice(0, 4).map((g) => g.toLowerCase().replace(/^0+(?=.)/, '')).join(':')}::/64`;
}
