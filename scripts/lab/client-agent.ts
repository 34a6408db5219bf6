/**
 * A client agent (scripts/lab/agent.ts) in a lab client's namespace: real traffic toward a VIP,
 * every reply checked, and which real served it (the lab's services answer with their name:
 * scripts/lab/services.ts). Commands:
 *
 *   {"op":"http", "url", "count", "concurrency"?}      count GETs, each on a new connection
 *       → {served: {real: n}, ports: {port the real saw: n}, errors: [..]}
 *   {"op":"udp", "address", "port", "count", "concurrency"?}
 *       count datagrams, each from a new socket (a new flow: the sockets stay open until the last
 *       reply, so no two flows share a port) connected to address:port (so only a reply from there
 *       counts), with a unique payload that must come back as "REAL: payload"
 *       → {served, errors}
 *   {"op":"streams.open", "address", "port", "want": [real...], "max"?}
 *       opens TCP echo streams until each wanted real holds one (the echo greets with its name);
 *       streams to other reals, and extra ones, are closed → {streams: [{id, real}]}
 *   {"op":"streams.start", "intervalMs"}   every stream sends "ID:SEQ\n" each interval; every
 *       echo must be the next line sent, else the stream is broken
 *   {"op":"streams.status"} / {"op":"streams.stop"}     → {streams: [StreamStatus]}
 *   {"op":"loop.start", "url", "concurrency"?}   GETs in a loop, each on a new connection
 *   {"op":"loop.take"}                      → {gets: [Get]}: the GETs done since the start or the
 *       last take (the loop goes on)
 *   {"op":"mark"}                           → {seq}: events are numbered; a GET that starts after
 *       a mark has start > seq
 *   {"op":"loop.stop"}                      waits for the GETs in flight → {gets: [Get]}
 */
import { request } from 'node:http';
import { connect, isIPv6, type Socket as TcpSocket } from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { serveAgent } from './agent.ts';
import { PORT_HEADER } from './services.ts';

const TIMEOUT_MS = 3000;

export interface StreamStatus { id: number; real: string; sent: number; echoed: number; broken?: string }
/** One GET of the loop: its event numbers (see mark), its wall-clock times (ms since the epoch), who answered or why not. */
export interface Get { start: number; end: number; startMs: number; endMs: number; real?: string; error?: string }
type Served = Record<string, number>;

let seq = 0;
const next = () => ++seq;

function str(cmd: Record<string, unknown>, key: string): string {
  const v = cmd[key];
  if (typeof v !== 'string' || v === '') throw new Error(`'${key}' must be a non-empty string`);
  return v;
}

function int(cmd: Record<string, unknown>, key: string, dflt?: number): number {
  const v = cmd[key] ?? dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new Error(`'${key}' must be a whole number`);
  return v;
}

interface Answer { real: string; port?: number }

/** One GET on a new connection: the real's name (the body) and the port it saw, or an error. */
function get(url: string): Promise<Answer> {
  return new Promise((ok, fail) => {
    const req = request(url, { agent: false, timeout: TIMEOUT_MS }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => {
        if (res.statusCode !== 200) return fail(new Error(`HTTP ${res.statusCode}`));
        const port = Number(res.headers[PORT_HEADER]);
        if (!Number.isInteger(port)) return fail(new Error(`no ${PORT_HEADER} header in the answer`));
        ok({ real: body.trim(), port });
      });
      res.on('error', fail);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer in ${TIMEOUT_MS} ms`)));
    req.on('error', fail);
    req.end();
  });
}

/**
 * One datagram from a new socket; the reply must be "REAL: payload". The socket goes to `open`,
 * for the caller to close once every flow is done: a closed socket's port could be handed to a
 * later flow, which would then be the same flow to the balancer.
 */
function udpEcho(address: string, port: number, payload: string, open: UdpSocket[]): Promise<Answer> {
  return new Promise((ok, fail) => {
    const sock = createSocket(isIPv6(address) ? 'udp6' : 'udp4');
    open.push(sock);
    const done = (err: Error | null, real?: string) => {
      clearTimeout(timer);
      sock.removeAllListeners('message');
      if (err) fail(err); else ok({ real: real! });
    };
    const timer = setTimeout(() => done(new Error(`no reply to '${payload}' in ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
    sock.on('error', (err) => done(err));
    sock.on('message', (msg) => {
      const text = msg.toString();
      const m = /^([^:]+): (.*)$/s.exec(text);
      if (!m || m[2] !== payload) done(new Error(`reply '${text.slice(0, 80)}' does not echo '${payload}'`));
      else done(null, m[1]);
    });
    sock.connect(port, address, () => sock.send(payload));
  });
}

/** Run `count` tasks, `concurrency` at a time; tally the reals, the ports they saw and the errors. */
async function tally(count: number, concurrency: number, task: (i: number) => Promise<Answer>):
  Promise<{ served: Served; ports?: Record<number, number>; errors: string[] }> {
  const served: Served = {};
  const ports: Record<number, number> = {};
  const errors: string[] = [];
  let i = 0;
  const worker = async () => {
    while (i < count) {
      const n = i++;
      try {
        const { real, port } = await task(n);
        served[real] = (served[real] ?? 0) + 1;
        if (port !== undefined) ports[port] = (ports[port] ?? 0) + 1;
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
  return Object.keys(ports).length ? { served, ports, errors } : { served, errors };
}

// ---- long-lived echo streams

interface Stream extends StreamStatus { sock: TcpSocket; pending: string[]; buf: string }
const streams: Stream[] = [];
let streamTimer: NodeJS.Timeout | undefined;
let streamIds = 0;

function openStream(address: string, port: number, id: number): Promise<Stream> {
  return new Promise((ok, fail) => {
    const sock = connect({ host: address, port, noDelay: true, timeout: TIMEOUT_MS });
    const s: Stream = { id, real: '', sent: 0, echoed: 0, sock, pending: [], buf: '' };
    const breakIt = (why: string) => { if (s.broken === undefined) s.broken = why; };
    sock.setEncoding('utf8');
    sock.on('timeout', () => sock.destroy(new Error(`no greeting in ${TIMEOUT_MS} ms`)));
    sock.on('error', (err) => { breakIt(err.message); fail(err); });
    sock.on('close', () => {
      breakIt('closed');
      if (s.real === '') fail(new Error('closed before the greeting'));
    });
    sock.on('data', (d: string) => {
      s.buf += d;
      let nl: number;
      while ((nl = s.buf.indexOf('\n')) >= 0) {
        const line = s.buf.slice(0, nl);
        s.buf = s.buf.slice(nl + 1);
        if (s.real === '') {
          s.real = line;
          sock.setTimeout(0);
          ok(s);
        } else if (line === s.pending[0]) {
          s.pending.shift();
          s.echoed++;
        } else {
          breakIt(`echo '${line}' where '${s.pending[0] ?? '(nothing)'}' was due`);
          sock.destroy();
        }
      }
    });
  });
}

function streamStatus(): { streams: StreamStatus[] } {
  return { streams: streams.map(({ id, real, sent, echoed, broken }) => ({ id, real, sent, echoed, ...(broken === undefined ? {} : { broken }) })) };
}

// ---- the loop of short connections

const gets: Get[] = [];
let loopRunning = false;
let loopWorkers: Promise<void>[] = [];

serveAgent({
  setup: () => ({}),
  handlers: {
    http: async (cmd) => {
      const url = str(cmd, 'url');
      return tally(int(cmd, 'count'), int(cmd, 'concurrency', 4), () => get(url));
    },
    udp: async (cmd) => {
      const address = str(cmd, 'address');
      const port = int(cmd, 'port');
      const tag = randomBytes(6).toString('hex');
      const open: UdpSocket[] = [];
      try {
        return await tally(int(cmd, 'count'), int(cmd, 'concurrency', 4), (i) => udpEcho(address, port, `xlb-${tag}-${i}`, open));
      } finally {
        for (const sock of open) sock.close();
      }
    },
    'streams.open': async (cmd) => {
      const address = str(cmd, 'address');
      const port = int(cmd, 'port');
      const want = new Set(cmd.want as string[]);
      const max = int(cmd, 'max', 64);
      const opened: StreamStatus[] = [];
      const held = (real: string) => streams.some((s) => s.real === real && s.broken === undefined);
      for (let tries = 0; [...want].some((r) => !held(r)); tries++) {
        if (tries >= max) throw new Error(`${max} connections did not reach every one of ${[...want].join(', ')}`);
        const s = await openStream(address, port, ++streamIds);
        if (want.has(s.real) && !held(s.real)) {
          streams.push(s);
          opened.push({ id: s.id, real: s.real, sent: 0, echoed: 0 });
        } else {
          s.sock.destroy();
        }
      }
      return { streams: opened };
    },
    'streams.start': (cmd) => {
      const interval = int(cmd, 'intervalMs');
      clearInterval(streamTimer);
      streamTimer = setInterval(() => {
        for (const s of streams) {
          if (s.broken !== undefined) continue;
          const line = `${s.id}:${++s.sent}`;
          s.pending.push(line);
          s.sock.write(`${line}\n`);
        }
      }, interval);
      return {};
    },
    'streams.status': () => streamStatus(),
    'streams.stop': async () => {
      clearInterval(streamTimer);
      streamTimer = undefined;
      // let the last echoes come back
      for (let waited = 0; waited < 1000 && streams.some((s) => s.broken === undefined && s.pending.length > 0); waited += 10) {
        await new Promise((ok) => setTimeout(ok, 10));
      }
      for (const s of streams) {
        if (s.broken === undefined && s.pending.length > 0) s.broken = `no echo of '${s.pending[0]}'`;
        s.sock.removeAllListeners('close');
        s.sock.destroy();
      }
      const out = streamStatus();
      streams.length = 0;
      return out;
    },
    'loop.start': (cmd) => {
      const url = str(cmd, 'url');
      if (loopRunning) throw new Error('the loop is running');
      loopRunning = true;
      gets.length = 0;
      loopWorkers = Array.from({ length: Math.max(1, int(cmd, 'concurrency', 2)) }, async () => {
        while (loopRunning) {
          const g: Get = { start: next(), end: 0, startMs: Date.now(), endMs: 0 };
          try { g.real = (await get(url)).real; } catch (err) { g.error = (err as Error).message; }
          g.end = next();
          g.endMs = Date.now();
          gets.push(g);
        }
      });
      return {};
    },
    'loop.take': () => ({ gets: gets.splice(0) }),
    mark: () => ({ seq: next() }),
    'loop.stop': async () => {
      loopRunning = false;
      await Promise.all(loopWorkers);
      return { gets: [...gets] };
    },
  },
  teardown: () => {
    clearInterval(streamTimer);
    loopRunning = false;
  },
});
