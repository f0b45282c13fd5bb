import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { waitForEvent } from '../helpers/wait.ts';

export interface RecordedRequest {
  method: string;
  path: string;
  url: URL;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  text: string;
  at: number;
}

export interface FakeReply {
  status?: number;
  headers?: Record<string, string>;
  body?: string | Buffer | object;
  /** Never answer (for timeout tests): the socket is held until the fake closes. */
  hang?: boolean;
}

export type FakeHandler = (req: RecordedRequest, index: number) => FakeReply | Promise<FakeReply>;

/**
 * A real HTTP server on 127.0.0.1 standing in for a provider or a receiver. Every request is
 * recorded and announced with a 'request' event, so tests wait on arrivals instead of sleeping.
 */
export class HttpFake extends EventEmitter {
  readonly requests: RecordedRequest[] = [];
  private server: Server;
  private handler: FakeHandler;
  private hung: ServerResponse[] = [];
  port = 0;

  constructor(handler: FakeHandler = () => ({ status: 200, body: { ok: true } })) {
    super();
    this.setMaxListeners(100);
    this.handler = handler;
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  static async start(handler?: FakeHandler): Promise<HttpFake> {
    const fake = new HttpFake(handler);
    await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
    fake.port = (fake.server.address() as AddressInfo).port;
    return fake;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Replaces the handler (e.g. fail twice, then succeed). */
  setHandler(handler: FakeHandler): void {
    this.handler = handler;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const url = new URL(req.url ?? '/', this.url);
    const recorded: RecordedRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      url,
      headers: req.headers,
      body,
      text: body.toString('utf8'),
      at: Date.now(),
    };
    const index = this.requests.push(recorded) - 1;
    const reply = await this.handler(recorded, index);
    this.emit('request', recorded);
    if (reply.hang) {
      this.hung.push(res);
      return;
    }
    const payload =
      reply.body === undefined
        ? ''
        : typeof reply.body === 'string' || Buffer.isBuffer(reply.body)
          ? reply.body
          : JSON.stringify(reply.body);
    const headers = { ...(typeof reply.body === 'object' && !Buffer.isBuffer(reply.body) ? { 'content-type': 'application/json' } : {}), ...reply.headers };
    res.writeHead(reply.status ?? 200, headers);
    res.end(payload);
  }

  /** Waits until `count` requests (optionally matching) have arrived; returns them. */
  async waitForRequests(count: number, match: (r: RecordedRequest) => boolean = () => true, timeoutMs = 10_000): Promise<RecordedRequest[]> {
    return waitForEvent(
      this,
      'request',
      () => {
        const found = this.requests.filter(match);
        return found.length >= count ? found : undefined;
      },
      timeoutMs,
      `${count} request(s) at ${this.url}`,
    );
  }

  async close(): Promise<void> {
    for (const res of this.hung) res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
