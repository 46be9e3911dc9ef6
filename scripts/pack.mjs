// Packs what users install: the main tarball (JS, types, CLI, loader) and one tarball per napi target
// holding that platform's .node binary, then checks what each contains.
//
//   node scripts/pack.mjs [--artifacts DIR] [--out DIR]
//
// --artifacts  where the built binaries are (default artifacts/, where `node scripts/platforms.mjs build`
//              puts the release build of every target)
// --out        where the tarballs go (default release/)
//
// It builds nothing (`npm run package` builds first): run `npm run build:js` and
// `node scripts/platforms.mjs build` first. Every binary must pass the C-library check of
// scripts/platforms.mjs (glibc floor, musl's libc alone), so a binary built against this machine's newer
// glibc, e.g. the host build in native/, is refused. The platform packages are generated, as at every release,
// by `napi create-npm-dirs` and `napi artifacts` into npm/ (not committed, removed again at the end), and
// `napi pre-publish --dry-run` validates them. The main package gets the `optionalDependencies` that
// `napi pre-publish` would write into package.json — in a copy, so the repository's package.json never
// names packages that are not published yet.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { parseTriple } from '@napi-rs/cli';

import { binaryPath, checkAll, checkTargets } from './platforms.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const napiBin = join(root, 'node_modules/@napi-rs/cli/dist/cli.js');

/** Files the main tarball must hold; anything not listed here or matched by MAIN_ALLOWED fails the check. */
const MAIN_REQUIRED = [
  'LICENSE',
  'README.md',
  'package.json',
  'bin/zerocopy.mjs',
  'native/binding.js',
  'dist/index.cjs',
  'dist/index.mjs',
  'dist/index.d.cts',
  'dist/index.d.mts',
  'dist/cli.mjs',
  'dist/types/index.d.ts',
  ...['express', 'fastify', 'koa', 'hono'].flatMap((a) => [`dist/${a}.cjs`, `dist/${a}.mjs`, `dist/${a}.d.cts`, `dist/${a}.d.mts`, `dist/types/${a}.d.ts`]),
];
const MAIN_ALLOWED = [/^dist\/(index|express|fastify|koa|hono)\.cjs\.map$|^dist\/cli\.mjs\.map$/, /^dist\/types\/(http\/|relay\/)?[a-z-]+\.d\.ts$/];

function run(cmd, args, options = {}) {
  return execFileSync(cmd, args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], ...options });
}

/** A napi command; its log is shown only when it fails (or with `verbose`). */
function napi(verbose, ...args) {
  try {
    const log = run(process.execPath, [napiBin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    if (verbose && log) process.stdout.write(log);
  } catch (err) {
    throw new Error(`napi ${args.join(' ')} failed:\n${err.stdout ?? ''}${err.stderr ?? ''}`);
  }
}

/** `npm pack` in `dir` into `out`: the tarball's path and its files (path → size). */
function npmPack(dir, out) {
  const [info] = JSON.parse(run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', out], { cwd: dir }));
  return { tarball: join(out, info.filename), files: new Map(info.files.map((f) => [f.path, f.size])) };
}

/** Fails unless `files` holds every required file and nothing else (beyond the allowed patterns). */
function checkFiles(name, files, required, allowed = []) {
  const missing = required.filter((f) => !files.has(f));
  const unexpected = [...files.keys()].filter((f) => !required.includes(f) && !allowed.some((re) => re.test(f)));
  if (missing.length || unexpected.length) {
    throw new Error(
      `${name}: wrong file list.` +
        (missing.length ? `\n  missing: ${missing.join(', ')}` : '') +
        (unexpected.length ? `\n  unexpected: ${unexpected.join(', ')}` : ''),
    );
  }
}

/** Every path package.json points at (main, types, exports, imports, bin) must be in the tarball. */
function checkEntryPoints(manifest, files) {
  const targets = [];
  const walk = (v) => {
    if (typeof v === 'string') targets.push(v);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  walk([manifest.main, manifest.types, manifest.exports, manifest.imports, manifest.bin]);
  const absent = targets
    .filter((t) => t !== undefined)
    .map((t) => t.replace(/^\.\//, ''))
    .filter((t) => !files.has(t));
  if (absent.length) throw new Error(`${manifest.name}: package.json points at files the tarball lacks: ${absent.join(', ')}`);
}

function list(name, tarball, files) {
  const total = [...files.values()].reduce((a, b) => a + b, 0);
  const lines = [...files].sort(([a], [b]) => a.localeCompare(b)).map(([f, size]) => `  ${String(size).padStart(9)}  ${f}`);
  return `${name}: ${tarball} (${files.size} files, ${total} bytes unpacked)\n${lines.join('\n')}`;
}

/**
 * Packs and checks both kinds of tarball. Returns `{ main, platforms: [{ target, name, tarball }] }`.
 * `artifacts` and `out` are resolved against the repository root.
 */
export function pack({ artifacts = 'artifacts', out = 'release', quiet = false } = {}) {
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const { name, version } = manifest;
  checkTargets();
  const targets = manifest.napi.targets.map((triple) => parseTriple(triple));
  checkAll(targets.map((t) => binaryPath(t.platformArchABI, resolve(root, artifacts))), { quiet });
  const outDir = resolve(root, out);
  mkdirSync(outDir, { recursive: true });
  for (const f of ['dist/index.cjs', 'dist/types/index.d.ts']) {
    if (!existsSync(join(root, f))) throw new Error(`${f} is missing: run \`npm run build\` first`);
  }

  const npmDir = join(root, 'npm');
  const stage = mkdtempSync(join(tmpdir(), 'zerocopy-pack-'));
  const report = [];
  try {
    // The platform packages, generated exactly as a release generates them.
    rmSync(npmDir, { recursive: true, force: true });
    napi(!quiet, 'create-npm-dirs');
    napi(!quiet, 'artifacts', '--output-dir', resolve(root, artifacts));
    for (const t of targets) copyFileSync(join(root, 'LICENSE'), join(npmDir, t.platformArchABI, 'LICENSE'));
    napi(!quiet, 'pre-publish', '--tag-style', 'npm', '--no-gh-release', '--dry-run');

    const platforms = targets.map((t) => {
      const binary = `${manifest.napi.binaryName}.${t.platformArchABI}.node`;
      const packed = npmPack(join(npmDir, t.platformArchABI), outDir);
      const pkgName = `${name}-${t.platformArchABI}`;
      checkFiles(pkgName, packed.files, ['LICENSE', 'README.md', 'package.json', binary]);
      const platformManifest = JSON.parse(readFileSync(join(npmDir, t.platformArchABI, 'package.json'), 'utf8'));
      // npm installs only the package whose os, cpu and libc match the machine.
      const libc = t.abi === 'gnu' ? ['glibc'] : t.abi === 'musl' ? ['musl'] : undefined;
      const selects = JSON.stringify([platformManifest.os, platformManifest.cpu, platformManifest.libc]) === JSON.stringify([[t.platform], [t.arch], libc]);
      if (platformManifest.name !== pkgName || platformManifest.version !== version || platformManifest.main !== binary || !selects) {
        throw new Error(`${pkgName}: unexpected package.json ${JSON.stringify(platformManifest)}`);
      }
      report.push(list(pkgName, packed.tarball, packed.files));
      return { target: t.platformArchABI, name: pkgName, tarball: packed.tarball };
    });

    // The main package: npm's own file selection, in a copy whose package.json names the platform packages.
    const first = npmPack(root, stage);
    const unpacked = join(stage, 'unpacked');
    mkdirSync(unpacked);
    run('tar', ['-xzf', first.tarball, '-C', unpacked]);
    const pkgDir = join(unpacked, 'package');
    const staged = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
    staged.optionalDependencies = Object.fromEntries(platforms.map((p) => [p.name, version]));
    // `prepare` builds from source in a clone; in an installed package it would need Rust, and npm 11
    // would ask every user to approve it as an install script.
    delete staged.scripts.prepare;
    writeFileSync(join(pkgDir, 'package.json'), `${JSON.stringify(staged, null, 2)}\n`);
    const main = npmPack(pkgDir, outDir);
    checkFiles(name, main.files, MAIN_REQUIRED, MAIN_ALLOWED);
    checkEntryPoints(staged, main.files);
    report.unshift(list(name, main.tarball, main.files));
    if (!quiet) console.log(report.join('\n\n'));
    return { main: main.tarball, files: main.files, platforms };
  } finally {
    rmSync(stage, { recursive: true, force: true });
    // Generated: the platform folders, and the copies `napi artifacts` also puts at the package root.
    rmSync(npmDir, { recursive: true, force: true });
    for (const f of readdirSync(root)) if (/^zerocopy\..+\.node$/.test(f)) rmSync(join(root, f));
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { artifacts: { type: 'string' }, out: { type: 'string' } } });
  try {
    pack(values);
  } catch (err) {
    console.error(`pack: ${err.message}`);
    process.exit(1);
  }
}
