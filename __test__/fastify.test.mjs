// zerocopy/fastify with real Fastify 5: the static route (root, prefix, index, dotfiles, setHeaders,
// decorateReply) and reply.sendFile inside Fastify's reply lifecycle (onSend, onResponse, logging,
// reply.sent), through fastify.inject (no socket: the stream fallback) and a real listen (sendfile).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs, { mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { PassThrough, Writable } from 'node:stream';

import Fastify from 'fastify';
import zerocopyStatic from 'zerocopy/fastify';

import { fixtures, leaveEarly, request } from './frameworks-helpers.mjs';
import { MiB, makeFile, scratch, settledFds } from './helpers.mjs';

const { root, big } = fixtures();
const bigData = readFileSync(big);

async function start(opts, setup) {
  const logs = [];
  const stream = new Writable({ write: (c, _e, cb) => (logs.push(JSON.parse(c)), cb()) });
  const app = Fastify({ logger: { level: 'info', stream } });
  await app.register(zerocopyStatic, opts);
  await setup?.(app);
  await app.ready();
  return { app, logs };
}

/** The same request through inject and over loopback: [injected, real]. */
async function both(app, path, headers = {}, method = 'GET') {
  const inj = await app.inject({ method, url: path, headers });
  const address = app.server.address() ?? (await app.listen({ port: 0, host: '127.0.0.1' }), app.server.address());
  const real = await request(address.port, path, { method, headers });
  return [
    { status: inj.statusCode, headers: inj.headers, body: inj.rawPayload },
    { status: real.status, headers: real.headers, body: real.body },
  ];
}

test('static route: files, prefix, index, 404 via the not-found handler, HEAD, big file', async () => {
  const { app } = await start({ root, prefix: '/static/' });
  try {
    for (const r of await both(app, '/static/todo.txt')) {
      assert.is(r.status, 200);
      assert.is(r.body.toString(), '- groceries');
      assert.is(r.headers['content-type'], 'text/plain; charset=utf-8');
      assert.is(r.headers['content-length'], '11');
      assert.match(r.headers.etag, /^W\//);
    }
    for (const r of await both(app, '/static/users/')) assert.is(r.body.toString(), '<p>tobi, loki, jane</p>');
    for (const r of await both(app, '/static/users')) assert.is(r.body.toString(), '<p>tobi, loki, jane</p>', 'a directory answers with its index');
    for (const r of await both(app, '/static/nope.txt')) {
      assert.is(r.status, 404);
      assert.match(r.body.toString(), 'Route GET:/static/nope.txt not found');
    }
    // inject parses the URL as WHATWG does (%2e%2e is '..', resolved away): only the socket sees it.
    const [injected, real] = await both(app, '/static/%2e%2e/secret.txt');
    assert.is(injected.status, 404);
    assert.is(real.status, 403);
    for (const r of await both(app, '/static/todo.txt', {}, 'HEAD')) {
      assert.is(r.status, 200);
      assert.is(r.headers['content-length'], '11');
      assert.is(r.body.length, 0);
    }
    for (const r of await both(app, '/static/big.bin')) {
      assert.is(r.status, 200);
      assert.ok(r.body.equals(bigData), '2 MiB byte for byte');
    }
  } finally {
    await app.close();
  }
});

test('validators and ranges, through inject and a socket', async () => {
  const { app } = await start({ root });
  try {
    const [first] = await both(app, '/nums.txt');
    for (const r of await both(app, '/nums.txt', { 'if-none-match': first.headers.etag })) {
      assert.is(r.status, 304);
      assert.is(r.body.length, 0);
    }
    for (const r of await both(app, '/nums.txt', { range: 'bytes=2-4' })) {
      assert.is(r.status, 206);
      assert.is(r.body.toString(), '345');
      assert.is(r.headers['content-range'], 'bytes 2-4/9');
    }
    for (const r of await both(app, '/nums.txt', { range: 'bytes=20-' })) {
      assert.is(r.status, 416);
      assert.is(r.headers['content-range'], 'bytes */9');
    }
    // On a socket serveFile answers (preconditions included); inject's stream fallback has no If-Match.
    const [, failed] = await both(app, '/nums.txt', { 'if-match': '"other"' });
    assert.is(failed.status, 412);
    for (const r of await both(app, '/big.bin', { range: 'bytes=100000-1500000' })) {
      assert.is(r.status, 206);
      assert.ok(r.body.equals(bigData.subarray(100000, 1500001)));
    }
  } finally {
    await app.close();
  }
});

test('options: dotfiles (allowed by default, as in @fastify/static), setHeaders, index', async () => {
  const seen = [];
  const { app } = await start({ root, index: ['todo.html'], setHeaders: (res, path, stat) => (seen.push([path, stat.size]), res.setHeader('x-served-by', 'zerocopy')) });
  const deny = await start({ root, dotfiles: 'deny' });
  try {
    for (const r of await both(app, '/.hidden')) assert.is(r.body.toString(), 'I am hidden');
    for (const r of await both(app, '/')) {
      assert.is(r.body.toString(), '<li>groceries</li>');
      assert.is(r.headers['x-served-by'], 'zerocopy');
    }
    assert.equal(seen.at(-1), [`${root}/todo.html`, 18]);
    for (const r of await both(deny.app, '/.hidden')) assert.is(r.status, 403);
  } finally {
    await app.close();
    await deny.app.close();
  }
  for (const [opts, message] of [
    [{ root, setHeaders: 'x' }, /^setHeaders option must be a function$/],
    [{}, /^root path required$/],
  ]) {
    const f = Fastify();
    const err = await f.register(zerocopyStatic, opts).then(() => undefined, (e) => e);
    assert.instance(err, TypeError);
    assert.match(err.message, message);
  }
});

test('reply.sendFile in the lifecycle: onSend sees the headers and payload, onResponse and the log see the status, reply.sent', async () => {
  const events = [];
  const { app, logs } = await start({ root, serve: false }, (app) => {
    app.addHook('onSend', async (req, reply, payload) => {
      events.push(['onSend', reply.getHeader('content-type'), reply.getHeader('etag') !== undefined, typeof payload?.pipe]);
      reply.header('x-on-send', 'yes');
      return payload;
    });
    app.addHook('onResponse', async (req, reply) => events.push(['onResponse', reply.statusCode, reply.sent]));
    app.get('/page', (req, reply) => reply.sendFile('users/index.html'));
    app.get('/big', async (req, reply) => {
      const r = reply.sendFile(big);
      return r;
    });
    app.get('/other-root', (req, reply) => reply.sendFile('names.txt', `${root}/pets`, { cacheControl: false }));
    app.get('/missing', (req, reply) => reply.sendFile('nope.html'));
  });
  try {
    for (const r of await both(app, '/page')) {
      assert.is(r.status, 200);
      assert.is(r.body.toString(), '<p>tobi, loki, jane</p>');
      assert.is(r.headers['x-on-send'], 'yes');
    }
    assert.equal(events.slice(0, 2), [
      ['onSend', 'text/html; charset=utf-8', true, 'function'],
      ['onResponse', 200, true],
    ]);
    for (const r of await both(app, '/big')) assert.ok(r.body.equals(bigData));
    for (const r of await both(app, '/other-root')) {
      assert.is(r.body.toString(), 'tobi\nloki');
      assert.is(r.headers['cache-control'], undefined);
    }
    for (const r of await both(app, '/missing')) assert.is(r.status, 404);
    const completed = logs.filter((l) => l.msg === 'request completed').map((l) => l.res.statusCode);
    assert.equal(completed, [200, 200, 200, 200, 200, 200, 404, 404]);
  } finally {
    await app.close();
  }
});

test('preCompressed: the .br / .gz beside the file, on a socket', async () => {
  const { app } = await start({ root, preCompressed: true });
  const plain = await start({ root });
  try {
    await app.listen({ port: 0, host: '127.0.0.1' });
    await plain.app.listen({ port: 0, host: '127.0.0.1' });
    const port = app.server.address().port;
    const br = await request(port, '/todo.txt', { headers: { 'accept-encoding': 'gzip, br' } });
    assert.is(br.text, 'brotli bytes');
    assert.is(br.headers['content-encoding'], 'br');
    assert.is(br.headers['content-type'], 'text/plain; charset=utf-8');
    assert.match(br.headers.vary, /accept-encoding/i);
    const gz = await request(port, '/todo.txt', { headers: { 'accept-encoding': 'gzip' } });
    assert.is(gz.text, 'gzip bytes');
    assert.is.not(gz.headers.etag, br.headers.etag, 'each variant has its own ETag');
    assert.is((await request(port, '/todo.txt')).text, '- groceries');
    const off = await request(plain.app.server.address().port, '/todo.txt', { headers: { 'accept-encoding': 'br' } });
    assert.is(off.text, '- groceries', 'off by default');
  } finally {
    await app.close();
    await plain.app.close();
  }
});

test('decorateReply: false leaves reply.sendFile alone', async () => {
  const { app } = await start({ root, decorateReply: false });
  try {
    assert.not.ok(app.hasReplyDecorator('sendFile'));
  } finally {
    await app.close();
  }
});

test('one open per request: a file swapped between find and send is not what is sent (inject and socket)', async () => {
  const s = scratch();
  const dir = s.path('swap');
  mkdirSync(dir);
  writeFileSync(s.path('outside.txt'), 'outside root');
  const before = { small: Buffer.from('the small file as found'), big: readFileSync(makeFile(`${dir}/big.bin`, 3 * MiB)) };
  writeFileSync(`${dir}/small.txt`, before.small);
  // Between the find (headers on the reply) and the send (the payload piped), an async onSend hook
  // replaces the file: by rename (another inode) or by a symlink leading outside root.
  const swaps = {
    '/small.txt': () => (writeFileSync(`${dir}/small.new`, 'SWAPPED, and of another length'), renameSync(`${dir}/small.new`, `${dir}/small.txt`)),
    '/big.bin': () => (makeFile(`${dir}/big.new`, MiB), renameSync(`${dir}/big.new`, `${dir}/big.bin`)),
    '/link.txt': () => (symlinkSync(s.path('outside.txt'), `${dir}/link.new`), renameSync(`${dir}/link.new`, `${dir}/link.txt`)),
  };
  const { app } = await start({ root: dir }, (app) =>
    app.addHook('onSend', async (req, reply, payload) => {
      swaps[req.url.split('?')[0]]?.();
      return payload;
    }),
  );
  try {
    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = app.server.address().port;
    for (const via of ['inject', 'socket']) {
      const get = async (path) => {
        if (via === 'socket') return request(port, path);
        const r = await app.inject({ url: path });
        return { status: r.statusCode, headers: r.headers, body: r.rawPayload };
      };
      writeFileSync(`${dir}/small.txt`, before.small);
      const small = await get('/small.txt');
      assert.is(small.status, 200, via);
      assert.is(small.body.toString(), before.small.toString(), `${via}: the small file as it was found`);
      assert.is(small.headers['content-length'], String(before.small.length));
      writeFileSync(`${dir}/big.bin`, before.big);
      const big = await get('/big.bin');
      assert.is(big.status, 200, via);
      assert.ok(big.body.equals(before.big), `${via}: the 3 MiB file as it was found, not the 1 MiB one renamed over it`);
      rmSync(`${dir}/link.txt`, { force: true }); // the link itself: writing through it would write outside root
      writeFileSync(`${dir}/link.txt`, 'the file before it became a link');
      const link = await get('/link.txt');
      assert.is(link.body.toString(), 'the file before it became a link', `${via}: never the bytes outside root`);
    }
  } finally {
    await app.close();
  }
});

test('no fd left open: aborted clients, onSend replacing or throwing, reply sent already, errors, inject', async () => {
  const s = scratch();
  const dir = s.path('fds');
  mkdirSync(dir);
  makeFile(`${dir}/mid.bin`, 2 * MiB);
  // Sparse: only ever requested by a client that leaves once the headers arrived, mid-send.
  writeFileSync(`${dir}/huge.bin`, '');
  truncateSync(`${dir}/huge.bin`, 256 * MiB);
  makeFile(`${dir}/big.bin`, 256 * 1024);
  writeFileSync(`${dir}/small.txt`, 'small');
  const { app } = await start({ root: dir }, (app) => {
    app.addHook('onSend', async (req, reply, payload) => {
      if (req.headers['x-swap'] === 'string') return 'replaced';
      if (req.headers['x-swap'] === 'throw') throw new Error('onSend failed');
      // As @fastify/compress does: the payload piped into a transform, on a real socket.
      if (req.headers['x-swap'] === 'wrap') return payload.pipe(new PassThrough());
      return payload;
    });
    app.get('/sent-already', (req, reply) => {
      reply.send('first');
      reply.sendFile('big.bin');
    });
    app.get('/hijacked', (req, reply) => {
      reply.hijack();
      reply.raw.end('hijacked');
      reply.sendFile('big.bin');
    });
  });
  try {
    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = app.server.address().port;
    const fds = await settledFds();
    for (let round = 0; round < 2; round++) {
      for (const path of ['/small.txt', '/big.bin', '/mid.bin']) {
        assert.is((await request(port, path)).status, 200);
        assert.is((await app.inject({ url: path })).statusCode, 200);
        assert.is((await request(port, path, { headers: { 'x-swap': 'string' } })).body.toString(), 'replaced');
        assert.is((await app.inject({ url: path, headers: { 'x-swap': 'string' } })).payload, 'replaced');
        assert.is((await request(port, path, { headers: { 'x-swap': 'throw' } })).status, 500);
        assert.is((await app.inject({ url: path, headers: { 'x-swap': 'throw' } })).statusCode, 500);
        assert.ok((await request(port, path, { headers: { 'x-swap': 'wrap' } })).body.equals(readFileSync(`${dir}${path}`)), `${path} through a transform`);
        assert.is((await request(port, path, { headers: { range: 'bytes=99999999-' } })).status, 416);
        assert.is((await request(port, path, { method: 'HEAD' })).status, 200);
      }
      await leaveEarly(port, '/huge.bin');
      assert.is((await request(port, '/sent-already')).body.toString(), 'first');
      assert.is((await request(port, '/hijacked')).body.toString(), 'hijacked');
      assert.is((await request(port, '/nope')).status, 404);
    }
    assert.is(await settledFds(), fds, 'every file the plugin opened is closed');
  } finally {
    await app.close();
  }
});

test('the file the stream fallback reads is closed once, by serveStatic: never by the file stream too (a second close would hit a reused fd)', async () => {
  // Node's fs.ReadStream closes its fd on destroy() even with autoClose: false. A double close of a
  // number another thread (an accept, an open on the pool) has taken meanwhile closes that one: a
  // live socket vanished under libuv and the server hung. Every fs.close the fallback makes is seen here.
  const closed = [];
  const realClose = fs.close;
  fs.close = function (fd, ...rest) {
    closed.push(fd);
    return realClose.call(this, fd, ...rest);
  };
  const { app } = await start({ root }, (app) => {
    // As @fastify/compress does: the payload piped into a transform, on a real socket.
    app.addHook('onSend', async (req, reply, payload) => (req.headers['x-wrap'] ? payload.pipe(new PassThrough()) : payload));
  });
  try {
    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = app.server.address().port;
    const fds = await settledFds();
    for (let i = 0; i < 3; i++) {
      assert.ok((await app.inject({ url: '/big.bin' })).rawPayload.equals(bigData), 'inject: byte for byte');
      assert.ok((await request(port, '/big.bin', { headers: { 'x-wrap': '1' } })).body.equals(bigData), 'through a transform');
      assert.is((await app.inject({ url: '/big.bin', headers: { range: 'bytes=10-19' } })).rawPayload.toString('hex'), bigData.subarray(10, 20).toString('hex'));
      // Left mid-body: the file stream is destroyed while it reads. (Not through inject: a
      // payloadAsStream destroyed there never destroys the payload, any payload, so its file
      // stays open until the app closes; light-my-request's, not ours.)
      await leaveEarly(port, '/big.bin', { 'x-wrap': '1' });
    }
    assert.is(await settledFds(), fds, 'every file is closed');
    assert.equal(closed, [], 'no fs.close from the file stream');
  } finally {
    fs.close = realClose;
    await app.close();
  }
});

test.run();
