// What is compared between real OVS and the simulator, and the only normalization applied.
//  - dump-flows: the lines, as a sorted set (the order OVS dumps a table in is its hash order).
//  - ofproto/trace: the table steps and action lines of the first bridge; notes about datapath
//    tunnel routing (`-> output to native tunnel`, `-> tunneling …`, `>> native tunnel routing
//    failed`) and later bridge sections (the underlay) are dropped: they depend on datapath
//    routing state the simulator does not model. `Final flow:` is compared when no tunnel was
//    used; `Megaflow:` and `Datapath actions:` are not compared (datapath-level output).

export function dumpLines(text: string): string[] {
  return text.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('OFPST_FLOW') && !l.startsWith('NXST_FLOW')).sort();
}

const DATAPATH_NOTE = /^\s*(-> output to native tunnel|-> tunneling |>> native tunnel routing failed|-> no learned MAC)/;

export function traceSteps(text: string): string[] {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.startsWith('bridge('));
  if (start < 0) return [];
  const out: string[] = [];
  for (const l of lines.slice(start + 2)) {
    if (l.trim() === '' || l.startsWith('Final flow:') || l.startsWith('bridge(')) break;
    if (DATAPATH_NOTE.test(l)) continue;
    out.push(l.replace(/\s+$/, ''));
  }
  return out;
}

export function finalFlow(text: string): string | undefined {
  return text.split('\n').find((l) => l.startsWith('Final flow:'));
}
