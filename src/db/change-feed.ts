import postgres from 'postgres';
import { readTaskStatuses } from './sql/task-reads.ts';

/** The PostgreSQL channel; payloads are task ids joined by commas. */
export const CHANGE_CHANNEL = 'asyncrelay_task_changes';
/** NOTIFY payloads must stay under 8000 bytes: 200 ids of 36 characters and their commas. */
const IDS_PER_PAYLOAD = 200;
/**
 * One statement, one transaction, any number of payloads. A transaction that notifies gets a
 * transaction id and so a commit record; with synchronous_commit off (for this transaction only)
 * its commit does not wait for a WAL flush. A notification lost in a crash costs a watcher one
 * safety re-check, nothing more.
 */
const NOTIFY = `
  with async_commit as (select set_config('synchronous_commit', 'off', true))
  select pg_notify($1, p) from async_commit, unnest($2::text[]) p`;

/**
 * Which tasks changed, across every process on the database: each process tells the others after
 * its commits (`publish`) and watchers in any process hear of it within milliseconds (`watch`).
 * It replaced a poll per waiter (each `?wait=` re-read its row every 100 ms: 2,000 long-polls on
 * one key took every tenant's create and signal latency from ~10 ms to ~400 ms, issue 15), and
 * it is what Server-Sent Events of task timelines are to be built on.
 *
 * The NOTIFY is sent after the commit, on its own, never inside the writing transaction: a NOTIFY
 * holds PostgreSQL's database-wide notification lock through its transaction's commit, and one
 * in every task write serialised them all (2.5× fewer commits/s, see migrations/0003). Here a
 * burst of commits costs a handful of NOTIFYs: one statement in flight per process, carrying
 * every id published meanwhile (as `createWaker` does for pg-boss's wake-ups).
 *
 * A notification is a hint, not the truth: on one, the feed reads the current version of the
 * watched tasks it names (one query for all of them) and calls the watchers whose version moved.
 * A safety re-check reads all watched tasks every `recheckMs`, and every `fallbackRecheckMs` while
 * the LISTEN connection is down, so a lost notification (a publisher that died between its commit
 * and its NOTIFY, a connection that dropped) delays a watcher, never strands it.
 *
 * The LISTEN connection is this module's own: postgres.js's `sql.listen` re-listens once after its
 * connection closes, and if that attempt fails it drops the listener without a word (checked
 * through a proxy: after a 100 ms outage it listened again, after a 5 s one never), so a database
 * restart would have left the feed deaf for good. Here every loss leads to new attempts, a second
 * apart, until one succeeds, then to a full re-check (whatever was missed meanwhile).
 */
export interface ChangeFeed {
  /** After a commit: tells every process (this one at once) that these tasks changed. */
  publish(taskIds: Iterable<string>): void;
  /** Calls `onChange` once, when the task's version is no longer `seen` (or the task is gone, or the feed closes). Returns the way to stop watching. */
  watch(taskId: string, seen: string, onChange: () => void): () => void;
  /** Whether the LISTEN connection is up (a process that only publishes never listens). */
  readonly listening: boolean;
  /** Watchers registered now. */
  readonly watching: number;
  /** Closed: every watch is answered at once. */
  readonly closed: boolean;
  /** Starts listening (resolves once the first LISTEN succeeded or failed; retries go on). */
  start(): Promise<void>;
  /** Stops; every watcher is called, so long-polls answer at once. */
  close(): Promise<void>;
}

export interface ChangeFeedOptions {
  /** The pool that sends NOTIFYs and reads versions. */
  sql: postgres.Sql;
  /** Where to open the LISTEN connection; without it the feed only publishes (and re-checks by reading). */
  listenUrl?: string;
  /** The current version of each task (a long-poll's is its status); a task missing from the map is gone. */
  versions: (taskIds: string[]) => Promise<Map<string, string>>;
  recheckMs?: number;
  fallbackRecheckMs?: number;
  onError: (err: unknown, what: string) => void;
}

interface Watcher {
  seen: string;
  onChange: () => void;
}

export function createChangeFeed(options: ChangeFeedOptions): ChangeFeed {
  const { sql, versions, onError, recheckMs = 3000, fallbackRecheckMs = 500 } = options;
  const watchers = new Map<string, Set<Watcher>>();
  // Ids heard of in the last seconds: a watcher that registers just after its task's notification
  // (its read raced the commit) is checked at once instead of at the next safety re-check.
  const recent = new Map<string, number>();
  const toCheck = new Set<string>();
  let checking = false;
  let listening = false;
  let watching = 0;
  let closed = false;
  let listener: postgres.Sql | undefined;
  let retry: NodeJS.Timeout | undefined;

  const fire = (taskId: string, watcher: Watcher) => {
    const set = watchers.get(taskId);
    if (!set?.delete(watcher)) return;
    watching--;
    if (set.size === 0) watchers.delete(taskId);
    watcher.onChange();
  };

  /** Reads the versions of the tasks marked for checking (one query), and calls the watchers whose version moved. */
  const check = async (): Promise<void> => {
    if (checking) return;
    checking = true;
    try {
      while (toCheck.size > 0 && !closed) {
        const ids = [...toCheck].filter((id) => watchers.has(id));
        toCheck.clear();
        if (ids.length === 0) break;
        let current: Map<string, string>;
        try {
          current = await versions(ids);
        } catch (err) {
          onError(err, 'change feed: reading task versions');
          break; // the next safety re-check tries again
        }
        for (const id of ids) {
          for (const watcher of [...(watchers.get(id) ?? [])]) if (current.get(id) !== watcher.seen) fire(id, watcher);
        }
      }
    } finally {
      checking = false;
    }
  };

  const heard = (ids: Iterable<string>) => {
    const now = Date.now();
    let any = false;
    for (const id of ids) {
      recent.set(id, now);
      if (watchers.has(id)) {
        toCheck.add(id);
        any = true;
      }
    }
    if (any) void check();
  };

  // The safety re-check: every watched task, one query; quicker while not listening.
  let lastRecheck = Date.now();
  const ticker = setInterval(() => {
    const now = Date.now();
    for (const [id, at] of recent) if (now - at > recheckMs) recent.delete(id);
    if (now - lastRecheck < (listening || !options.listenUrl ? recheckMs : fallbackRecheckMs) - 50) return;
    lastRecheck = now;
    for (const id of watchers.keys()) toCheck.add(id);
    void check();
  }, Math.min(fallbackRecheckMs, recheckMs));
  ticker.unref();

  // At most one NOTIFY statement in flight; ids published meanwhile go out together in the next.
  const outbox = new Set<string>();
  let sending = false;
  const send = () => {
    sending = true;
    const ids = [...outbox];
    outbox.clear();
    const payloads: string[] = [];
    for (let i = 0; i < ids.length; i += IDS_PER_PAYLOAD) payloads.push(ids.slice(i, i + IDS_PER_PAYLOAD).join(','));
    sql
      .unsafe(NOTIFY, [CHANGE_CHANNEL, payloads], { prepare: true })
      .catch((err: unknown) => onError(err, 'change feed: NOTIFY (watchers elsewhere wait for their re-check)'))
      .finally(() => {
        sending = false;
        if (outbox.size > 0 && !closed) send();
      });
  };

  // One LISTEN attempt at a time: a failed one also closes its connection, and both say "retry".
  let attempting = false;
  let failures = 0;
  const scheduleListen = (ms: number) => {
    if (closed) return;
    clearTimeout(retry);
    retry = setTimeout(() => void listen(), ms);
    retry.unref();
  };
  const listen = async (): Promise<void> => {
    if (closed || !listener || attempting) return;
    attempting = true;
    try {
      await listener.unsafe(`listen ${CHANGE_CHANNEL}`);
      listening = true;
      // Whatever changed while nobody listened is found by reading.
      for (const id of watchers.keys()) toCheck.add(id);
      void check();
      failures = 0;
    } catch (err) {
      // Once, then once a minute: the database being down is reported elsewhere too.
      if (failures++ % 60 === 0) onError(err, 'change feed: LISTEN failed; re-checking by reading until it is back');
      scheduleListen(1000);
    } finally {
      attempting = false;
    }
  };

  return {
    publish(taskIds) {
      const ids = [...taskIds];
      if (ids.length === 0) return;
      heard(ids); // this process's own watchers need no round trip
      for (const id of ids) outbox.add(id);
      if (!sending) send();
    },
    watch(taskId, seen, onChange) {
      if (closed) {
        queueMicrotask(onChange);
        return () => {};
      }
      const watcher = { seen, onChange };
      watching++;
      const set = watchers.get(taskId);
      if (set) set.add(watcher);
      else watchers.set(taskId, new Set([watcher]));
      if (recent.has(taskId)) {
        toCheck.add(taskId);
        void check();
      }
      return () => {
        const current = watchers.get(taskId);
        if (!current?.delete(watcher)) return;
        watching--;
        if (current.size === 0) watchers.delete(taskId);
      };
    },
    get listening() {
      return listening;
    },
    get watching() {
      return watching;
    },
    get closed() {
      return closed;
    },
    async start() {
      if (!options.listenUrl) return;
      listener = postgres(options.listenUrl, {
        max: 1,
        max_lifetime: null,
        fetch_types: false,
        onnotice: () => {},
        // A failed attempt closes its connection too; only the loss of a working one is news here.
        onclose: () => {
          if (!listening) return;
          listening = false;
          scheduleListen(100);
        },
        // postgres.js hands NotificationResponse messages of its connections to this option
        // (what its own `listen` uses); the types do not list it.
        ...({ onnotify: (channel: string, payload: string) => channel === CHANGE_CHANNEL && heard(payload.split(',')) } as object),
      });
      await listen();
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(ticker);
      clearTimeout(retry);
      for (const [id, set] of [...watchers]) for (const watcher of [...set]) fire(id, watcher);
      await listener?.end({ timeout: 1 });
    },
  };
}

/** Task versions for long-polls: their status. */
export function taskStatuses(sql: postgres.Sql): (taskIds: string[]) => Promise<Map<string, string>> {
  return (taskIds) => readTaskStatuses(sql, taskIds);
}
