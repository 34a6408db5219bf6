/**
 * A fake DaemonControl (src/daemon/control.ts) for the control API and CLI tests: fixed reports
 * of a small node (one VRRP instance, one IPv4 service with two reals, one IPv6 service),
 * counters that grow by a fixed step on every stats() call (so rates are known), a reload
 * result the test chooses, and a record of the calls.
 */
import type {
  DaemonControl, KeepalivedJsonDump, ReloadResult, StatsReport, StatusReport,
} from '../../src/daemon/control.ts';

export const STATUS: StatusReport = {
  instance: 'default', pid: 4242, version: '0.1.0', startedAt: '2026-01-01T00:00:00.000Z', configFile: '/etc/keepalived/keepalived.conf',
  configLoadedAt: '2026-01-01T00:00:00.000Z', runs: { vrrp: true, services: true }, datapath: { kind: 'xdp', failures: 0 },
  vrrp: [{
    name: 'VI_1', interface: 'eth0', vrid: 51, family: 'inet', version: 3, state: 'MASTER', priority: 150, effectivePriority: 140,
    advertIntervalMs: 1000, master: null, fault: null, vips: ['198.18.0.10/32 dev eth0 scope global'], excludedVips: [],
    syncGroup: null, lastTransition: '2026-01-01T00:00:04.000Z', transitions: 2,
  }, {
    name: 'VI_2', interface: 'eth0', vrid: 52, family: 'inet6', version: 3, state: 'BACKUP', priority: 100, effectivePriority: 100,
    advertIntervalMs: 1000, master: { address: 'fe80::2', priority: 200 }, fault: null, vips: ['fd00::10/128 dev eth0 scope global'],
    excludedVips: [], syncGroup: null, lastTransition: '2026-01-01T00:00:03.000Z', transitions: 1,
  }],
  syncGroups: [],
  services: [{
    name: '[198.18.0.10]:tcp:80', pos: { file: '/etc/keepalived/keepalived.conf', line: 20, col: 1 }, scheduler: 'wrr',
    persistence: { timeout: 300, granularity: 24 }, quorum: { required: 1, hysteresis: 0, up: true, liveWeight: 3 }, sorryActive: false,
    reals: [{
      name: '[198.18.1.1]:tcp:80', address: '198.18.1.1', port: 80, method: 'dr', health: 'up', configuredWeight: 3, weight: 3,
      checking: true, checkers: [{ kind: 'TCP_CHECK', target: 'TCP 198.18.1.1:80', up: true, hasRun: true, reason: 'connected' }],
    }, {
      name: '[198.18.1.2]:tcp:80', address: '198.18.1.2', port: 80, method: 'dr', health: 'down', configuredWeight: 1, weight: 1,
      checking: true, checkers: [{ kind: 'HTTP_GET', target: 'HTTP 198.18.1.2:80/health', up: false, hasRun: true, reason: 'HTTP status 503' }],
    }],
    sorryServer: null,
    // a DR real is held with port 0 (the datapath cannot change it): listed with the service's
    endpoints: [{ address: '198.18.0.10', port: 80, protocol: 'tcp', reals: [{ address: '198.18.1.1', port: 0, method: 'dr', weight: 3 }] }],
  }, {
    name: '[fd00::10]:udp:53', pos: { file: '/etc/keepalived/keepalived.conf', line: 40, col: 1 }, scheduler: 'sh',
    persistence: null, quorum: { required: 1, hysteresis: 0, up: true, liveWeight: 1 }, sorryActive: false,
    reals: [{
      name: '[fd00::1:1]:udp:5353', address: 'fd00::1:1', port: 5353, method: 'nat', health: 'up', configuredWeight: 1, weight: 1,
      checking: true, checkers: [],
    }],
    sorryServer: null,
    endpoints: [{ address: 'fd00::10', port: 53, protocol: 'udp', reals: [{ address: 'fd00::1:1', port: 5353, method: 'nat', weight: 1 }] }],
  }],
  lastReload: null,
};

export const DUMP: KeepalivedJsonDump = [{
  data: {
    iname: 'VI_1', dont_track_primary: 0, skip_check_adv_addr: 0, strict_mode: 0, ifp_ifname: 'eth0', master_priority: 140,
    last_transition: 1767225604, garp_delay: 5, garp_refresh: 0, garp_rep: 5, garp_refresh_rep: 1, garp_lower_prio_delay: 5,
    garp_lower_prio_rep: 5, lower_prio_no_advert: 0, higher_prio_send_advert: 0, vrid: 51, base_priority: 150, effective_priority: 140,
    vipset: true, promote_secondaries: false, adver_int: 1, master_adver_int: 1, nopreempt: false, preempt_delay: 0, state: 2,
    wantstate: 2, version: 3, smtp_alert: false, notify_deleted: false, vips: ['198.18.0.10/32 dev eth0 scope global'],
  },
  stats: {
    advert_rcvd: 3, advert_sent: 120, become_master: 1, release_master: 0, packet_len_err: 0, advert_interval_err: 0, ip_ttl_err: 0,
    invalid_type_rcvd: 0, addr_list_err: 0, invalid_authtype: 0, authtype_mismatch: 0, auth_failure: 0, pri_zero_rcvd: 0, pri_zero_sent: 0,
  },
}];

export const NO_CHANGES: ReloadResult['changes'] = {
  servicesAdded: [], servicesRemoved: [], servicesChanged: [], instancesAdded: [], instancesRemoved: [], instancesChanged: [],
};

export const RELOAD_OK: ReloadResult = {
  applied: true, configFile: '/etc/keepalived/keepalived.conf',
  problems: [{ severity: 'warning', pos: { file: '/etc/keepalived/keepalived.conf', line: 21, col: 3 }, message: 'lb_algo lc is approximated by wrr', class: 'ignored' }],
  changes: { ...NO_CHANGES, servicesChanged: ['[198.18.0.10]:tcp:80'] }, at: '2026-01-01T00:01:00.000Z', durationMs: 12,
};

export const RELOAD_BAD: ReloadResult = {
  applied: false, configFile: '/etc/keepalived/keepalived.conf',
  problems: [
    { severity: 'error', pos: { file: '/etc/keepalived/keepalived.conf', line: 7, col: 5 }, message: "unknown keyword 'priorty'", class: 'unknown_keyword' },
    { severity: 'error', pos: { file: '/etc/keepalived/conf.d/web.conf', line: 3, col: 14 }, message: "'abc' is not a number", class: 'invalid_number' },
  ],
  changes: NO_CHANGES, at: '2026-01-01T00:02:00.000Z', durationMs: 3,
};

/** per stats() call: every counter grows by these */
export const STEP = { packets: 1000, bytes: 64000, connections: 10 };

export class FakeControl implements DaemonControl {
  readonly calls: string[] = [];
  reloadResult: ReloadResult = RELOAD_OK;
  /** the next call of this method throws it */
  failNext: { method: keyof DaemonControl; error: Error } | undefined;
  #n = 0;
  /** stats().at of the first call; each call adds `tickMs` */
  constructor(private readonly startAt = Date.UTC(2026, 0, 1, 0, 1), private readonly tickMs = 1000) {}

  #fail(method: keyof DaemonControl): void {
    this.calls.push(method);
    if (this.failNext?.method === method) {
      const { error } = this.failNext;
      this.failNext = undefined;
      throw error;
    }
  }

  async status(): Promise<StatusReport> {
    this.#fail('status');
    return structuredClone(STATUS);
  }

  async stats(): Promise<StatsReport> {
    this.#fail('stats');
    const n = ++this.#n;
    const c = (k: number) => ({ packets: STEP.packets * n * k, bytes: STEP.bytes * n * k, connections: STEP.connections * n * k });
    return {
      at: this.startAt + (n - 1) * this.tickMs,
      services: [
        { service: '[198.18.0.10]:tcp:80', address: '198.18.0.10', port: 80, protocol: 'tcp', counters: c(1), reals: [{ address: '198.18.1.1', port: 0, counters: c(1) }] },
        { service: '[fd00::10]:udp:53', address: 'fd00::10', port: 53, protocol: 'udp', counters: c(2), reals: [{ address: 'fd00::1:1', port: 5353, counters: c(2) }] },
      ],
      vrrp: [{
        name: 'VI_1', state: 'MASTER', advertsReceived: 3, advertsSent: 120, becameMaster: 1, releasedMaster: 0, priorityZeroSent: 0,
        priorityZeroReceived: 0, transitions: 2, byTransition: { 'INIT->BACKUP': 1, 'BACKUP->MASTER': 1 }, rejected: { ttl: 1 }, garpsSent: 5, sendErrors: 0,
      }],
      health: { runs: 50, failures: 7, timeouts: 2, events: { up: 3, down: 1, weight: 0 } },
      datapath: { rx: 3000 * n, tx: 2990 * n, drop_no_service: 10 * n, drop_fragment: 0 },
    };
  }

  async reload(): Promise<ReloadResult> {
    this.#fail('reload');
    return structuredClone(this.reloadResult);
  }

  async dump(): Promise<KeepalivedJsonDump> {
    this.#fail('dump');
    return structuredClone(DUMP);
  }
}
