#!/usr/bin/env node
// Runs the tests on every runtime users have, against the addon and bundle `npm run build` made:
//
//   node scripts/test-runtimes.mjs --node     the uvu suites on Node 20, 22, 24 and 26
//   node scripts/test-runtimes.mjs --others   __test__/runtimes/suite.mjs on Bun and Deno
//   node scripts/test-runtimes.mjs            both
//   --except-own                              skips the pinned Node that is this very Node (CI: `npm test`
//                                             has just run the same suites on it)
//
// Each runtime comes from the npm registry, pinned, through scripts/runtimes.mjs (cached). Prints a
// summary table (Markdown, for the README's runtime table) and exits 1 if anything failed on any runtime.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { RUNTIMES, ensureRuntime } from './runtimes.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const uvu = join(root, 'node_modules', 'uvu', 'bin.js');
const suite = join(root, '__test__', 'runtimes', 'suite.mjs');
const NODES = ['node20', 'node22', 'node24', 'node26'];
const OTHERS = ['bun', 'deno'];
/** Bounds a run that hangs; the slowest (a whole uvu suite on a loaded machine) takes a few minutes. */
const RUN_TIMEOUT_MS = 15 * 60 * 1000;

const args = process.argv.slice(2);
const neither = !args.includes('--node') && !args.includes('--others');
const wantNode = neither || args.includes('--node');
const wantOthers = neither || args.includes('--others');
const exceptOwn = args.includes('--except-own');

/** Runs a command with its output prefixed and passed through; resolves with its status and output. */
function run(label, cmd, argv, env = {}) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(cmd, argv, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => {
      out += `\n${label}: killed after ${RUN_TIMEOUT_MS / 1000} s\n`;
      child.kill('SIGKILL');
    }, RUN_TIMEOUT_MS);
    const relay = (stream) => {
      let partial = '';
      stream.on('data', (chunk) => {
        const text = partial + chunk.toString();
        out += chunk.toString();
        const lines = text.split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) process.stdout.write(`[${label}] ${line}\n`);
      });
      stream.on('end', () => partial && process.stdout.write(`[${label}] ${partial}\n`));
    };
    relay(child.stdout);
    relay(child.stderr);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ ok: code === 0, code, signal, out, seconds: Math.round((Date.now() - started) / 1000) });
    });
  });
}

/**
 * uvu's closing counts, e.g. "Total: 191 / Passed: 191 / Skipped: 7". uvu runs with `--no-color`: its
 * colours work by setting FORCE_COLOR, which Node 22+ warns about on stderr when NO_COLOR is set too,
 * and the CLI tests rightly count that warning as output.
 */
function uvuCounts(out) {
  const n = (word) => [...out.matchAll(new RegExp(`${word}:\\s+(\\d+)`, 'g'))].reduce((sum, m) => sum + Number(m[1]), 0);
  return { total: n('Total'), passed: n('Passed'), skipped: n('Skipped') };
}

const rows = [];
let failed = false;

if (wantNode) {
  for (const name of NODES) {
    if (exceptOwn && process.version === `v${RUNTIMES[name].version}`) {
      rows.push({ runtime: `Node ${RUNTIMES[name].version}`, ran: 'all uvu suites: this machine\'s own Node, run by `npm test`', result: 'see npm test', seconds: 0 });
      continue;
    }
    const bin = ensureRuntime(name);
    const main = await run(name, bin, [uvu, '--no-color', '__test__', '\\.test\\.mjs$', '--ignore', 'portable']);
    const portable = await run(`${name} portable`, bin, [uvu, '--no-color', '__test__', 'portable\\.test\\.mjs$'], { ZEROCOPY_PORTABLE: '1' });
    const c = uvuCounts(main.out + portable.out);
    const ok = main.ok && portable.ok && c.total > 0 && c.passed === c.total;
    failed ||= !ok;
    rows.push({
      runtime: `Node ${RUNTIMES[name].version}`,
      ran: 'all uvu suites (`__test__/*.test.mjs`, and the portable fallbacks)',
      result: `${ok ? 'pass' : 'FAIL'}: ${c.passed}/${c.total} passed, ${c.skipped} skipped`,
      seconds: main.seconds + portable.seconds,
    });
  }
}

if (wantOthers) {
  for (const name of OTHERS) {
    const bin = ensureRuntime(name);
    const argv = name === 'deno' ? ['run', '-A', suite] : [suite];
    const r = await run(name, bin, argv);
    const line = r.out.split('\n').find((l) => l.startsWith('RESULT '));
    const result = line ? JSON.parse(line.slice('RESULT '.length)) : undefined;
    const checks = result ? Object.entries(result.results) : [];
    const passed = checks.filter(([, v]) => v.ok);
    const ok = r.ok && checks.length > 0 && passed.length === checks.length;
    failed ||= !ok;
    const mechanisms = passed.map(([k, v]) => `${k}: ${v.mechanism}`).join(', ');
    rows.push({
      runtime: `${name === 'bun' ? 'Bun' : 'Deno'} ${RUNTIMES[name].version}`,
      ran: '`__test__/runtimes/suite.mjs` (every mechanism once, twice over, sha256 and fds checked)',
      result: ok
        ? `pass: ${mechanisms}`
        : `FAIL: ${checks.filter(([, v]) => !v.ok).map(([k]) => k).join(', ') || `exit ${r.code ?? r.signal}`}${mechanisms ? `; passed ${mechanisms}` : ''}`,
      seconds: r.seconds,
    });
  }
}

console.log('\n| runtime | what ran | result | s |\n|---|---|---|---|');
for (const r of rows) console.log(`| ${r.runtime} | ${r.ran} | ${r.result} | ${r.seconds} |`);
process.exit(failed ? 1 : 0);
