// Shared by the http*.test.mjs files: a loopback node:http server around a handler, a client that
// collects whole responses, and curl.
import http from 'node:http';
import { execFile } from 'node:child_process';

/** Starts `handler` on 127.0.0.1; `request(path, { method, headers })` resolves with status, headers and body. */
export async function httpServer(handler) {
  const server = http.createServer(handler);
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const port = server.address().port;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const request = (path, { method = 'GET', headers = {} } = {}) =>
    new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path, method, headers, agent }, (res) => {
        const chunks = [];
        res.on('data', (d) => chunks.push(d));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
  const close = () => {
    agent.destroy();
    server.closeAllConnections();
    return new Promise((r) => server.close(r));
  };
  return { server, port, request, close, url: (path) => `http://127.0.0.1:${port}${path}` };
}

/** curl's view of a response: status, headers (lower-case names) and body bytes. Async: the server runs in this process. */
export async function curl(url, args = []) {
  const out = await new Promise((resolve, reject) =>
    execFile('curl', ['-s', '-i', '--http1.1', '--max-time', '30', ...args, url], { encoding: 'buffer', maxBuffer: 64 << 20 }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
  );
  const split = out.indexOf('\r\n\r\n');
  const head = out.subarray(0, split).toString('latin1').split('\r\n');
  const headers = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status: Number(head[0].split(' ')[1]), headers, body: out.subarray(split + 4) };
}

/** Splits a multipart/byteranges body into its parts: { headers, body }. */
export function parseMultipart(body, contentType) {
  const boundary = /boundary=(\S+)/.exec(contentType)[1];
  const text = body.toString('latin1');
  const parts = [];
  const delimiter = `--${boundary}`;
  let at = text.indexOf(delimiter);
  while (at >= 0 && text.slice(at + delimiter.length, at + delimiter.length + 2) !== '--') {
    const headEnd = text.indexOf('\r\n\r\n', at);
    const headers = {};
    for (const line of text.slice(at + delimiter.length + 2, headEnd).split('\r\n')) {
      const i = line.indexOf(':');
      headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
    }
    const next = text.indexOf(`\r\n${delimiter}`, headEnd + 4);
    parts.push({ headers, body: body.subarray(headEnd + 4, next) });
    at = next + 2;
  }
  return { parts, closed: text.endsWith(`${delimiter}--\r\n`) };
}
