/**
 * The failover benchmark's prober, run in the client namespace:
 *
 *   ip netns exec NS node --import tsx failover-prober.ts VIP PORT
 *
 * sends one UDP datagram "SEQ" to VIP:PORT every millisecond (a timer; sends are timestamped as
 * they happen, so late ticks show as gaps, not as wrong times) from one unconnected socket, and
 * keeps every answer: the UDP echo on each VRRP node (scripts/lab/vrrp-echo.ts) replies
 * "NODE: SEQ", so an answer says which node holds the VIP. Times are CLOCK_REALTIME in ms
 * (performance.timeOrigin + performance.now()), comparable with other processes'.
 *
 * JSON lines: first {"ok":true,"ready":true}; then commands on stdin:
 *   {"op":"first","node":"n2","after":T,"timeoutMs":N}
 *      the first answer from NODE to a datagram sent at or after T (waits for it up to N ms)
 *      -> {"ok":true,"sentMs","recvMs","sentSince","answeredSince"}, or ok:false on timeout
 *   {"op":"last","node":"n1"} -> {"ok":true,"recvMs"}: the latest answer from NODE (0 if none)
 * Exits when stdin closes.
 */
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';

const now = () => performance.timeOrigin + performance.now();
const out = (v: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(v)}\n`);

interface Answer { seq: number; node: string; recvMs: number }

function main(): void {
  const [vip, portText] = process.argv.slice(2);
  const port = Number(portText);
  if (!vip || !Number.isInteger(port)) throw new Error('usage: failover-prober.ts VIP PORT');
  const sock = createSocket(isIPv6(vip) ? 'udp6' : 'udp4');
  const sentAt: number[] = [];
  const answers: Answer[] = [];
  let waiting: { node: string; after: number; done: (a: Answer) => void } | null = null;

  sock.on('message', (msg) => {
    const m = /^([^:]+): (\d+)$/.exec(msg.toString());
    if (!m) return;
    const a: Answer = { seq: Number(m[2]), node: m[1]!, recvMs: now() };
    answers.push(a);
    if (waiting && a.node === waiting.node && (sentAt[a.seq] ?? 0) >= waiting.after) {
      const w = waiting;
      waiting = null;
      w.done(a);
    }
  });
  sock.on('error', () => undefined); // ENETUNREACH and the like while the VIP moves: counted as unanswered
  let seq = 0;
  const tick = () => {
    const s = seq++;
    sentAt[s] = now();
    sock.send(String(s), port, vip);
  };
  const timer = setInterval(tick, 1);

  const reply = (a: Answer, after: number) => {
    const first = sentAt.findIndex((t) => t >= after);
    const sentSince = first < 0 ? 0 : sentAt.length - first;
    const answeredSince = answers.filter((x) => (sentAt[x.seq] ?? 0) >= after).length;
    out({ ok: true, sentMs: sentAt[a.seq], recvMs: a.recvMs, sentSince, answeredSince });
  };

  createInterface({ input: process.stdin }).on('line', (line) => {
    const cmd = JSON.parse(line) as { op: string; node: string; after?: number; timeoutMs?: number };
    if (cmd.op === 'last') {
      const last = [...answers].reverse().find((a) => a.node === cmd.node);
      out({ ok: true, recvMs: last?.recvMs ?? 0 });
      return;
    }
    if (cmd.op !== 'first') {
      out({ ok: false, error: `unknown op ${cmd.op}` });
      return;
    }
    const after = cmd.after ?? 0;
    const hit = answers.find((a) => a.node === cmd.node && (sentAt[a.seq] ?? 0) >= after);
    if (hit) {
      reply(hit, after);
      return;
    }
    const t = setTimeout(() => { waiting = null; out({ ok: false, error: `no answer from ${cmd.node} within ${cmd.timeoutMs} ms` }); }, cmd.timeoutMs ?? 10_000);
    waiting = { node: cmd.node, after, done: (a) => { clearTimeout(t); reply(a, after); } };
  }).on('close', () => {
    clearInterval(timer);
    sock.close();
    process.exit(0);
  });
  sock.bind(0, () => out({ ok: true, ready: true }));
  // drop what no question can need any more: answers and send times older than 60 s
  setInterval(() => {
    const cut = now() - 60_000;
    while (answers.length > 0 && answers[0]!.recvMs < cut) answers.shift();
  }, 5000).unref();
}

main();
