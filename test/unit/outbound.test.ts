import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { createOutbound, parseRetryAfter, type OutboundResult } from '../../src/outbound/http.ts';

const outbound = createOutbound({ allowedNetworks: ['127.0.0.0/8'] });
const servers: ReturnType<typeof createServer>[] = [];

after(async () => {
  await outbound.close();
  for (const server of servers) {
    server.closeAllConnections();
    server.close();
  }
});

type Seen = { method?: string; url?: string; headers: IncomingMessage['headers']; body: string };

/** A real local server; `seen` records the last request it received. */
async function serve(handler: (req: IncomingMessage, res: ServerResponse, seen: Seen) => void) {
  const seen: Seen = { headers: {}, body: '' };
  const server = createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    Object.assign(seen, { method: req.method, url: req.url, headers: req.headers, body });
    handler(req, res, seen);
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server };
}

function response(result: OutboundResult) {
  assert.ok(result.ok, `expected a response, got ${JSON.stringify(result)}`);
  return result.response;
}

describe('send', () => {
  test('captures a JSON answer with its headers and sends the request as given', async () => {
    const { url, seen } = await serve((_req, res) => {
      res.setHeader('set-cookie', ['a=1', 'b=2']);
      res.writeHead(200, { 'Content-Type': 'application/json', 'X-Request-Id': 'r1' }).end('{"ok":true,"text":"héllo"}');
    });
    const res = response(await outbound.send({ url: `${url}/v1/run?x=1`, method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': 'k' }, body: '{"q":1}', timeoutMs: 5000 }));
    assert.equal(res.statusCode, 200);
    assert.equal(res.body, '{"ok":true,"text":"héllo"}');
    assert.equal(res.headers['content-type'], 'application/json');
    assert.equal(res.headers['x-request-id'], 'r1');
    assert.equal(res.headers['set-cookie'], 'a=1, b=2');
    assert.equal(res.bodyEncoding, undefined);
    assert.equal(res.truncated, undefined);
    assert.ok(res.duration >= 0 && Number.isInteger(res.duration));
    assert.deepEqual([seen.method, seen.url, seen.body, seen.headers['x-api-key']], ['POST', '/v1/run?x=1', '{"q":1}', 'k']);
    assert.equal(seen.headers['user-agent'], 'asyncrelay/0.1');
  });

  test("keeps the caller's user-agent and drops a body on GET", async () => {
    const { url, seen } = await serve((_req, res) => res.end());
    response(await outbound.send({ url, method: 'GET', headers: { 'User-Agent': 'custom/1' }, body: 'ignored', timeoutMs: 5000 }));
    assert.equal(seen.headers['user-agent'], 'custom/1');
    assert.equal(seen.body, '');
  });

  test('a binary body comes back as base64', async () => {
    const bytes = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0xff, 0xfe]);
    const { url } = await serve((_req, res) => res.writeHead(200, { 'content-type': 'image/png' }).end(bytes));
    const res = response(await outbound.send({ url, method: 'GET', headers: {}, timeoutMs: 5000 }));
    assert.equal(res.bodyEncoding, 'base64');
    assert.deepEqual(Buffer.from(res.body, 'base64'), bytes);
  });

  test('a body beyond maxResponseBytes is cut and marked truncated', async () => {
    const { url } = await serve((req, res) => res.end(req.url === '/utf8' ? 'ééééé' : 'x'.repeat(100_000)));
    const res = response(await outbound.send({ url, method: 'GET', headers: {}, timeoutMs: 5000, maxResponseBytes: 10 }));
    assert.deepEqual([res.body, res.truncated], ['x'.repeat(10), true]);
    // 5 bytes cut "é" (2 bytes each) in half: the partial character is dropped, the body stays text.
    const cut = response(await outbound.send({ url: `${url}/utf8`, method: 'GET', headers: {}, timeoutMs: 5000, maxResponseBytes: 5 }));
    assert.deepEqual([cut.body, cut.truncated, cut.bodyEncoding], ['éé', true, undefined]);
    const exact = response(await outbound.send({ url: `${url}/utf8`, method: 'GET', headers: {}, timeoutMs: 5000, maxResponseBytes: 10 }));
    assert.deepEqual([exact.body, exact.truncated], ['ééééé', undefined]);
  });

  test('a server that never answers times out near timeoutMs', async () => {
    const { url } = await serve(() => {});
    const result = await outbound.send({ url, method: 'POST', headers: {}, body: 'x', timeoutMs: 300 });
    assert.ok(!result.ok);
    assert.equal(result.error.code, 'timeout');
    assert.ok(result.duration >= 295 && result.duration < 1300, `duration ${result.duration}`);
  });

  test('the timeout also covers a body that stalls after the headers', async () => {
    const { url } = await serve((_req, res) => {
      res.writeHead(200);
      res.write('partial');
    });
    const result = await outbound.send({ url, method: 'GET', headers: {}, timeoutMs: 300 });
    assert.ok(!result.ok);
    assert.equal(result.error.code, 'timeout');
    assert.ok(result.duration >= 295, `duration ${result.duration}`);
  });

  test('a refused connection is a network error', async () => {
    const { url, server } = await serve(() => {});
    server.close();
    await once(server, 'close');
    const result = await outbound.send({ url, method: 'GET', headers: {}, timeoutMs: 5000 });
    assert.ok(!result.ok);
    assert.equal(result.error.code, 'network');
    assert.match(result.error.message, /ECONNREFUSED/);
  });

  test('userinfo in the URL is sent as Basic auth unless an Authorization header is given', async () => {
    const { url, seen } = await serve((_req, res) => res.end());
    const withUser = url.replace('http://', 'http://us%40er:p%3Ass@');
    response(await outbound.send({ url: withUser, method: 'GET', headers: {}, timeoutMs: 5000 }));
    assert.equal(seen.headers.authorization, `Basic ${Buffer.from('us@er:p:ss').toString('base64')}`);
    response(await outbound.send({ url: withUser, method: 'GET', headers: { Authorization: 'Bearer own' }, timeoutMs: 5000 }));
    assert.equal(seen.headers.authorization, 'Bearer own');
  });

  test('only http(s) URLs are sent', async () => {
    for (const url of ['ftp://127.0.0.1/x', 'file:///etc/passwd', 'not a url']) {
      const result = await outbound.send({ url, method: 'GET', headers: {}, timeoutMs: 1000 });
      assert.ok(!result.ok && result.error.code === 'invalid_url', url);
    }
  });
});

describe('redirects', () => {
  test('a 3xx is returned as is by default and followed with maxRedirects', async () => {
    const { url } = await serve((req, res, seen) => {
      if (req.url === '/start') res.writeHead(302, { location: '/final' }).end('moved');
      else res.end(`final via ${seen.method} body=${seen.body}`);
    });
    const raw = response(await outbound.send({ url: `${url}/start`, method: 'POST', headers: {}, body: 'b', timeoutMs: 5000 }));
    assert.deepEqual([raw.statusCode, raw.headers.location, raw.body], [302, '/final', 'moved']);
    // 302 after a POST continues as a GET without the body, as fetch does.
    const followed = response(await outbound.send({ url: `${url}/start`, method: 'POST', headers: {}, body: 'b', timeoutMs: 5000, maxRedirects: 5 }));
    assert.deepEqual([followed.statusCode, followed.body], [200, 'final via GET body=']);
  });

  test('307 keeps method and body; the hop limit returns the last 3xx', async () => {
    const { url } = await serve((req, res, seen) => {
      const hop = Number(req.url?.slice(1));
      if (hop < 3) res.writeHead(307, { location: `/${hop + 1}` }).end();
      else res.end(`${seen.method} ${seen.body}`);
    });
    const followed = response(await outbound.send({ url: `${url}/0`, method: 'PUT', headers: {}, body: 'keep', timeoutMs: 5000, maxRedirects: 3 }));
    assert.equal(followed.body, 'PUT keep');
    const limited = response(await outbound.send({ url: `${url}/0`, method: 'PUT', headers: {}, body: 'keep', timeoutMs: 5000, maxRedirects: 2 }));
    assert.deepEqual([limited.statusCode, limited.headers.location], [307, '/3']);
  });

  test('credentials do not follow a redirect to another origin', async () => {
    const target = await serve((_req, res) => res.end('elsewhere'));
    const origin = await serve((_req, res) => res.writeHead(301, { location: `${target.url}/landing` }).end());
    const credentials = { authorization: 'Bearer s', 'x-api-key': 'k', 'x-auth': 'a', 'x-session': 's', 'x-credential': 'c', signature: 'sig', 'x-password': 'p' };
    response(await outbound.send({ url: origin.url, method: 'GET', headers: { ...credentials, 'x-trace': 't' }, timeoutMs: 5000, maxRedirects: 1 }));
    for (const [name, value] of Object.entries(credentials)) assert.equal(origin.seen.headers[name], value, name);
    assert.equal(target.seen.url, '/landing');
    assert.equal(target.seen.headers['x-trace'], 't');
    for (const name of Object.keys(credentials)) assert.equal(target.seen.headers[name], undefined, `${name} followed the redirect`);
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2025-01-01T00:00:00Z');
  test('delta-seconds', () => {
    assert.equal(parseRetryAfter('120', now), 120_000);
    assert.equal(parseRetryAfter(' 0 ', now), 0);
  });
  test('HTTP dates, past ones giving 0', () => {
    assert.equal(parseRetryAfter('Wed, 01 Jan 2025 00:00:30 GMT', now), 30_000);
    assert.equal(parseRetryAfter('Wednesday, 01-Jan-25 00:01:00 GMT', now), 60_000);
    assert.equal(parseRetryAfter('Wed Jan  1 00:00:05 2025', now), 5_000);
    assert.equal(parseRetryAfter('Tue, 31 Dec 2024 23:00:00 GMT', now), 0);
  });
  test('absent or junk is undefined', () => {
    for (const value of [undefined, '', 'soon', '-5', '1.5', '2025-01-01', 'Wed, 99 Foo 2025 00:00:00 GMT']) {
      assert.equal(parseRetryAfter(value, now), undefined, String(value));
    }
  });
});
