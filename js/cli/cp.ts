/** `zerocopy cp SRC DST`: copyFile with a progress bar, printing the mechanism used. */
import { copyFile, type ReflinkMode } from 'zerocopy';

import { formatBytes, parse, ProgressBar, str, UsageError } from './util.js';

const HELP = `Usage: zerocopy cp SRC DST [--reflink=auto|always|never] [--no-clobber]

Copies SRC to DST with the cheapest mechanism this kernel and filesystem allow (reflink,
copy_file_range, sendfile, read/write) and prints which one moved the bytes. A progress bar is drawn
on a terminal; nothing but the result line when output is piped. Ctrl-C stops the copy (the partial
destination is left as it is).

Options:
  --reflink=MODE   auto (default): share blocks where the filesystem can; always: share or fail;
                   never: always write a real copy
  --no-clobber     fail if DST exists
  --verbose        print stack traces on errors
  -h, --help       show this help
`;

const MODES: ReflinkMode[] = ['auto', 'always', 'never'];

export async function cp(args: string[]): Promise<void> {
  const parsed = parse(args, { reflink: { type: 'string' }, 'no-clobber': { type: 'boolean' } }, HELP, true);
  if (!parsed) return;
  const [src, dst, ...rest] = parsed.positionals;
  if (src === undefined || dst === undefined || rest.length > 0) throw new UsageError('cp takes exactly SRC and DST');
  const reflink = (str(parsed, 'reflink') ?? 'auto') as ReflinkMode;
  if (!MODES.includes(reflink)) throw new UsageError(`--reflink must be auto, always or never, got '${reflink}'`);
  const bar = new ProgressBar('copying');
  const abort = new AbortController();
  const onSignal = (): void => abort.abort();
  process.once('SIGINT', onSignal);
  const started = process.hrtime.bigint();
  try {
    const { bytes, mechanism } = await copyFile(src, dst, {
      reflink,
      overwrite: !parsed.values['no-clobber'],
      signal: abort.signal,
      onProgress: (done, total) => bar.update(done, total),
    });
    bar.clear();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const rate = seconds > 0 ? ` (${formatBytes(bytes / seconds)}/s)` : '';
    process.stdout.write(`'${src}' -> '${dst}': ${formatBytes(bytes)} in ${seconds.toFixed(2)} s${rate} by ${mechanism}\n`);
  } finally {
    bar.clear();
    process.off('SIGINT', onSignal);
  }
}
