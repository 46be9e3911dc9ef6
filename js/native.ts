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
 *
 * Once loaded, the binding is wrapped ({@link nodeShaped}) so that every native call throws, and every
 * native promise rejects with, the Node-shaped error {@link fromNative} makes: callers never convert.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';

import type * as Binding from '../native/binding.js';
import { codedError, fromNative } from './errors.js';

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
  return codedError('ERR_ZEROCOPY_NATIVE_BINDING', message, {
    cause,
    platform: process.platform,
    arch: process.arch,
    libc: libc.family,
    packageName: `zerocopy-${platformName(libc)}`,
    supported: ZEROCOPY_TARGETS,
  }) satisfies NativeBindingError;
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

/** Marks what {@link nodeShaped} has wrapped, so that a binding loaded by two copies of this module is wrapped once. */
const WRAPPED = Symbol.for('zerocopy.nodeShapedErrors');

const rethrow = (err: unknown): never => {
  throw fromNative(err);
};

/**
 * `fn` with its errors converted: what it throws, and what a promise it returns rejects with. Made
 * once per function at load time; a call costs a try/catch and, for promises, one `then`.
 */
function wrapFunction<F extends (...args: never[]) => unknown>(fn: F): F {
  if ((fn as { [WRAPPED]?: true })[WRAPPED]) return fn;
  const wrapped = function (this: unknown, ...args: unknown[]): unknown {
    let out: unknown;
    try {
      out = Reflect.apply(fn, this, args);
    } catch (err) {
      throw fromNative(err);
    }
    return out instanceof Promise ? out.then(undefined, rethrow) : out;
  };
  Object.defineProperty(wrapped, 'name', { value: fn.name });
  Object.defineProperty(wrapped, WRAPPED, { value: true });
  return wrapped as unknown as F;
}

/** Wraps the methods, getters and setters own by `target` (a prototype, or a class for its statics) in place. */
function wrapMembers(target: object, skip: ReadonlySet<PropertyKey>): void {
  for (const key of Reflect.ownKeys(target)) {
    if (skip.has(key)) continue;
    const d = Object.getOwnPropertyDescriptor(target, key);
    if (!d?.configurable) continue;
    if (typeof d.value === 'function') d.value = wrapFunction(d.value as (...args: never[]) => unknown);
    else if (d.get || d.set) {
      if (d.get) d.get = wrapFunction(d.get);
      if (d.set) d.set = wrapFunction(d.set);
    } else continue;
    Object.defineProperty(target, key, d);
  }
}

const PROTOTYPE_SKIP: ReadonlySet<PropertyKey> = new Set(['constructor']);
const STATIC_SKIP: ReadonlySet<PropertyKey> = new Set(['length', 'name', 'prototype', 'arguments', 'caller']);

/**
 * A class of the binding with its errors converted. Its prototype is patched in place, because objects
 * the native side makes (mmap's Mapping, openDirect's handle) get that prototype, not a subclass's; the
 * constructor becomes a function that constructs the class itself, so `instanceof` holds for both.
 */
function wrapClass<C extends abstract new (...args: never[]) => unknown>(cls: C): C {
  if ((cls as { [WRAPPED]?: true })[WRAPPED]) return cls;
  wrapMembers(cls.prototype as object, PROTOTYPE_SKIP);
  wrapMembers(cls, STATIC_SKIP);
  const wrapped = function (this: unknown, ...args: unknown[]): unknown {
    try {
      return Reflect.construct(cls, args);
    } catch (err) {
      throw fromNative(err);
    }
  };
  Object.defineProperty(wrapped, 'name', { value: cls.name });
  wrapped.prototype = cls.prototype as unknown;
  for (const key of Reflect.ownKeys(cls)) {
    if (!STATIC_SKIP.has(key)) Object.defineProperty(wrapped, key, Object.getOwnPropertyDescriptor(cls, key) as PropertyDescriptor);
  }
  Object.defineProperty(cls, WRAPPED, { value: true });
  Object.defineProperty(wrapped, WRAPPED, { value: true });
  return wrapped as unknown as C;
}

/** napi-rs classes are functions with a prototype of their own members; plain functions have none. */
function isClass(fn: (...args: never[]) => unknown): boolean {
  const proto = (fn as { prototype?: object }).prototype;
  return proto !== undefined && Reflect.ownKeys(proto).some((k) => k !== 'constructor');
}

/**
 * The binding with every export's errors converted to Node's shape ({@link fromNative}), by
 * construction: each function and class is wrapped here, once, at load time, whatever the binding
 * exports (a binding added later needs no edit). The loader's own exports object is left as it is;
 * the classes' prototypes are patched in place (see {@link wrapClass}).
 */
function nodeShaped(binding: typeof Binding): typeof Binding {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(binding)) {
    if (typeof value !== 'function') out[key] = value;
    else out[key] = isClass(value as (...args: never[]) => unknown) ? wrapClass(value as new () => unknown) : wrapFunction(value as (...args: never[]) => unknown);
  }
  return out as typeof Binding;
}

export const native: typeof Binding = nodeShaped(load());

/**
 * Whether the Linux data paths (copy_file_range, sendfile, mmap, O_DIRECT, …) are available: true for a
 * Linux binary, false for a build for another OS (whose binary only reports capabilities) and under
 * `ZEROCOPY_PORTABLE=1`. Where false, the high-level API falls back to portable Node code or throws
 * `ERR_FEATURE_UNAVAILABLE_ON_PLATFORM`.
 */
export const linuxPaths: boolean = typeof native.CopyJob === 'function' && process.env[PORTABLE_VARIABLE] !== '1';
