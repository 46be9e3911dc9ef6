// The HTTP load generator of bench/http.mjs and bench/frameworks.mjs, so both drive their servers the
// same way: wrk (1 thread, keep-alive connections) or, without it, autocannon; the served files; and a
// server's CPU time from /proc.
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';

import autocannon from 'autocannon';
import { MiB } from './lib.mjs';

/** Whether wrk is installed (a C client that is not the bottleneck; autocannon tops out near 100 MiB/s). */
export const haveWrk = (() => {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
    return true;
  } catch (err) {
    return err.status === 1; // wrk --version prints its usage and exits 1
  }
})();

/** What drives the load, for the workload line. */
export const loadGenerator = haveWrk ? 'wrk (1 thread)' : 'autocannon (install wrk for a client that is not the bottleneck)';

/** Writes each `[label, name, size, …]` file into the scratch directory `s`, with non-repeating content. */
export function writeFiles(s, files) {
  for (const [, name, size] of files) {
    const data = Buffer.alloc(size);
    for (let i = 0; i + 4 <= size; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
    writeFileSync(s.path(name), data);
  }
}

const ticks = 100; // USER_HZ: /proc/PID/stat counts CPU time in 1/100 s on Linux
function statFields(pid) {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return text.slice(text.lastIndexOf(') ') + 2).split(' ');
}

/** CPU seconds of `pid` and its live children (nginx's worker). */
export function cpuSeconds(pid) {
  let total = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const fields = statFields(entry);
      if (Number(entry) === pid || Number(fields[1]) === pid) total += Number(fields[11]) + Number(fields[12]); // utime + stime
    } catch {
      // gone meanwhile
    }
  }
  return total / ticks;
}

/** Milliseconds from a wrk latency figure like "1.23ms", "456.00us", "1.02s" or "1.50m". */
export function wrkMs(text) {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (!m) return NaN;
  return Number(m[1]) * { us: 1e-3, ms: 1, s: 1e3, m: 6e4 }[m[2]];
}

/**
 * Drives `path` (a file of `size` bytes) on 127.0.0.1:`port` with `connections` keep-alive connections
 * for `seconds`; throughput counts response bodies. `name` says which server, in errors.
 */
export async function load({ port, path, size, connections, seconds, name = `port ${port}` }) {
  const url = `http://127.0.0.1:${port}${path}`;
  if (haveWrk) {
    const out = await new Promise((resolve, reject) => {
      const child = spawn('wrk', ['-t', '1', '-c', String(connections), '-d', `${seconds}s`, '--latency', url], { stdio: ['ignore', 'pipe', 'inherit'] });
      let text = '';
      child.stdout.on('data', (d) => (text += d));
      child.on('close', (code) => (code === 0 ? resolve(text) : reject(new Error(`${name}: wrk exited ${code}`))));
    });
    if (/Non-2xx|Socket errors/.test(out)) throw new Error(`${name} ${path}: wrk reported errors:\n${out}`);
    const total = Number(/(\d+) requests in/.exec(out)?.[1]);
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
    return { rps, mbps: (rps * size) / MiB, p50: wrkMs(/50%\s+(\S+)/.exec(out)?.[1] ?? ''), p99: wrkMs(/99%\s+(\S+)/.exec(out)?.[1] ?? ''), total };
  }
  const result = await autocannon({ url, connections, duration: seconds, pipelining: 1 });
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`${name} ${path}: ${result.non2xx} non-2xx, ${result.errors} errors`);
  return { rps: result.requests.average, mbps: (result.requests.average * size) / MiB, p50: result.latency.p50, p99: result.latency.p99, total: result.requests.total };
}
