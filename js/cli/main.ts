/**
 * The `zerocopy` command. Exit codes: 0 ok, 1 failure, 2 usage error. Errors print as one line
 * (with the stack under --verbose).
 */
import { bench } from './bench.js';
import { caps } from './caps.js';
import { cp } from './cp.js';
import { explain } from './explain.js';
import { peer } from './peer.js';
import { proxyCommand } from './proxy.js';
import { serve } from './serve.js';
import { UsageError } from './util.js';

/** Replaced by the package version at build time (scripts/build-js.mjs). */
declare const ZEROCOPY_VERSION: string;

const USAGE = `Usage: zerocopy <command> [options]

Commands:
  bench            measure what each zero-copy path saves on this machine (npm start runs it)
  explain [PATH]   draw where a path's bytes go: copies, DMA, user/kernel switches (with --results)
  serve [DIR]      serve files over HTTP with sendfile
  cp SRC DST       copy a file with the cheapest mechanism (reflink, copy_file_range, ...)
  proxy            relay TCP connections through kernel pipes (splice)
  caps [PATH]      what this kernel and the filesystem holding PATH support

Run 'zerocopy <command> --help' for a command's options.

Options:
  --verbose       print stack traces on errors
  -h, --help      show this help
  -v, --version   print the version
`;

const COMMANDS: Record<string, (args: string[]) => Promise<void>> = {
  bench,
  explain,
  serve,
  cp,
  proxy: proxyCommand,
  caps,
  '__bench-peer': peer,
};

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
    const usage = err instanceof UsageError;
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`zerocopy: ${verbose && err instanceof Error ? err.stack : message}\n`);
    if (usage) process.stderr.write("Run 'zerocopy --help' for usage.\n");
    process.exitCode = usage ? 2 : 1;
  },
);
