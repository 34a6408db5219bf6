/**
 * A namespace pair for the health checkers' tests: a checker host (where the check engine runs,
 * as scripts/lab/health-agent.ts) and a server host with real servers of every kind the
 * checkers talk to, on one veth link. Only 198.18.0.0/15 and fd00::/8; nothing in the root
 * namespace. The lab's namespaces are <prefix>-chk and <prefix>-srv; destroy() (also run on exit
 * and on signals) kills their processes, deletes them and removes the state directory.
 *
 *   checker  eth0  198.18.0.2/24   fd00::2/64   and 198.18.0.3, fd00::3 (a second source)
 *   server   eth0  198.18.0.11/24  fd00::11/64
 *   nobody         198.18.0.99     fd00::99      (no host: pings and connects go unanswered)
 *
 * Servers on the server host:
 *   nginx HTTP :80       /ok -> 200 "ok\n", /503 -> 503, /page -> 200 PAGE_BODY
 *   nginx HTTPS :443     self-signed certificates made at start (openssl): the default server
 *                        answers "default\n", server_name www.lab.test answers "www\n" when the
 *                        client sent that name in the TLS SNI, else 421 (nginx would otherwise
 *                        pick the server by the Host header alone)
 *   dnsmasq :53          good.lab.test A 198.18.0.11; other names in lab.test: NXDOMAIN;
 *                        names elsewhere: REFUSED (no upstream)
 *   servers agent        scripts/lab/health-servers.ts: TCP, slow/odd HTTP, SMTP, UDP listeners
 *                        started and stopped by the tests
 *   nft(host, rule)      an nftables rule in the host's table `inet xlbh` (hooks input and
 *                        output), e.g. on the server `input tcp dport 81 drop` (a server that
 *                        never answers: the connect times out), on the checker
 *                        `output meta mark 42 drop`
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Agent } from './agent.ts';
import { destroyNamespaces, ip, nsExec, onCleanup, randomPrefix, sysctls } from './netns.ts';
import { nginxPreamble } from './services.ts';

export const CHECKER = { ipv4: '198.18.0.2', ipv6: 'fd00::2' } as const;
export const CHECKER2 = { ipv4: '198.18.0.3', ipv6: 'fd00::3' } as const;
export const SERVER = { ipv4: '198.18.0.11', ipv6: 'fd00::11' } as const;
export const NOBODY = { ipv4: '198.18.0.99', ipv6: 'fd00::99' } as const;
export const HTTP_PORT = 80;
export const HTTPS_PORT = 443;
export const DNS_PORT = 53;
export const SNI_NAME = 'www.lab.test';
export const PAGE_BODY = '<html><body>xlb health lab: status=ok load=3</body></html>\n';
export const DNS_GOOD = 'good.lab.test';
export const DNS_LOCAL = 'lab.test';

const AGENT = resolve(import.meta.dirname, 'health-agent.ts');
const SERVERS = resolve(import.meta.dirname, 'health-servers.ts');

export interface HealthLab {
  prefix: string;
  chk: string;
  srv: string;
  stateDir: string;
  /** the check engine in the checker namespace */
  checker: Agent;
  /** the node servers in the server namespace */
  servers: Agent;
  /** add an nftables rule to chain `input` or `output` of table inet xlbh on a host: nft(lab.srv, 'input tcp dport 81 drop') */
  nft(ns: string, rule: string): void;
  destroy(): void;
}

export function nginxHealthConfig(dir: string): string {
  const listen = (port: number, extra = '') => [`    listen ${port}${extra};`, `    listen [::]:${port}${extra};`];
  return [
    ...nginxPreamble(dir),
    '  default_type text/plain;',
    '  server {',
    ...listen(HTTP_PORT),
    '    location = /ok { return 200 "ok\\n"; }',
    '    location = /503 { return 503 "unavailable\\n"; }',
    `    location = /page { return 200 '${PAGE_BODY.replace('\n', '\\n')}'; }`,
    '  }',
    '  server {',
    ...listen(HTTPS_PORT, ' ssl default_server'),
    `    ssl_certificate ${join(dir, 'default.crt')};`,
    `    ssl_certificate_key ${join(dir, 'default.key')};`,
    '    location / { return 200 "default\\n"; }',
    '  }',
    '  server {',
    ...listen(HTTPS_PORT, ' ssl'),
    `    server_name ${SNI_NAME};`,
    `    ssl_certificate ${join(dir, 'www.crt')};`,
    `    ssl_certificate_key ${join(dir, 'www.key')};`,
    `    if ($ssl_server_name != "${SNI_NAME}") { return 421; }`,
    '    location / { return 200 "www\\n"; }',
    '  }',
    '}',
    '',
  ].join('\n');
}

function selfSigned(dir: string, name: string, cn: string): void {
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.crt`), '-subj', `/CN=${cn}`, '-addext', `subjectAltName=DNS:${cn}`,
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
}

export async function createHealthLab(opts: { prefix?: string } = {}): Promise<HealthLab> {
  const prefix = opts.prefix ?? randomPrefix('xlbh');
  const chk = `${prefix}-chk`;
  const srv = `${prefix}-srv`;
  const stateDir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  const pids: number[] = [];
  const agents: Agent[] = [];
  const remove = () => {
    destroyNamespaces(prefix, pids);
    rmSync(stateDir, { recursive: true, force: true });
  };
  const unregister = onCleanup(remove);
  const destroy = () => {
    remove();
    unregister();
  };
  try {
    for (const ns of [chk, srv]) {
      ip(['netns', 'add', ns]);
      sysctls(ns, { 'net.ipv6.conf.all.accept_dad': 0, 'net.ipv6.conf.default.accept_dad': 0 });
      ip(['link', 'set', 'lo', 'up'], ns);
    }
    ip(['link', 'add', 'eth0', 'netns', chk, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', srv]);
    for (const [ns, a] of [[chk, CHECKER], [srv, SERVER]] as const) {
      ip(['addr', 'add', `${a.ipv4}/24`, 'dev', 'eth0'], ns);
      ip(['addr', 'add', `${a.ipv6}/64`, 'dev', 'eth0', 'nodad'], ns);
      ip(['link', 'set', 'eth0', 'up'], ns);
    }
    ip(['addr', 'add', `${CHECKER2.ipv4}/24`, 'dev', 'eth0'], chk);
    ip(['addr', 'add', `${CHECKER2.ipv6}/64`, 'dev', 'eth0', 'nodad'], chk);

    // nginx, HTTP and HTTPS
    selfSigned(stateDir, 'default', 'default.lab.test');
    selfSigned(stateDir, 'www', SNI_NAME);
    const conf = join(stateDir, 'nginx.conf');
    writeFileSync(conf, nginxHealthConfig(stateDir));
    try {
      nsExec(srv, ['nginx', '-p', stateDir, '-c', conf]);
    } catch (err) {
      throw new Error(`nginx did not start: ${String((err as { stderr?: string }).stderr ?? err)}`);
    }
    pids.push(Number(readFileSync(join(stateDir, 'nginx.pid'), 'utf8').trim()));

    // dnsmasq, in the foreground as our child
    const dns = spawn('ip', ['netns', 'exec', srv, 'dnsmasq', '--keep-in-foreground', '--no-resolv', '--no-hosts', '--no-poll',
      '--bind-interfaces', `--listen-address=${SERVER.ipv4}`, `--listen-address=${SERVER.ipv6}`, `--port=${DNS_PORT}`,
      `--address=/${DNS_GOOD}/${SERVER.ipv4}`, `--local=/${DNS_LOCAL}/`, '--user=root', `--pid-file=${join(stateDir, 'dnsmasq.pid')}`,
      '--log-facility=-'], { stdio: ['ignore', 'ignore', 'pipe'] });
    if (dns.pid !== undefined) pids.push(dns.pid);
    let dnsErr = '';
    dns.stderr?.on('data', (d: Buffer) => { dnsErr += d.toString(); });
    dns.unref();
    for (let i = 0; ; i++) {
      const up = nsExec(srv, ['ss', '-Hlun', `sport = :${DNS_PORT}`]).trim() !== '';
      if (up) break;
      if (dns.exitCode !== null || i > 100) throw new Error(`dnsmasq did not start: ${dnsErr.trim() || `exit ${dns.exitCode}`}`);
      await new Promise((r) => setTimeout(r, 20));
    }

    const servers = (await Agent.start('health-servers', srv, SERVERS)).agent;
    agents.push(servers);
    const checker = (await Agent.start('health-checker', chk, AGENT)).agent;
    agents.push(checker);

    const tables = new Set<string>();
    return {
      prefix, chk, srv, stateDir, checker, servers,
      nft(ns: string, rule: string) {
        if (!tables.has(ns)) {
          nsExec(ns, ['nft', '-f', '-'], {
            input: 'table inet xlbh {\n chain input { type filter hook input priority 0; }\n chain output { type filter hook output priority 0; }\n}\n',
          });
          tables.add(ns);
        }
        nsExec(ns, ['nft', `add rule inet xlbh ${rule}`]);
      },
      destroy,
    };
  } catch (err) {
    for (const a of agents) await a.stop().catch(() => undefined);
    destroy();
    throw err;
  }
}
