// Shared by the framework adapter tests: the fixture tree (serve-static's test fixtures, and a file
// large enough to go by sendfile) and a plain HTTP client on loopback.
import http from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';

import { makeFile, scratch, MiB } from './helpers.mjs';

export function fixtures() {
  const s = scratch();
  const root = s.path('fixtures');
  mkdirSync(`${root}/users`, { recursive: true });
  mkdirSync(`${root}/pets`);
  mkdirSync(`${root}/snow ☃`);
  mkdirSync(`${root}/.git`);
  writeFileSync(`${root}/.hidden`, 'I am hidden');
  writeFileSync(`${root}/.git/config`, 'secret');
  writeFileSync(`${root}/empty.txt`, '');
  writeFileSync(`${root}/foo bar`, 'baz');
  writeFileSync(`${root}/nums.txt`, '123456789');
  writeFileSync(`${root}/pets/names.txt`, 'tobi\nloki');
  writeFileSync(`${root}/snow ☃/.gitkeep`, '');
  writeFileSync(`${root}/todo.html`, '<li>groceries</li>');
  writeFileSync(`${root}/todo.txt`, '- groceries');
  // Precompressed variants (their bytes only need to differ from the file's).
  writeFileSync(`${root}/todo.txt.br`, 'brotli bytes');
  writeFileSync(`${root}/todo.txt.gz`, 'gzip bytes');
  writeFileSync(`${root}/users/index.html`, '<p>tobi, loki, jane</p>');
  writeFileSync(`${root}/users/tobi.txt`, 'ferret');
  writeFileSync(s.path('secret.txt'), 'outside root');
  const big = makeFile(`${root}/big.bin`, 2 * MiB + 7);
  return { root, big, parent: s.dir };
}

/** One request on its own connection: status, headers and body (a Buffer). */
export function request(port, path, { method = 'GET', headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks), text: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Listens on an ephemeral loopback port: the port and a close function. */
export async function listen(handler) {
  const server = http.createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: server.address().port, server, close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }) };
}

/**
 * Requests `path` on a raw connection and destroys it as soon as the response headers arrived, while
 * the body is still being sent.
 */
export async function leaveEarly(port, path, headers = {}) {
  const { connect } = await import('node:net');
  const sock = connect(port, '127.0.0.1');
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  sock.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`);
  await once(sock, 'data');
  sock.destroy();
}
