/**
 * UDP_CHECK (keepalived's check_udp.c, layer4.c): a datagram to the real server from a connected
 * UDP socket (bound to bindto / bind_port when given), carrying `payload` (default 16 random
 * bytes). Then, within connect_timeout:
 *   - without require_reply: an ICMP error (port or host unreachable: the socket's ECONNREFUSED /
 *     EHOSTUNREACH) fails the check; a reply, or silence until the timeout, passes it;
 *   - with require_reply: a reply must come, its length within min_reply_length..
 *     max_reply_length (default 0..255), and with a hex string its first bytes (as many as both
 *     have) must equal it, x/X nibbles matching anything. Silence or an ICMP error fails.
 * UDP checks depend on ICMP errors: a host that drops them silently passes without require_reply.
 */
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import type { CheckerSpec, HexBytes } from './config.ts';
import { endpointText, type Endpoint } from './connect.ts';
import type { Checker, CheckResult } from './types.ts';

export type UdpSpec = Extract<CheckerSpec, { kind: 'UDP_CHECK' }>;

const RANDOM_PAYLOAD = 16;
const REPLIED: CheckResult = { up: true, reason: 'reply received' };
const SILENT: CheckResult = { up: true, reason: 'no ICMP error within connect_timeout' };

/** Why a reply does not satisfy require_reply, or undefined when it does. */
export function udpReplyMismatch(reply: Buffer, min: number, max: number, expected?: HexBytes): string | undefined {
  if (reply.length < min || reply.length > max) return `reply of ${reply.length} bytes, not ${min}..${max}`;
  if (!expected) return undefined;
  const n = Math.min(reply.length, expected.data.length);
  for (let i = 0; i < n; i++) {
    const care = ~(expected.mask?.[i] ?? 0) & 0xff;
    if (((reply[i]! ^ expected.data[i]!) & care) !== 0) return `reply byte ${i} is 0x${reply[i]!.toString(16).padStart(2, '0')}, expected 0x${expected.data[i]!.toString(16).padStart(2, '0')}`;
  }
  return undefined;
}

/**
 * One datagram exchange of UDP_CHECK and DNS_CHECK: a UDP socket bound to the endpoint's source
 * (when given) and connected to it sends `payload`; each datagram that comes back goes to
 * `judge`, whose verdict ends the run (undefined: not an answer, keep waiting). An ICMP error
 * (ECONNREFUSED: port unreachable) or a socket error ends it as a failure. Returns cancel.
 */
export function udpExchange(ep: Endpoint, payload: Buffer, done: (r: CheckResult) => void, judge: (msg: Buffer) => CheckResult | undefined): () => void {
  const sock: Socket = createSocket(ep.family === 4 ? 'udp4' : 'udp6');
  let finished = false;
  const close = () => {
    try { sock.close(); } catch { /* closed already */ }
  };
  const finish = (r: CheckResult) => {
    if (finished) return;
    finished = true;
    close();
    done(r);
  };
  const fail = (e: NodeJS.ErrnoException) => finish({ up: false, reason: e.code === 'ECONNREFUSED' ? 'port unreachable (ICMP)' : `${e.syscall ?? 'udp'}: ${e.code ?? e.message}` });
  sock.on('error', fail);
  sock.on('message', (msg) => {
    const r = judge(msg);
    if (r) finish(r);
  });
  // connect errors come as 'error' events
  const send = () => sock.connect(ep.port, ep.address, () => sock.send(payload, (e) => { if (e) fail(e); }));
  if (ep.bindto !== undefined || ep.bindPort !== undefined) sock.bind({ address: ep.bindto, port: ep.bindPort ?? 0 }, send);
  else send();
  return () => {
    finished = true;
    close();
  };
}

export class UdpChecker implements Checker {
  readonly kind = 'UDP_CHECK';
  readonly target: string;
  readonly timeoutVerdict: CheckResult | undefined;
  readonly #spec: UdpSpec;

  constructor(spec: UdpSpec) {
    this.#spec = spec;
    this.target = `UDP ${endpointText(spec.endpoint)}`;
    this.timeoutVerdict = spec.requireReply ? undefined : SILENT;
  }

  run(done: (r: CheckResult) => void): () => void {
    const spec = this.#spec;
    return udpExchange(spec.endpoint, spec.payload ?? randomBytes(RANDOM_PAYLOAD), done, (msg) => {
      if (!spec.requireReply) return REPLIED;
      const bad = udpReplyMismatch(msg, spec.minReply, spec.maxReply, spec.reply);
      return bad ? { up: false, reason: bad } : REPLIED;
    });
  }
}
