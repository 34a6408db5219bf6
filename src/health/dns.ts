/**
 * DNS_CHECK (keepalived's check_dns.c): one query over UDP from a connected socket (bound to
 * bindto / bind_port when given): a random id, recursion desired, one question `name` of `type`
 * class IN. The first datagram that is an answer to it (12 bytes of header at least, the same
 * id, the QR bit set; anything else is ignored, as keepalived does) decides: RCODE 0 (NOERROR)
 * passes, any other (FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED, ...) fails. No answer within
 * connect_timeout fails; an ICMP error (port unreachable) fails at once.
 *
 * The name is encoded label by label with its terminating root label ('.' alone is the root);
 * keepalived leaves the root label out of a name written with a trailing dot, which xlb does not
 * copy.
 */
import { randomInt } from 'node:crypto';
import type { CheckerSpec } from './config.ts';
import { endpointText } from './connect.ts';
import { udpExchange } from './udp.ts';
import type { Checker, CheckResult } from './types.ts';

export type DnsSpec = Extract<CheckerSpec, { kind: 'DNS_CHECK' }>;

const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED', 'YXDOMAIN', 'YXRRSET', 'NXRRSET', 'NOTAUTH', 'NOTZONE'];
const CLASS_IN = 1;
const FLAG_RD = 0x0100;
const FLAG_QR = 0x8000;

/** The query datagram (RFC 1035 4.1): header, then the one question. */
export function dnsQuery(id: number, name: string, type: number): Buffer {
  const labels = name === '.' ? [] : name.replace(/\.$/, '').split('.');
  const qname = Buffer.concat([...labels.map((l) => Buffer.concat([Buffer.from([Buffer.byteLength(l)]), Buffer.from(l)])), Buffer.from([0])]);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(FLAG_RD, 2);
  header.writeUInt16BE(1, 4); // QDCOUNT
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(type, 0);
  tail.writeUInt16BE(CLASS_IN, 2);
  return Buffer.concat([header, qname, tail]);
}

/** What a datagram means for the query `id`: not an answer to it (ignored), or its RCODE. */
export function dnsAnswer(d: Buffer, id: number): { ignore: string } | { rcode: number } {
  if (d.length < 12) return { ignore: `${d.length} bytes: shorter than a DNS header` };
  if (d.readUInt16BE(0) !== id) return { ignore: `id ${d.readUInt16BE(0)} is not ${id}` };
  const flags = d.readUInt16BE(2);
  if (!(flags & FLAG_QR)) return { ignore: 'a query, not a response' };
  return { rcode: flags & 0x0f };
}

export function rcodeName(rcode: number): string {
  return RCODES[rcode] ?? `RCODE ${rcode}`;
}

export class DnsChecker implements Checker {
  readonly kind = 'DNS_CHECK';
  readonly target: string;
  readonly #spec: DnsSpec;
  /** datagrams that were not the answer (wrong id, short, not a response) */
  ignored = 0;

  constructor(spec: DnsSpec) {
    this.#spec = spec;
    this.target = `DNS ${endpointText(spec.endpoint)} ${spec.name}`;
  }

  run(done: (r: CheckResult) => void): () => void {
    const id = randomInt(0x10000);
    return udpExchange(this.#spec.endpoint, dnsQuery(id, this.#spec.name, this.#spec.type), done, (msg) => {
      const a = dnsAnswer(msg, id);
      if ('ignore' in a) {
        this.ignored++;
        return undefined;
      }
      return a.rcode === 0 ? { up: true, reason: 'NOERROR' } : { up: false, reason: `answer ${rcodeName(a.rcode)}` };
    });
  }
}
