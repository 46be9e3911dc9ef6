// The zerocopy command as users run it (bin/zerocopy.mjs), each command a child process on small
// inputs: output, exit codes, one-line errors; the bench's JSON schema. The bench's pictures (HTML,
// headless Chromium, explain, --cold) are in cli-pictures.test.mjs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync, mkdirSync, statSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

import { scratch, makeFile, sha256, MiB, receive } from './helpers.mjs';

const bin = fileURLToPath(new URL('../bin/zerocopy.mjs', import.meta.url));
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const s = scratch();
test.after(() => s.cleanup());

function run(...args) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Starts a long-running command; resolves once its first stdout line is out. */
async function start(...args) {
  const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  while (!out.includes('\n')) await once(child.stdout, 'data');
  return { child, first: out.split('\n')[0], output: () => out };
}

function get(port, path) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    }).on('error', reject);
  });
}

test('caps --json reports the kernel and the filesystem; caps prints an aligned table', () => {
  const r = run('caps', '--json', '/dev/shm');
  assert.is(r.code, 0, r.err);
  const caps = JSON.parse(r.out);
  assert.is(caps.platform, 'linux');
  assert.is(caps.copyFileRange, true);
  assert.is(caps.filesystem.type, 'tmpfs');
  const table = run('caps');
  assert.is(table.code, 0, table.err);
  assert.match(table.out, /^platform\s+linux/m);
  assert.match(table.out, /^O_DIRECT\s+(yes|no|unknown)/m);
});

test('--version, --help on every command, and usage errors exit 2', () => {
  assert.equal(run('--version'), { code: 0, out: `${pkg.version}\n`, err: '' });
  assert.match(run('--help').out, /Usage: zerocopy <command>/);
  for (const command of ['bench', 'explain', 'serve', 'cp', 'proxy', 'caps']) {
    const help = run(command, '--help');
    assert.is(help.code, 0, command);
    assert.match(help.out, new RegExp(`Usage: zerocopy ${command}`), command);
  }
  for (const args of [['frobnicate'], ['caps', '--nope'], ['cp', 'only-one'], ['cp', 'a', 'b', '--reflink=sometimes'], ['bench', '--runs', 'x'], ['explain', 'nope'], ['explain', '--results'], ['serve', '--port', '70000'], [],
    ['proxy'], ['proxy', '--listen', '0'], ['proxy', '--listen', 'x', '--to', 'h:1'], ['proxy', '--listen', '0', '--to', 'nohostport'],
    ['proxy', '--listen', '0', '--to', 'h:0'], ['proxy', '--listen', '70000', '--to', 'h:1'], ['proxy', '--listen', '0', '--to', 'h:1', '--pipe-size', '0']]) {
    const r = run(...args);
    assert.is(r.code, 2, args.join(' '));
  }
  assert.match(run('frobnicate').err, /unknown command 'frobnicate'\nRun 'zerocopy --help' for usage.\n$/);
});

test('failures print one line, no stack, exit 1; --verbose adds the stack', () => {
  const r = run('caps', '/no/such/path');
  assert.is(r.code, 1);
  assert.is(r.err, "zerocopy: ENOENT: no such file or directory, stat '/no/such/path'\n");
  const v = run('caps', '/no/such/path', '--verbose');
  assert.is(v.code, 1);
  assert.match(v.err, /\n\s+at /);
  const cp = run('cp', s.path('missing'), s.path('x'));
  assert.is(cp.code, 1);
  assert.is(cp.err.trim().split('\n').length, 1);
  assert.match(cp.err, /ENOENT/);
});

test('cp copies with equal content and prints the mechanism; quiet when piped', () => {
  const src = makeFile(s.path('cp-src'), 3 * MiB + 3);
  const r = run('cp', src, s.path('cp-dst'));
  assert.is(r.code, 0, r.err);
  assert.is(sha256(s.path('cp-dst')), sha256(src));
  assert.match(r.out, /3\.0 MiB in [\d.]+ s .* by (copy_file_range|reflink|sendfile|readwrite)\n$/);
  assert.is(r.err, '', 'no progress bar when stderr is not a terminal');
  const never = run('cp', '--reflink=never', src, s.path('cp-never'));
  assert.match(never.out, /by sendfile\n$/);
  const clobber = run('cp', '--no-clobber', src, s.path('cp-dst'));
  assert.is(clobber.code, 1);
  assert.match(clobber.err, /EEXIST/);
});

test('serve answers 200, 206 and 404, refuses traversal, logs each request, and stops on SIGTERM', async () => {
  const root = s.path('www');
  mkdirSync(root);
  const file = makeFile(`${root}/data.bin`, 2 * MiB);
  writeFileSync(s.path('secret.txt'), 'secret');
  const server = await start('serve', root, '--port', '0');
  const port = Number(/:(\d+)\/ /.exec(server.first)?.[1]);
  assert.ok(port > 0, server.first);
  const full = await get(port, '/data.bin');
  assert.is(full.status, 200);
  assert.is(createHash('sha256').update(full.body).digest('hex'), sha256(file));
  const part = await get(port, '/data.bin?x');
  assert.is(part.status, 200);
  const range = await new Promise((resolve) => {
    http.get({ host: '127.0.0.1', port, path: '/data.bin', headers: { range: 'bytes=10-19' }, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
    });
  });
  assert.is(range.status, 206);
  assert.ok(range.body.equals(readFileSync(file).subarray(10, 20)));
  assert.is((await get(port, '/missing')).status, 404);
  const traversal = await get(port, '/../secret.txt');
  assert.is(traversal.status, 403);
  assert.not.match(traversal.body.toString(), /secret/);
  await new Promise((r) => setTimeout(r, 100));
  assert.match(server.output(), /"GET \/data\.bin HTTP\/1\.1" 200 2097152 sendfile/);
  assert.match(server.output(), /"GET \/missing HTTP\/1\.1" 404 0 none/);
  server.child.kill('SIGTERM');
  const [code] = await once(server.child, 'exit');
  assert.is(code, 0);
  assert.match(server.output(), /SIGTERM: closing/);
});

test('proxy relays 16 MiB each way with equal sha256, logs each connection, and drains on SIGTERM', async () => {
  // The backend echoes every connection back to its sender and ends when the sender does.
  const backend = net.createServer({ allowHalfOpen: true }, (sock) => sock.pipe(sock));
  await new Promise((r) => backend.listen(0, '127.0.0.1', r));
  const backendPort = backend.address().port;
  const relay = await start('proxy', '--listen', '127.0.0.1:0', '--to', `127.0.0.1:${backendPort}`);
  const port = Number(/^proxying 127\.0\.0\.1:(\d+) -> 127\.0\.0\.1:\d+ /.exec(relay.first)?.[1]);
  assert.ok(port > 0, relay.first);
  const exchange = async (data) => {
    const client = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const back = createHash('sha256');
    let length = 0;
    client.on('data', (d) => {
      back.update(d);
      length += d.length;
    });
    const ended = once(client, 'end');
    client.end(data);
    await ended;
    client.destroy();
    return { length, digest: back.digest('hex') };
  };
  const data = randomBytes(16 * MiB);
  const echoed = await exchange(data);
  assert.is(echoed.length, data.length);
  assert.is(echoed.digest, createHash('sha256').update(data).digest('hex'));
  // A connection still open at SIGTERM is let finish; the proxy exits after it.
  const lingering = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await once(lingering, 'connect');
  lingering.write('late');
  await new Promise((r) => setTimeout(r, 200));
  relay.child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  assert.is(relay.child.exitCode, null, 'still running while a connection is open');
  const late = receive(lingering);
  lingering.end('!');
  assert.is((await late).toString(), 'late!');
  const [code] = await once(relay.child, 'exit');
  assert.is(code, 0);
  await new Promise((r) => backend.close(r));
  const out = relay.output();
  assert.match(out, /127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+ 16777216 up 16777216 down [\d.]+ms splice\n/);
  assert.match(out, /SIGTERM: closing \(1 connection open\)\n/);
  assert.match(out, / 5 up 5 down [\d.]+ms splice\n/);
  // Nothing listening behind it any more: the client's connection is closed and the error logged.
  const dead = await start('proxy', '--listen', '0', '--to', `127.0.0.1:${backendPort}`);
  const deadPort = Number(/^proxying [^ ]+:(\d+) /.exec(dead.first)?.[1]);
  const refused = net.connect(deadPort, '127.0.0.1');
  refused.on('error', () => {});
  refused.resume();
  await once(refused, 'close');
  await new Promise((r) => setTimeout(r, 100));
  assert.match(dead.output(), / 0 up 0 down [\d.]+ms error:ECONNREFUSED\n/);
  dead.child.kill('SIGINT');
  assert.equal(await once(dead.child, 'exit'), [0, null]);
});

test('bench --quick --json follows its schema: every number finite and positive, every path with its mechanism', () => {
  const html = s.path('report.html');
  const r = run('bench', '--quick', '--json', '--html', html, '--dir', s.dir);
  assert.is(r.code, 0, r.err);
  const report = JSON.parse(r.out);
  assert.is(report.schema, 'zerocopy-bench/2');
  assert.is(report.version, pkg.version);
  assert.is(report.workload.bytes, 16 * MiB);
  assert.is(report.workload.quick, true);
  assert.is(report.workload.cold, false);
  assert.is(report.eviction, null);
  assert.ok(report.machine.cores > 0 && report.machine.kernel.length > 0);
  const ids = report.paths.map((p) => p.id);
  for (const id of ['node-streams', 'readwrite', 'mmap-write', 'sendfile', 'splice', 'direct', 'copy-readwrite', 'copy_file_range', 'reflink', 'node-pipe', 'splice-relay']) {
    assert.ok(ids.includes(id), `path ${id} listed`);
  }
  for (const p of report.paths) {
    assert.type(p.mechanism, 'string');
    assert.ok(p.mechanism.length > 0, p.id);
    assert.ok(['file → socket', 'file → file', 'socket → socket'].includes(p.group), p.group);
    for (const k of ['syscallsPerChunk', 'userKernelSwitchesPerChunk', 'cpuCopies', 'dmaCopies']) assert.ok(Number.isInteger(p.model[k]) && p.model[k] >= 0);
    if (!p.available) {
      assert.type(p.reason, 'string', `${p.id} says why it did not run`);
      continue;
    }
    assert.is(p.runs.length, 1);
    for (const k of ['medianSeconds', 'bestSeconds', 'mibPerSecond', 'cpuSecondsPerGiB', 'syscalls', 'speedup']) {
      assert.ok(Number.isFinite(p[k]) && p[k] > 0, `${p.id}.${k} = ${p[k]}`);
    }
    for (const k of ['voluntaryContextSwitches', 'involuntaryContextSwitches']) assert.ok(Number.isFinite(p[k]) && p[k] >= 0, `${p.id}.${k}`);
  }
  const sendfile = report.paths.find((p) => p.id === 'sendfile');
  assert.ok(sendfile.available && sendfile.syscalls < report.paths.find((p) => p.id === 'readwrite').syscalls, 'sendfile makes fewer calls than a 64 KiB read/write loop');
  assert.ok(report.winners.length >= 3 && report.winners.every((w) => w.line.length > 20));
  assert.ok(existsSync(html) && statSync(html).size > 2000);
  assert.equal(readFileSync(html, 'utf8').match(/<script/g), null, 'the report runs no script');
  assert.is(
    execFileSync('find', [s.dir, '-maxdepth', '1', '-name', 'zerocopy-bench-*']).toString(),
    '',
    'temporary files removed',
  );
});

test('bench prints a table naming every path and a winner line per group', () => {
  const r = run('bench', '--quick', '--dir', s.dir);
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /^path\s+MiB\/s\s+CPU s\/GiB\s+syscalls/m);
  for (const name of ['Node streams', 'sendfile', 'mmap \\+ write', 'splice \\(file', 'copy_file_range', 'Node a.pipe', 'splice \\(socket']) assert.match(r.out, new RegExp(name));
  assert.match(r.out, /^file → socket: .+$/m);
});

// The --html report in headless Chromium: cli-pictures.test.mjs.

test.run();
