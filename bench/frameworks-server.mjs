// The server side of bench/frameworks.mjs, in its own process:
//   node bench/frameworks-server.mjs express|fastify|koa|hono own|zerocopy|buffer ROOT
// Prints its port on stdout, then serves GET /small.bin and /large.bin until killed:
//   own       the framework's own static serving (express.static, @fastify/static, koa-static,
//             @hono/node-server's serveStatic)
//   zerocopy  our adapter (zerocopy/express, /fastify, /koa, /hono) in the same app
//   buffer    the framework's ceiling: the same route answering from a Buffer already in memory
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

const [framework, variant, root] = process.argv.slice(2);
const buffers = { 'small.bin': readFileSync(`${root}/small.bin`), 'large.bin': readFileSync(`${root}/large.bin`) };
const type = 'application/octet-stream';

const apps = {
  async express() {
    const { default: express } = await import('express');
    const app = express();
    if (variant === 'own') app.use(express.static(root));
    else if (variant === 'zerocopy') app.use((await import('zerocopy/express')).default(root));
    else {
      app.set('etag', false); // res.send would hash every body for an ETag
      app.get('/:name', (req, res) => res.type(type).send(buffers[req.params.name]));
    }
    return (port, ready) => app.listen(port, '127.0.0.1', function () { ready(this); });
  },
  async fastify() {
    const { default: Fastify } = await import('fastify');
    const app = Fastify();
    if (variant === 'own') await app.register((await import('@fastify/static')).default, { root });
    else if (variant === 'zerocopy') await app.register((await import('zerocopy/fastify')).default, { root });
    else app.get('/:name', (req, reply) => reply.type(type).send(buffers[req.params.name]));
    return async (port, ready) => {
      await app.listen({ port, host: '127.0.0.1' });
      ready(app.server);
    };
  },
  async koa() {
    const { default: Koa } = await import('koa');
    const app = new Koa();
    if (variant === 'own') app.use((await import('koa-static')).default(root));
    else if (variant === 'zerocopy') app.use((await import('zerocopy/koa')).default(root));
    else
      app.use((ctx) => {
        ctx.type = type;
        ctx.body = buffers[ctx.path.slice(1)];
      });
    return (port, ready) => {
      const server = app.listen(port, '127.0.0.1', () => ready(server));
    };
  },
  async hono() {
    const { Hono } = await import('hono');
    const { serve } = await import('@hono/node-server');
    const app = new Hono();
    // @hono/node-server's serveStatic takes a root relative to the working directory.
    if (variant === 'own') app.use('*', (await import('@hono/node-server/serve-static')).serveStatic({ root: relative(process.cwd(), root) }));
    else if (variant === 'zerocopy') app.use('*', (await import('zerocopy/hono')).serveStatic({ root }));
    else app.get('/:name', (c) => c.body(buffers[c.req.param('name')], 200, { 'content-type': type }));
    return (port, ready) => {
      const server = serve({ fetch: app.fetch, port, hostname: '127.0.0.1' }, () => ready(server));
    };
  },
};
if (!apps[framework] || !['own', 'zerocopy', 'buffer'].includes(variant)) throw new Error(`usage: frameworks-server.mjs express|fastify|koa|hono own|zerocopy|buffer ROOT`);
const listen = await apps[framework]();
await listen(0, (server) => {
  server.keepAliveTimeout = 60_000;
  console.log(server.address().port);
});
