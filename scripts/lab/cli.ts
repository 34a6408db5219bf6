/**
 * `scripts/lab/lab`: bring a namespace lab (scripts/lab/lab.ts) up or down from a shell.
 *
 *   lab up [--prefix P] [--clients N] [--lbs N] [--reals N] [--routing direct|via-lb]
 *          [--http node|nginx] [--decap] [--json]
 *       builds the lab, starts the real servers' services (detached; --decap: also `xlb decap` on
 *       every real, for TUN), prints its description (JSON with --json) and exits, leaving it
 *       running. Interrupted, it removes what it made.
 *   lab down [--prefix P | --all]     kills its processes, deletes its namespaces and state
 *   lab list                          prefixes of the labs that are up
 *   lab show [--prefix P] [--json]    a running lab's description
 *
 * The default prefix is 'xlab'. Needs root.
 */
import { parseArgs } from 'node:util';
import {
  createLab, destroyLab, formatLab, labExists, listLabs, loadLab, ROUTINGS, checkPrefix, type Routing,
} from './lab.ts';
import { HTTP_SERVERS, type HttpServerKind } from './services.ts';

const DEFAULT_PREFIX = 'xlab';
const USAGE = `usage:
  scripts/lab/lab up [--prefix P] [--clients N] [--lbs N] [--reals N] [--routing ${ROUTINGS.join('|')}] [--http ${HTTP_SERVERS.join('|')}] [--decap] [--json]
  scripts/lab/lab down [--prefix P | --all]
  scripts/lab/lab list
  scripts/lab/lab show [--prefix P] [--json]
default prefix: ${DEFAULT_PREFIX}`;

class UsageError extends Error {}

function integer(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`--${name}: '${v}' is not a whole number`);
  return Number(v);
}

function oneOf<T extends string>(name: string, v: string | undefined, allowed: readonly T[]): T | undefined {
  if (v === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(v)) throw new UsageError(`--${name}: '${v}' is not one of ${allowed.join(', ')}`);
  return v as T;
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      options: {
        prefix: { type: 'string' }, clients: { type: 'string' }, lbs: { type: 'string' }, reals: { type: 'string' },
        routing: { type: 'string' }, http: { type: 'string' }, decap: { type: 'boolean' }, json: { type: 'boolean' },
        all: { type: 'boolean' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const o = parsed.values;
  const prefix = checkPrefix(o.prefix ?? DEFAULT_PREFIX);
  const only = (allowed: string[]) => {
    const extra = Object.keys(o).filter((k) => !allowed.includes(k));
    if (extra.length) throw new UsageError(`'${command}' takes no --${extra.join(', --')}`);
  };

  switch (command) {
    case 'up': {
      only(['prefix', 'clients', 'lbs', 'reals', 'routing', 'http', 'decap', 'json']);
      if (process.getuid?.() !== 0) throw new Error('lab up needs root (network namespaces)');
      const lab = await createLab({
        prefix,
        clients: integer('clients', o.clients),
        lbs: integer('lbs', o.lbs),
        reals: integer('reals', o.reals),
        routing: oneOf<Routing>('routing', o.routing, ROUTINGS),
        http: oneOf<HttpServerKind>('http', o.http, HTTP_SERVERS),
        decap: o.decap,
        log: (line) => process.stderr.write(`lab ${prefix}: ${line}\n`),
      });
      lab.persist();
      const description = loadLab(prefix);
      process.stdout.write(o.json ? `${JSON.stringify(description, null, 2)}\n` : formatLab(description));
      if (!o.json) process.stdout.write(`remove it with: scripts/lab/lab down --prefix ${prefix}\n`);
      return;
    }
    case 'down': {
      only(['prefix', 'all']);
      if (o.all && o.prefix !== undefined) throw new UsageError('down takes --prefix or --all, not both');
      if (process.getuid?.() !== 0) throw new Error('lab down needs root (network namespaces)');
      const prefixes = o.all ? listLabs() : [prefix];
      for (const p of prefixes) {
        if (!labExists(p)) {
          process.stdout.write(`lab ${p}: not there\n`);
          continue;
        }
        destroyLab(p);
        process.stdout.write(`lab ${p}: removed\n`);
      }
      if (o.all && prefixes.length === 0) process.stdout.write('no labs\n');
      return;
    }
    case 'list': {
      only([]);
      for (const p of listLabs()) process.stdout.write(`${p}\n`);
      return;
    }
    case 'show': {
      only(['prefix', 'json']);
      const description = loadLab(prefix);
      process.stdout.write(o.json ? `${JSON.stringify(description, null, 2)}\n` : formatLab(description));
      return;
    }
    default:
      throw new UsageError(command === undefined ? 'no command' : `unknown command '${command}'`);
  }
}

main(process.argv.slice(2)).catch((err: Error) => {
  process.stderr.write(`lab: ${err.message}\n`);
  if (err instanceof UsageError) process.stderr.write(`${USAGE}\n`);
  process.exitCode = err instanceof UsageError ? 2 : 1;
});
