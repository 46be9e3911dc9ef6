/** `zerocopy caps [PATH] [--json]`: what this kernel and the filesystem holding PATH support. */
import { capabilities, type Capabilities } from 'zerocopy';

import { parse, UsageError } from './util.js';

const HELP = `Usage: zerocopy caps [PATH] [--json]

Reports what this kernel supports (copy_file_range, sendfile, splice, tee, vmsplice, the pipe size
limit) and what the filesystem holding PATH (default: the current directory) supports: reflink,
copy_file_range, O_DIRECT and its alignment.

Options:
  --json      machine-readable output (the capabilities() object)
  --verbose   print stack traces on errors
  -h, --help  show this help
`;

function yesNo(value: boolean | null | undefined): string {
  return value === null || value === undefined ? 'unknown' : value ? 'yes' : 'no';
}

/** The capabilities as an aligned two-column table. */
export function formatCaps(c: Capabilities): string {
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

export async function caps(args: string[]): Promise<void> {
  const parsed = parse(args, { json: { type: 'boolean' } }, HELP, true);
  if (!parsed) return;
  if (parsed.positionals.length > 1) throw new UsageError('caps takes at most one PATH');
  const result = await capabilities(parsed.positionals[0] ?? process.cwd());
  process.stdout.write(parsed.values.json ? `${JSON.stringify(result, null, 2)}\n` : `${formatCaps(result)}\n`);
}
