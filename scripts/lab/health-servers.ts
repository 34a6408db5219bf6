/**
 * Misbehaving and simple servers for the health checkers' tests, as an agent (./agent.ts) in a
 * server namespace. Each command starts one listener on all addresses (IPv4 and IPv6) of the
 * namespace and answers {port}; `close` stops one, and stdin closing stops them all.
 *
 *   {"op":"tcp", "port"}                         accepts and closes (TCP_CHECK up)
 *   {"op":"http", "port", "status", "body", "delayMs"?}
 *                                                answers every request with that status and body,
 *                                                after delayMs (a slow server), then closes
 *   {"op":"smtp", "port", "banner"?, "helo"?}   an SMTP responder: greets with `banner` (default
 *                                                "220 lab.test ESMTP"), answers HELO with `helo`
 *                                                (default "250 lab.test"), QUIT with 221; the
 *                                                greeting is written in two segments (multi-line)
 *   {"op":"udp", "port", "reply"?}               answers each datagram with `reply` (hex; default
 *                                                the datagram itself)
 *   {"op":"close", "port"}                       stops the listener(s) on that port
 */
import { createServer as createTcpServer, type Server, type Socket as TcpSocket } from 'node:net';
import { createSocket, type Socket } from 'node:dgram';
import { serveAgent } from './agent.ts';

const servers = new Map<number, (Server | Socket)[]>();

function port(cmd: Record<string, unknown>): number {
  const p = cmd.port;
  if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`'port' must be a port, got ${String(p)}`);
  if (servers.has(p)) throw new Error(`port ${p} is already served`);
  return p;
}

function listenTcp(p: number, handler: (s: TcpSocket) => void): Promise<Record<string, unknown>> {
  const srv = createTcpServer(handler);
  return new Promise((ok, fail) => {
    srv.once('error', fail);
    srv.listen({ port: p, host: '::', ipv6Only: false, backlog: 4096 }, () => {
      servers.set(p, [srv]);
      ok({ port: p });
    });
  });
}

serveAgent({
  setup: () => ({}),
  handlers: {
    tcp: (cmd) => listenTcp(port(cmd), (s) => {
      s.on('error', () => undefined);
      s.end();
    }),
    http: (cmd) => {
      const status = Number(cmd.status ?? 200);
      const body = String(cmd.body ?? '');
      const delayMs = Number(cmd.delayMs ?? 0);
      return listenTcp(port(cmd), (s) => {
        s.on('error', () => undefined);
        let head = '';
        s.on('data', (d: Buffer) => {
          head += d.toString('latin1');
          if (!head.includes('\r\n\r\n')) return;
          const answer = `HTTP/1.0 ${status} Lab\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
          setTimeout(() => { if (!s.destroyed) s.end(answer); }, delayMs);
        });
      });
    },
    smtp: (cmd) => {
      const banner = String(cmd.banner ?? '220 lab.test ESMTP');
      const helo = String(cmd.helo ?? '250 lab.test');
      const code = banner.slice(0, 3);
      return listenTcp(port(cmd), (s) => {
        s.on('error', () => undefined);
        // a multi-line greeting in two segments
        s.write(`${code}-lab.test says hello\r\n`);
        setTimeout(() => { if (!s.destroyed) s.write(`${banner}\r\n`); }, 20);
        let buf = '';
        s.on('data', (d: Buffer) => {
          buf += d.toString('latin1');
          let nl;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (/^HELO /i.test(line)) s.write(`${helo}\r\n`);
            else if (/^QUIT$/i.test(line)) s.end('221 bye\r\n');
            else s.write('500 what\r\n');
          }
        });
      });
    },
    udp: (cmd) => {
      const p = port(cmd);
      const reply = typeof cmd.reply === 'string' ? Buffer.from(cmd.reply, 'hex') : undefined;
      const sock = createSocket({ type: 'udp6', ipv6Only: false });
      sock.on('message', (msg, from) => sock.send(reply ?? msg, from.port, from.address));
      return new Promise((ok, fail) => {
        sock.once('error', fail);
        sock.bind(p, '::', () => {
          servers.set(p, [sock]);
          ok({ port: p });
        });
      });
    },
    close: (cmd) => {
      const p = Number(cmd.port);
      for (const s of servers.get(p) ?? []) s.close();
      servers.delete(p);
      return { port: p };
    },
  },
  teardown: () => {
    for (const list of servers.values()) for (const s of list) s.close();
  },
});
