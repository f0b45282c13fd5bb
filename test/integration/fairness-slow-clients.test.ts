import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { HttpFake } from '../fakes/http-fake.ts';
import { addTenant, startTestRelay, type TestRelay, type TestTenant, waitForStatus } from '../helpers/relay.ts';

/*
 * Issue 15 item 1: slow clients of one tenant must not stop the others' creates. Before, a create
 * took one of the 12 admission slots before its body was read, and Node's 300 s request deadline
 * let a client hold it: 12 connections dripping a 260-byte body stopped every tenant's creates.
 */

const HEADERS_TIMEOUT_S = 1;
const REQUEST_TIMEOUT_S = 2;
/** Node checks the deadlines every half a header deadline here (main.ts), plus scheduling slack. */
const CUT_SLACK_MS = 500 + 1500;

let relay: TestRelay;
let other: TestTenant;
let target: HttpFake;

before(async () => {
  relay = await startTestRelay({ env: { RELAY_HEADERS_TIMEOUT_SECONDS: String(HEADERS_TIMEOUT_S), RELAY_REQUEST_TIMEOUT_SECONDS: String(REQUEST_TIMEOUT_S) } });
  other = await addTenant(relay, 'tenant-b');
  target = await HttpFake.start();
});

after(async () => {
  await relay.stop();
  await target.close();
});

interface SlowClient {
  socket: Socket;
  startedAt: number;
  /** The first line the relay answered, if any (an HTTP status line). */
  answer?: string;
  closed: Promise<number>;
}

/** A raw connection that sends `head` at once, then `drip` one byte every `everyMs`, never finishing. */
async function slowClient(head: string, drip: string, everyMs: number): Promise<SlowClient> {
  const socket = connect(Number(new URL(relay.baseUrl).port), '127.0.0.1');
  await once(socket, 'connect');
  const client: SlowClient = {
    socket,
    startedAt: Date.now(),
    closed: once(socket, 'close').then(() => Date.now() - client.startedAt),
  };
  socket.on('data', (chunk: Buffer) => (client.answer ??= chunk.toString('latin1').split('\r\n')[0]));
  socket.on('error', () => {});
  let sent = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || sent >= drip.length) return clearInterval(timer);
    socket.write(drip[sent++]);
  }, everyMs);
  socket.once('close', () => clearInterval(timer));
  await new Promise<void>((resolve) => socket.write(head, () => resolve()));
  return client;
}

function createHead(key: string, length: number): string {
  return `POST /v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: ${key}\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`;
}

test("30 connections dripping a create's body on one key: another project's create, and the same key's own, answer at once; the slow ones are cut at the request deadline", async () => {
  const body = JSON.stringify({ targetUrl: `${target.url}/slow`, metadata: { pad: 'x'.repeat(200) } });
  // Warm the key cache so that the slow requests reach admission as soon as their headers are in.
  assert.equal((await relay.api('POST', '/v1/tasks', { targetUrl: `${target.url}/warm` })).status, 201);
  const slow = await Promise.all(Array.from({ length: 30 }, () => slowClient(createHead(relay.apiKey, body.length), body, 1000)));

  for (const [who, api] of [['another project', other.api], ['the same key', relay.api]] as const) {
    const started = Date.now();
    const created = await api('POST', '/v1/tasks', { targetUrl: `${target.url}/fast` });
    const took = Date.now() - started;
    assert.equal(created.status, 201, `${who}: ${JSON.stringify(created.body)}`);
    assert.ok(took < 1000, `${who}'s create took ${took} ms while 30 slow bodies were arriving`);
  }

  const cutAfter = await Promise.all(slow.map((c) => c.closed));
  for (const [i, ms] of cutAfter.entries()) {
    assert.ok(ms >= REQUEST_TIMEOUT_S * 1000 - 100, `slow client ${i} was cut after ${ms} ms, before the deadline`);
    assert.ok(ms <= REQUEST_TIMEOUT_S * 1000 + CUT_SLACK_MS, `slow client ${i} was cut only after ${ms} ms`);
    assert.ok(slow[i].answer === undefined || slow[i].answer === 'HTTP/1.1 408 Request Timeout', `slow client ${i} was answered ${slow[i].answer}`);
  }
  assert.ok(slow.some((c) => c.answer === 'HTTP/1.1 408 Request Timeout'), 'the relay answers 408 before it closes');
  // Nothing was created from a body that never arrived.
  const listed = await relay.api('GET', '/v1/tasks?limit=100');
  assert.deepEqual(listed.body.tasks.map((t: { targetUrl: string }) => new URL(t.targetUrl).pathname).sort(), ['/fast', '/warm']);
});

test('a client that never finishes its headers is cut at the header deadline', async () => {
  const client = await slowClient('POST /v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\n', 'X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 100);
  const ms = await client.closed;
  assert.ok(ms >= HEADERS_TIMEOUT_S * 1000 - 100 && ms <= HEADERS_TIMEOUT_S * 1000 + CUT_SLACK_MS, `cut after ${ms} ms`);
  assert.equal(client.answer, 'HTTP/1.1 408 Request Timeout');
});

test('the request deadline covers receiving only: a long-poll that waits past it is answered', async () => {
  const created = await relay.api('POST', '/v1/tasks', { targetUrl: `${target.url}/submit`, waitForSignal: true });
  await waitForStatus(relay, created.body.task.id, 'waiting');
  const started = Date.now();
  const polled = await relay.api('GET', `/v1/tasks/${created.body.task.id}?wait=${REQUEST_TIMEOUT_S + 1}&seenStatus=waiting`);
  assert.equal(polled.status, 200);
  assert.equal(polled.body.task.status, 'waiting');
  assert.ok(Date.now() - started >= (REQUEST_TIMEOUT_S + 1) * 1000 - 100);
});
