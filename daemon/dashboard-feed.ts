/**
 * The dashboard's live feed: server-sent event streams that get the status report whenever it
 * changes (routes, health, profiles, file problems, memory) and every recorded request. Work
 * happens only while a stream is open: no listener on the request log, no probe timer otherwise.
 */
import type { ServerResponse } from 'node:http';
import type { RequestEntry, RequestLog } from '../proxy/request-log.js';
import type { Health, StatusReport } from '../workspace/status.js';

/** A table change is pushed after this quiet time, so a burst of changes sends one report. */
const CHANGE_DEBOUNCE_MS = 15;
/** Health is probed this often while a stream is open (local servers devproxy does not run can die unnoticed otherwise). */
const PROBE_INTERVAL_MS = 2_000;
/** A comment line this often keeps idle streams alive and lets clients notice a dead daemon. */
const HEARTBEAT_MS = 15_000;

/** What a stream asks for: `status`, `requests`, or both (default). */
export type FeedTopic = 'status' | 'requests';

interface Stream {
  res: ServerResponse;
  topics: ReadonlySet<FeedTopic>;
}

export interface DashboardFeedOptions {
  /** The report with the given (last probed) health. */
  report(health: ReadonlyMap<string, Health>): StatusReport;
  /** Probes every local target. */
  probe(): Promise<Map<string, Health>>;
  requestLog: RequestLog;
}

/** Fans status and request events out to the open streams. */
export class DashboardFeed {
  readonly #streams = new Set<Stream>();
  #health: ReadonlyMap<string, Health> = new Map();
  #lastStatus = '';
  #changeTimer: NodeJS.Timeout | undefined;
  #probeTimer: NodeJS.Timeout | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #probing = false;
  #unsubscribe: (() => void) | undefined;

  constructor(private readonly options: DashboardFeedOptions) {}

  /**
   * Serves one stream on `res` (already authorised): the current report and the requests after
   * `afterSeq` at once, then every change until the client goes away.
   */
  open(res: ServerResponse, topics: ReadonlySet<FeedTopic>, afterSeq: number): void {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive' });
    res.flushHeaders();
    const stream: Stream = { res, topics };
    this.#streams.add(stream);
    res.once('close', () => this.#close(stream));
    if (topics.has('status')) {
      this.#lastStatus = JSON.stringify(this.options.report(this.#health));
      write(res, 'status', this.#lastStatus);
      void this.#probe();
    }
    if (topics.has('requests')) write(res, 'requests', JSON.stringify(this.options.requestLog.entries(afterSeq)));
    this.#start();
  }

  /** The table changed: push the report soon, then again once its health is probed. */
  changed(): void {
    if (!this.#wants('status')) return;
    clearTimeout(this.#changeTimer);
    this.#changeTimer = setTimeout(() => {
      this.#pushStatus();
      void this.#probe();
    }, CHANGE_DEBOUNCE_MS);
  }

  /** Ends every stream (the daemon stops; clients reconnect to the next one). */
  close(): void {
    for (const stream of [...this.#streams]) stream.res.end();
    this.#streams.clear();
    this.#stop();
  }

  #wants(topic: FeedTopic): boolean {
    for (const stream of this.#streams) if (stream.topics.has(topic)) return true;
    return false;
  }

  #start(): void {
    this.#heartbeat ??= setInterval(() => {
      for (const stream of this.#streams) stream.res.write(': keep-alive\n\n');
    }, HEARTBEAT_MS);
    if (this.#wants('status')) this.#probeTimer ??= setInterval(() => void this.#probe(), PROBE_INTERVAL_MS);
    if (this.#wants('requests')) this.#unsubscribe ??= this.options.requestLog.subscribe((batch) => this.#pushRequests(batch));
  }

  #close(stream: Stream): void {
    this.#streams.delete(stream);
    if (!this.#wants('requests')) {
      this.#unsubscribe?.();
      this.#unsubscribe = undefined;
    }
    if (!this.#wants('status')) {
      clearInterval(this.#probeTimer);
      this.#probeTimer = undefined;
      clearTimeout(this.#changeTimer);
    }
    if (this.#streams.size === 0) this.#stop();
  }

  #stop(): void {
    clearInterval(this.#heartbeat);
    clearInterval(this.#probeTimer);
    clearTimeout(this.#changeTimer);
    this.#heartbeat = this.#probeTimer = undefined;
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
  }

  async #probe(): Promise<void> {
    if (this.#probing) return;
    this.#probing = true;
    try {
      this.#health = await this.options.probe();
    } finally {
      this.#probing = false;
    }
    this.#pushStatus();
  }

  #pushStatus(): void {
    if (!this.#wants('status')) return;
    const text = JSON.stringify(this.options.report(this.#health));
    if (text === this.#lastStatus) return;
    this.#lastStatus = text;
    for (const stream of this.#streams) if (stream.topics.has('status')) write(stream.res, 'status', text);
  }

  #pushRequests(batch: RequestEntry[]): void {
    const text = JSON.stringify(batch);
    for (const stream of this.#streams) if (stream.topics.has('requests')) write(stream.res, 'requests', text);
  }
}

/** One server-sent event; `data` is one line of JSON (JSON.stringify never emits a newline). */
function write(res: ServerResponse, event: string, data: string): void {
  res.write(`event: ${event}\ndata: ${data}\n\n`);
}
