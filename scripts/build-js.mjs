// Builds the JavaScript side of the package into dist/:
//   index.cjs   the library (one bundle of js/, CommonJS), loading the napi binding through "#native"
//   index.mjs   the ESM entry: re-exports index.cjs, so ESM and CJS users share one instance
//   cli.mjs     the zerocopy command, importing the library by its package name
//   types/      declarations from tsc, re-exported by index.d.cts and index.d.mts
// esbuild writes the JavaScript; tsc only type-checks and writes declarations.
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { build } from 'esbuild';

const { version } = JSON.parse(readFileSync('package.json', 'utf8'));

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  define: { ZEROCOPY_VERSION: JSON.stringify(version) },
  sourcemap: true,
  logLevel: 'warning',
};

rmSync('dist', { recursive: true, force: true });

// "#native" (package.json "imports") stays a runtime require of the generated CommonJS loader.
// Dependencies (pillarjs helpers) stay external: installed by npm, visible to audits.
await build({ ...common, entryPoints: ['js/index.ts'], outfile: 'dist/index.cjs', format: 'cjs', external: ['#native'], packages: 'external' });
writeFileSync('dist/index.mjs', "export * from './index.cjs';\n");
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
rmSync('dist/types/cli', { recursive: true, force: true });
for (const ext of ['d.cts', 'd.mts']) writeFileSync(`dist/index.${ext}`, "export * from './types/index.js';\n");
