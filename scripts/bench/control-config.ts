/**
 * The control benchmark's configuration (scripts/bench-control.ts): `services` virtual servers of
 * `reals` real servers each, as keepalived.conf text and as the service model the parser makes of
 * it (src/model/types.ts, positions included), generated from one loop so the two agree.
 *
 * Shape (a DR farm, the common case): virtual server i is 198.19.(252 + i / 256).(i % 256):80,
 * TCP, lb_kind DR, lb_algo cycling wrr / wlc / mh, every tenth one with persistence_timeout 300;
 * the reals are distinct addresses counted up from 198.18.0.1 (100,000 of them end at
 * 198.19.134.160), port 80, weight 1..3, each with a TCP_CHECK (connect_timeout 3, retry 2,
 * delay_before_retry 2) under delay_loop 10. Addresses stay in 198.18.0.0/15. Pure.
 *
 * test/unit/bench-control.test.ts checks that src/config's loadConfig reads the text into exactly
 * this model.
 */
import type { LbAlgo, RealServer, ServiceConfig, SourcePos, VirtualServer } from '../../src/model/types.ts';

export const CONTROL_CONFIG_FILE = '/etc/keepalived/keepalived.conf';
const FIRST_VIP = (198 << 24 | 19 << 16 | 252 << 8) >>> 0;
const FIRST_REAL = (198 << 24 | 18 << 16 | 1) >>> 0;
const LAST = (198 << 24 | 19 << 16 | 255 << 8 | 255) >>> 0;
const ALGOS: readonly LbAlgo[] = ['wrr', 'wlc', 'mh'];

const ipv4 = (n: number): string => `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;

export interface ControlConfig {
  text: string;
  model: ServiceConfig;
  /** lines of text */
  lines: number;
}

export function controlConfig(services: number, reals: number): ControlConfig {
  if (!(Number.isInteger(services) && services >= 1 && services <= 1024)) throw new Error(`services ${services}: 1..1024 (the VIPs are 198.19.252.0/22)`);
  if (!(Number.isInteger(reals) && reals >= 1)) throw new Error(`reals ${reals}: a whole number >= 1`);
  if (FIRST_REAL + services * reals - 1 >= FIRST_VIP) throw new Error(`${services} x ${reals} reals do not fit below the VIPs (198.19.252.0)`);
  const out: string[] = ['global_defs {', '    router_id xlb_bench_control', '}', ''];
  const at = (col = 5): SourcePos => ({ file: CONTROL_CONFIG_FILE, line: out.length + 1, col });
  const vsList: VirtualServer[] = [];
  let real = FIRST_REAL;
  for (let i = 0; i < services; i++) {
    const vip = ipv4(FIRST_VIP + i);
    const lb_algo = ALGOS[i % ALGOS.length]!;
    const persistent = i % 10 === 9;
    const vsPos = at(1);
    out.push(`virtual_server ${vip} 80 {`);
    const vsAt: NonNullable<VirtualServer['at']> = {};
    vsAt.delay_loop = at(); out.push('    delay_loop 10');
    vsAt.lb_algo = at(); out.push(`    lb_algo ${lb_algo}`);
    vsAt.lb_kind = at(); out.push('    lb_kind DR');
    vsAt.protocol = at(); out.push('    protocol TCP');
    if (persistent) {
      vsAt.persistence_timeout = at(); out.push('    persistence_timeout 300');
    }
    out.push('');
    const rsList: RealServer[] = [];
    for (let j = 0; j < reals; j++, real++) {
      if (real > LAST) throw new Error('out of addresses');
      const weight = 1 + (j % 3);
      const rsPos = at();
      out.push(`    real_server ${ipv4(real)} 80 {`);
      const weightPos = at(9);
      out.push(`        weight ${weight}`);
      const checkPos = at(9);
      out.push('        TCP_CHECK {');
      const config = { connect_timeout: 3, retry: 2, delay_before_retry: 2 };
      out.push('            connect_timeout 3', '            retry 2', '            delay_before_retry 2', '        }', '    }');
      rsList.push({ pos: rsPos, at: { weight: weightPos }, address: ipv4(real), port: 80, weight, checkers: [{ pos: checkPos, kind: 'TCP_CHECK', config }] });
    }
    out.push('}', '');
    vsList.push({
      pos: vsPos, at: vsAt, service: { kind: 'ip', address: vip, port: 80 }, delay_loop: 10, lb_algo, lb_kind: 'DR', protocol: 'TCP',
      ...(persistent ? { persistence_timeout: 300 } : {}), real_server: rsList,
    });
  }
  return {
    text: out.join('\n'),
    model: { global_defs: { pos: { file: CONTROL_CONFIG_FILE, line: 1, col: 1 } }, virtual_server: vsList, virtual_server_group: [] },
    lines: out.length,
  };
}
