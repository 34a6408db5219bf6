/**
 * `xlb decap attach|detach|status`: the decapsulation program on a real server (receiving the
 * load balancer's TUN traffic), over src/datapath/xdp/decap.ts. No daemon is involved: the
 * program stays attached after the command exits and is found again through its pins.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import {
  DECAP_COUNTER_NAMES, XDP_MODES, attachDecap, decapStatus, detachDecap, parsePrefix,
  type DecapDetachResult, type DecapStatus, type XdpMode,
} from '../datapath/xdp/decap.ts';
import { requireRoot, type CliIo } from './io.ts';

/** What the commands do; tests pass fakes. */
export interface DecapOps {
  attach(ifname: string, opts: { mode: XdpMode; allowSrc: string[] }): Promise<DecapStatus>;
  detach(ifname: string): Promise<DecapDetachResult>;
  status(ifname?: string): Promise<DecapStatus[]>;
}

export const realDecapOps: DecapOps = { attach: attachDecap, detach: detachDecap, status: decapStatus };

const NAMESPACE_HINT = `
In a network namespace, run it with nsenter, which keeps the BPF filesystem visible:
  nsenter --net=/run/netns/NAME xlb decap ...
(not \`ip netns exec\`: it remounts /sys and hides /sys/fs/bpf, where the program is pinned).`;

/** --allow-src values: each checked as it is parsed, so a bad one stops the command before anything is done. */
function collectPrefix(value: string, previous: string[] | undefined): string[] {
  try {
    parsePrefix(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  return [...(previous ?? []), value];
}

export function registerDecap(program: Command, io: CliIo, ops: DecapOps): void {
  const decap = program
    .command('decap')
    .description('decapsulate the load balancer\'s IP-in-IP (TUN) traffic on a real server with an XDP program')
    .addHelpText('after', NAMESPACE_HINT);

  decap
    .command('attach')
    .description('load the decapsulation program, pin it under /sys/fs/bpf/xlb/decap/ and attach it to an interface')
    .argument('<ifname>', 'the interface the tunnelled traffic arrives on (in this network namespace)')
    .addOption(new Option('--mode <mode>', 'XDP mode: native (in the driver) or generic (after the stack has made an skb)')
      .choices(XDP_MODES).default('native'))
    .addOption(new Option('--allow-src <cidr...>', 'accept tunnel packets only from these outer source prefixes ' +
      '(IPv4 or IPv6, e.g. 198.18.0.0/24 fd00::/64; repeatable); default: from any source').argParser(collectPrefix))
    .addHelpText('after', `
Example:
  xlb decap attach eth0 --allow-src 198.18.0.2/32 fd00::2/128
${NAMESPACE_HINT}`)
    .action(async (ifname: string, opts: { mode: XdpMode; allowSrc?: string[] }) => {
      requireRoot(io, 'xlb decap attach');
      const s = await ops.attach(ifname, { mode: opts.mode, allowSrc: opts.allowSrc ?? [] });
      io.out(`xlb decap: attached to ${s.ifname} (ifindex ${s.ifindex}, ${s.mode ?? opts.mode} mode, program id ${s.progId}); ` +
        `allowed sources: ${describeSources(s)}; pinned at ${s.pinDir}\n`);
    });

  decap
    .command('detach')
    .description('detach the decapsulation program from an interface and remove its pins')
    .argument('<ifname>', 'the interface it was attached to (in this network namespace)')
    .action(async (ifname: string) => {
      requireRoot(io, 'xlb decap detach');
      const r = await ops.detach(ifname);
      io.out(r.detached ? `xlb decap: detached from ${r.ifname}; pins removed\n`
        : `xlb decap: nothing was detached from ${r.ifname} (${r.note ?? 'not attached'}); pins removed\n`);
    });

  decap
    .command('status')
    .description('show where the decapsulation program is attached, its allowed sources and its counters')
    .argument('[ifname]', 'one interface (default: every interface of this network namespace it is attached to)')
    .option('--json', 'print JSON (one object with an "interfaces" array) instead of a table')
    .action(async (ifname: string | undefined, opts: { json?: boolean }) => {
      requireRoot(io, 'xlb decap status');
      const list = await ops.status(ifname);
      io.out(opts.json ? `${JSON.stringify(statusJson(list), null, 2)}\n` : formatStatus(list));
    });
}

function describeSources(s: DecapStatus): string {
  if (!s.filter) return s.allowSrc.length ? `any (filter off; prefixes kept: ${s.allowSrc.join(', ')})` : 'any';
  return s.allowSrc.join(', ') || 'none (every tunnel packet is dropped)';
}

/** The status as JSON-ready data: counters as numbers (a u64 counter exceeds 2^53 only after years at line rate). */
export function statusJson(list: readonly DecapStatus[]): { interfaces: Record<string, unknown>[] } {
  return {
    interfaces: list.map((s) => ({
      ...s,
      counters: Object.fromEntries(DECAP_COUNTER_NAMES.map((n) => [n, Number(s.counters[n])])),
    })),
  };
}

/** A readable table per interface. */
export function formatStatus(list: readonly DecapStatus[]): string {
  if (list.length === 0) return 'xlb decap is not attached to any interface of this network namespace\n';
  const blocks = list.map((s) => {
    const where = s.ifindex === null ? 'interface gone'
      : s.attached ? `attached, ${s.mode} mode, ifindex ${s.ifindex}` : `NOT attached (ifindex ${s.ifindex})`;
    const width = Math.max(...DECAP_COUNTER_NAMES.map((n) => n.length));
    const values = DECAP_COUNTER_NAMES.map((n) => s.counters[n].toString());
    const vwidth = Math.max(...values.map((v) => v.length));
    return [
      `${s.ifname}: ${where}, program id ${s.progId}`,
      `  allowed sources: ${describeSources(s)}`,
      `  pins: ${s.pinDir}`,
      ...DECAP_COUNTER_NAMES.map((n, i) => `  ${n.padEnd(width)}  ${values[i]!.padStart(vwidth)}`),
    ].join('\n');
  });
  return `${blocks.join('\n\n')}\n`;
}
