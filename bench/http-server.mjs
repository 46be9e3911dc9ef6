// The server side of bench/http.mjs, in its own process: `node bench/http-server.mjs serveFile|send ROOT`.
// Prints its port on stdout, then serves GET requests from ROOT until killed.
import http from 'node:http';

import send from 'send';
import { serveFile } from 'zerocopy';

const [kind, root] = process.argv.slice(2);
const handlers = {
  serveFile: (req, res) => {
    serveFile(req, res, undefined, { root }).catch(() => {});
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
