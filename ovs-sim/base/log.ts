// Warnings ovs-ofctl logs while it parses (deprecated port numbers, tables out of range, actions
// lacking prerequisites). Parsers report them here; the command that runs them collects them for
// its stderr. Outside a collection they are dropped.
let sink: string[] | null = null;

export function warn(module: string, text: string): void {
  sink?.push(`${module}|WARN|${text}`);
}

/** Run `fn`, collecting the warnings it logs into `into`. */
export function collectWarnings<T>(into: string[], fn: () => T): T {
  const saved = sink;
  sink = into;
  try {
    return fn();
  } finally {
    sink = saved;
  }
}

export function info(module: string, text: string): void {
  sink?.push(`${module}|INFO|${text}`);
}
