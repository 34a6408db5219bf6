/**
 * What every `xlb` command writes through and checks with, so that unit tests run the real
 * parser and formatting with a captured output and fake operations.
 */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  /** privileged operations (BPF, XDP) are refused early without it */
  isRoot(): boolean;
  /** standard output is a terminal (live views refresh in place); absent = no */
  isTty?(): boolean;
}

export const processIo: CliIo = {
  out: (text) => { process.stdout.write(text); },
  err: (text) => { process.stderr.write(text); },
  isRoot: () => process.getuid?.() === 0,
  isTty: () => process.stdout.isTTY === true,
};

/** An error for the user: printed as `xlb: <message>` without a stack; exit code 1. */
export class CliError extends Error {}

/** Ends a command with this exit code and no further message (it has said what it had to). */
export class CliExit extends Error {
  constructor(readonly exitCode: number) {
    super(`exit ${exitCode}`);
  }
}

/** Refuse a command that needs root before it tries anything. */
export function requireRoot(io: CliIo, what: string): void {
  if (!io.isRoot()) throw new CliError(`${what} needs root (it loads BPF programs and attaches XDP): run it as root`);
}
