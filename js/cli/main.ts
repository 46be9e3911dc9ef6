/**
 * The `zerocopy` command. Exit codes: 0 ok, 1 failure, 2 usage error. Errors print as one line
 * (with the stack under --verbose).
 */
import { parseArgs } from 'node:util';

import { capabilities, type Capabilities } from 'zerocopy';

const USAGE = `Usage: zerocopy <command> [options]

Commands:
  caps [PATH]     what this kernel (and the filesystem holding PATH) supports

Options:
  --json          machine-readable output (caps)
  --verbose       print stack traces on errors
  -h, --help      show this help
  -v, --version   print the version
`;

class UsageError extends Error {}

/** Replaced by the package version at build time (scripts/build-js.mjs). */
declare const ZEROCOPY_VERSION: string;

function yesNo(value: boolean | null | undefined): string {
  return value === null || value === undefined ? 'unknown' : value ? 'yes' : 'no';
}

function formatCaps(c: Capabilities): string {
  const rows: [string, string][] = [
    ['platform', `${c.platform} ${c.arch}, kernel ${c.kernel}, page ${c.pageSize} B`],
    ['copy_file_range', yesNo(c.copyFileRange)],
    ['sendfile', yesNo(c.sendfile)],
    ['splice / tee / vmsplice', `${yesNo(c.splice)} / ${yesNo(c.tee)} / ${yesNo(c.vmsplice)}`],
    ['pipe-max-size', c.pipeMaxSize === null ? 'unknown' : `${c.pipeMaxSize} B`],
  ];
  const fs = c.filesystem;
  if (fs) {
    rows.push(
      ['path', fs.path],
      ['filesystem', `${fs.type} (block ${fs.blockSize} B)`],
      ['reflink', yesNo(fs.reflink)],
      ['copy_file_range here', yesNo(fs.copyFileRange)],
      ['O_DIRECT', yesNo(fs.directIo)],
    );
    const a = fs.directIoAlignment;
    if (a) rows.push(['O_DIRECT alignment', `memory ${a.memory} B, offset/length ${a.offset} B (${a.source})`]);
  }
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n');
}

async function caps(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' }, verbose: { type: 'boolean' } },
  });
  if (values.help) {
    process.stdout.write('Usage: zerocopy caps [PATH] [--json]\n\nReports what this kernel supports and, for PATH (default: the current directory), its filesystem.\n');
    return;
  }
  if (positionals.length > 1) throw new UsageError('caps takes at most one PATH');
  const result = await capabilities(positionals[0] ?? process.cwd());
  process.stdout.write(values.json ? `${JSON.stringify(result, null, 2)}\n` : `${formatCaps(result)}\n`);
}

const COMMANDS: Record<string, (args: string[]) => Promise<void>> = { caps };

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command === '-v' || command === '--version') {
    process.stdout.write(`${ZEROCOPY_VERSION}\n`);
    return 0;
  }
  const run = COMMANDS[command];
  if (!run) throw new UsageError(`unknown command '${command}'`);
  await run(rest);
  return 0;
}

const verbose = process.argv.includes('--verbose');
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const usage = err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`zerocopy: ${verbose && err instanceof Error ? err.stack : message}\n`);
    if (usage) process.stderr.write("Run 'zerocopy --help' for usage.\n");
    process.exitCode = usage ? 2 : 1;
  },
);
