/**
 * Where library code reports what happened: library code does not print, it takes a logger
 * (the daemon's log file, or an array in a test). At the root because every room logs.
 */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}
