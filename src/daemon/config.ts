/**
 * What the daemon runs, read from its configuration file: the VRRP part (src/vrrp/config.ts's
 * VrrpConfig) and the services (src/model/types.ts's ServiceConfig), and every problem found on
 * the way, positioned (file:line:col).
 *
 *   FILE.conf (any name but *.json)  keepalived.conf, read by src/config's loadConfig
 *   FILE.json                        the same model as JSON: { "vrrp": VrrpConfig, "services":
 *                                    ServiceConfig } with the positions the parser would give
 *                                    (tests and generated set-ups; no problem is positioned
 *                                    better than the file's first line)
 *
 * The services are resolved for the datapath (src/model/validate.ts) once: by loadConfig for a
 * keepalived.conf, here for JSON; its errors make the file unusable as the parser's do, its
 * warnings are reported with the others. A result with any
 * error has no `config`: the daemon does not start with it, a reload keeps what runs.
 */
import { readFileSync } from 'node:fs';
import type { ProblemClass } from '../config/diagnostics.ts';
import { loadConfig } from '../config/index.ts';
import type { DriverCapabilities } from '../datapath/driver.ts';
import { resolveServices, type ResolvedService } from '../model/validate.ts';
import type { ServiceConfig, SourcePos } from '../model/types.ts';
import type { VrrpConfig } from '../vrrp/config.ts';

export interface DaemonConfig {
  vrrp: VrrpConfig;
  services: ServiceConfig;
}

/** A problem of the file: src/config/diagnostics.ts's Diagnostic (its class when the reader gave one). */
export interface ConfigProblem {
  severity: 'error' | 'warning';
  pos: SourcePos;
  message: string;
  class?: ProblemClass;
}

export interface LoadedConfig {
  /** absent when there is an error */
  config?: DaemonConfig;
  /** the services resolved for the driver (with `config`) */
  services?: ResolvedService[];
  problems: ConfigProblem[];
}

/** What a reader gives: the model, and the services resolved for the driver when the reader
 *  resolved them already (loadConfig does, for the driver's capabilities). */
export interface ReadConfig {
  config?: DaemonConfig;
  services?: ResolvedService[];
  problems: ConfigProblem[];
}

/** Reads a configuration file into the model, for a driver of these capabilities. */
export type ConfigReader = (file: string, caps: DriverCapabilities) => Promise<ReadConfig>;

const filePos = (file: string): SourcePos => ({ file, line: 1, col: 1 });

/** { vrrp, services } as JSON. */
export async function readJsonConfig(file: string): Promise<ReadConfig> {
  let v: Partial<DaemonConfig>;
  try {
    v = JSON.parse(readFileSync(file, 'utf8')) as Partial<DaemonConfig>;
  } catch (e) {
    return { problems: [{ severity: 'error', pos: filePos(file), message: (e as Error).message }] };
  }
  const config: DaemonConfig = {
    vrrp: { vrrp_instance: [], ...v.vrrp },
    services: { virtual_server: [], virtual_server_group: [], ...v.services },
  };
  return { config, problems: [] };
}

/** keepalived.conf through src/config's loadConfig. */
export async function readKeepalivedConf(file: string, caps: DriverCapabilities): Promise<ReadConfig> {
  const r = loadConfig(file, { capabilities: caps });
  if (!r.config) return { problems: r.problems };
  return { config: { vrrp: r.config.vrrp, services: r.config.services }, ...(r.services ? { services: r.services } : {}), problems: r.problems };
}

export const readConfigFile: ConfigReader = (file, caps) => (file.endsWith('.json') ? readJsonConfig(file) : readKeepalivedConf(file, caps));

const same = (a: ConfigProblem, b: ConfigProblem) =>
  a.message === b.message && a.pos.file === b.pos.file && a.pos.line === b.pos.line && a.pos.col === b.pos.col;

/** Read and resolve: the daemon's one way to get a configuration. */
export async function loadDaemonConfig(file: string, caps: DriverCapabilities, read: ConfigReader = readConfigFile): Promise<LoadedConfig> {
  const r = await read(file, caps);
  const problems = [...r.problems];
  if (!r.config) return { problems };
  let services = r.services;
  if (!services) {
    // a reader that did not resolve the services (JSON) resolves them here; a problem the reader
    // reported already is reported once
    const resolved = resolveServices(r.config.services, caps);
    for (const p of [...resolved.errors, ...resolved.warnings]) if (!problems.some((q) => same(p, q))) problems.push(p);
    services = resolved.services;
  }
  problems.sort((a, b) => a.pos.file.localeCompare(b.pos.file) || a.pos.line - b.pos.line || a.pos.col - b.pos.col);
  if (problems.some((p) => p.severity === 'error')) return { problems };
  return { config: r.config, services, problems };
}
