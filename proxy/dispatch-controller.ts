/**
 * The state of undici's DispatchController (`aborted`, `paused`, `reason`) for the controllers
 * devproxy drives itself (the HTTP/1.1 pool's requests, the asterisk-form request), so a handler
 * sees one shape whichever dispatcher runs it.
 */
import type { Dispatcher } from 'undici';

/** A DispatchController whose subclass says only what aborting, pausing and resuming do to its transport. */
export abstract class DispatchControllerState implements Dispatcher.DispatchController {
  #paused = false;
  #aborted = false;
  #reason: Error | null = null;

  get aborted(): boolean {
    return this.#aborted;
  }

  get paused(): boolean {
    return this.#paused;
  }

  get reason(): Error | null {
    return this.#reason;
  }

  /** Aborts with `reason`, once, and not after {@link ended}: the handler hears of it through {@link onAbort}. */
  abort(reason: Error): void {
    if (this.#aborted || this.ended()) return;
    this.#aborted = true;
    this.#reason = reason;
    this.onAbort(reason);
  }

  pause(): void {
    this.#paused = true;
    this.onPause();
  }

  resume(): void {
    this.#paused = false;
    this.onResume();
  }

  /** True once no handler callback follows any more, so an abort changes nothing; by default never before an abort. */
  protected ended(): boolean {
    return false;
  }

  /** Stops the transport and ends the handler with `reason` (first abort only). */
  protected abstract onAbort(reason: Error): void;
  /** Stops reading the answer. */
  protected abstract onPause(): void;
  /** Reads the answer again. */
  protected abstract onResume(): void;
}
