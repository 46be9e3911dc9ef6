// Builds the JavaScript side of the package into dist/:
//   index.cjs   the library (one bundle of js/, CommonJS), loading the napi binding through "#native"
//   index.mjs   the ESM entry: re-exports index.cjs, so ESM and CJS users share one instance
//   cli.mjs     the zerocopy command, importing the library by its package name
//   express.cjs, fastify.cjs, koa.cjs, hono.cjs
//               the framework adapters (zerocopy/express …), each requiring ./index.cjs for the library,
//               so that they share its one instance; .mjs twins re-export them for ESM
//   types/      declarations from tsc, re-exported by index.d.cts and index.d.mts
// esbuild writes the JavaScript; tsc only type-checks and writes declarations.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { parseTriple } from '@napi-rs/cli';
import { build } from 'esbuild';

const { version, napi } = JSON.parse(readFileSync('package.json', 'utf8'));
// The platforms with prebuilt binaries, named as their packages are (zerocopy-linux-x64-gnu → linux-x64-gnu),
// for the loader's error message (js/native.ts).
const targets = napi.targets.map((triple) => parseTriple(triple).platformArchABI);

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  define: { ZEROCOPY_VERSION: JSON.stringify(version), ZEROCOPY_TARGETS: JSON.stringify(targets) },
  sourcemap: true,
  logLevel: 'warning',
};

rmSync('dist', { recursive: true, force: true });

// require('zerocopy/express') is the factory, with the named export and default on it.
const EXPRESS_CJS_TYPES = `import * as express from './types/express.js';
declare const serveStatic: typeof express.serveStatic & { serveStatic: typeof express.serveStatic; default: typeof express.serveStatic };
declare namespace serveStatic {
  type ServeStaticOptions = express.ServeStaticOptions;
  type StaticOptions = express.StaticOptions;
  type StaticMiddleware = express.StaticMiddleware;
  type HttpError = express.HttpError;
}
export = serveStatic;
`;

// "#native" (package.json "imports") stays a runtime require of the generated CommonJS loader.
// Dependencies (pillarjs helpers) stay external: installed by npm, visible to audits.
await build({ ...common, entryPoints: ['js/index.ts'], outfile: 'dist/index.cjs', format: 'cjs', external: ['#native'], packages: 'external' });
writeFileSync('dist/index.mjs', "export * from './index.cjs';\n");

// The adapters: the library stays ./index.cjs (one instance), the frameworks stay external (optional
// peer dependencies, and nothing of theirs is loaded at startup).
const ADAPTERS = ['express', 'fastify', 'koa', 'hono'];
const libraryOnce = {
  name: 'library-once',
  setup(b) {
    b.onResolve({ filter: /^\.\/index\.js$/ }, () => ({ path: './index.cjs', external: true }));
    b.onResolve({ filter: /^\.\.?\// }, (args) => {
      if (ADAPTERS.some((a) => args.importer.endsWith(`/js/${a}.ts`))) {
        return { errors: [{ text: `${args.path}: an adapter reaches the library through ./index.js only, else it would bundle a second copy` }] };
      }
      return undefined;
    });
  },
};
for (const name of ADAPTERS) {
  await build({
    ...common,
    entryPoints: [`js/${name}.ts`],
    outfile: `dist/${name}.cjs`,
    format: 'cjs',
    packages: 'external',
    plugins: [libraryOnce],
    // require('zerocopy/express') is the middleware factory itself, as require('serve-static') is.
    footer: name === 'express' ? { js: 'module.exports = Object.assign(module.exports.default, module.exports);' } : undefined,
  });
  writeFileSync(`dist/${name}.mjs`, `import adapter from './${name}.cjs';\nexport * from './${name}.cjs';\nexport default adapter${name === 'express' ? '' : '.default'};\n`);
}

await build({
  ...common,
  entryPoints: ['js/cli/main.ts'],
  outfile: 'dist/cli.mjs',
  format: 'esm',
  external: ['zerocopy'],
  // The CLI finds itself (to start its bench helper processes) and the package's private #native.
  banner: { js: 'const ZEROCOPY_CLI_URL = import.meta.url;' },
});

execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json', '--emitDeclarationOnly', '--outDir', 'dist/types'], {
  stdio: 'inherit',
});
// Not part of the public types: the CLI, and the binding wrapper, whose declarations point at
// native/binding.d.ts, which is not shipped.
rmSync('dist/types/cli', { recursive: true, force: true });
rmSync('dist/types/native.d.ts');
// Modules in subdirectories (js/relay/) reach it as '../native.js'; inline types as import("./native.js").
const leaking = readdirSync('dist/types', { recursive: true })
  .filter((f) => f.endsWith('.d.ts'))
  .filter((f) => /['"](\.\/|(\.\.\/)+)native\.js['"]/.test(readFileSync(`dist/types/${f}`, 'utf8')));
if (leaking.length) {
  throw new Error(`${leaking.join(', ')}: declarations import js/native.ts, which is not shipped; mark the type @internal`);
}
for (const ext of ['d.cts', 'd.mts']) writeFileSync(`dist/index.${ext}`, "export * from './types/index.js';\n");
for (const name of ADAPTERS) {
  const reexport = `export * from './types/${name}.js';\nexport { default } from './types/${name}.js';\n`;
  writeFileSync(`dist/${name}.d.mts`, reexport);
  writeFileSync(`dist/${name}.d.cts`, name === 'express' ? EXPRESS_CJS_TYPES : reexport);
}

