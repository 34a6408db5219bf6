/**
 * A real server's services for the lab, run inside the real's namespace by scripts/lab/services.ts
 * (which chooses the ports):
 *
 *   node --import tsx real-server.ts NAME --echo PORT [--http PORT,PORT...]
 *
 * - HTTP on each --http port (none when the option is absent: nginx serves HTTP instead),
 *   IPv4 and IPv6: every request gets "NAME\n", with the port it came to in the header
 *   PORT_HEADER (so a client sees a NAT port rewrite), and the connection is closed;
 * - UDP echo on the --echo port, on each address the host has when it starts (the VIP on lo
 *   included; link-local ones left out): the reply is "NAME: " followed by the datagram, sent from
 *   the address the datagram came to (a socket bound to the wildcard would answer a datagram for
 *   the VIP from the host's own address, which a DR client rightly ignores);
 * - TCP echo on the --echo port, IPv4 and IPv6: the server first writes "NAME\n" (so a client
 *   knows which real took its connection), then echoes every byte back.
 *
 * It writes "ready NAME" on stdout once every socket is bound, and exits on SIGTERM/SIGINT.
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { createSocket, type Socket } from 'node:dgram';
import { networkInterfaces } from 'node:os';
import { parseArgs } from 'node:util';
import { PORT_HEADER } from './services.ts';

function listen(server: HttpServer | TcpServer, port: number): Promise<void> {
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen({ port, host: '::', ipv6Only: false }, () => ok());
  });
}

function bindUdp(socket: Socket, port: number, address: string): Promise<void> {
  return new Promise((ok, fail) => {
    socket.once('error', fail);
    socket.bind(port, address, () => ok());
  });
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ options: { http: { type: 'string' }, echo: { type: 'string' } }, allowPositionals: true });
  const name = positionals[0];
  if (!name || values.echo === undefined) throw new Error('usage: real-server.ts NAME --echo PORT [--http PORT,PORT...]');
  const port = (what: string, p: string): number => {
    const n = Number(p);
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`${what}: '${p}' is not a port`);
    return n;
  };
  const echoPort = port('--echo', values.echo);
  const httpPorts = values.http === undefined ? [] : values.http.split(',').map((p) => port('--http', p));

  for (const port of httpPorts) {
    const http = createHttpServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', connection: 'close', [PORT_HEADER]: String(req.socket.localPort) });
      res.end(`${name}\n`);
    });
    await listen(http, port);
  }

  const tcp = createTcpServer((sock) => {
    sock.on('error', () => sock.destroy());
    sock.write(`${name}\n`);
    sock.pipe(sock);
  });
  await listen(tcp, echoPort);

  const addresses = Object.values(networkInterfaces()).flatMap((list) => list ?? [])
    .filter((a) => !a.address.startsWith('fe80:'));
  for (const a of addresses) {
    const udp = createSocket(a.family === 'IPv6' ? 'udp6' : 'udp4');
    udp.on('message', (msg, from) => udp.send(Buffer.concat([Buffer.from(`${name}: `), msg]), from.port, from.address));
    await bindUdp(udp, echoPort, a.address);
  }

  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => process.exit(0));
  process.stdout.write(`ready ${name}\n`);
}

main().catch((err: Error) => {
  process.stderr.write(`real-server: ${err.message}\n`);
  process.exit(1);
});
