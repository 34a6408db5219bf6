/**
 * An in-memory datapath driver for unit tests: it holds what a real driver would have programmed,
 * records every call in order, and can be told to fail a call (as a kernel refusal would).
 */
import {
  XDP_CAPABILITIES, serviceKey, type DatapathDriver, type DatapathReal, type DatapathService, type DriverCapabilities,
  type ServiceStats, type Stats,
} from './driver.ts';

export type DriverCall =
  | { op: 'set'; key: string; service: DatapathService; reals: DatapathReal[] }
  | { op: 'remove'; key: string };

export class FakeDriver implements DatapathDriver {
  readonly kind = 'fake' as const;
  readonly calls: DriverCall[] = [];
  readonly held = new Map<string, { service: DatapathService; reals: DatapathReal[] }>();
  /** the next calls for these keys throw this error (once each) */
  readonly failures = new Map<string, Error>();
  /** per service key and real address: what stats() reports */
  readonly counters = new Map<string, Map<string, Stats>>();

  constructor(readonly capabilities: DriverCapabilities = XDP_CAPABILITIES) {}

  async setService(service: DatapathService, reals: readonly DatapathReal[]): Promise<void> {
    const key = serviceKey(service);
    this.#maybeFail(key);
    const copy = reals.map((r) => ({ ...r }));
    this.calls.push({ op: 'set', key, service: { ...service }, reals: copy });
    this.held.set(key, { service: { ...service }, reals: copy });
  }

  async removeService(key: string): Promise<boolean> {
    this.#maybeFail(key);
    this.calls.push({ op: 'remove', key });
    return this.held.delete(key);
  }

  async stats(key: string): Promise<ServiceStats> {
    const h = this.held.get(key);
    if (!h) throw new Error(`no service ${key}`);
    const zero = (): Stats => ({ packets: 0n, bytes: 0n, conns: 0n });
    const per = this.counters.get(key);
    const reals = new Map(h.reals.map((r) => [r.address, per?.get(r.address) ?? zero()]));
    const service = [...reals.values()].reduce((a, s) => ({ packets: a.packets + s.packets, bytes: a.bytes + s.bytes, conns: a.conns + s.conns }), zero());
    return { service, reals };
  }

  services(): string[] {
    return [...this.held.keys()];
  }

  /** The reals of a service as {address: weight}, for compact assertions. */
  weights(key: string): Record<string, number> | undefined {
    const h = this.held.get(key);
    return h && Object.fromEntries(h.reals.map((r) => [r.address, r.weight]));
  }

  #maybeFail(key: string): void {
    const err = this.failures.get(key);
    if (err) {
      this.failures.delete(key);
      throw err;
    }
  }
}
