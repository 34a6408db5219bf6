/**
 * A UDP echo on a VRRP node, answering on virtual addresses it may not hold yet:
 *
 *   ip netns exec NS node --import tsx vrrp-echo.ts NAME PORT ADDRESS...
 *
 * binds PORT on each ADDRESS (the namespace must allow it before the address exists:
 * net.ipv4.ip_nonlocal_bind / net.ipv6.ip_nonlocal_bind = 1, as scripts/lab/vrrp-segment.ts sets)
 * and answers each datagram with "NAME: " + the datagram, from the address it came to (the
 * reply format of the lab's real servers, so the lab's client agent can tell who answered).
 * Writes "ready NAME" once bound; exits on SIGTERM / SIGINT.
 */
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';

async function main(): Promise<void> {
  const [name, portText, ...addresses] = process.argv.slice(2);
  const port = Number(portText);
  if (!name || !Number.isInteger(port) || port < 1 || port > 65535 || addresses.length === 0) {
    throw new Error('usage: vrrp-echo.ts NAME PORT ADDRESS...');
  }
  const prefix = Buffer.from(`${name}: `);
  for (const address of addresses) {
    const udp = createSocket(isIPv6(address) ? 'udp6' : 'udp4');
    udp.on('message', (msg, from) => udp.send(Buffer.concat([prefix, msg]), from.port, from.address));
    await new Promise<void>((ok, fail) => {
      udp.once('error', fail);
      udp.bind(port, address, () => ok());
    });
  }
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => process.exit(0));
  process.stdout.write(`ready ${name}\n`);
}

main().catch((err: Error) => {
  process.stderr.write(`vrrp-echo: ${err.message}\n`);
  process.exit(1);
});
