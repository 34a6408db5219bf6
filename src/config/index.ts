/**
 * keepalived.conf -> KeepalivedConfig: the lexer (lexer.ts) reads the lines, the walker
 * (parser.ts) dispatches them through the keyword tables (global.ts, vrrp.ts, lvs.ts), and the
 * VRRP part is then checked by src/vrrp/config.ts's resolveConfig, whose error is placed at the
 * instance (or the keyword) it names; the services by lvs.ts's checkServices (each checker by
 * src/health/config.ts, then src/model/validate.ts's resolveServices for the driver's
 * capabilities), whose problems carry their own positions.
 *
 * Contract of loadConfig: it never throws for anything in the files (the fuzz test holds it to
 * that); every problem comes back positioned (file:line:col), and `exitCode` is what
 * `keepalived --config-test` would exit with (diagnostics.ts). `config` is absent only when the
 * configuration is unusable: the main file could not be read, keepalived would have aborted
 * (a keyword missing its parameter), or the VRRP part does not resolve. Otherwise it is there even
 * with errors, holding what was read correctly (a bad value leaves its setting at the default,
 * an unknown keyword is skipped, as keepalived does); a daemon that wants only clean
 * configurations refuses any `problems` of severity error.
 */
import { hostname } from 'node:os';
import type { DriverCapabilities } from '../datapath/driver.ts';
import type { ServiceConfig, SourcePos } from '../model/types.ts';
import type { ResolvedService } from '../model/validate.ts';
import { resolveConfig, type VrrpConfig } from '../vrrp/config.ts';
import { exitCode, Problems, type Diagnostic } from './diagnostics.ts';
import { nodeFs, type ConfigFs } from './fs.ts';
import { globalDefsBlock, globalDefsKeywords, globalRootKeywords, serviceGlobals, vrrpGlobals, type GlobalDefs } from './global.ts';
import { ConfigReader } from './lexer.ts';
import { checkServices, lvsKeywords } from './lvs.ts';
import { parseStream } from './parser.ts';
import { lift, type Table } from './schema.ts';
import { authenticationTable, instanceTable, scriptTable, syncGroupTable, trackFileTable, vrrpKeywords } from './vrrp.ts';

export type { GlobalDefs } from './global.ts';
export type { Diagnostic } from './diagnostics.ts';

export interface KeepalivedConfig {
  global: GlobalDefs;
  vrrp: VrrpConfig;
  services: ServiceConfig;
}

/**
 * What the tables fill while reading: the configuration, and where each named object and each
 * of its keywords stands, for the messages of the checks that run after reading.
 * Keys: 'vrrp_instance VI_1', and 'vrrp_instance VI_1 priority' for a keyword inside it.
 */
export interface ConfigBuilder extends KeepalivedConfig {
  where: Map<string, SourcePos>;
}

/** The top level of keepalived.conf. lvsKeywords (lvs.ts) adds virtual_server_group and virtual_server. */
export const rootKeywords: Table<ConfigBuilder> = {
  ...globalRootKeywords,
  global_defs: globalDefsBlock,
  ...vrrpKeywords,
  ...lift(lvsKeywords, (b: ConfigBuilder) => b.services),
};

/** Each block xlb reads with its table, by the keyword that opens it ('root': the top level). */
export const KEYWORD_CONTEXTS: Readonly<Record<string, Table<never>>> = {
  root: rootKeywords,
  global_defs: globalDefsKeywords,
  vrrp_script: scriptTable,
  vrrp_track_file: trackFileTable,
  vrrp_sync_group: syncGroupTable,
  vrrp_instance: instanceTable,
  authentication: authenticationTable,
};

export interface LoadOptions {
  fs?: ConfigFs;
  /** keepalived -i: the id `@ID` lines are kept for; default the host name up to its first '.' (keepalived's) */
  configId?: string;
  /** keepalived -e (include_check on every include) */
  includeCheck?: number;
  /** ${_RANDOM}'s source, in [0, 1) */
  random?: () => number;
  /** what the datapath driver can do, for the services' checks (lvs.ts checkServices); default the XDP driver's */
  capabilities?: DriverCapabilities;
}

export interface LoadResult {
  config?: KeepalivedConfig;
  /** the services resolved for the driver (src/model/validate.ts), with `config` */
  services?: ResolvedService[];
  problems: Diagnostic[];
  exitCode: number;
}

export function emptyBuilder(): ConfigBuilder {
  return {
    global: {},
    vrrp: { vrrp_instance: [] },
    services: { virtual_server_group: [], virtual_server: [] },
    where: new Map(),
  };
}

/** Read and check a keepalived.conf and everything it includes. */
export function loadConfig(file: string, opts: LoadOptions = {}): LoadResult {
  const problems = new Problems();
  const fs = opts.fs ?? nodeFs;
  const reader = new ConfigReader(file, {
    fs, problems,
    configId: opts.configId ?? hostname().split('.')[0],
    ...(opts.includeCheck !== undefined ? { includeCheck: opts.includeCheck } : {}),
    ...(opts.random ? { random: opts.random } : {}),
  });
  const b = emptyBuilder();
  parseStream(reader, problems, rootKeywords, b);

  const { where, ...config } = b;
  const vg = vrrpGlobals(config.global);
  if (Object.keys(vg).length > 0) config.vrrp.global_defs = vg;
  const sg = serviceGlobals(config.global);
  if (Object.keys(sg).length > 0) config.services.global_defs = sg;

  // keepalived stops at a keyword missing its parameter; nothing is read when the main file cannot be
  const unreadable = problems.list.some((p) => p.class === 'file_not_found' && p.message.startsWith(`Configuration file '${file}'`));
  let usable = !unreadable && !problems.list.some((p) => p.class === 'abort');
  let services: ResolvedService[] = [];
  if (usable) {
    try {
      resolveConfig(config.vrrp);
    } catch (err) {
      // resolveConfig stops at its first error: each instance is also checked on its own (with the
      // scripts and files it may track), so that every instance's first problem is reported
      const messages = new Set([(err as Error).message]);
      for (const instance of config.vrrp.vrrp_instance) {
        try {
          resolveConfig({ ...config.vrrp, vrrp_instance: [instance], vrrp_sync_group: [] });
        } catch (e) {
          messages.add((e as Error).message);
        }
      }
      for (const message of messages) problems.add('general_error', placeOf(message, where, config.global.pos ?? { file, line: 1, col: 1 }), message);
      usable = false;
    }
    services = checkServices(config.services, config.vrrp.vrrp_track_file, problems, opts.capabilities);
  }
  const out: LoadResult = { problems: problems.list, exitCode: exitCode(problems.list) };
  if (usable) {
    out.config = config;
    out.services = services;
  }
  return out;
}

/** Where a message that starts 'vrrp_instance VI_1: keyword ...' belongs: the keyword, else the object, else `dflt`. */
export function placeOf(message: string, where: ReadonlyMap<string, SourcePos>, dflt: SourcePos): SourcePos {
  const m = /^(\w+) '?([^':]*)'?: (\S+)?/.exec(message);
  if (!m) return where.get(/^(\w+):/.exec(message)?.[1] ?? '') ?? dflt;
  const obj = `${m[1]} ${m[2]}`;
  const kw = m[3] !== undefined ? where.get(`${obj} ${m[3]}`) : undefined;
  return kw ?? where.get(obj) ?? where.get(m[1]!) ?? dflt;
}
