/**
 * Builders of the service model as the keepalived.conf parser produces it (src/model/types.ts),
 * for tests: every object gets a distinct position in 'test.conf' (line numbers in creation
 * order), so that messages can be checked for the position they name.
 */
import type { CheckerConfig, RealServer, ServiceConfig, SourcePos, VirtualServer, VirtualServerGroup } from '../../src/model/types.ts';

let line = 0;
/** A fresh position: test.conf:<next line>:1 (or the given line). */
export function pos(at?: number): SourcePos {
  return { file: 'test.conf', line: at ?? ++line, col: 1 };
}

export function tcpCheck(): CheckerConfig {
  return { pos: pos(), kind: 'TCP_CHECK', config: { connect_timeout: 3 } };
}

/** A real server with one TCP_CHECK unless `checkers` is given. */
export function rs(address: string, port: number, extra: Partial<RealServer> = {}): RealServer {
  return { pos: pos(), address, port, checkers: [tcpCheck()], ...extra };
}

/** virtual_server ADDRESS PORT with these reals. */
export function vs(address: string, port: number, reals: RealServer[], extra: Partial<VirtualServer> = {}): VirtualServer {
  return { pos: pos(), service: { kind: 'ip', address, port }, real_server: reals, ...extra };
}

export function config(virtual_server: VirtualServer[], virtual_server_group: VirtualServerGroup[] = []): ServiceConfig {
  return { virtual_server, virtual_server_group };
}
