// What is compared between real OVS and the simulator in the differential corpus (test/diff/),
// and the only normalization applied. Everything a command prints is compared, exit status
// included, except:
//  - log lines on stderr lose their timestamp (`2026-12-01T21:10:24Z|`); the vlog sequence
//    number after it (`00001|`, counted per process) is compared;
//  - log lines that only a loaded machine causes (`timeval|WARN|Unreasonably long ...ms poll
//    interval` and the `faults:`, `context switches:`, `disk:` lines that follow it) are dropped,
//    and the sequence numbers of the lines after them moved back by as many;
//  - a sandbox's run directory in `unix:DIR/BRIDGE.mgmt` reads as OVS's default
//    `/var/run/openvswitch`;
//  - dump-flows: `duration=`, `idle_age=` and `hard_age=` values become `X` (wall-clock time),
//    and the flow lines are compared as a sorted list (OVS prints a table in its hash order);
//  - dump-groups: the group lines are compared as a sorted list (OVS keeps groups in a hash
//    map and prints them in its order);
//  - dump-ports, meter-stats: `duration=`/`duration:` values become `X`;
//  - ofproto/trace: the `Megaflow:` line is dropped: it is the datapath's wildcarding, which
//    depends on OVS's classifier internals (staged lookups, prefix tries), not on what the
//    flows do; the simulator prints an approximation of it. Everything else is compared as
//    printed, native-tunnel notes included: a sandbox has no route to any tunnel endpoint and
//    neither has a standalone simulated switch.
//  Datapath port numbers are not normalized: the dummy datapath numbers ports predictably
//  (from the digits in their names), and the simulator numbers them the same way.

export interface Outcome {
  stdout: string;
  stderr: string;
  status: number;
}

export interface Comparison {
  what: string;
  real: unknown;
  ours: unknown;
}

/** The command lines of a script: blank lines and `#` comments left out. */
export function scriptLines(text: string): string[] {
  return text.split('\n').filter((l) => l.trim() !== '' && !l.trimStart().startsWith('#'));
}

const TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z\|/;
const SEQUENCE = /^(\d{5,})\|/;
/** vlog lines a slow or loaded machine adds (lib/timeval.c's log_poll_interval and its details). */
const LOAD_ONLY = /^timeval\|WARN\|(?:Unreasonably long \d+ms poll interval|faults: |context switches: |disk: |\d+% CPU usage)/;
/** A sandbox's run directory (test/helpers/ovs-sandbox.ts makes them in the temporary directory). */
const SANDBOX_RUNDIR = /unix:\/[^ ]*?\/ovs-sb-[^/ ]+\//g;

export function stderrLines(text: string): string[] {
  const out: string[] = [];
  let dropped = 0;
  for (const raw of text.split('\n')) {
    if (raw.trim() === '') continue;
    let l = raw.replace(TIMESTAMP, '').replace(SANDBOX_RUNDIR, 'unix:/var/run/openvswitch/');
    const seq = SEQUENCE.exec(l);
    const rest = seq ? l.slice(seq[0].length) : l;
    if (seq && LOAD_ONLY.test(rest)) {
      dropped += 1;
      continue;
    }
    if (seq && dropped > 0) l = `${String(Number(seq[1]) - dropped).padStart(5, '0')}|${rest}`;
    out.push(l);
  }
  return out;
}

export function dumpLines(text: string): string[] {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const head = lines.filter((l) => !l.startsWith(' '));
  const flows = lines.filter((l) => l.startsWith(' ')).map((l) => l.replace(/\b(duration|idle_age|hard_age)=[0-9.]+s?/g, '$1=X')).sort();
  return [...head, ...flows];
}

function durations(text: string): string {
  return text.replace(/\bduration([=:])[0-9.]+s/g, 'duration$1X').replace(/\s+$/, '');
}

export function traceLines(text: string): string[] {
  const out = text.split('\n').map((l) => l.replace(/\s+$/, '')).filter((l) => !l.startsWith('Megaflow:'));
  while (out.length > 0 && out.at(-1) === '') out.pop();
  return out;
}

export function compareOutputs(argv: string[], real: Outcome, ours: Outcome): Comparison[] {
  const out: Comparison[] = [{ what: 'exit status', real: real.status, ours: ours.status }];
  out.push({ what: 'stderr', real: stderrLines(real.stderr), ours: stderrLines(ours.stderr) });
  if (argv.includes('dump-flows')) out.push({ what: 'dump-flows', real: dumpLines(real.stdout), ours: dumpLines(ours.stdout) });
  else if (argv.includes('dump-groups')) out.push({ what: 'dump-groups', real: dumpLines(real.stdout), ours: dumpLines(ours.stdout) });
  else if (argv.includes('dump-ports') || argv.includes('meter-stats')) out.push({ what: 'output', real: durations(real.stdout), ours: durations(ours.stdout) });
  else if (argv.includes('ofproto/trace')) out.push({ what: 'trace', real: traceLines(real.stdout), ours: traceLines(ours.stdout) });
  else out.push({ what: 'output', real: real.stdout.replace(/\s+$/, ''), ours: ours.stdout.replace(/\s+$/, '') });
  return out;
}
