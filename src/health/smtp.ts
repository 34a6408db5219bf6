/**
 * SMTP_CHECK (keepalived's check_smtp.c): for each host (the checker's own endpoint, or each of
 * its deprecated `host` blocks, in order), connect, then
 *   server: 220 greeting      (anything else: "bad greeting")
 *   client: HELO <helo_name>
 *   server: 250 ...           (anything else: "bad HELO response")
 *   client: QUIT
 *   server: any reply         (then the check has passed for this host)
 * A reply is read as SMTP defines it: continuation lines "NNN-..." up to a last line "NNN ...";
 * its code is that of the last line. (keepalived looks only at the first line of whatever arrived
 * in one read, which a greeting split over several segments can fool.)
 */
import type { Socket } from 'node:net';
import type { CheckerSpec } from './config.ts';
import { TcpEndpoint, endpointText } from './connect.ts';
import type { Checker, CheckResult } from './types.ts';

export type SmtpSpec = Extract<CheckerSpec, { kind: 'SMTP_CHECK' }>;

/** longest reply accepted (keepalived's buffer is 512 bytes: generous here) */
const MAX_REPLY = 16 * 1024;

/** Splits what a server sends into SMTP replies; each complete reply's code (0 if the last line has none). */
export class SmtpReplies {
  #buf = '';

  /** Add data; returns the codes of the replies it completed. */
  push(data: string): number[] {
    this.#buf += data;
    const codes: number[] = [];
    for (;;) {
      const nl = this.#buf.indexOf('\n');
      if (nl < 0) break;
      const line = this.#buf.slice(0, nl).replace(/\r$/, '');
      this.#buf = this.#buf.slice(nl + 1);
      if (/^\d{3}-/.test(line)) continue;
      codes.push(/^\d{3}(?: |$)/.test(line) ? Number(line.slice(0, 3)) : 0);
    }
    return codes;
  }

  get pending(): number {
    return this.#buf.length;
  }
}

export class SmtpChecker implements Checker {
  readonly kind = 'SMTP_CHECK';
  readonly target: string;
  readonly #spec: SmtpSpec;
  readonly #eps: TcpEndpoint[];

  constructor(spec: SmtpSpec) {
    this.#spec = spec;
    this.#eps = spec.hosts.map((h) => new TcpEndpoint(h));
    this.target = `SMTP ${spec.hosts.map(endpointText).join(' ')}`;
  }

  run(done: (r: CheckResult) => void): () => void {
    let cancelled = false;
    let current: (() => void) | undefined;
    const next = (i: number): void => {
      if (i === this.#eps.length) return done({ up: true, reason: 'SMTP dialogue completed' });
      const ep = this.#eps[i]!;
      current = this.#dialogue(ep, (reason) => {
        if (cancelled) return;
        if (reason !== undefined) done({ up: false, reason: this.#eps.length > 1 ? `${endpointText(ep.endpoint)}: ${reason}` : reason });
        else next(i + 1);
      });
    };
    next(0);
    return () => {
      cancelled = true;
      current?.();
    };
  }

  #dialogue(ep: TcpEndpoint, cb: (reason?: string) => void): () => void {
    let sock: Socket | undefined;
    let finished = false;
    const finish = (reason?: string) => {
      if (finished) return;
      finished = true;
      sock?.destroy();
      cb(reason);
    };
    const cancelConnect = ep.open((err, s) => {
      if (err || !s) return finish(err?.message ?? 'connect failed');
      sock = s;
      const replies = new SmtpReplies();
      let step: 'greeting' | 'helo' | 'quit' = 'greeting';
      s.setEncoding('latin1');
      s.on('data', (data: string) => {
        for (const code of replies.push(data)) {
          if (finished) return;
          if (step === 'greeting') {
            if (code !== 220) return finish(`bad greeting${code ? ` ${code}` : ''} (220 expected)`);
            step = 'helo';
            s.write(`HELO ${this.#spec.helo}\r\n`);
          } else if (step === 'helo') {
            if (code !== 250) return finish(`bad HELO response${code ? ` ${code}` : ''} (250 expected)`);
            step = 'quit';
            s.write('QUIT\r\n');
          } else {
            return finish();
          }
        }
        if (replies.pending > MAX_REPLY) finish(`a reply longer than ${MAX_REPLY} bytes`);
      });
      s.on('end', () => finish(`connection closed while waiting for the ${step === 'greeting' ? 'greeting' : step === 'helo' ? 'HELO response' : 'QUIT response'}`));
      s.on('close', () => finish('connection closed'));
      s.on('error', (e: NodeJS.ErrnoException) => finish(e.code ?? e.message));
    });
    return () => {
      finished = true;
      cancelConnect();
      sock?.destroy();
    };
  }
}
