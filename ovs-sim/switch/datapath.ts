// The datapath several bridges share (as OVS's dummy datapath does): its port numbers, chosen
// as dpif-netdev chooses them for the dummy datapath (from the digits in a port's name, bridges
// from 100), the tunnel vports one per tunnel type, recirculation ids, connection tracking, and
// the clock that flow timeouts and durations read.
import { Conntrack } from './conntrack.js';

export interface DpPort {
  name: string;
  number: number;
}

export interface Clock {
  now(): number;
}

export const wallClock: Clock = { now: () => Date.now() };

export class Datapath {
  private readonly ports = new Map<number, DpPort>();
  private readonly byName = new Map<string, DpPort>();
  private nextRecirc = 1;
  readonly conntrack: Conntrack;
  /** Frozen translations waiting for their recirculation, by recirc id. */
  readonly frozen = new Map<number, unknown>();
  /** The bridges on this datapath (patch ports connect them), by name. */
  readonly bridges = new Map<string, { name: string }>();
  /** other_config:vlan-limit of the switch: how many VLAN headers flow extraction parses. */
  vlanLimit = 1;
  private dummyNetdevs = 0;

  /** netdev-dummy's count of the netdevs it has made (their Ethernet addresses follow it). */
  nextDummyNetdev(): number {
    return ++this.dummyNetdevs;
  }

  constructor(readonly clock: Clock = wallClock) {
    this.conntrack = new Conntrack(clock);
  }

  /** choose_port for the dummy datapath. */
  private choose(name: string): number {
    const start = name.startsWith('br') ? 100 : 0;
    const m = /\d+/.exec(name);
    if (m) {
      // strtol stops at the first non-digit; a huge number is no good.
      const n = start + Number(m[0].slice(0, 10));
      if (n > 0 && n !== 0xffffffff && n <= 0xffffffff && !this.ports.has(n)) return n;
    }
    let n = 1;
    while (this.ports.has(n)) n++;
    return n;
  }

  addPort(name: string): DpPort {
    const existing = this.byName.get(name);
    if (existing) return existing;
    const p = { name, number: this.choose(name) };
    this.ports.set(p.number, p);
    this.byName.set(name, p);
    return p;
  }

  removePort(name: string): void {
    const p = this.byName.get(name);
    if (!p) return;
    this.ports.delete(p.number);
    this.byName.delete(name);
  }

  port(name: string): DpPort | undefined {
    return this.byName.get(name);
  }

  portByNumber(n: number): DpPort | undefined {
    return this.ports.get(n);
  }

  /** Datapath port names by number (ofproto/trace --names). */
  names(): Map<number, string> {
    return new Map([...this.ports.values()].map((p) => [p.number, p.name]));
  }

  allocRecirc(): number {
    return this.nextRecirc++;
  }
}
