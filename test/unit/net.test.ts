import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addrBytes, addrText, familyOf, macBytes, portField } from '../../src/datapath/xdp/net.ts';

test('IPv4 addresses take the first 4 of 16 bytes', () => {
  assert.equal(addrBytes('198.18.0.10').toString('hex'), 'c612000a' + '00'.repeat(12));
  assert.equal(addrText(addrBytes('198.18.0.10'), 4), '198.18.0.10');
});

test('IPv6 addresses in every written form', () => {
  assert.equal(addrBytes('fd00::10').toString('hex'), 'fd00' + '0'.repeat(26) + '10');
  assert.equal(addrBytes('::').toString('hex'), '0'.repeat(32));
  assert.equal(addrBytes('fd00:1:2:3:4:5:6:7').toString('hex'), 'fd00000100020003000400050006' + '0007');
  assert.equal(addrBytes('::ffff:198.18.0.1').toString('hex'), '0'.repeat(20) + 'ffff' + 'c6120001');
  assert.equal(addrText(addrBytes('fd00:0:0:1::10'), 6), 'fd00:0:0:1::10');
  assert.equal(addrText(addrBytes('fd00::'), 6), 'fd00::');
});

test('bad addresses, MACs and ports are refused by name', () => {
  assert.throws(() => addrBytes('198.18.0.256'), /'198.18.0.256' is not an IPv4 or IPv6 address/);
  assert.throws(() => familyOf('fd00::g'), /not an IPv4 or IPv6/);
  assert.throws(() => macBytes('02:00:00:00:00'), /not a MAC/);
  assert.throws(() => portField(65536), /port 65536/);
});

test('MAC and port layouts', () => {
  assert.equal(macBytes('02:AB:00:00:01:ff').toString('hex'), '02ab000001ff');
  const b = Buffer.alloc(2);
  b.writeUInt16LE(portField(80));
  assert.equal(b.toString('hex'), '0050'); // network order in memory
});
