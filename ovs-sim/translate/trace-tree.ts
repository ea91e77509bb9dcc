// The tree ofproto/trace prints: bridges, table lookups, actions and the notes about them, and
// OVS's indentation rule for it (oftrace_node_print_details): actions and notes sit one level in;
// a table reached by a resubmit nests under the action that reached it, unless it is the last
// thing in its list, in which case it stays at the level of the list.

export type NodeType = 'bridge' | 'table' | 'action' | 'detail' | 'warn' | 'error' | 'bucket' | 'thaw';

export interface TraceNode {
  type: NodeType;
  text: string;
  subs: TraceNode[];
}

const terminal = (t: NodeType): boolean => t === 'action' || t === 'detail' || t === 'warn' || t === 'error' || t === 'bucket';

export function printTrace(nodes: TraceNode[], level = 0, out: string[] = []): string[] {
  nodes.forEach((n, i) => {
    if (n.type === 'bridge') out.push('');
    const more = i < nodes.length - 1 || terminal(n.type) ? 1 : 0;
    const pad = ' '.repeat((level + more) * 4);
    switch (n.type) {
      case 'detail': out.push(`${pad} -> ${n.text}`); break;
      case 'warn': out.push(`${pad} >> ${n.text}`); break;
      case 'error': out.push(`${pad} >>>> ${n.text} <<<<`); break;
      case 'bridge': out.push(`${pad}${n.text}`, `${pad}${'-'.repeat(n.text.length)}`); break;
      default: out.push(`${pad}${n.text}`);
    }
    printTrace(n.subs, level + 2 * more, out);
  });
  return out;
}
