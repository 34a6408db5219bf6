/**
 * The TCP scenario's pure parts: wrk's command line and report (scripts/bench/wrk.ts), on a
 * report wrk 4.1 printed in the lab and on ones with its error lines; HAProxy's configuration
 * (scripts/bench/tcp.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { errorShare, parseWrk, wrkArgs } from '../../scripts/bench/wrk.ts';
import { haproxyConfig } from '../../scripts/bench/tcp.ts';

/** Printed by Debian's wrk 4.1.0 in the lab (client1 -> real1's nginx). */
const CAPTURED = `Running 2s test @ http://198.18.0.11/
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   667.70us  377.18us   5.39ms   81.58%
    Req/Sec     9.70k   700.12    10.42k    80.00%
  Latency Distribution
     50%  638.00us
     75%  822.00us
     90%    1.00ms
     99%    2.21ms
  19314 requests in 2.01s, 3.02MB read
Requests/sec:   9623.69
Transfer/sec:      1.51MB
`;

test('wrk report: rate, count, duration, p50 and p99 in ms whatever the unit', () => {
  const r = parseWrk(CAPTURED);
  assert.deepEqual(r, {
    requests: 19314, durationS: 2.01, requestsPerS: 9623.69, p50Ms: 0.638, p99Ms: 2.21,
    socketErrors: { connect: 0, read: 0, write: 0, timeout: 0 }, non2xx: 0,
  });
  assert.equal(errorShare(r), 0);
  const slow = CAPTURED.replace('     99%    2.21ms', '     99%    1.25s').replace('2.01s,', '1.00m,');
  assert.deepEqual([parseWrk(slow).p99Ms, parseWrk(slow).durationS], [1250, 60]);
});

test('wrk report: socket errors and non-2xx answers are read and counted as failures (reads are not)', () => {
  const text = CAPTURED.replace('Requests/sec:', '  Socket errors: connect 10, read 500, write 0, timeout 4\n  Non-2xx or 3xx responses: 6\nRequests/sec:');
  const r = parseWrk(text);
  assert.deepEqual(r.socketErrors, { connect: 10, read: 500, write: 0, timeout: 4 });
  assert.equal(r.non2xx, 6);
  assert.equal(errorShare(r), 20 / 19314);
});

test('wrk report: what is missing is named; wrk\'s own error is quoted', () => {
  assert.throws(() => parseWrk('unable to connect to 198.18.0.99:http No route to host\n'),
    /no "N requests in T" line \(its first line: "unable to connect to 198\.18\.0\.99:http No route to host"\)/);
  assert.throws(() => parseWrk(CAPTURED.replace(/ {5}99%.*\n/, '')), /no 99% latency line \(was --latency given\?\)/);
  assert.throws(() => parseWrk(CAPTURED.replace(/Requests\/sec.*\n/, '')), /no "Requests\/sec:" line/);
  assert.throws(() => parseWrk(CAPTURED.replace('638.00us', '638.00ns')), /no 50% latency line/);
});

test('wrk command line: a new connection per request, latency percentiles', () => {
  assert.deepEqual(wrkArgs({ url: 'http://198.18.0.100:80/', threads: 1, connections: 16, durationS: 5 }),
    ['-t1', '-c16', '-d5s', '--latency', '-H', 'Connection: close', 'http://198.18.0.100:80/']);
});

test('HAProxy: TCP mode, bound to the VIP, every real a server, round robin', () => {
  const c = haproxyConfig('198.18.0.100', 80, ['198.18.0.11', '198.18.0.12']);
  assert.match(c, /^defaults\n {2}mode tcp$/m);
  assert.match(c, /^ {2}bind 198\.18\.0\.100:80$/m);
  assert.match(c, /^ {2}balance roundrobin\n {2}server real1 198\.18\.0\.11:80\n {2}server real2 198\.18\.0\.12:80$/m);
  assert.doesNotMatch(c, / check\b/, 'no health checks: the reals are up for the whole run');
});
