import { Webhook } from 'standardwebhooks';
import { type FakeHandler, HttpFake, type RecordedRequest } from './http-fake.ts';

export interface Delivery {
  request: RecordedRequest;
  /** Verified by the reference `standardwebhooks` library; null when verification failed. */
  payload: { event: string; task: { id: string; status: string; [k: string]: unknown } } | null;
  verifyError?: string;
}

/**
 * An onComplete receiver that verifies every delivery's Standard Webhooks signature with the
 * reference library, the way a user's receiver would.
 */
export class Receiver {
  readonly fake: HttpFake;
  readonly deliveries: Delivery[] = [];
  private webhook: Webhook;

  private constructor(fake: HttpFake, secret: string) {
    this.fake = fake;
    this.webhook = new Webhook(secret);
    fake.on('request', (request: RecordedRequest) => {
      try {
        const headers = Object.fromEntries(Object.entries(request.headers).map(([k, v]) => [k, String(v)]));
        const payload = this.webhook.verify(request.text, headers) as Delivery['payload'];
        this.deliveries.push({ request, payload });
      } catch (error) {
        this.deliveries.push({ request, payload: null, verifyError: String(error) });
      }
      fake.emit('delivery');
    });
  }

  static async start(secret: string, handler?: FakeHandler): Promise<Receiver> {
    return new Receiver(await HttpFake.start(handler ?? (() => ({ status: 200, body: 'ok' }))), secret);
  }

  get url(): string {
    return `${this.fake.url}/hook`;
  }

  /** Deliveries (verified or not) for one task, waiting until at least `count` arrived. */
  async waitForDeliveries(taskId: string, count = 1, timeoutMs = 10_000): Promise<Delivery[]> {
    await this.fake.waitForRequests(count, (r) => r.text.includes(taskId), timeoutMs);
    return this.deliveries.filter((d) => d.request.text.includes(taskId));
  }

  close(): Promise<void> {
    return this.fake.close();
  }
}
