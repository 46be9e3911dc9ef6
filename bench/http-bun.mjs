// The Bun peer of bench/http.mjs: `bun bench/http-bun.mjs ROOT`, Bun.serve answering with Bun.file.
// Prints its port on stdout.
const root = process.argv[2];
const server = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  fetch(req) {
    const path = new URL(req.url).pathname;
    if (path.includes('..')) return new Response('Forbidden', { status: 403 });
    return new Response(Bun.file(`${root}${path}`));
  },
});
console.log(server.port);
