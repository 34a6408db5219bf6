/**
 * The optional Prometheus listener: GET /metrics on a TCP address (the daemon's --metrics
 * ADDRESS:PORT; off by default), in Prometheus' text format, from the same DaemonControl as the
 * control API. Each scrape reads status() and stats() once and builds the metrics afresh from
 * them (a service or real that is gone is gone from the next scrape), merged with prom-client's
 * default process metrics (xlb_process_*, xlb_nodejs_*). Nothing but GET/HEAD /metrics is served;
 * the listener does nothing that changes the daemon.
 *
 * Metrics (labels in braces; counters are the daemon's own since start, or since the datapath
 * service was created for the datapath ones):
 *
 *   xlb_info{instance,version}                       1
 *   xlb_start_time_seconds                           when the daemon started (epoch)
 *   xlb_config_last_reload_successful                1 / 0 (1 before any reload)
 *   xlb_config_last_reload_timestamp_seconds         when (epoch; the start before any reload)
 *   xlb_vrrp_state{instance,interface,vrid,state}    1 for the instance's state, 0 for the four others
 *   xlb_vrrp_priority{instance}                      the configured priority
 *   xlb_vrrp_effective_priority{instance}            what it advertises
 *   xlb_vrrp_transitions_total{instance}             state changes
 *   xlb_vrrp_state_transitions_total{instance,from,to}
 *   xlb_vrrp_adverts_received_total{instance}, xlb_vrrp_adverts_sent_total{instance},
 *   xlb_vrrp_became_master_total{instance}, xlb_vrrp_released_master_total{instance},
 *   xlb_vrrp_priority_zero_sent_total{instance}, xlb_vrrp_priority_zero_received_total{instance},
 *   xlb_vrrp_garps_sent_total{instance}, xlb_vrrp_send_errors_total{instance}
 *   xlb_vrrp_adverts_rejected_total{instance,reason}
 *   xlb_service_quorum_up{service}                   1 / 0
 *   xlb_service_sorry_active{service}                1 when the sorry server takes the new connections
 *   xlb_real_up{service,real}                        health: 1 up, 0 down
 *   xlb_real_weight{service,real}                    effective weight (configured + dynamic)
 *   xlb_real_configured_weight{service,real}
 *   xlb_checker_up{service,real,index,kind,target}   the checker's last verdict (0 before its first)
 *   xlb_health_checks_total, xlb_health_check_failures_total, xlb_health_check_timeouts_total
 *   xlb_health_events_total{type}                    up / down / weight
 *   xlb_service_packets_total{service,vip,port,protocol}, xlb_service_bytes_total{...},
 *   xlb_service_connections_total{...}               per datapath service
 *   xlb_real_packets_total{service,vip,port,protocol,real}, xlb_real_bytes_total{...},
 *   xlb_real_connections_total{...}                  per real of a datapath service
 *   xlb_datapath_counter_total{name}                 the forwarder's global counters (rx, tx, drops by reason)
 *   xlb_datapath_failures_total                      driver calls that failed
 *
 * `service` is keepalived's name of the virtual_server ('[198.18.0.10]:tcp:80'), `real` the real
 * server's ('[198.18.1.1]:tcp:80' in status metrics, its address in datapath metrics, which are
 * per datapath service and real address as the datapath counts them).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { requestPath, type DaemonControl, type StatsReport, type StatusReport } from './control.ts';
import type { VrrpState } from '../vrrp/fsm.ts';

const VRRP_STATES: readonly VrrpState[] = ['INIT', 'BACKUP', 'MASTER', 'FAULT', 'STOP'];

/** The metrics of one scrape, from one status() and one stats(). */
export function buildRegistry(status: StatusReport, stats: StatsReport): Registry {
  const registry = new Registry();
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
    new Gauge<L>({ name, help, labelNames, registers: [registry] });
  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
    new Counter<L>({ name, help, labelNames, registers: [registry] });
  const seconds = (iso: string) => Date.parse(iso) / 1000;

  gauge('xlb_info', 'the xlb daemon', ['instance', 'version']).set({ instance: status.instance, version: status.version }, 1);
  gauge('xlb_start_time_seconds', 'when the daemon started, seconds since the epoch').set(seconds(status.startedAt));
  gauge('xlb_config_last_reload_successful', 'the last reload was applied (1 before any reload)').set(status.lastReload?.applied === false ? 0 : 1);
  gauge('xlb_config_last_reload_timestamp_seconds', 'when the configuration was last read (start or reload), seconds since the epoch')
    .set(seconds(status.lastReload?.at ?? status.configLoadedAt));

  // VRRP
  const state = gauge('xlb_vrrp_state', 'the VRRP instance is in this state (1) or not (0)', ['instance', 'interface', 'vrid', 'state']);
  const priority = gauge('xlb_vrrp_priority', 'the configured VRRP priority', ['instance']);
  const effective = gauge('xlb_vrrp_effective_priority', 'the priority advertised (moved by tracking)', ['instance']);
  for (const v of status.vrrp) {
    for (const s of VRRP_STATES) state.set({ instance: v.name, interface: v.interface, vrid: String(v.vrid), state: s }, v.state === s ? 1 : 0);
    priority.set({ instance: v.name }, v.priority);
    effective.set({ instance: v.name }, v.effectivePriority);
  }
  const perInstance = {
    transitions: counter('xlb_vrrp_transitions_total', 'VRRP state changes', ['instance']),
    advertsReceived: counter('xlb_vrrp_adverts_received_total', 'adverts accepted', ['instance']),
    advertsSent: counter('xlb_vrrp_adverts_sent_total', 'adverts sent', ['instance']),
    becameMaster: counter('xlb_vrrp_became_master_total', 'times the instance became MASTER', ['instance']),
    releasedMaster: counter('xlb_vrrp_released_master_total', 'times the instance left MASTER', ['instance']),
    priorityZeroSent: counter('xlb_vrrp_priority_zero_sent_total', 'priority-0 adverts sent (stepping down)', ['instance']),
    priorityZeroReceived: counter('xlb_vrrp_priority_zero_received_total', 'priority-0 adverts received', ['instance']),
    garpsSent: counter('xlb_vrrp_garps_sent_total', 'gratuitous ARPs and unsolicited NAs sent', ['instance']),
    sendErrors: counter('xlb_vrrp_send_errors_total', 'adverts or frames that could not be sent', ['instance']),
  } as const;
  const byTransition = counter('xlb_vrrp_state_transitions_total', 'VRRP state changes by old and new state', ['instance', 'from', 'to']);
  const rejected = counter('xlb_vrrp_adverts_rejected_total', 'adverts rejected, by reason', ['instance', 'reason']);
  for (const v of stats.vrrp) {
    for (const [key, c] of Object.entries(perInstance)) c.inc({ instance: v.name }, v[key as keyof typeof perInstance]);
    for (const [t, n] of Object.entries(v.byTransition)) {
      const [from = t, to = ''] = t.split('->');
      byTransition.inc({ instance: v.name, from, to }, n);
    }
    for (const [reason, n] of Object.entries(v.rejected)) rejected.inc({ instance: v.name, reason }, n);
  }

  // services, reals, checkers
  const quorum = gauge('xlb_service_quorum_up', 'the virtual server has quorum', ['service']);
  const sorry = gauge('xlb_service_sorry_active', 'the sorry server takes the new connections', ['service']);
  const realUp = gauge('xlb_real_up', 'the real server passes its checks', ['service', 'real']);
  const realWeight = gauge('xlb_real_weight', 'effective weight: configured + dynamic', ['service', 'real']);
  const realConfigured = gauge('xlb_real_configured_weight', 'configured weight', ['service', 'real']);
  const checkerUp = gauge('xlb_checker_up', "the checker's last verdict (0 before its first)", ['service', 'real', 'index', 'kind', 'target']);
  for (const s of status.services) {
    quorum.set({ service: s.name }, s.quorum.up ? 1 : 0);
    sorry.set({ service: s.name }, s.sorryActive ? 1 : 0);
    for (const r of [...s.reals, ...(s.sorryServer ? [s.sorryServer] : [])]) {
      const l = { service: s.name, real: r.name };
      realUp.set(l, r.health === 'up' ? 1 : 0);
      realWeight.set(l, r.weight);
      realConfigured.set(l, r.configuredWeight);
      r.checkers.forEach((c, i) => checkerUp.set({ ...l, index: String(i), kind: c.kind, target: c.target }, c.up && c.hasRun ? 1 : 0));
    }
  }
  if (stats.health) {
    counter('xlb_health_checks_total', 'checks started').inc(stats.health.runs);
    counter('xlb_health_check_failures_total', 'checks that failed (timeouts included)').inc(stats.health.failures);
    counter('xlb_health_check_timeouts_total', 'checks that timed out').inc(stats.health.timeouts);
    const events = counter('xlb_health_events_total', 'real servers going up or down, or changing weight', ['type']);
    for (const [type, n] of Object.entries(stats.health.events)) events.inc({ type }, n);
  }

  // datapath
  const svcLabels = ['service', 'vip', 'port', 'protocol'] as const;
  const realLabels = [...svcLabels, 'real'] as const;
  const svc = {
    packets: counter('xlb_service_packets_total', 'packets to the datapath service', svcLabels),
    bytes: counter('xlb_service_bytes_total', 'bytes to the datapath service', svcLabels),
    connections: counter('xlb_service_connections_total', 'connections scheduled by the datapath service', svcLabels),
  };
  const real = {
    packets: counter('xlb_real_packets_total', 'packets forwarded to the real', realLabels),
    bytes: counter('xlb_real_bytes_total', 'bytes forwarded to the real', realLabels),
    connections: counter('xlb_real_connections_total', 'connections scheduled to the real', realLabels),
  };
  for (const e of stats.services) {
    const l = { service: e.service, vip: e.address, port: String(e.port), protocol: e.protocol };
    for (const k of ['packets', 'bytes', 'connections'] as const) {
      svc[k].inc(l, e.counters[k]);
      for (const r of e.reals) real[k].inc({ ...l, real: r.address }, r.counters[k]);
    }
  }
  const dp = counter('xlb_datapath_counter_total', "the datapath's global counters", ['name']);
  for (const [name, n] of Object.entries(stats.datapath)) dp.inc({ name }, n);
  if (status.datapath) counter('xlb_datapath_failures_total', 'datapath driver calls that failed').inc(status.datapath.failures);
  return registry;
}

export class MetricsServer {
  private constructor(private readonly server: Server, private readonly defaults: Registry) {}

  /** Listen on host:port (port 0: any free port, see `address`). */
  static async start(opts: { control: DaemonControl; host: string; port: number; log?: (level: 'warn' | 'error', message: string) => void }): Promise<MetricsServer> {
    const defaults = new Registry();
    collectDefaultMetrics({ register: defaults, prefix: 'xlb_' });
    const server = createServer((req, res) => {
      req.resume();
      if (requestPath(req.url) !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('xlb serves /metrics only\n');
        return;
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { 'content-type': 'text/plain', allow: 'GET, HEAD' }).end('GET /metrics\n');
        return;
      }
      void (async () => {
        try {
          const [status, stats] = await Promise.all([opts.control.status(), opts.control.stats()]);
          const merged = Registry.merge([defaults, buildRegistry(status, stats)]);
          const text = await merged.metrics();
          res.writeHead(200, { 'content-type': merged.contentType }).end(req.method === 'HEAD' ? undefined : text);
        } catch (e) {
          const message = e instanceof Error ? e.message : String(e);
          opts.log?.('warn', `metrics scrape failed: ${message}`);
          res.writeHead(503, { 'content-type': 'text/plain' }).end(`xlb: metrics unavailable: ${message}\n`);
        }
      })();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) => reject(new Error(`metrics listener on ${opts.host}:${opts.port}: ${e.message}`)));
      server.listen(opts.port, opts.host, () => resolve());
    });
    return new MetricsServer(server, defaults);
  }

  get address(): { host: string; port: number } {
    const a = this.server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  async close(): Promise<void> {
    this.defaults.clear();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
