// serveFile against RFC 9110 over loopback: precondition order (§13.2.2), If-Range (§13.1.5),
// ranges at the edges and multipart/byteranges (§14), amplification, precompressed variants.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, writeFileSync, readFileSync, utimesSync, statSync } from 'node:fs';
import { brotliCompressSync, gzipSync } from 'node:zlib';

import { serveFile } from 'zerocopy';
import { scratch, makeFile, MiB } from './helpers.mjs';
import { httpServer, curl, parseMultipart } from './http-helpers.mjs';

const s = scratch();
const root = s.path('www');
mkdirSync(root);
const OLD = new Date('2024-03-01T12:00:00.400Z');
const text = 'abcdefghijklmnopqrstuvwxyz'.repeat(40); // 1040 bytes
writeFileSync(`${root}/t.txt`, text);
utimesSync(`${root}/t.txt`, OLD, OLD);
const big = makeFile(`${root}/big.bin`, 2 * MiB + 5);
const bigData = readFileSync(big);
// Precompressed variants: different bytes, so the test can tell which one came.
const js = 'console.log("hello");\n'.repeat(200);
writeFileSync(`${root}/app.js`, js);
writeFileSync(`${root}/app.js.br`, brotliCompressSync(js));
writeFileSync(`${root}/app.js.gz`, gzipSync(js));
writeFileSync(`${root}/app.js.zst`, 'zstd-bytes-stand-in');
writeFileSync(`${root}/only.css`, 'p{}');
writeFileSync(`${root}/only.css.gz`, gzipSync('p{}'));

let options = { root };
const srv = await httpServer((req, res) => {
  serveFile(req, res, undefined, options).catch(() => {});
});
const get = (path, headers = {}, method = 'GET') => srv.request(path, { headers, method });

test.after(async () => {
  await srv.close();
  s.cleanup();
});

test('§13.2.2: If-Match is evaluated first, If-Unmodified-Since only without it', async () => {
  options = { root, etag: 'strong' };
  const { etag, 'last-modified': lm } = (await get('/t.txt')).headers;
  assert.match(etag, /^"/, 'strong');
  const past = 'Mon, 01 Jan 1990 00:00:00 GMT';
  const future = new Date(Date.now() + 86_400_000).toUTCString();
  const cases = [
    [{ 'if-match': '*', 'if-unmodified-since': past }, 200, 'If-Match: * wins over a past If-Unmodified-Since'],
    [{ 'if-match': etag, 'if-unmodified-since': past }, 200, 'a matching If-Match wins'],
    [{ 'if-match': '"other"', 'if-unmodified-since': future }, 412, 'a failing If-Match is 412 whatever the date'],
    [{ 'if-match': `"x", ${etag}` }, 200, 'any tag of the list'],
    [{ 'if-match': `W/${etag}` }, 412, 'strong comparison: a weak tag never matches'],
    [{ 'if-unmodified-since': past }, 412, ''],
    [{ 'if-unmodified-since': lm }, 200, 'equal date is not modified since'],
    [{ 'if-unmodified-since': 'garbage' }, 200, 'an invalid date is ignored'],
    [{ 'if-none-match': etag }, 304, ''],
    [{ 'if-none-match': `W/${etag}` }, 304, 'weak comparison'],
    [{ 'if-none-match': '*' }, 304, ''],
    [{ 'if-none-match': '"other"', 'if-modified-since': future }, 200, 'If-Modified-Since only without If-None-Match'],
    [{ 'if-none-match': etag, 'if-modified-since': past }, 304, ''],
    [{ 'if-modified-since': lm }, 304, ''],
    [{ 'if-modified-since': past }, 200, ''],
    [{ 'if-match': etag, 'if-none-match': etag }, 304, 'both pass to the 304 step'],
    [{ 'if-match': '"other"', 'if-none-match': etag }, 412, 'If-Match before If-None-Match'],
  ];
  for (const [headers, status, why] of cases) {
    const r = await get('/t.txt', headers);
    assert.is(r.status, status, `${JSON.stringify(headers)} ${why}`);
    if (status === 304) assert.is(r.body.length, 0);
    if (status === 200) assert.is(r.body.toString(), text);
  }
  // Without Last-Modified, date conditions have nothing to compare and are ignored.
  options = { root, lastModified: false };
  assert.is((await get('/t.txt', { 'if-unmodified-since': past })).status, 200);
  assert.is((await get('/t.txt', { 'if-modified-since': future })).status, 200);
  // A Range never turns a 304 into a 206.
  options = { root, etag: 'strong' };
  assert.is((await get('/t.txt', { 'if-none-match': etag, range: 'bytes=0-1' })).status, 304);
  options = { root };
});

test('§13.1.5: If-Range needs a strong match and exactly one validator', async () => {
  options = { root, etag: 'strong' };
  const { etag, 'last-modified': lm } = (await get('/t.txt')).headers;
  const range = 'bytes=0-3';
  const cases = [
    [etag, 206, 'the current strong tag'],
    [`W/${etag}`, 200, 'a weak tag never matches'],
    ['"stale"', 200, ''],
    [`"x", ${etag}`, 200, 'a list is not one validator'],
    [lm, 206, 'Last-Modified exactly, and it is strong (the file is old)'],
    [new Date(OLD.getTime() + 60_000).toUTCString(), 200, 'a later date is not a match'],
    [new Date(OLD.getTime() - 60_000).toUTCString(), 200, 'an earlier one neither'],
    ['not a date', 200, ''],
  ];
  for (const [ifRange, status, why] of cases) {
    const r = await get('/t.txt', { range, 'if-range': ifRange });
    assert.is(r.status, status, `If-Range ${ifRange}: ${why}`);
    assert.is(r.body.toString(), status === 206 ? 'abcd' : text);
  }
  // The weak default tag can never satisfy If-Range.
  options = { root };
  const weak = (await get('/t.txt')).headers.etag;
  assert.is((await get('/t.txt', { range, 'if-range': weak })).status, 200);
  // A file modified within the last second has a weak Last-Modified: no range by date.
  writeFileSync(`${root}/new.txt`, 'just written');
  const fresh = await get('/new.txt');
  assert.is((await get('/new.txt', { range: 'bytes=0-3', 'if-range': fresh.headers['last-modified'] })).status, 200);
});

test('§14.1.2: ranges at the edges', async () => {
  const size = text.length;
  const cases = [
    ['bytes=0-0', 0, 0],
    [`bytes=${size - 1}-`, size - 1, size - 1],
    [`bytes=-${size}`, 0, size - 1],
    [`bytes=-${size + 500}`, 0, size - 1],
    ['bytes=-1', size - 1, size - 1],
    [`bytes=10-${size * 5}`, 10, size - 1],
  ];
  for (const [range, start, end] of cases) {
    const r = await get('/t.txt', { range });
    assert.is(r.status, 206, range);
    assert.is(r.headers['content-range'], `bytes ${start}-${end}/${size}`, range);
    assert.is(r.body.toString(), text.slice(start, end + 1), range);
  }
  for (const range of [`bytes=${size}-`, `bytes=${size}-${size + 9}`, 'bytes=-0']) {
    const r = await get('/t.txt', { range });
    assert.is(r.status, 416, range);
    assert.is(r.headers['content-range'], `bytes */${size}`, range);
  }
  for (const range of ['bytes=5-2', 'bytes=x-y', 'items=0-5', 'bytes']) {
    const r = await get('/t.txt', { range });
    assert.ok(r.status === 200 || r.status === 416, range);
    if (r.status === 200) assert.is(r.body.toString(), text, range);
  }
  assert.is((await get('/t.txt', { range: 'bytes=0-3' }, 'HEAD')).status, 200, 'HEAD ignores Range');
});

function checkParts(r, data, expected, type) {
  assert.is(r.status, 206);
  assert.is(Number(r.headers['content-length']), r.body.length, 'Content-Length is the exact body');
  const { parts, closed } = parseMultipart(r.body, r.headers['content-type']);
  assert.ok(closed, 'closing delimiter');
  assert.is(parts.length, expected.length);
  expected.forEach(([start, end], i) => {
    assert.is(parts[i].headers['content-range'], `bytes ${start}-${end}/${data.length}`);
    assert.is(parts[i].headers['content-type'], type);
    assert.ok(parts[i].body.equals(data.subarray(start, end + 1)), `part ${i} byte for byte`);
  });
}

test('§14.6: multipart/byteranges, parts byte for byte, inline and by sendfile', async () => {
  const small = Buffer.from(text);
  checkParts(await get('/t.txt', { range: 'bytes=0-1,10-19,-5' }), small, [[0, 1], [10, 19], [small.length - 5, small.length - 1]], 'text/plain; charset=utf-8');
  const ranges = [[0, 99], [MiB, MiB + 300_000], [2 * MiB, 2 * MiB + 4]];
  checkParts(await get('/big.bin', { range: `bytes=${ranges.map(([a, b]) => `${a}-${b}`).join(',')}` }), bigData, ranges, 'application/octet-stream');
  // Overlapping and adjacent ranges are merged, in the order asked.
  checkParts(await get('/t.txt', { range: 'bytes=500-599,0-9,5-20,21-30' }), small, [[500, 599], [0, 30]], 'text/plain; charset=utf-8');
  const c = await curl(srv.url('/big.bin'), ['-r', '0-9,1000-1009']);
  checkParts(c, bigData, [[0, 9], [1000, 1009]], 'application/octet-stream');
});

test('amplification: repeated and overlapping ranges never send more than the file, once', async () => {
  const many = `bytes=${Array(200).fill('0-').join(',')}`;
  const r = await get('/big.bin', { range: many });
  assert.is(r.status, 206);
  assert.is(r.body.length, bigData.length, 'one copy');
  assert.is(r.headers['content-range'], `bytes 0-${bigData.length - 1}/${bigData.length}`);
  const overlapping = `bytes=${Array.from({ length: 100 }, (_, i) => `${i * 10}-${MiB}`).join(',')}`;
  const o = await get('/big.bin', { range: overlapping });
  assert.is(o.body.length, MiB + 1);
  // Too many disjoint parts: the whole file, once, with 200.
  const scattered = `bytes=${Array.from({ length: 60 }, (_, i) => `${i * 100}-${i * 100}`).join(',')}`;
  const sc = await get('/big.bin', { range: scattered });
  assert.is(sc.status, 200);
  assert.is(sc.body.length, bigData.length);
  options = { root, maxRanges: 1 };
  assert.is((await get('/t.txt', { range: 'bytes=0-1,5-6' })).status, 200, 'maxRanges: 1 refuses multipart');
  assert.is((await get('/t.txt', { range: 'bytes=0-1' })).status, 206);
  options = { root };
});

test('precompressed: negotiation by q-value, q=0, order, Vary, own ETag, length and ranges', async () => {
  options = { root, precompressed: true };
  const br = readFileSync(`${root}/app.js.br`);
  const gz = readFileSync(`${root}/app.js.gz`);
  const zst = readFileSync(`${root}/app.js.zst`);
  const cases = [
    [undefined, undefined, js],
    ['', undefined, js],
    ['gzip, br', 'br', br],
    ['gzip, deflate', 'gzip', gz],
    ['br;q=0.5, gzip', 'gzip', gz],
    ['br;q=0, gzip;q=0.1', 'gzip', gz],
    ['zstd, gzip', 'zstd', zst],
    ['*', 'br', br],
    ['*, br;q=0', 'zstd', zst],
    ['identity', undefined, js],
    ['identity, gzip;q=0.5', undefined, js],
    ['deflate', undefined, js],
    ['br;q=0, gzip;q=0, zstd;q=0', undefined, js],
  ];
  const tags = new Set();
  for (const [ae, coding, bytes] of cases) {
    const r = await get('/app.js', ae === undefined ? {} : { 'accept-encoding': ae });
    const why = `Accept-Encoding: ${ae}`;
    assert.is(r.headers['content-encoding'], coding, why);
    assert.is(r.headers['content-type'], 'text/javascript; charset=utf-8', why);
    assert.is(r.headers.vary, 'Accept-Encoding', why);
    assert.is(Number(r.headers['content-length']), Buffer.byteLength(bytes), why);
    assert.ok(r.body.equals(Buffer.from(bytes)), why);
    tags.add(`${coding}:${r.headers.etag}`);
  }
  assert.is(new Set([...tags].map((t) => t.split(':')[1])).size, 4, 'one ETag per variant');
  options = { root, precompressed: ['gzip', 'br'] };
  assert.is((await get('/app.js', { 'accept-encoding': 'br, gzip' })).headers['content-encoding'], 'gzip', 'configured order breaks ties');
  const ranged = await get('/app.js', { 'accept-encoding': 'gzip', range: 'bytes=0-9' });
  assert.is(ranged.status, 206);
  assert.is(ranged.headers['content-range'], `bytes 0-9/${gz.length}`, 'ranges over the bytes sent');
  assert.ok(ranged.body.equals(gz.subarray(0, 10)));
  const etag = (await get('/app.js', { 'accept-encoding': 'gzip' })).headers.etag;
  assert.is((await get('/app.js', { 'accept-encoding': 'gzip', 'if-none-match': etag })).status, 304);
  assert.is((await get('/app.js', { 'if-none-match': etag })).status, 200, "the gzip variant's tag is not the identity's");
  assert.is((await get('/only.css', { 'accept-encoding': 'br, gzip' })).headers['content-encoding'], 'gzip', 'the variants that exist');
  assert.is((await get('/app.js.gz')).headers['content-type'], 'application/gzip', 'a variant asked for by name is a plain file');
  options = { root };
  const off = await get('/app.js', { 'accept-encoding': 'br' });
  assert.is(off.headers['content-encoding'], undefined, 'off by default');
  assert.is(off.headers.vary, undefined);
  const viaCurl = await curl(srv.url('/app.js'), ['-H', 'Accept-Encoding: br']);
  assert.is(viaCurl.headers['content-encoding'], undefined);
  options = { root, precompressed: true };
  const c = await curl(srv.url('/app.js'), ['-H', 'Accept-Encoding: gzip']);
  assert.is(c.headers['content-encoding'], 'gzip');
  assert.ok(c.body.equals(gz));
  options = { root };
});

test.run();
