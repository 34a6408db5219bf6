/**
 * A real server for the lab: HTTP on :80 answering "<name>\n", and a UDP echo on :7 that
 * prefixes its name. Run inside a real's namespace: node --import tsx real-server.ts NAME
 */
import { createServer } from 'node:http';
import { createSocket } from 'node:dgram';

const name = process.argv[2] ?? 'real';
const http = createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' });
  res.end(`${name}\n`);
});
http.listen(80, '::', () => process.stdout.write(`ready ${name}\n`));
for (const type of ['udp4', 'udp6'] as const) {
  const udp = createSocket({ type, ipv6Only: type === 'udp6' });
  udp.on('message', (msg, from) => udp.send(Buffer.concat([Buffer.from(`${name}: `), msg]), from.port, from.address));
  udp.bind(7);
}
