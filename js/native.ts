/**
 * The napi-rs binding, and what users see when it cannot be loaded.
 *
 * The binary comes from, in order:
 * 1. `ZEROCOPY_NATIVE_LIBRARY_PATH`, a `.node` file the user built (relative paths are taken from the
 *    working directory). If it is set, nothing else is tried: a wrong path must not be hidden by a
 *    binary found elsewhere.
 * 2. The generated napi-rs loader (native/binding.js, reached through the package's private `#native`
 *    import; never edited by hand): `native/zerocopy.<platform>.node` in a build from source, else the
 *    platform package (`zerocopy-linux-x64-gnu`, …) that npm installed as an optional dependency.
 *
 * When neither loads, the loader's bare "Cannot find native binding" becomes an error that names the
 * platform, architecture and libc, the platforms with prebuilt binaries and what to do.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';

import type * as Binding from '../native/binding.js';

export type { CopyProgress, CopySpec, DirectHandle, DirectStep, NativeCapabilities, RelayProgress, SendProgress } from '../native/binding.js';

/** Replaced at build time (scripts/build-js.mjs): the package version and its napi targets as platform-arch-abi names. */
declare const ZEROCOPY_VERSION: string;
declare const ZEROCOPY_TARGETS: readonly string[];

/** The environment variable naming a self-built binary. */
export const NATIVE_PATH_VARIABLE = 'ZEROCOPY_NATIVE_LIBRARY_PATH';

/** Set to `1` to use the portable code paths (those of non-Linux builds) on Linux too: for testing. */
export const PORTABLE_VARIABLE = 'ZEROCOPY_PORTABLE';

/** The error thrown at import when no binary can be loaded. */
export interface NativeBindingError extends Error {
  code: 'ERR_ZEROCOPY_NATIVE_BINDING';
  /** `process.platform`, `process.arch`, and `'glibc'`/`'musl'` on Linux (null elsewhere or unknown). */
  platform: string;
  arch: string;
  libc: string | null;
  /** The platform package this machine would use, e.g. 'zerocopy-linux-x64-gnu'. */
  packageName: string;
  /** Platforms with prebuilt binaries, as platform-arch-abi names. */
  supported: readonly string[];
}

interface Libc {
  family: 'glibc' | 'musl' | null;
  /** e.g. 'glibc 2.36', 'musl', or 'unknown libc'. */
  shown: string;
}

/** Which C library this Linux uses: the process report's glibc version, else `ldd`'s own text. */
function detectLibc(): Libc {
  if (process.platform !== 'linux') return { family: null, shown: '' };
  try {
    const report = process.report as { excludeNetwork?: boolean; getReport(): object };
    const excluded = report.excludeNetwork;
    report.excludeNetwork = true; // no reverse DNS lookups for open sockets in the report
    let header: { glibcVersionRuntime?: string } | undefined;
    try {
      header = (report.getReport() as { header?: { glibcVersionRuntime?: string } }).header;
    } finally {
      report.excludeNetwork = excluded;
    }
    if (header?.glibcVersionRuntime) return { family: 'glibc', shown: `glibc ${header.glibcVersionRuntime}` };
  } catch {
    // No report (an embedder may disable it): ask ldd.
  }
  try {
    const ldd = readFileSync('/usr/bin/ldd', 'latin1');
    if (ldd.includes('musl')) return { family: 'musl', shown: 'musl' };
    if (ldd.includes('GNU C Library') || ldd.includes('GLIBC')) return { family: 'glibc', shown: 'glibc' };
  } catch {
    // No ldd either.
  }
  return { family: null, shown: 'unknown libc' };
}

/** The napi-rs platform-arch-abi name of this machine, as the generated loader looks it up. */
function platformName(libc: Libc): string {
  const base = `${process.platform}-${process.arch}`;
  if (process.platform === 'linux') {
    if (process.arch === 'arm') return `${base}-${libc.family === 'musl' ? 'musleabihf' : 'gnueabihf'}`;
    return `${base}-${libc.family === 'musl' ? 'musl' : 'gnu'}`;
  }
  if (process.platform === 'win32') return `${base}-msvc`;
  return base;
}

function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n', 1)[0] ?? message;
}

/** Whether `err` says that `name` itself (not something it requires) could not be found. */
function isNotFound(err: unknown, name: string): boolean {
  const e = err as { code?: string; message?: string } | null;
  return e?.code === 'MODULE_NOT_FOUND' && typeof e.message === 'string' && e.message.includes(`'${name}'`);
}

function explain(cause: unknown): NativeBindingError {
  const libc = detectLibc();
  const target = platformName(libc);
  const packageName = `zerocopy-${target}`;
  const where = [process.platform, process.arch, libc.shown].filter(Boolean).join(' ');
  const supported = ZEROCOPY_TARGETS;
  const fromSource =
    `build the binary from source (needs Rust; see "Building from source" in zerocopy's README) and set ` +
    `${NATIVE_PATH_VARIABLE}=/path/to/zerocopy.${target}.node`;
  const lines: string[] = [];
  if (!supported.includes(target)) {
    lines.push(
      `zerocopy ${ZEROCOPY_VERSION} has no prebuilt native binary for this machine: ${where} (${target}).`,
      `Prebuilt binaries exist for: ${supported.join(', ')}.`,
      `To use zerocopy here, ${fromSource}.`,
    );
  } else {
    let installed: string | undefined;
    try {
      installed = require.resolve(packageName);
    } catch {
      installed = undefined;
    }
    if (installed === undefined) {
      lines.push(
        `zerocopy ${ZEROCOPY_VERSION} could not load its native binary for ${where}: the package ${packageName} is not installed.`,
        `npm installs it as an optional dependency of zerocopy. It is left out by --omit=optional (--no-optional), ` +
          `and sometimes by a package-lock.json written on another platform (npm/cli#4828).`,
        `To fix: npm install ${packageName}@${ZEROCOPY_VERSION}, or delete node_modules and package-lock.json and run npm install again ` +
          `(without --omit=optional). Or ${fromSource}.`,
      );
    } else {
      lines.push(
        `zerocopy ${ZEROCOPY_VERSION} could not load its native binary for ${where} from ${installed}: ${loadError(installed)}`,
        `A binary that fails to load usually needs a newer C library than this system has, or the package is damaged. ` +
          `Reinstall ${packageName}@${ZEROCOPY_VERSION}, or ${fromSource}.`,
      );
    }
    lines.push(`Prebuilt binaries exist for: ${supported.join(', ')}.`);
  }
  // A clone of the repository rather than an installed package: the binary is built, not downloaded.
  if (existsSync(resolve(__dirname, '../crates/zerocopy/Cargo.toml'))) {
    lines.push('This is a source checkout: `npm run build:native` builds the binary into native/.');
  }
  return bindingError(lines.join('\n'), cause, libc);
}

function bindingError(message: string, cause: unknown, libc: Libc): NativeBindingError {
  const err = new Error(message, { cause }) as NativeBindingError;
  err.code = 'ERR_ZEROCOPY_NATIVE_BINDING';
  err.platform = process.platform;
  err.arch = process.arch;
  err.libc = libc.family;
  err.packageName = `zerocopy-${platformName(libc)}`;
  err.supported = ZEROCOPY_TARGETS;
  return err;
}

/** Why the installed platform package does not load: its own error, which the loader keeps only as text. */
function loadError(path: string): string {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require(path);
    return 'it loaded when tried again (a transient failure?)';
  } catch (err) {
    return firstLine(err);
  }
}

function fromVariable(raw: string): typeof Binding {
  const path = isAbsolute(raw) ? raw : resolve(raw);
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(path) as typeof Binding;
  } catch (cause) {
    const reason = isNotFound(cause, path) ? 'there is no such file' : firstLine(cause);
    throw bindingError(
      `zerocopy could not load the native binary named by ${NATIVE_PATH_VARIABLE} (${path}): ${reason}. ` +
        `Point it at a zerocopy .node file built for this machine, or unset it to use the prebuilt binary.`,
      cause,
      detectLibc(),
    );
  }
}

function load(): typeof Binding {
  const override = process.env[NATIVE_PATH_VARIABLE];
  if (override) return fromVariable(override);
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('#native') as typeof Binding;
  } catch (cause) {
    throw explain(cause);
  }
}

export const native: typeof Binding = load();

/**
 * Whether the Linux data paths (copy_file_range, sendfile, mmap, O_DIRECT, …) are available: true for a
 * Linux binary, false for a build for another OS (whose binary only reports capabilities) and under
 * `ZEROCOPY_PORTABLE=1`. Where false, the high-level API falls back to portable Node code or throws
 * `ERR_FEATURE_UNAVAILABLE_ON_PLATFORM`.
 */
export const linuxPaths: boolean = typeof native.CopyJob === 'function' && process.env[PORTABLE_VARIABLE] !== '1';
