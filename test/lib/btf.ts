/**
 * Reading a compiled BPF object's BTF (through `bpftool btf dump -j`) and a C header's #defines,
 * for the ABI tests that compare a TypeScript mirror with both.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { requireCommand, requireFile } from './require.ts';

interface BtfType {
  id: number; kind: string; name: string; size?: number; type_id?: number; nr_elems?: number;
  members?: { name: string; type_id: number; bits_offset: number }[];
  values?: { name: string; val: number }[];
}

export interface BtfField { name: string; offset: number; size: number }

export class Btf {
  private constructor(private readonly types: Map<number, BtfType>, readonly path: string) {}

  static load(objectPath: string): Btf {
    requireFile(objectPath, 'make bpf');
    requireCommand('bpftool', 'bpftool');
    const out = execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', objectPath], { encoding: 'utf8', maxBuffer: 64 << 20 });
    const types = (JSON.parse(out) as { types: BtfType[] }).types;
    return new Btf(new Map(types.map((t) => [t.id, t])), objectPath);
  }

  private find(kind: string, name: string): BtfType {
    const t = [...this.types.values()].find((x) => x.kind === kind && x.name === name);
    assert.ok(t, `${kind.toLowerCase()} ${name} is not in the BTF of ${this.path}`);
    return t;
  }

  private sizeOf(id: number): number {
    const t = this.types.get(id);
    assert.ok(t, `BTF type ${id} missing`);
    switch (t.kind) {
      case 'TYPEDEF': case 'CONST': case 'VOLATILE': return this.sizeOf(t.type_id!);
      case 'ARRAY': return this.sizeOf(t.type_id!) * t.nr_elems!;
      default: return t.size!;
    }
  }

  /** A struct's size and its members' names, byte offsets and sizes. */
  struct(name: string): { size: number; fields: BtfField[] } {
    const t = this.find('STRUCT', name);
    return {
      size: t.size!,
      fields: (t.members ?? []).map((m) => ({ name: m.name, offset: m.bits_offset / 8, size: this.sizeOf(m.type_id) })),
    };
  }

  /** An enum's [name, value] pairs in declaration order. */
  enumValues(name: string): [string, number][] {
    return (this.find('ENUM', name).values ?? []).map((v) => [v.name, v.val]);
  }
}

/** The #defines of a header whose value is a plain integer expression (numbers, shifts, +, *, -). */
export function headerDefines(path: string, prefix: string): Map<string, number> {
  const defines = new Map<string, number>();
  for (const m of readFileSync(path, 'utf8').matchAll(/^#define\s+(\w+)\s+(.+?)\s*(?:\/\*.*)?$/gm)) {
    if (!m[1]!.startsWith(prefix)) continue;
    const expr = m[2]!.replace(/U\b/g, '');
    if (/^[\d\s()<x+*-]+$/.test(expr)) defines.set(m[1]!, Function(`return (${expr})`)() as number);
  }
  return defines;
}
