// `zerocopy serve` on serveStatic, as a child process: index.html, --list (escaped names),
// --spa, --precompressed; errors keep their status.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

import { scratch } from './helpers.mjs';

const bin = fileURLToPath(new URL('../bin/zerocopy.mjs', import.meta.url));
const s = scratch();
const root = s.path('www');
mkdirSync(`${root}/app`, { recursive: true });
mkdirSync(`${root}/files/<sub>`, { recursive: true });
writeFileSync(`${root}/app/index.html`, '<p>app</p>');
writeFileSync(`${root}/index.html`, '<p>home</p>');
writeFileSync(`${root}/files/a&b <script>.txt`, 'x');
writeFileSync(`${root}/files/.secret`, 'hidden');
writeFileSync(`${root}/style.css`, 'p { color: red }');
writeFileSync(`${root}/style.css.gz`, gzipSync('p { color: red }'));
writeFileSync(s.path('outside.txt'), 'TOP SECRET');

const children = [];
test.after(() => {
  for (const c of children) c.kill();
  s.cleanup();
});

async function start(...args) {
  const child = spawn(process.execPath, [bin, 'serve', root, '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  while (!out.includes('\n')) await once(child.stdout, 'data');
  return Number(/:(\d+)\/ /.exec(out)?.[1]);
}

function get(port, path, headers = {}) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    }).on('error', reject);
  });
}

test('plain: index.html, redirects, 404 for a directory without index, 403 kept for traversal', async () => {
  const port = await start();
  assert.is((await get(port, '/')).body, '<p>home</p>');
  assert.is((await get(port, '/app/')).body, '<p>app</p>');
  assert.is((await get(port, '/app')).status, 301);
  assert.is((await get(port, '/files/')).status, 404);
  const t = await get(port, '/%2e%2e/outside.txt');
  assert.is(t.status, 403);
  assert.not.match(t.body, /TOP SECRET/);
  assert.is((await get(port, '/style.css', { 'accept-encoding': 'gzip' })).headers['content-encoding'], undefined);
});

test('--list: escaped names, dotfiles hidden, only beneath root', async () => {
  const port = await start('--list');
  const r = await get(port, '/files/');
  assert.is(r.status, 200);
  assert.match(r.headers['content-type'], /^text\/html/);
  assert.match(r.body, /<a href="a%26b%20%3Cscript%3E.txt">a&#38;b &#60;script&#62;.txt<\/a>/);
  assert.match(r.body, /<a href="%3Csub%3E\/">&#60;sub&#62;\/<\/a>/);
  assert.not.match(r.body, /<script>|secret/);
  assert.is((await get(port, '/app/')).body, '<p>app</p>', 'an index.html still wins');
  assert.is((await get(port, '/files/%3Csub%3E/')).status, 200);
  assert.ok([403, 404].includes((await get(port, '/files/%2e%2e/%2e%2e/')).status));
  assert.is((await get(port, '/nope/')).status, 404);
});

test('--spa: unknown paths answer /index.html; files and traversal unchanged', async () => {
  const port = await start('--spa');
  const r = await get(port, '/some/client/route');
  assert.is(r.status, 200);
  assert.is(r.body, '<p>home</p>');
  assert.is((await get(port, '/style.css')).body, 'p { color: red }');
  assert.is((await get(port, '/../outside.txt')).status, 403);
});

test('--precompressed: the .gz beside the file', async () => {
  const port = await start('--precompressed');
  const r = await get(port, '/style.css', { 'accept-encoding': 'gzip, br' });
  assert.is(r.headers['content-encoding'], 'gzip');
  assert.is(r.headers['content-type'], 'text/css; charset=utf-8');
  assert.is(r.headers.vary, 'Accept-Encoding');
});

test.run();
