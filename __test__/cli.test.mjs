// The zerocopy command as users run it (bin/zerocopy.mjs): output, exit codes, one-line errors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';

const bin = fileURLToPath(new URL('../bin/zerocopy.mjs', import.meta.url));
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

function run(...args) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('caps --json reports the kernel and the filesystem', () => {
  const r = run('caps', '--json', '/dev/shm');
  assert.is(r.code, 0, r.err);
  const caps = JSON.parse(r.out);
  assert.is(caps.platform, 'linux');
  assert.is(caps.copyFileRange, true);
  assert.is(caps.filesystem.type, 'tmpfs');
});

test('caps prints an aligned table', () => {
  const r = run('caps');
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /^platform\s+linux/m);
  assert.match(r.out, /^O_DIRECT\s+(yes|no|unknown)/m);
});

test('--version, --help and usage errors', () => {
  assert.equal(run('--version'), { code: 0, out: `${pkg.version}\n`, err: '' });
  assert.match(run('--help').out, /Usage: zerocopy <command>/);
  assert.match(run('caps', '--help').out, /Usage: zerocopy caps/);
  const unknown = run('frobnicate');
  assert.is(unknown.code, 2);
  assert.match(unknown.err, /unknown command 'frobnicate'/);
  const badFlag = run('caps', '--nope');
  assert.is(badFlag.code, 2);
  assert.is(run().code, 2);
});

test('failures print one line, no stack, exit 1; --verbose adds the stack', () => {
  const r = run('caps', '/no/such/path');
  assert.is(r.code, 1);
  assert.is(r.err, "zerocopy: ENOENT: no such file or directory, stat '/no/such/path'\n");
  const v = run('caps', '/no/such/path', '--verbose');
  assert.is(v.code, 1);
  assert.match(v.err, /\n\s+at /);
});

test.run();
