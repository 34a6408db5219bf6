/**
 * The keepalived.conf that `make demo` (scripts/demo.ts) writes for each LB node of its lab: one
 * VRRPv3 instance VI_1 on eth0 holding the lab's IPv4 VIP (lb1 MASTER at priority 150, lb2 BACKUP
 * at 100, adverts every second), and one virtual_server VIP:80 over every real of the lab: direct
 * routing, lb_algo mh with mh-port (Maglev by flow, which the XDP datapath realises exactly, so
 * the file loads without a warning), an HTTP_GET of / every 2 s that takes a real out after one
 * failed retry. Both nodes get the same services. test/unit/demo-config.test.ts reads the files
 * back with the daemon's loader.
 */
import type { LabDescription } from './lab/lab.ts';

/** VRRP timing of the pair: adverts every second; the backup waits 3 adverts + its skew. */
export const ADVERT_INT = 1;
export const PRIORITIES = [150, 100] as const;
/** The health check: every DELAY_LOOP s, one retry DELAY_BEFORE_RETRY s later, then down. */
export const DELAY_LOOP = 2;
export const CONNECT_TIMEOUT = 1;
export const RETRY = 1;
export const DELAY_BEFORE_RETRY = 1;

/** keepalived.conf of LB node `k` (1-based): the same services on both nodes, VRRP roles differ. */
export function keepalivedConf(lab: LabDescription, k: number): string {
  const master = k === 1;
  const reals = lab.reals.map((r) => [
    `    real_server ${r.ipv4} 80 {`,
    '        weight 1',
    '        HTTP_GET {',
    '            url {',
    '                path /',
    '                status_code 200',
    '            }',
    `            connect_timeout ${CONNECT_TIMEOUT}`,
    `            retry ${RETRY}`,
    `            delay_before_retry ${DELAY_BEFORE_RETRY}`,
    '        }',
    '    }',
  ].join('\n'));
  return [
    `! xlb demo: LB node ${k} of ${lab.lbs.length} (a VRRP pair in front of ${lab.reals.length} web servers)`,
    'global_defs {',
    `    router_id lb${k}`,
    '    vrrp_version 3',
    '}',
    '',
    'vrrp_instance VI_1 {',
    `    state ${master ? 'MASTER' : 'BACKUP'}`,
    '    interface eth0',
    '    virtual_router_id 51',
    `    priority ${PRIORITIES[k - 1]}`,
    `    advert_int ${ADVERT_INT}`,
    '    virtual_ipaddress {',
    `        ${lab.vip4}/32 dev eth0`,
    '    }',
    '}',
    '',
    '! direct routing: the reals hold the VIP on lo and answer the client themselves',
    `virtual_server ${lab.vip4} 80 {`,
    `    delay_loop ${DELAY_LOOP}`,
    '    lb_algo mh',
    '    mh-port',
    '    lb_kind DR',
    '    protocol TCP',
    '',
    reals.join('\n\n'),
    '}',
    '',
  ].join('\n');
}
