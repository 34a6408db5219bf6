/**
 * TCP_CHECK: the real server is up when a TCP connection to it completes (keepalived's
 * check_tcp.c). xlb closes the connection with an RST right away, so a check leaves no TIME_WAIT
 * behind (keepalived closes it normally); a refused, unreachable or timed-out connect is a
 * failure.
 */
import { TcpEndpoint, endpointText, errnoName, type Endpoint } from './connect.ts';
import type { Checker, CheckResult } from './types.ts';

const CONNECTED: CheckResult = { up: true, reason: 'connected' };

export class TcpChecker implements Checker {
  readonly kind = 'TCP_CHECK';
  readonly target: string;
  readonly #ep: TcpEndpoint;

  constructor(endpoint: Endpoint) {
    this.#ep = new TcpEndpoint(endpoint);
    this.target = `TCP ${endpointText(endpoint)}`;
  }

  run(done: (r: CheckResult) => void): () => void {
    return this.#ep.probe((errno) => done(errno === 0 ? CONNECTED : { up: false, reason: `connect: ${errnoName(errno)}` }));
  }
}
