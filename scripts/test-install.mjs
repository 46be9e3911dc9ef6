// The install test: what a user gets from `npm install zerocopy` on a machine without Rust.
//
//   node scripts/test-install.mjs [--keep]      (npm run test:install builds first)
//
// Packs both tarballs (scripts/pack.mjs, which checks their file lists), makes an empty project in a
// temporary directory and installs them from disk with cargo/rustc/rustup removed from PATH: the main
// package from its tarball, and the platform package as the optional dependency the main package names
// (`overrides` entries point those names at their tarballs, so a wrong name in `optionalDependencies`
// fails here, and package-lock.json must say the platform package came from its tarball). npm prefers
// its cache: only registry metadata of the main package's dependencies that the cache lacks (`npm ci`
// stores tarballs, not metadata) is fetched. Then, in that project:
//   - an ESM script and a CJS script each copy a file (copyFile), send one over a loopback socket
//     (sendFile) and map one (mmap), checking sha256, and check that both module systems share one instance;
//   - tsc --noEmit on TypeScript that uses the public types strictly: `module: nodenext` (an .mts ESM file
//     and a .cts CommonJS file), `moduleResolution: bundler` and the legacy `node10` resolution;
//   - the `zerocopy` command;
//   - the loader: with the platform package gone the import fails with the documented error, and
//     ZEROCOPY_NATIVE_LIBRARY_PATH pointed at the binary makes it work again.
// Then in every other test environment of scripts/platforms.mjs (linux-x64-gnu on glibc 2.31,
// linux-arm64-gnu under qemu-user, linux-x64-musl and linux-arm64-musl in a musl root): npm running
// there installs the same tarballs, offline, and must pick that platform's package alone, and the ESM
// and CJS scripts must copy, send and map with it.
// Prints one line per check and `install: N passed, M failed`; exits 1 if anything failed. The temporary
// directory is removed at the end (kept with --keep).
import { spawnSync } from 'node:child_process';
import { accessSync, constants, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { pack } from './pack.mjs';
import { ENVIRONMENTS, PLATFORMS, npmCli, platform, runOn } from './platforms.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const keep = process.argv.includes('--keep');
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const version = manifest.version;
const tsc = join(root, 'node_modules/typescript/bin/tsc');
const RUST_TOOLS = ['cargo', 'rustc', 'rustup'];
const SUPPORTED = `Prebuilt binaries exist for: ${PLATFORMS.map((p) => p.name).join(', ')}.`;

let passed = 0;
let failed = 0;

function ok(name, detail = '') {
  passed++;
  console.log(`ok    ${name}${detail ? ` — ${detail}` : ''}`);
}

function fail(name, err) {
  failed++;
  console.log(`FAIL  ${name}\n${String(err?.stack ?? err).replace(/^/gm, '      ')}`);
}

/** Runs one check; a thrown error fails it. Returns whether it passed. */
async function check(name, fn) {
  try {
    ok(name, await fn());
    return true;
  } catch (err) {
    fail(name, err);
    return false;
  }
}

function which(tool, path = process.env.PATH ?? '') {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return join(dir, tool);
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * The environment of a user without Rust: PATH without any directory holding cargo, rustc or rustup
 * (node, npm and npx stay reachable through a directory of links), no npm lifecycle variables from
 * `npm run` around this script.
 */
function userEnv(tmp) {
  const bin = join(tmp, 'bin');
  mkdirSync(bin);
  symlinkSync(process.execPath, join(bin, 'node'));
  for (const tool of ['npm', 'npx']) {
    const found = which(tool);
    if (!found) throw new Error(`${tool} is not on PATH`);
    symlinkSync(found, join(bin, tool));
  }
  const dirs = (process.env.PATH ?? '').split(delimiter).filter((d) => d && !RUST_TOOLS.some((t) => existsSync(join(d, t))));
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^(npm_(package|lifecycle)_|INIT_CWD$|CARGO|RUSTUP_|RUSTC)/.test(k)) env[k] = v;
  }
  env.PATH = [bin, ...dirs].join(delimiter);
  for (const tool of RUST_TOOLS) {
    const found = which(tool, env.PATH);
    if (found) throw new Error(`${tool} is still reachable at ${found}`);
  }
  return env;
}

/** Runs a command; returns { status, stdout, stderr }. */
function exec(cmd, args, options) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 300_000, ...options });
  if (r.error) throw r.error;
  return r;
}

/** Runs a command that must succeed; its stdout. */
function must(cmd, args, options) {
  const r = exec(cmd, args, options);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** Runs a Node script that must fail to import zerocopy; the error it printed as JSON. */
function importFailure(app, env, script, nodeArgs = []) {
  const r = exec(process.execPath, [...nodeArgs, script], { cwd: app, env });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status !== 3 || !line.startsWith('{')) throw new Error(`expected an import failure, got exit ${r.status}\n${r.stdout}\n${r.stderr}`);
  return JSON.parse(line);
}

function expectIncludes(text, parts) {
  for (const part of parts) if (!text.includes(part)) throw new Error(`message lacks ${JSON.stringify(part)}:\n${text}`);
}

/** The scripts, TypeScript files and configs the test project runs. */
function writeProject(app, tarballs) {
  const platformPkg = tarballs.platforms.find((p) => p.target === 'linux-x64-gnu');
  if (!platformPkg) throw new Error('no linux-x64-gnu tarball: this test runs on linux x64 with glibc');
  const files = {
    'package.json': JSON.stringify(
      {
        name: 'zerocopy-install-test',
        version: '0.0.0',
        private: true,
        dependencies: { zerocopy: `file:${tarballs.main}` },
        // Every platform package from its tarball: npm must choose among them by os, cpu and libc.
        overrides: Object.fromEntries(tarballs.platforms.map((p) => [p.name, `file:${p.tarball}`])),
      },
      null,
      2,
    ),
    // What both module systems run: copy, send over loopback, map; each checked by sha256.
    'checks.cjs': `'use strict';
const { createHash, randomBytes } = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');
function assert(cond, what) { if (!cond) throw new Error('check failed: ' + what); }

function loopbackSend(sendFile, file) {
  return new Promise((resolve, reject) => {
    let result;
    const server = net.createServer((socket) => {
      sendFile(socket, file).then((r) => { result = r; socket.end(); }, (err) => { socket.destroy(); reject(err); });
    });
    server.listen(0, '127.0.0.1', () => {
      const client = net.connect(server.address().port, '127.0.0.1');
      const chunks = [];
      client.on('data', (c) => chunks.push(c));
      client.on('error', reject);
      client.on('end', () => server.close(() => resolve({ result, received: Buffer.concat(chunks) })));
    });
  });
}

module.exports = async function run({ copyFile, sendFile, mmap }, label, linux = true) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zerocopy-install-' + label + '-'));
  try {
    const src = path.join(dir, 'src.bin');
    const data = randomBytes(3 * 1024 * 1024 + 4099);
    fs.writeFileSync(src, data);
    const want = sha256(data);

    const dst = path.join(dir, 'copy.bin');
    const copied = await copyFile(src, dst);
    assert(copied.bytes === data.length, 'copyFile bytes ' + copied.bytes);
    assert(sha256(fs.readFileSync(dst)) === want, 'copyFile sha256');

    const { result: sent, received } = await loopbackSend(sendFile, src);
    assert(sent.bytes === data.length, 'sendFile bytes ' + sent.bytes);
    assert(sha256(received) === want, 'sendFile sha256');

    const mapped = await mmap(src);
    assert(sha256(mapped.buffer) === want, 'mmap sha256');
    mapped.close();
    assert(mapped.buffer.length === 0, 'close() detaches the buffer');

    if (linux) {
      assert(['reflink', 'copy_file_range'].includes(copied.mechanism), 'copyFile mechanism ' + copied.mechanism);
      assert(sent.mechanism === 'sendfile', 'sendFile mechanism ' + sent.mechanism);
    }
    const binary = process.report.getReport().sharedObjects.filter((f) => /zerocopy[.-].*\\.node$/.test(f)).map((f) => path.relative(process.cwd(), f));
    return label + ': copyFile ' + copied.mechanism + ', sendFile ' + sent.mechanism + ', mmap; ' + data.length + ' bytes each, sha256 ok; binary ' + binary.join(' ');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
};
`,
    'esm.mjs': `import { copyFile, sendFile, mmap } from 'zerocopy';
import * as zerocopy from 'zerocopy';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const run = require('./checks.cjs');
const entry = import.meta.resolve('zerocopy');
if (!entry.endsWith('/node_modules/zerocopy/dist/index.mjs')) throw new Error('import resolved to ' + entry);
// dist/index.mjs re-exports the CommonJS build: one instance (one SIGBUS guard, one cache) for both.
if (require('zerocopy').copyFile !== copyFile || zerocopy.sendFile !== sendFile) throw new Error('ESM and CJS load different instances');
console.log(await run({ copyFile, sendFile, mmap }, 'esm', process.env.ZEROCOPY_PORTABLE !== '1'));
`,
    'cjs.cjs': `'use strict';
const zerocopy = require('zerocopy');
const run = require('./checks.cjs');
const entry = require.resolve('zerocopy');
if (!entry.endsWith('/node_modules/zerocopy/dist/index.cjs')) throw new Error('require resolved to ' + entry);
run(zerocopy, 'cjs').then((line) => console.log(line), (err) => { console.error(err); process.exit(1); });
`,
    // The framework adapters, with no framework installed (they are optional peers): each sub-path
    // loads, shares the main entry's instance, and the Express one serves a file over node:http.
    'adapters.mjs': `import serveStatic, { serveStatic as named } from 'zerocopy/express';
import zerocopyStatic from 'zerocopy/fastify';
import koaServe, { serve } from 'zerocopy/koa';
import honoDefault, { serveStatic as hono } from 'zerocopy/hono';
import { createRequire } from 'node:module';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const require = createRequire(import.meta.url);
for (const [name, f] of Object.entries({ serveStatic, named, zerocopyStatic, koaServe, serve, hono, honoDefault })) {
  if (typeof f !== 'function') throw new Error(name + ' is ' + typeof f);
}
if (named !== serveStatic || require('zerocopy/express') !== serveStatic) throw new Error('zerocopy/express: ESM and CJS differ');
if (koaServe !== serve || honoDefault !== hono || require('zerocopy/fastify').default !== zerocopyStatic) throw new Error('default exports differ');
for (const sub of ['express', 'fastify', 'koa', 'hono']) {
  const entry = import.meta.resolve('zerocopy/' + sub);
  if (!entry.endsWith('/node_modules/zerocopy/dist/' + sub + '.mjs')) throw new Error('zerocopy/' + sub + ' resolved to ' + entry);
}
const loaded = Object.keys(require.cache).filter((f) => f.includes('/node_modules/zerocopy/dist/'));
if (loaded.filter((f) => f.endsWith('/index.cjs')).length !== 1) throw new Error('library loaded ' + loaded.join(', '));
for (const fw of ['express', 'fastify', 'koa', 'hono', '@hono/node-server']) {
  if (Object.keys(require.cache).some((f) => f.includes('/node_modules/' + fw + '/'))) throw new Error(fw + ' was loaded');
}
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zerocopy-adapters-'));
const data = Buffer.alloc(256 * 1024, 7);
fs.writeFileSync(path.join(dir, 'f.bin'), data);
const mw = serveStatic(dir);
const server = http.createServer((req, res) => mw(req, res, () => { res.statusCode = 404; res.end(); }));
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const body = await new Promise((resolve, reject) => http.get({ host: '127.0.0.1', port: server.address().port, path: '/f.bin' }, (res) => {
  const chunks = [];
  res.on('data', (c) => chunks.push(c));
  res.on('end', () => resolve(Buffer.concat(chunks)));
}).on('error', reject));
server.close();
fs.rmSync(dir, { recursive: true, force: true });
if (!body.equals(data)) throw new Error('zerocopy/express served ' + body.length + ' bytes, not the file');
console.log('esm: zerocopy/express, /fastify, /koa, /hono; one library instance; express served ' + body.length + ' bytes');
`,
    'adapters.cjs': `'use strict';
const serveStatic = require('zerocopy/express');
const { serveStatic: named, default: dflt } = require('zerocopy/express');
const { zerocopyStatic } = require('zerocopy/fastify');
const { serve } = require('zerocopy/koa');
const { serveStatic: hono } = require('zerocopy/hono');
if (typeof serveStatic !== 'function' || named !== serveStatic || dflt !== serveStatic) throw new Error('require(zerocopy/express) is not the factory');
for (const f of [zerocopyStatic, serve, hono]) if (typeof f !== 'function') throw new Error('an adapter export is ' + typeof f);
try { serveStatic(); throw new Error('no throw'); } catch (err) { if (err.message !== 'root path required') throw err; }
// The adapters required dist/index.cjs (the main entry) and nothing else of the library.
const lib = require.resolve('zerocopy');
if (!require.cache[lib]) throw new Error('the adapters did not load the main entry');
const ours = Object.keys(require.cache).filter((f) => f.includes('/node_modules/zerocopy/dist/'));
if (ours.some((f) => !/dist\\/(index|express|fastify|koa|hono)\\.cjs$/.test(f))) throw new Error('loaded ' + ours.join(', '));
console.log('cjs: require(zerocopy/express) is the factory; /fastify, /koa, /hono');
`,
    // Exit code 3 and the error as JSON: what the loader threw.
    'import-fails.mjs': `try {
  await import('zerocopy');
  console.log('imported');
} catch (err) {
  const { message, code, platform, arch, libc, packageName, supported } = err;
  console.log(JSON.stringify({ message, code, platform, arch, libc, packageName, supported }));
  process.exit(3);
}
`,
    'require-fails.cjs': `try {
  require('zerocopy');
  console.log('required');
} catch (err) {
  const { message, code, platform, arch, libc, packageName, supported } = err;
  console.log(JSON.stringify({ message, code, platform, arch, libc, packageName, supported }));
  process.exit(3);
}
`,
    'fake-darwin-arm64.cjs': `Object.defineProperty(process, 'platform', { value: 'darwin' });
Object.defineProperty(process, 'arch', { value: 'arm64' });
`,
    // The public types, used strictly: every @ts-expect-error must be an error, or tsc fails.
    'types.mts': `import {
  AbortError, alignedBuffer, capabilities, copyFile, copyFileSync, createDirectReadStream, isErrnoError, mmap, mmapSync,
  openDirect, residency, sendFile, serveFile, sys,
  type Capabilities, type CopyMechanism, type CopyOptions, type CopyResult, type DirectFile, type ErrnoError,
  type MappedFile, type MmapOptions, type Residency, type SendMechanism, type SendResult, type ServeResult,
} from 'zerocopy';
import type { Socket } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';

const options: CopyOptions = { reflink: 'auto', signal: AbortSignal.timeout(1000), onProgress: (done: number, total: number) => void [done, total] };
const copied: CopyResult = await copyFile('a', 'b', options);
const mechanism: CopyMechanism = copied.mechanism;
const bytes: number = copyFileSync('a', 'b', { overwrite: false }).bytes;
// @ts-expect-error 'sometimes' is not a reflink mode
await copyFile('a', 'b', { reflink: 'sometimes' });
// @ts-expect-error a bigint is not a file
await copyFile(1n, 'b');

declare const socket: Socket;
const sent: SendResult = await sendFile(socket, 'a', { offset: 0, length: 10 });
const how: SendMechanism = sent.mechanism;
// @ts-expect-error the socket comes first
await sendFile('a', socket);

const mapOptions: MmapOptions = { mode: 'cow', advice: 'random' };
const mapped: MappedFile = await mmap('a', mapOptions);
const view: Buffer = mapped.buffer;
const pages: Residency = residency(mapped);
mapped.close();
// @ts-expect-error 'x' is not a mapping mode
mmapSync('a', { mode: 'x' });

const caps: Capabilities = await capabilities('/tmp');
const reflink: boolean | null | undefined = caps.filesystem?.reflink;
const file: DirectFile = await openDirect('a', 'r');
const read: number = await file.read(alignedBuffer(4096), 0);
const stream: NodeJS.ReadableStream = createDirectReadStream('a', { start: 0 });
const n: Promise<number> = sys.copyFileRange(0, 1, { length: 1 });

declare const req: IncomingMessage;
declare const res: ServerResponse;
const served: ServeResult = await serveFile(req, res, 'a');

try {
  await copyFile('a', 'b');
} catch (err) {
  if (isErrnoError(err)) {
    const e: ErrnoError = err;
    const code: string = e.code;
    void code;
  } else if (err instanceof AbortError) {
    const moved: number | undefined = err.bytesTransferred;
    void moved;
  }
}
void [mechanism, bytes, how, view, pages, reflink, read, stream, n, served];
`,
    'types.cts': `import zerocopy = require('zerocopy');
import { copyFile, mmapSync, type CopyResult, type MappedFile } from 'zerocopy';

async function main(): Promise<number> {
  const r: CopyResult = await copyFile('a', 'b', { length: 10 });
  const m: MappedFile = mmapSync('a');
  const same: typeof copyFile = zerocopy.copyFile;
  // @ts-expect-error copyFile returns a promise of a CopyResult, not a number
  const wrong: number = await zerocopy.copyFile('a', 'b');
  void [m, same, wrong];
  return r.bytes;
}
void main;
`,
  };
  const strict = { strict: true, noEmit: true, skipLibCheck: false, types: ['node'], target: 'ES2022', lib: ['ES2022'], noUncheckedIndexedAccess: true, exactOptionalPropertyTypes: true };
  files['tsconfig.json'] = JSON.stringify({ compilerOptions: { ...strict, module: 'nodenext', moduleResolution: 'nodenext' }, files: ['types.mts', 'types.cts'] });
  files['tsconfig.bundler.json'] = JSON.stringify({ compilerOptions: { ...strict, module: 'esnext', moduleResolution: 'bundler' }, files: ['types.mts'] });
  files['tsconfig.node10.json'] = JSON.stringify({ compilerOptions: { ...strict, module: 'commonjs', moduleResolution: 'node10' }, files: ['types.cts'] });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(app, name), text);
}

/** The platform packages npm installed into `app`. */
function platformPackages(app) {
  return readdirSync(join(app, 'node_modules')).filter((d) => d.startsWith('zerocopy-')).sort();
}

/** Fails unless package-lock.json says `pkg` was installed from its tarball, not from a registry. */
function fromTarball(app, pkg, tarballs) {
  const lock = JSON.parse(readFileSync(join(app, 'package-lock.json'), 'utf8'));
  const resolved = lock.packages?.[`node_modules/${pkg}`]?.resolved ?? '';
  const tarball = tarballs.platforms.find((p) => p.name === pkg)?.tarball;
  if (!tarball || !resolved.startsWith('file:') || !resolved.endsWith(tarball.split('/').pop())) throw new Error(`${pkg} resolved to ${resolved || 'nothing'}, not ${tarball}`);
}

/** The checks script's output, which must name the binary of `platformName`'s package as the one loaded. */
function usesBinary(out, platformName) {
  const want = `binary node_modules/zerocopy-${platformName}/zerocopy.${platformName}.node`;
  if (!out.trim().endsWith(want)) throw new Error(`expected ${want}:\n${out}`);
  return out.trim();
}

/** Every other test environment (scripts/platforms.mjs): the same tarballs installed by npm running there. */
async function otherPlatforms(tmp, tarballs, env) {
  const npm = npmCli();
  const npmCache = must('npm', ['config', 'get', 'cache'], { env }).trim();
  for (const e of ENVIRONMENTS.filter((x) => x.name !== 'linux-x64-gnu')) {
    const p = platform(e.platform);
    const pkg = `zerocopy-${p.name}`;
    const app = join(tmp, `app-${e.name}`);
    mkdirSync(app);
    writeProject(app, tarballs);
    // A root has its own environment; arm64 glibc runs with the user's, without Rust.
    const on = (args) => {
      const r = runOn(e.name, args, { cwd: app, binds: [tmp, npm, npmCache], baseEnv: env, stdio: 'pipe' });
      if (r.error) throw r.error;
      if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status ?? r.signal} on ${e.name}\n${r.stdout}\n${r.stderr}`);
      return r.stdout;
    };
    const installed = await check(`${e.name}: npm install there, offline, picks ${pkg} alone`, () => {
      on([join(npm, 'bin/npm-cli.js'), 'install', '--offline', '--no-audit', '--no-fund', '--cache', npmCache]);
      const found = platformPackages(app);
      if (found.join() !== pkg) throw new Error(`platform packages installed: ${found.join(', ') || 'none'}`);
      fromTarball(app, pkg, tarballs);
      return `${pkg} ${JSON.parse(readFileSync(join(app, 'node_modules', pkg, 'package.json'), 'utf8')).version}`;
    });
    if (!installed) continue;
    await check(`${e.name}: ESM: import, copyFile, sendFile, mmap`, () => usesBinary(on(['esm.mjs']), p.name));
    await check(`${e.name}: CJS: require, copyFile, sendFile, mmap`, () => usesBinary(on(['cjs.cjs']), p.name));
  }
}

async function main() {
  if (process.platform !== 'linux' || process.arch !== 'x64') throw new Error('the install test runs on linux x64 (it runs the other platforms through scripts/platforms.mjs)');
  const tmp = mkdtempSync(join(tmpdir(), 'zerocopy-install-test-'));
  try {
    const env = userEnv(tmp);
    ok('environment', `no cargo, rustc or rustup on PATH`);

    let tarballs;
    if (!(await check('npm pack: both tarballs, file lists checked', () => {
      tarballs = pack({ out: join(tmp, 'tarballs'), quiet: true });
      return `${tarballs.files.size} files in zerocopy-${version}.tgz; ${tarballs.platforms.map((p) => p.name).join(', ')}`;
    }))) return;
    const published = JSON.parse(must('tar', ['-xzOf', tarballs.main, 'package/package.json']));
    await check('main package.json', () => {
      const optional = JSON.stringify(published.optionalDependencies);
      const expected = JSON.stringify(Object.fromEntries(tarballs.platforms.map((p) => [p.name, version])));
      if (optional !== expected) throw new Error(`optionalDependencies ${optional}, expected ${expected}`);
      const scripts = Object.keys(published.scripts ?? {}).filter((s) => /^(pre|post)?install$|^prepare$/.test(s));
      if (scripts.length) throw new Error(`the published package runs scripts at install: ${scripts.join(', ')}`);
      if (published.engines?.node !== '>=20') throw new Error(`engines.node is ${published.engines?.node}`);
      return `optionalDependencies ${optional}, no install scripts, engines.node ${published.engines.node}`;
    });

    const app = join(tmp, 'app');
    mkdirSync(app);
    writeProject(app, tarballs);
    if (!(await check('npm install from the tarballs, without Rust', () => {
      const r = exec('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: app, env });
      if (r.status !== 0) throw new Error(`npm install exited ${r.status}\n${r.stdout}\n${r.stderr}`);
      if (/install-scripts|gyp|cargo/i.test(r.stderr)) throw new Error(`npm install complained:\n${r.stderr}`);
      const tree = JSON.parse(must('npm', ['ls', '--all', '--json'], { cwd: app, env }));
      const platform = tree.dependencies?.zerocopy?.dependencies?.['zerocopy-linux-x64-gnu'];
      if (platform?.version !== version) throw new Error(`zerocopy-linux-x64-gnu is not installed as zerocopy's dependency:\n${JSON.stringify(tree, null, 2)}`);
      const installed = platformPackages(app);
      if (installed.join() !== 'zerocopy-linux-x64-gnu') throw new Error(`platform packages installed: ${installed.join(', ')}`);
      fromTarball(app, 'zerocopy-linux-x64-gnu', tarballs);
      return `zerocopy ${tree.dependencies.zerocopy.version} with zerocopy-linux-x64-gnu ${platform.version} alone`;
    }))) return;

    // A reference install of the exact @types/node the repository uses (from npm's cache), for tsc.
    const typesVersion = JSON.parse(readFileSync(join(root, 'node_modules/@types/node/package.json'), 'utf8')).version;
    must('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--no-save', `@types/node@${typesVersion}`], { cwd: app, env });

    await check('ESM: import, copyFile, sendFile, mmap', () => usesBinary(must(process.execPath, ['esm.mjs'], { cwd: app, env }), 'linux-x64-gnu'));
    await check('CJS: require, copyFile, sendFile, mmap', () => usesBinary(must(process.execPath, ['cjs.cjs'], { cwd: app, env }), 'linux-x64-gnu'));
    await check('ESM: zerocopy/express, /fastify, /koa, /hono from the tarball', () => must(process.execPath, ['adapters.mjs'], { cwd: app, env }).trim());
    await check('CJS: zerocopy/express, /fastify, /koa, /hono from the tarball', () => must(process.execPath, ['adapters.cjs'], { cwd: app, env }).trim());
    for (const [config, what] of [
      ['tsconfig.json', 'module nodenext: ESM (.mts) and CJS (.cts)'],
      ['tsconfig.bundler.json', 'moduleResolution bundler'],
      ['tsconfig.node10.json', 'moduleResolution node10 (CommonJS)'],
    ]) {
      await check(`tsc --noEmit, ${what}`, () => {
        must(process.execPath, [tsc, '-p', config], { cwd: app, env });
        return 'strict, skipLibCheck off';
      });
    }
    await check('the zerocopy command', () => {
      const bin = join(app, 'node_modules/.bin/zerocopy');
      const shown = must(bin, ['--version'], { cwd: app, env }).trim();
      if (shown !== version) throw new Error(`--version printed ${shown}`);
      const caps = JSON.parse(must(bin, ['caps', '--json', app], { cwd: app, env }));
      if (caps.sendfile !== true || typeof caps.filesystem?.type !== 'string') throw new Error(`caps --json: ${JSON.stringify(caps)}`);
      return `zerocopy --version, zerocopy caps --json (filesystem ${caps.filesystem.type})`;
    });

    await check('unsupported platform: the error names it and what to do', () => {
      const e = importFailure(app, env, 'require-fails.cjs', ['-r', './fake-darwin-arm64.cjs']);
      if (e.code !== 'ERR_ZEROCOPY_NATIVE_BINDING' || e.platform !== 'darwin' || e.arch !== 'arm64') throw new Error(JSON.stringify(e));
      expectIncludes(e.message, ['no prebuilt native binary', 'darwin arm64', SUPPORTED, 'ZEROCOPY_NATIVE_LIBRARY_PATH', 'Building from source']);
      if (JSON.stringify(e.supported) !== JSON.stringify(PLATFORMS.map((p) => p.name))) throw new Error(`supported: ${JSON.stringify(e.supported)}`);
      if (e.message.includes('source checkout')) throw new Error(`an installed package is not a source checkout:\n${e.message}`);
      return e.message.split('\n')[0];
    });

    // Without the platform package, as after `npm install --omit=optional`.
    const installed = join(app, 'node_modules/zerocopy-linux-x64-gnu');
    const moved = join(tmp, 'zerocopy-linux-x64-gnu');
    renameSync(installed, moved);
    try {
      for (const script of ['import-fails.mjs', 'require-fails.cjs']) {
        await check(`platform package missing: ${script.startsWith('import') ? 'import' : 'require'} fails with the documented error`, () => {
          const e = importFailure(app, env, script);
          if (e.code !== 'ERR_ZEROCOPY_NATIVE_BINDING' || e.libc !== 'glibc' || e.packageName !== 'zerocopy-linux-x64-gnu') throw new Error(JSON.stringify(e));
          expectIncludes(e.message, ['linux x64 glibc', 'zerocopy-linux-x64-gnu is not installed', `npm install zerocopy-linux-x64-gnu@${version}`, 'ZEROCOPY_NATIVE_LIBRARY_PATH', SUPPORTED]);
          return e.message.split('\n')[0];
        });
      }
      const binary = join(moved, 'zerocopy.linux-x64-gnu.node');
      await check('ZEROCOPY_NATIVE_LIBRARY_PATH: a binary elsewhere works', () =>
        must(process.execPath, ['cjs.cjs'], { cwd: app, env: { ...env, ZEROCOPY_NATIVE_LIBRARY_PATH: binary } }).trim(),
      );
      await check('ZEROCOPY_NATIVE_LIBRARY_PATH: a wrong path is named in the error', () => {
        const wrong = join(tmp, 'nowhere/zerocopy.node');
        const e = importFailure(app, { ...env, ZEROCOPY_NATIVE_LIBRARY_PATH: wrong }, 'require-fails.cjs');
        expectIncludes(e.message, ['ZEROCOPY_NATIVE_LIBRARY_PATH', wrong, 'no such file']);
        return e.message.split('\n')[0];
      });
    } finally {
      renameSync(moved, installed);
    }
    // A binary that is there but cannot load (damaged, or built for a newer C library).
    const binaryPath = join(installed, 'zerocopy.linux-x64-gnu.node');
    const saved = join(tmp, 'saved.node');
    cpSync(binaryPath, saved);
    writeFileSync(binaryPath, 'not an ELF file');
    try {
      await check('platform binary that fails to load: the error says where and why', () => {
        const e = importFailure(app, env, 'require-fails.cjs');
        expectIncludes(e.message, [`from ${binaryPath}`, 'file too short', 'Reinstall zerocopy-linux-x64-gnu']);
        return e.message.split('\n')[0];
      });
    } finally {
      cpSync(saved, binaryPath);
    }

    await otherPlatforms(tmp, tarballs, env);
  } finally {
    if (keep) console.log(`kept ${tmp}`);
    else rmSync(tmp, { recursive: true, force: true });
  }
}

try {
  await main();
} catch (err) {
  fail('install test', err);
}
console.log(`install: ${passed} passed, ${failed} failed`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
