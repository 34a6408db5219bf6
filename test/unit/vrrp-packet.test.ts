/**
 * The VRRP codec (src/vrrp/packet.ts) against frames captured from keepalived 2.2.7
 * (test/vectors, from ../shared/vectors, with the configurations that produced them) and against messages from the
 * independent builder (test/lib/vrrp-builder.ts): every rejection reason, the order of the checks,
 * the VIP list that is counted but not dropped, and encode round trips read back by the builder.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  AUTH, decode, encode, peekVrid, REJECT_REASONS, wireInterval, type DecodeContext, type RejectReason,
} from '../../src/vrrp/packet.ts';
import { internetChecksum } from '../lib/packets.ts';
import { parseVrrp, vrrpChecksumOk, vrrpFromFrame, vrrpMessage, type VrrpMessageSpec } from '../lib/vrrp-builder.ts';

// ---------------------------------------------------------------- captured frames

interface Capture { capture: string; description: string; frames: { hex: string }[]; tcpdump: string[] }
const VECTORS = new URL('../vectors/keepalived-vrrp-captures.json', import.meta.url);
const captures = (JSON.parse(readFileSync(VECTORS, 'utf8')) as { captures: Capture[] }).captures;

/**
 * The instance each capture's configuration (test/vectors, from ../shared/vectors/keepalived-confs/<name>.conf)
 * describes, as its peer sees it: for v3uni the receiver (198.18.0.2) has the sender as its peer.
 */
const CONFS: Record<string, Omit<DecodeContext, 'family' | 'src' | 'dst' | 'ttl'>> = {
  v2: { version: 2, vrid: 51, advertIntervalMs: 1000, vips: ['198.18.0.100', '198.18.0.101'], unicastPeers: [] },
  v2auth: { version: 2, vrid: 52, advertIntervalMs: 1000, vips: ['198.18.0.100'], unicastPeers: [], authType: AUTH.PASS, authPassword: 's3cret' },
  v3: { version: 3, vrid: 53, advertIntervalMs: 500, vips: ['198.18.0.100'], unicastPeers: [] },
  v3v6: { version: 3, vrid: 54, advertIntervalMs: 1000, vips: ['fd00:18::100'], unicastPeers: [] },
  v3uni: { version: 3, vrid: 55, advertIntervalMs: 1000, vips: ['198.18.0.100'], unicastPeers: ['198.18.0.1'], checkUnicastSource: true },
};

/** What tcpdump printed for each VRRP frame: an independent reading of the same bytes. */
function tcpdumpAdverts(c: Capture): { vrid: number; prio: number; intervalMs: number; addrs: string[] }[] {
  return c.tcpdump.flatMap((line) => {
    const m = /VRRPv\d, Advertisement, vrid (\d+), prio (\d+),.*intvl (\d+)(s|cs),.*addrs(?:\(\d+\))?: ([^ ]+)/.exec(line);
    if (!m) return [];
    return [{ vrid: Number(m[1]), prio: Number(m[2]), intervalMs: Number(m[3]) * (m[4] === 's' ? 1000 : 10), addrs: m[5]!.split(',') }];
  });
}

test('every VRRP frame captured from keepalived decodes to what tcpdump read from it', () => {
  let decoded = 0;
  for (const c of captures) {
    const conf = CONFS[c.capture];
    assert.ok(conf, `no configuration for capture ${c.capture}`);
    const expected = tcpdumpAdverts(c);
    const frames = c.frames.map((f) => vrrpFromFrame(Buffer.from(f.hex, 'hex'))).filter((f) => f !== undefined);
    assert.equal(frames.length, expected.length, `${c.capture}: VRRP frames vs tcpdump lines`);
    frames.forEach((f, i) => {
      const r = decode(f.message, { ...conf, family: f.family, src: f.src, dst: f.dst, ttl: f.ttl });
      assert.ok(r.ok, `${c.capture} frame ${i}: rejected (${r.ok ? '' : `${r.reason}: ${r.detail}`})`);
      const want = expected[i]!;
      assert.equal(r.advert.vrid, want.vrid);
      assert.equal(r.advert.priority, want.prio);
      assert.equal(r.advert.intervalMs, want.intervalMs);
      assert.deepEqual(r.advert.addresses, want.addrs);
      assert.equal(r.advert.vipMismatch, false);
      assert.equal(r.advert.legacyUnicastChecksum, false);
      assert.equal(r.advert.src, f.src);
      decoded++;
    });
  }
  assert.equal(decoded, 20, 'the vectors hold 20 VRRP frames (5 captures: start, one interval later, priority 0 at stop)');
});

test('encode reproduces keepalived\'s captured messages byte for byte (v2, v2 PASS, v3 IPv4, v3 IPv6, v3 unicast)', () => {
  for (const c of captures) {
    const conf = CONFS[c.capture]!;
    for (const f of c.frames.map((x) => vrrpFromFrame(Buffer.from(x.hex, 'hex'))).filter((x) => x !== undefined)) {
      const priority = f.message[2]!;
      const spec = {
        version: conf.version, vrid: conf.vrid, priority, intervalMs: conf.advertIntervalMs, addresses: conf.vips,
        ...(conf.authType !== undefined ? { authType: conf.authType, authPassword: conf.authPassword } : {}),
      };
      assert.equal(encode(spec, { src: f.src, dst: f.dst }).toString('hex'), f.message.toString('hex'), `${c.capture} priority ${priority}`);
    }
  }
});

test('the captured v3 checksums include the pseudo-header (the unicast one with the peer as destination)', () => {
  for (const name of ['v3', 'v3v6', 'v3uni']) {
    const f = vrrpFromFrame(Buffer.from(captures.find((c) => c.capture === name)!.frames.find((x) => vrrpFromFrame(Buffer.from(x.hex, 'hex')))!.hex, 'hex'))!;
    assert.ok(vrrpChecksumOk(f.message, f.src, f.dst), `${name}: builder checksum with ${f.src} > ${f.dst}`);
    // and not without it: the message alone does not sum to zero
    assert.notEqual(internetChecksum(f.message), 0, name);
  }
});

// ---------------------------------------------------------------- rejections, in order

interface Case { spec: VrrpMessageSpec; ctx: DecodeContext }
interface Mutation { reason: RejectReason; field: string; apply(c: Case): void }

/** Rebuild the message's checksum as one that cannot verify. */
function wrongChecksum(c: Case): void {
  const good = vrrpMessage({ ...c.spec, checksum: undefined }).readUInt16BE(6);
  c.spec.checksum = (good + 1) & 0xffff;
}

const V2_PASS: Case = {
  spec: { version: 2, vrid: 52, priority: 200, addresses: ['198.18.0.100'], intervalS: 1, authType: 1, password: 's3cret' },
  ctx: {
    family: 4, src: '198.18.0.1', dst: '224.0.0.18', ttl: 255, version: 2, vrid: 52, authType: AUTH.PASS, authPassword: 's3cret',
    advertIntervalMs: 1000, vips: ['198.18.0.100'], unicastPeers: [],
  },
};
const V2_MUTATIONS: Mutation[] = [
  { reason: 'length', field: 'extra', apply: (c) => { c.spec.extra = Buffer.alloc(4); } },
  { reason: 'ttl', field: 'ttl', apply: (c) => { c.ctx.ttl = 64; } },
  { reason: 'version', field: 'version', apply: (c) => { c.spec.versionNibble = 3; } },
  { reason: 'vrid', field: 'vrid', apply: (c) => { c.spec.vrid = 53; } },
  { reason: 'auth_type', field: 'authType', apply: (c) => { c.spec.authType = 7; } },
  { reason: 'auth_mismatch', field: 'authType', apply: (c) => { c.spec.authType = 0; } },
  { reason: 'auth_password', field: 'password', apply: (c) => { c.spec.password = 's3cre'; } },
  { reason: 'interval', field: 'interval', apply: (c) => { c.spec.intervalS = 2; } },
  { reason: 'type', field: 'type', apply: (c) => { c.spec.type = 2; } },
  { reason: 'checksum', field: 'checksum', apply: wrongChecksum },
  { reason: 'cast', field: 'dst', apply: (c) => { c.ctx.dst = '198.18.0.2'; } },
];

const V3_UNICAST: Case = {
  spec: { version: 3, vrid: 55, priority: 100, addresses: ['198.18.0.100'], intervalCs: 100, src: '198.18.0.1', dst: '198.18.0.2' },
  ctx: {
    family: 4, src: '198.18.0.1', dst: '198.18.0.2', ttl: 64, version: 3, vrid: 55, advertIntervalMs: 1000,
    vips: ['198.18.0.100'], unicastPeers: ['198.18.0.1'], checkUnicastSource: true,
  },
};
/** The message is built with the context's addresses, so the checksum follows src/dst changes. */
function setAddr(which: 'src' | 'dst', a: string): (c: Case) => void {
  return (c) => { c.ctx[which] = a; c.spec[which] = a; };
}
const V3_UNICAST_MUTATIONS: Mutation[] = [
  { reason: 'length', field: 'count', apply: (c) => { c.spec.count = 2; } },
  { reason: 'version', field: 'version', apply: (c) => { c.spec.versionNibble = 2; } },
  { reason: 'vrid', field: 'vrid', apply: (c) => { c.spec.vrid = 1; } },
  { reason: 'interval', field: 'interval', apply: (c) => { c.spec.intervalCs = 0; } },
  { reason: 'type', field: 'type', apply: (c) => { c.spec.type = 0; } },
  { reason: 'checksum', field: 'checksum', apply: wrongChecksum },
  { reason: 'cast', field: 'dst', apply: setAddr('dst', '224.0.0.18') },
  { reason: 'peer', field: 'src', apply: setAddr('src', '198.18.0.9') },
];

const V3_IPV6: Case = {
  spec: { version: 3, vrid: 54, priority: 254, addresses: ['fd00:18::100'], intervalCs: 100, src: 'fe80::ff:fe00:a01', dst: 'ff02::12' },
  ctx: {
    family: 6, src: 'fe80::ff:fe00:a01', dst: 'ff02::12', ttl: 255, version: 3, vrid: 54, advertIntervalMs: 1000,
    vips: ['fd00:18::100'], unicastPeers: [],
  },
};
const V3_IPV6_MUTATIONS: Mutation[] = [
  { reason: 'length', field: 'truncate', apply: (c) => { c.spec.truncate = 20; } },
  { reason: 'ttl', field: 'ttl', apply: (c) => { c.ctx.ttl = 254; } },
  { reason: 'version', field: 'version', apply: (c) => { c.spec.versionNibble = 2; } },
  { reason: 'vrid', field: 'vrid', apply: (c) => { c.spec.vrid = 55; } },
  { reason: 'interval', field: 'interval', apply: (c) => { c.spec.intervalCs = 0; } },
  { reason: 'type', field: 'type', apply: (c) => { c.spec.type = 15; } },
  { reason: 'checksum', field: 'checksum', apply: wrongChecksum },
  { reason: 'cast', field: 'dst', apply: setAddr('dst', 'fe80::2') },
];

function run(base: Case, mutations: Mutation[]): ReturnType<typeof decode> {
  const c: Case = { spec: structuredClone(base.spec), ctx: structuredClone(base.ctx) };
  // checksum last: it is computed from the fields the others set
  for (const m of [...mutations].sort((a, b) => Number(a.reason === 'checksum') - Number(b.reason === 'checksum'))) m.apply(c);
  return decode(vrrpMessage(c.spec), c.ctx);
}

for (const [name, base, mutations] of [
  ['v2 PASS multicast', V2_PASS, V2_MUTATIONS], ['v3 IPv4 unicast', V3_UNICAST, V3_UNICAST_MUTATIONS], ['v3 IPv6 multicast', V3_IPV6, V3_IPV6_MUTATIONS],
] as const) {
  test(`${name}: the good message is accepted`, () => {
    const r = run(base, []);
    assert.ok(r.ok, r.ok ? '' : `${r.reason}: ${r.detail}`);
    assert.equal(r.advert.vipMismatch, false);
  });

  test(`${name}: each fault alone is rejected with its own reason`, () => {
    for (const m of mutations) {
      const r = run(base, [m]);
      assert.equal(r.ok ? 'accepted' : r.reason, m.reason, `${m.reason}: ${r.ok ? '' : r.detail}`);
    }
  });

  test(`${name}: a message bad in two ways reports the earlier check`, () => {
    let pairs = 0;
    mutations.forEach((a, i) => mutations.slice(i + 1).forEach((b) => {
      if (a.field === b.field) return;
      const r = run(base, [a, b]);
      assert.equal(r.ok ? 'accepted' : r.reason, a.reason, `${a.reason} + ${b.reason}`);
      pairs++;
    }));
    assert.ok(pairs >= mutations.length, `${pairs} pairs tried`);
  });

  test(`${name}: the reasons follow the documented check order`, () => {
    const order = mutations.map((m) => REJECT_REASONS.indexOf(m.reason));
    assert.ok(order.every((x, i) => x >= 0 && (i === 0 || x > order[i - 1]!)), `${mutations.map((m) => m.reason).join(', ')}`);
  });
}

test('length: shorter than the header, one address missing, one byte too many, auth data missing (v2)', () => {
  const ctx = structuredClone(V2_PASS.ctx);
  const good = vrrpMessage(V2_PASS.spec);
  for (const [what, buf] of [
    ['empty', Buffer.alloc(0)], ['7 bytes', good.subarray(0, 7)], ['no auth data', good.subarray(0, good.length - 8)],
    ['one byte more', Buffer.concat([good, Buffer.alloc(1)])], ['count 2, one address', vrrpMessage({ ...V2_PASS.spec, count: 2 })],
  ] as const) {
    const r = decode(buf, ctx);
    assert.equal(r.ok ? 'accepted' : r.reason, 'length', what);
  }
});

test('TTL is not checked with unicast peers, nor when the socket could not tell', () => {
  assert.ok(run(V3_UNICAST, []).ok, 'unicast with TTL 64');
  const ctx = structuredClone(V3_IPV6.ctx);
  delete ctx.ttl;
  assert.ok(decode(vrrpMessage(V3_IPV6.spec), ctx).ok);
});

test('auth type 2 (IPsec AH) is a known type but not what is configured', () => {
  const r = decode(vrrpMessage({ ...V2_PASS.spec, authType: 2 }), V2_PASS.ctx);
  assert.equal(r.ok ? 'accepted' : r.reason, 'auth_mismatch');
});

test('a PASS password of exactly 8 bytes, and the zero padding of a shorter one, are compared exactly', () => {
  const ctx8 = { ...structuredClone(V2_PASS.ctx), authPassword: '12345678' };
  assert.ok(decode(vrrpMessage({ ...V2_PASS.spec, password: '12345678' }), ctx8).ok);
  // a short password must be zero-padded: the same letters followed by garbage are refused
  const padded = Buffer.from('s3cret\0X', 'latin1');
  const r = decode(vrrpMessage({ ...V2_PASS.spec, authData: padded }), V2_PASS.ctx);
  assert.equal(r.ok ? 'accepted' : r.reason, 'auth_password');
});

test('v3 reserved bits are ignored and the interval is read in centiseconds', () => {
  const r = run({ ...V3_IPV6, spec: { ...V3_IPV6.spec, reserved: 0xf, intervalCs: 4095 } }, []);
  assert.ok(r.ok);
  assert.equal(r.advert.intervalMs, 40950);
});

test('v3 backups take any interval (RFC 5798 adopts the master\'s); v2 requires the configured one', () => {
  assert.ok(run({ ...V3_IPV6, spec: { ...V3_IPV6.spec, intervalCs: 37 } }, []).ok);
  const r = run({ ...V2_PASS, spec: { ...V2_PASS.spec, intervalS: 3 } }, []);
  assert.equal(r.ok ? 'accepted' : r.reason, 'interval');
});

// ---------------------------------------------------------------- VIP list: counted, not dropped

test('VIP list differences are accepted and flagged: other address, fewer, more, other order is not a difference', () => {
  const base = V2_PASS;
  const ctx = { ...structuredClone(base.ctx), vips: ['198.18.0.100', '198.18.0.101'] };
  const check = (addresses: string[]) => {
    const r = decode(vrrpMessage({ ...base.spec, addresses }), ctx);
    assert.ok(r.ok, addresses.join(','));
    return r.advert;
  };
  assert.equal(check(['198.18.0.100', '198.18.0.101']).vipMismatch, false);
  assert.equal(check(['198.18.0.101', '198.18.0.100']).vipMismatch, false, 'order does not matter');
  assert.equal(check(['198.18.0.100']).vipMismatch, true, 'one missing');
  assert.equal(check(['198.18.0.100', '198.18.0.102']).vipMismatch, true, 'another address');
  const more = check(['198.18.0.100', '198.18.0.101', '198.18.0.102']);
  assert.equal(more.vipMismatch, true, 'one more');
  assert.deepEqual(more.addresses, ['198.18.0.100', '198.18.0.101', '198.18.0.102']);
});

test('IPv6 VIPs compare as addresses, not as text', () => {
  const ctx = { ...structuredClone(V3_IPV6.ctx), vips: ['FD00:18:0::100'] };
  const r = decode(vrrpMessage(V3_IPV6.spec), ctx);
  assert.ok(r.ok);
  assert.equal(r.advert.vipMismatch, false);
});

test('a VIP mismatch does not hide a later rejection (unicast source not a peer)', () => {
  const c = structuredClone(V3_UNICAST);
  c.spec.addresses = ['198.18.0.200'];
  setAddr('src', '198.18.0.9')(c);
  const r = decode(vrrpMessage(c.spec), c.ctx);
  assert.equal(r.ok ? 'accepted' : r.reason, 'peer');
});

test('the unicast source is only checked when asked (keepalived check_unicast_src)', () => {
  const c = structuredClone(V3_UNICAST);
  setAddr('src', '198.18.0.9')(c);
  c.ctx.checkUnicastSource = false;
  assert.ok(decode(vrrpMessage(c.spec), c.ctx).ok);
});

test('v3 IPv4 unicast: a checksum made with 224.0.0.18 in the pseudo-header (older keepalived) is accepted and flagged', () => {
  const c = structuredClone(V3_UNICAST);
  const legacy = vrrpMessage({ ...c.spec, dst: '224.0.0.18' });
  const r = decode(legacy, c.ctx);
  assert.ok(r.ok, r.ok ? '' : r.detail);
  assert.equal(r.advert.legacyUnicastChecksum, true);
  // not for multicast instances: there the destination is 224.0.0.18 anyway, and a v3 IPv4 multicast
  // message built with another pseudo-header destination is refused
  const m = decode(vrrpMessage({ ...V3_IPV6.spec }), { ...V3_IPV6.ctx, dst: 'ff02::13' });
  assert.equal(m.ok ? 'accepted' : m.reason, 'checksum');
});

test('decode never throws on arbitrary bytes (20,000 random messages of 0..64 bytes)', () => {
  let seed = 12345;
  const rand = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed; };
  const counts = new Map<string, number>();
  for (let n = 0; n < 20000; n++) {
    const buf = Buffer.alloc(rand() % 65);
    for (let i = 0; i < buf.length; i++) buf[i] = rand() & 0xff;
    // make some of them plausible so later checks are reached too
    if (buf.length >= 8 && n % 2) { buf[0] = 0x31; buf[1] = 54; buf[3] = Math.max(0, Math.floor((buf.length - 8) / 16)); }
    const r = decode(buf, V3_IPV6.ctx);
    const key = r.ok ? 'ok' : r.reason;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  assert.ok((counts.get('length') ?? 0) > 0 && (counts.get('checksum') ?? 0) > 0, JSON.stringify(Object.fromEntries(counts)));
});

test('peekVrid reads the VRID only from a whole header', () => {
  assert.equal(peekVrid(Buffer.from('3136fe010064cb2b', 'hex')), 54);
  assert.equal(peekVrid(Buffer.from('313601', 'hex')), undefined);
});

test('decode refuses a v2 instance on IPv6 as a configuration error', () => {
  assert.throws(() => decode(Buffer.alloc(8), { ...V3_IPV6.ctx, version: 2 }), /VRRPv2 has no IPv6 form/);
});

// ---------------------------------------------------------------- encode

test('encode -> builder parse: v2 no auth, v2 PASS, v3 IPv4 multicast and unicast, v3 IPv6; checksums verify', () => {
  const v2 = encode({ version: 2, vrid: 9, priority: 0, intervalMs: 3000, addresses: ['198.18.1.1', '198.18.1.2'] });
  assert.deepEqual(
    { ...parseVrrp(v2), checksum: 0 },
    { version: 2, type: 1, vrid: 9, priority: 0, count: 2, authType: 0, intervalS: 3, authData: Buffer.alloc(8), checksum: 0, addresses: ['198.18.1.1', '198.18.1.2'] },
  );
  assert.ok(vrrpChecksumOk(v2));

  const pass = encode({ version: 2, vrid: 10, priority: 255, intervalMs: 1000, addresses: ['198.18.1.1'], authType: AUTH.PASS, authPassword: 'pw' });
  const pp = parseVrrp(pass);
  assert.equal(pp.authType, 1);
  assert.deepEqual(pp.authData, Buffer.from('pw\0\0\0\0\0\0', 'latin1'));
  assert.ok(vrrpChecksumOk(pass));

  for (const [src, dst, addrs, family] of [
    ['198.18.0.1', '224.0.0.18', ['198.18.0.100'], 4], ['198.18.0.1', '198.18.0.2', ['198.18.0.100', '198.18.0.101'], 4],
    ['fe80::1', 'ff02::12', ['fd00:18::100', 'fd00:18::200'], 6],
  ] as const) {
    const m = encode({ version: 3, vrid: 200, priority: 120, intervalMs: 4090, addresses: addrs }, { src, dst });
    const p = parseVrrp(m, family);
    assert.deepEqual([p.version, p.type, p.vrid, p.priority, p.count, p.intervalCs, p.reserved, p.addresses], [3, 1, 200, 120, addrs.length, 409, 0, addrs]);
    assert.ok(vrrpChecksumOk(m, src, dst), `${src} > ${dst}`);
  }
});

test('encode refuses what the wire cannot carry, naming the field', () => {
  const ok = { version: 3, vrid: 1, priority: 100, intervalMs: 1000, addresses: ['198.18.0.100'] } as const;
  const p = { src: '198.18.0.1', dst: '224.0.0.18' };
  assert.throws(() => encode({ ...ok, vrid: 0 }, p), /VRID 0 is not an integer in 1\.\.255/);
  assert.throws(() => encode({ ...ok, priority: 256 }, p), /priority 256/);
  assert.throws(() => encode({ ...ok, intervalMs: 1005 }, p), /not whole centiseconds/);
  assert.throws(() => encode({ ...ok, intervalMs: 41000 }, p), /1\.\.4095/);
  assert.throws(() => encode({ ...ok, version: 2, intervalMs: 1500 }), /not whole seconds/);
  assert.throws(() => encode({ ...ok, version: 2, authType: AUTH.PASS, authPassword: '123456789' }), /longer than 8 bytes/);
  assert.throws(() => encode({ ...ok, addresses: ['198.18.0.1', 'fd00::1'] }, p), /'fd00::1' is not IPv4/);
  assert.throws(() => encode({ ...ok, version: 2, addresses: ['fd00::1'] }), /cannot carry IPv6/);
  assert.throws(() => encode(ok), /needs the pseudo-header/);
  assert.throws(() => encode(ok, { src: 'fe80::1', dst: 'ff02::12' }), /pseudo-header source 'fe80::1' is not IPv4/);
});

test('wireInterval: v2 seconds, v3 centiseconds (0.5 s is 50, as keepalived sends advert_int 0.5)', () => {
  assert.equal(wireInterval(2, 1000), 1);
  assert.equal(wireInterval(3, 500), 50);
  assert.equal(wireInterval(3, 1000), 100);
});
