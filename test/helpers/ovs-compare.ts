// What is compared between real OVS and the simulator, and the only normalization applied.
// Everything a command prints is compared, exit status included, except:
//  - log lines on stderr lose their `2026-12-01T21:10:24Z|00001|` prefix (time and sequence);
//  - dump-flows: `duration=`, `idle_age=` and `hard_age=` values become `X` (wall-clock time),
//    and the flow lines are compared as a sorted list (OVS prints a table in its hash order);
//  - ofproto/trace: the `Megaflow:` line is dropped: it is the datapath's wildcarding, which
//    depends on OVS's classifier internals (staged lookups, prefix tries), not on what the
//    flows do; the simulator prints an approximation of it. Everything else is compared as printed, native-tunnel notes included: a sandbox
//    has no route to any tunnel endpoint and neither has a standalone simulated switch.
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

const LOG_PREFIX = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\|\d+\|/;

export function stderrLines(text: string): string[] {
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => l.replace(LOG_PREFIX, ''));
}

export function dumpLines(text: string): string[] {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const head = lines.filter((l) => !l.startsWith(' '));
  const flows = lines.filter((l) => l.startsWith(' ')).map((l) => l.replace(/\b(duration|idle_age|hard_age)=[0-9.]+s?/g, '$1=X')).sort();
  return [...head, ...flows];
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
  else if (argv.includes('ofproto/trace')) out.push({ what: 'trace', real: traceLines(real.stdout), ours: traceLines(ours.stdout) });
  else out.push({ what: 'output', real: real.stdout.replace(/\s+$/, ''), ours: ours.stdout.replace(/\s+$/, '') });
  return out;
}
