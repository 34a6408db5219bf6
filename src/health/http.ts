/**
 * HTTP_GET and SSL_GET (keepalived's check_http.c, check_ssl.c, html.c).
 *
 * Each url is fetched on a new connection (over TLS for SSL_GET):
 *   GET <path> HTTP/1.0|1.1\r\n
 *   User-Agent: KeepAliveClient\r\n
 *   Connection: close\r\n                      (http_protocol 1.0C and 1.1)
 *   Host: <virtualhost> | <address>:<port>\r\n   (IPv6 in brackets)
 *   \r\n
 * and the whole answer is read until the server closes. The url passes when:
 *   - a header ending in \r\n\r\n came back (else: "no data received");
 *   - its status code (the first line's 3 digits after the first space, followed by a space, as
 *     keepalived reads it) is in the url's status_code ranges (default 200-299);
 *   - with `digest`: the MD5 of the body (every byte after the header, up to the close: what
 *     keepalived's genhash prints) is that digest;
 *   - with `regex`: the body (from regex_min_offset; a match must start at or before
 *     regex_max_offset) matches, or with regex_no_match does not.
 * SSL_GET does not verify the server's certificate (keepalived does not either); with
 * enable_sni the virtual host (when it is a name) goes in the TLS SNI.
 *
 * One run checks every url in order and fails at the first that fails. keepalived checks one url
 * per delay_loop (unless fast_recovery); the verdict once all are checked is the same, xlb only
 * reaches it sooner. The scheduler's timeout (connect_timeout) bounds the whole run, where
 * keepalived applies it to each step (connect, write, each read) separately.
 */
import { createHash, type Hash } from 'node:crypto';
import { isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { CheckerSpec, UrlSpec } from './config.ts';
import { TcpEndpoint, endpointText, type Endpoint } from './connect.ts';
import type { Checker, CheckResult } from './types.ts';

export type HttpSpec = Extract<CheckerSpec, { kind: 'HTTP_GET' | 'SSL_GET' }>;

/** headers longer than this fail the url (keepalived's buffer is 4 KiB; generous here) */
const MAX_HEADER = 64 * 1024;
/** body bytes kept for a regex without regex_max_offset */
const MAX_REGEX_BODY = 1024 * 1024;

/** The request keepalived sends for `url` (see the top of this file). */
export function httpRequest(url: UrlSpec, protocol: HttpSpec['protocol'], ep: Endpoint): string {
  const host = url.virtualhost ?? `${ep.family === 6 ? `[${ep.address}]` : ep.address}:${ep.port}`;
  return `GET ${url.path} HTTP/1.${protocol === '1.1' ? 1 : 0}\r\nUser-Agent: KeepAliveClient\r\n` +
    `${protocol === '1.0' ? '' : 'Connection: close\r\n'}Host: ${host}\r\n\r\n`;
}

/** keepalived's extract_status_code: 3 digits after the first space, then a space; 0 if not so. */
export function statusCodeOf(header: Buffer): number {
  const line = header.toString('latin1', 0, Math.min(header.length, 256));
  const sp = line.search(/[ \r]/);
  if (sp < 0 || line[sp] !== ' ') return 0;
  const m = /^(\d{3}) /.exec(line.slice(sp + 1));
  return m ? Number(m[1]) : 0;
}

/** An answer as it comes in: the header, the body's MD5, and the body when a regex needs it. */
export class HttpAnswer {
  #head: Buffer[] = [];
  #headLen = 0;
  #header: Buffer | undefined;
  #md5: Hash | undefined;
  #md5hex: string | undefined;
  #body: Buffer[] = [];
  #bodyLen = 0;
  #keep: number;
  bodyBytes = 0;
  overflow = false;

  constructor(url: UrlSpec) {
    if (url.digest) this.#md5 = createHash('md5');
    this.#keep = url.regex ? (url.regex.maxOffset !== undefined ? url.regex.maxOffset + 64 * 1024 : MAX_REGEX_BODY) : 0;
  }

  push(chunk: Buffer): void {
    if (this.#header === undefined) {
      this.#head.push(chunk);
      this.#headLen += chunk.length;
      const all = Buffer.concat(this.#head, this.#headLen);
      const end = all.indexOf('\r\n\r\n');
      if (end < 0) {
        if (this.#headLen > MAX_HEADER) this.overflow = true;
        this.#head = [all];
        return;
      }
      this.#header = all.subarray(0, end);
      this.#head = [];
      chunk = all.subarray(end + 4);
      if (chunk.length === 0) return;
    }
    this.bodyBytes += chunk.length;
    this.#md5?.update(chunk);
    if (this.#bodyLen < this.#keep) {
      const part = chunk.subarray(0, this.#keep - this.#bodyLen);
      this.#body.push(part);
      this.#bodyLen += part.length;
    }
  }

  get header(): Buffer | undefined {
    return this.#header;
  }

  /** The url's verdict once the server has closed. */
  verdict(url: UrlSpec): { ok: true } | { ok: false; reason: string } {
    if (this.#header === undefined) return { ok: false, reason: this.overflow ? `no end of header in ${MAX_HEADER} bytes` : 'no data received' };
    const code = statusCodeOf(this.#header);
    if (!url.statusCodes.some(([a, b]) => code >= a && code <= b)) {
      return { ok: false, reason: code === 0 ? 'no status code in the answer' : `HTTP status ${code}` };
    }
    if (url.digest !== undefined) {
      const got = (this.#md5hex ??= this.#md5!.digest('hex'));
      if (got !== url.digest) return { ok: false, reason: `MD5 digest ${got}, expected ${url.digest}` };
    }
    if (url.regex) {
      const re = new RegExp(url.regex.pattern, `${url.regex.flags}g`);
      const body = Buffer.concat(this.#body, this.#bodyLen).toString('latin1');
      re.lastIndex = url.regex.minOffset;
      const m = re.exec(body);
      const matched = m !== null && (url.regex.maxOffset === undefined || m.index <= url.regex.maxOffset);
      if (matched === url.regex.noMatch) return { ok: false, reason: url.regex.noMatch ? `the body matches /${url.regex.pattern}/` : `the body does not match /${url.regex.pattern}/` };
    }
    return { ok: true };
  }
}

export class HttpChecker implements Checker {
  readonly kind: HttpSpec['kind'];
  readonly target: string;
  readonly #spec: HttpSpec;
  readonly #ep: TcpEndpoint;
  readonly #requests: string[];

  constructor(spec: HttpSpec) {
    this.kind = spec.kind;
    this.#spec = spec;
    this.#ep = new TcpEndpoint(spec.endpoint);
    this.#requests = spec.urls.map((u) => httpRequest(u, spec.protocol, spec.endpoint));
    this.target = `${spec.kind === 'SSL_GET' ? 'https' : 'http'}://${endpointText(spec.endpoint)}${spec.urls.map((u) => u.path).join(',')}`;
  }

  run(done: (r: CheckResult) => void): () => void {
    let cancelled = false;
    let current: (() => void) | undefined;
    const urls = this.#spec.urls;
    const next = (i: number): void => {
      if (i === urls.length) return done({ up: true, reason: urls.length === 1 ? `${urls[0]!.path} OK` : `${urls.length} urls OK` });
      const url = urls[i]!;
      current = this.#fetch(url, this.#requests[i]!, (reason) => {
        if (cancelled) return;
        if (reason !== undefined) done({ up: false, reason: `${url.path}: ${reason}` });
        else next(i + 1);
      });
    };
    next(0);
    return () => {
      cancelled = true;
      current?.();
    };
  }

  /** Fetch one url; cb() when it passed, cb(reason) when not. Returns cancel. */
  #fetch(url: UrlSpec, request: string, cb: (reason?: string) => void): () => void {
    let sock: Socket | undefined;
    let rawSock: Socket | undefined;
    let finished = false;
    const close = () => {
      sock?.destroy();
      rawSock?.destroy();
    };
    const finish = (reason?: string) => {
      if (finished) return;
      finished = true;
      close();
      cb(reason);
    };
    const cancelConnect = this.#ep.open((err, raw) => {
      if (err || !raw) return finish(err?.message ?? 'connect failed');
      const answer = new HttpAnswer(url);
      rawSock = raw;
      sock = this.#spec.kind === 'SSL_GET' ? this.#tls(raw, url) : raw;
      const s = sock;
      s.on('data', (chunk: Buffer) => {
        answer.push(chunk);
        if (answer.overflow) finish(`no end of header in ${MAX_HEADER} bytes`);
      });
      const judge = () => {
        if (finished) return;
        const v = answer.verdict(url);
        finish(v.ok ? undefined : v.reason);
      };
      s.on('end', judge);
      s.on('close', judge);
      s.on('error', (e: NodeJS.ErrnoException) => {
        // a server that drops the connection after a whole answer (TLS without close_notify)
        if (answer.header !== undefined) judge();
        else finish(e.code ?? e.message);
      });
      if (this.#spec.kind === 'SSL_GET') s.once('secureConnect', () => s.write(request));
      else s.write(request);
    });
    return () => {
      finished = true;
      cancelConnect();
      close();
    };
  }

  #tls(raw: Socket, url: UrlSpec): Socket {
    const host = url.virtualhost;
    const servername = this.#spec.sni && host !== undefined && isIP(host) === 0 ? host : undefined;
    return tlsConnect({ socket: raw, rejectUnauthorized: false, ...(servername !== undefined ? { servername } : {}) });
  }
}
