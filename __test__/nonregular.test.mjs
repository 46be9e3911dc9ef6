// Paths that are not regular files: FIFOs (an open for reading without a writer blocks forever),
// character devices, directories, sockets, and a FIFO passed as an fd. mmap, mmapSync, residency and
// serveFile (with and without root) must answer at once with a clear error (or a 404), never block.
// Each case runs in a child process with a timeout: without non-blocking opens it hangs (the async
// ones pin a libuv pool thread, so not even process.exit() returns), and a hang must fail the test,
// not the suite.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';

import { scratch, childModule } from './helpers.mjs';

const s = scratch();
test.after(() => s.cleanup());
const fifo = s.path('fifo');
execFileSync('mkfifo', [fifo]);
const dir = s.path('dir');
mkdirSync(dir);

/** Runs `code` in a child bounded to 20 s; returns its JSON output once it exited by itself. */
function run(code, args, env) {
  const r = childModule(code, args, { timeout: 20_000, env });
  assert.is(r.timedOut, false, `the child hung (killed after 20 s)\n${r.err}`);
  assert.equal([r.status, r.signal], [0, null], r.err);
  return JSON.parse(r.out);
}

const ATTEMPT = `
  const attempt = async (fn) => {
    try { const r = await fn(); r?.close?.(); return r?.pages !== undefined ? 'counted' : 'ok'; }
    catch (e) { return { code: e.code, syscall: e.syscall, path: e.path ?? null, regular: /only regular files/.test(e.message) }; }
  };`;

test('mmap, mmapSync and residency refuse a FIFO, devices, a directory and a socket at once', () => {
  const sock = s.path('sock');
  const res = run(
    `import { mmap, mmapSync, residency } from 'zerocopy';
     import net from 'node:net';
     import { once } from 'node:events';
     ${ATTEMPT}
     const [fifo, dir, sock] = process.argv.slice(1);
     const server = net.createServer().listen(sock);
     await once(server, 'listening');
     const out = {};
     for (const [name, path] of [['fifo', fifo], ['zero', '/dev/zero'], ['null', '/dev/null'], ['dir', dir], ['socket', sock]]) {
       out[name] = {
         mmapSync: await attempt(() => mmapSync(path)),
         rw: await attempt(() => mmapSync(path, { mode: 'rw' })),
         mmap: await attempt(() => mmap(path)),
         residency: await attempt(() => residency(path)),
       };
     }
     server.close();
     process.stdout.write(JSON.stringify(out));`,
    [fifo, dir, sock],
  );
  const nodev = (path) => ({ code: 'ENODEV', syscall: 'mmap', path, regular: true });
  for (const [name, path] of [['fifo', fifo], ['zero', '/dev/zero'], ['null', '/dev/null']]) {
    assert.equal(res[name], { mmapSync: nodev(path), rw: nodev(path), mmap: nodev(path), residency: nodev(path) }, name);
  }
  const isdir = { code: 'EISDIR', syscall: 'mmap', path: dir, regular: false };
  // A directory cannot be opened read-write at all: open says so first.
  assert.equal(res.dir, { mmapSync: isdir, rw: { code: 'EISDIR', syscall: 'open', path: dir, regular: false }, mmap: isdir, residency: isdir });
  // open(2) of a socket's path answers ENXIO.
  const nxio = { code: 'ENXIO', syscall: 'open', path: sock, regular: false };
  assert.equal(res.socket, { mmapSync: nxio, rw: nxio, mmap: nxio, residency: nxio });
});

test('a FIFO passed as an fd is refused too, and the fd stays usable', () => {
  const res = run(
    `import { mmap, mmapSync, residency } from 'zerocopy';
     import { openSync, closeSync, constants, fstatSync } from 'node:fs';
     ${ATTEMPT}
     const fd = openSync(process.argv[1], constants.O_RDONLY | constants.O_NONBLOCK);
     const out = {
       mmapSync: await attempt(() => mmapSync(fd)),
       mmap: await attempt(() => mmap(fd)),
       residency: await attempt(() => residency(fd)),
       stillOpen: fstatSync(fd).isFIFO(),
     };
     closeSync(fd);
     process.stdout.write(JSON.stringify(out));`,
    [fifo],
  );
  const nodev = { code: 'ENODEV', syscall: 'mmap', path: null, regular: true };
  assert.equal(res, { mmapSync: nodev, mmap: nodev, residency: nodev, stillOpen: true });
});

for (const portable of [false, true]) {
  test(`serveFile answers 404 for a FIFO${portable ? ' (portable paths, no root)' : ', with and without root'}, and the process can still exit`, () => {
    const res = run(
      `import http from 'node:http';
       import { once } from 'node:events';
       import { basename, dirname } from 'node:path';
       import { serveFile } from 'zerocopy';
       const [fifo, portable] = process.argv.slice(1);
       const results = [];
       const server = http.createServer(async (req, res) => {
         const rooted = req.url === '/rooted';
         results.push(await serveFile(req, res, rooted ? '/' + basename(fifo) : fifo, rooted ? { root: dirname(fifo) } : {}));
       });
       server.listen(0, '127.0.0.1');
       await once(server, 'listening');
       const get = async (path) => {
         const res = await new Promise((resolve, reject) => http.get({ port: server.address().port, host: '127.0.0.1', path }, resolve).on('error', reject));
         res.resume();
         await once(res, 'end');
         return res.statusCode;
       };
       const statuses = [await get('/plain')];
       if (portable !== 'true') statuses.push(await get('/rooted'));
       server.close();
       process.stdout.write(JSON.stringify({ statuses, results: results.map((r) => r.status) }));`,
      [fifo, String(portable)],
      portable ? { ZEROCOPY_PORTABLE: '1' } : {},
    );
    const expected = portable ? [404] : [404, 404];
    assert.equal(res, { statuses: expected, results: expected });
  });
}

test.run();
