// The Node side of bench/http.mjs, in its own process: `node bench/http-server.mjs KIND ROOT`.
// Prints its port on stdout, then serves GET requests from ROOT until killed.
//   serveFile    zerocopy's serveFile with root
//   serveStatic  zerocopy's serveStatic handler
//   memory       node:http answering from Buffers read at start (node:http's own ceiling)
//   send         the send package (express.static's engine)
import http from 'node:http';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

import send from 'send';
import { serveFile, serveStatic } from 'zerocopy';

const [kind, root] = process.argv.slice(2);
const inMemory = new Map();
if (kind === 'memory') {
  for (const name of readdirSync(root)) {
    if (statSync(join(root, name)).isFile()) inMemory.set(`/${name}`, readFileSync(join(root, name)));
  }
}
const handlers = {
  serveFile: (req, res) => {
    serveFile(req, res, undefined, { root }).catch(() => {});
  },
  serveStatic: serveStatic(root),
  memory: (req, res) => {
    const body = inMemory.get(req.url);
    if (!body) {
      res.statusCode = 404;
      res.end();
      return;
    }
    res.setHeader('Content-Type', 'application/octet-stream');
    res.setHeader('Content-Length', body.length);
    res.end(body);
  },
  // What express.static does for each request.
  send: (req, res) => {
    send(req, new URL(req.url, 'http://x').pathname, { root }).on('error', () => res.destroy()).pipe(res);
  },
};
const handler = handlers[kind];
if (!handler) throw new Error(`unknown server kind ${kind}`);
const server = http.createServer(handler);
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
