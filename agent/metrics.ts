// Prometheus metrics (GET /metrics on the admin address), with prom-client. One registry per
// agent (tests run several agents in one process); the process metrics (CPU, memory, heap,
// event-loop lag, open fds) come from prom-client's default collectors.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Dataplane } from '../dataplane/api.js';
import type { FlowBackend, PacketIo } from '../dataplane/backend.js';
import { parseDhcpReplyFrame } from '../dataplane/dhcp-wire.js';
import { bridgeOfKey } from '../dataplane/flow.js';
import { FlowDataplane } from '../dataplane/flow-dataplane.js';
import { KINDS } from '../dataplane/model.js';
import { NOT_PROGRAMMED } from './intake.js';
import type { ResultTable } from './results.js';
import { VERSION } from './version.js';

export type Transport = 'stream' | 'unary';
export type GoalStateResult = 'success' | 'refused' | 'undecodable' | 'error';

const STATUS_NAMES = ['SUCCESS', 'FAILURE', 'INVALID_ARG', 'PENDING', 'OUT_OF_ORDER'] as const;
/** NOT_PROGRAMMED by kind index (a goal state can hold a million resources). */
const NOT_PROGRAMMED_BY_INDEX: (string | undefined)[] = KINDS.map((k) => NOT_PROGRAMMED[k]);
/** DHCP message types (option 53) the agent sends. */
const DHCP_TYPES: Record<number, string> = { 2: 'OFFER', 5: 'ACK', 6: 'NAK' };

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly goalStates: Counter<'transport' | 'result'>;
  private readonly resources: Counter<'kind' | 'status'>;
  private readonly notProgrammed: Counter<'kind'>;
  private readonly applySeconds: Histogram<'transport'>;
  private readonly dhcpReplies: Counter<'type'>;
  private readonly ovsReconnects: Counter;
  private dataplane: Dataplane | null = null;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    new Gauge({ name: 'aca_build_info', help: 'The agent\'s version (value 1)', labelNames: ['version', 'node'], registers })
      .set({ version: VERSION, node: process.version }, 1);
    this.goalStates = new Counter({
      name: 'aca_goal_states_total', help: 'Goal states received, by transport (stream: PushGoalStatesStream, unary: PushNetworkResourceStates) and result (success: every resource SUCCESS; refused: some not; undecodable; error)',
      labelNames: ['transport', 'result'], registers,
    });
    this.resources = new Counter({ name: 'aca_resources_total', help: 'Resources answered, by kind and status', labelNames: ['kind', 'status'], registers });
    this.notProgrammed = new Counter({
      name: 'aca_resources_not_programmed_total', help: 'Resources answered SUCCESS and stored although the dataplane does not program their kind yet',
      labelNames: ['kind'], registers,
    });
    this.applySeconds = new Histogram({
      name: 'aca_goal_state_apply_seconds', help: 'From receipt of a goal state to its reply (decode, validate, store, save, dataplane commit)',
      labelNames: ['transport'], buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120], registers,
    });
    this.dhcpReplies = new Counter({ name: 'aca_dhcp_replies_total', help: 'DHCP replies sent, by message type', labelNames: ['type'], registers });
    this.ovsReconnects = new Counter({ name: 'aca_ovs_reconnects_total', help: 'Times Open vSwitch came back after the agent lost it (and the flows were reinstalled)', registers });
    const dataplaneOf = (): Dataplane | null => this.dataplane;
    new Gauge({
      name: 'aca_flows', help: 'Flows the agent has installed, by bridge', labelNames: ['bridge'], registers,
      collect() {
        this.reset();
        const dp = dataplaneOf();
        if (!(dp instanceof FlowDataplane)) return;
        const counts = new Map<string, number>();
        // By key: a packed flow is not made whole to be counted.
        for (const key of dp.installed.flows.keys()) {
          const b = bridgeOfKey(key);
          counts.set(b, (counts.get(b) ?? 0) + 1);
        }
        for (const [bridge, n] of counts) this.set({ bridge }, n);
      },
    });
    const punted: Record<string, number> = {};
    new Counter({
      name: 'aca_packet_ins_total', help: 'Packets the switch sent up to the agent, by reason (dhcp, arp_miss, other)', labelNames: ['reason'], registers,
      collect() {
        const dp = dataplaneOf();
        if (!(dp instanceof FlowDataplane)) return;
        for (const [reason, n] of [['dhcp', dp.punts.dhcp], ['arp_miss', dp.punts.arpMiss], ['next_hop_arp', dp.punts.nextHopArp], ['other', dp.punts.other]] as const) {
          const delta = n - (punted[reason] ?? 0);
          if (delta > 0) this.inc({ reason }, delta);
          else if (punted[reason] === undefined) this.inc({ reason }, 0);
          punted[reason] = n;
        }
      },
    });
    for (const kind of KINDS) for (const status of STATUS_NAMES) this.resources.inc({ kind, status }, 0);
    for (const type of Object.values(DHCP_TYPES)) this.dhcpReplies.inc({ type }, 0);
    for (const kind of Object.keys(NOT_PROGRAMMED)) this.notProgrammed.inc({ kind }, 0);
    this.ovsReconnects.inc(0);
  }

  /** The dataplane whose flows and packet-ins are reported. */
  watch(dataplane: Dataplane): void {
    this.dataplane = dataplane;
  }

  /**
   * Counts the DHCP replies a backend sends (by their message type) and the times the switch
   * came back. Call before the dataplane is made on the backend.
   */
  instrumentBackend(backend: FlowBackend): void {
    backend.onSwitchReset?.(() => this.ovsReconnects.inc());
    const io = backend.packets;
    if (!io) return;
    const counted: PacketIo = {
      onPacketIn: (listener) => io.onPacketIn(listener),
      packetOut: (port, frame) => {
        io.packetOut(port, frame);
        try {
          const type = DHCP_TYPES[parseDhcpReplyFrame(frame).type];
          if (type) this.dhcpReplies.inc({ type });
        } catch {
          // not a DHCP reply
        }
      },
      ...(io.packetOutToTable ? { packetOutToTable: io.packetOutToTable.bind(io) } : {}),
    };
    (backend as { packets?: PacketIo }).packets = counted;
  }

  goalState(transport: Transport, seconds: number, results: ResultTable | null, result?: GoalStateResult): void {
    if (!results) {
      this.goalStates.inc({ transport, result: result ?? 'error' });
      return;
    }
    const counts = new Uint32Array(KINDS.length * STATUS_NAMES.length);
    for (let i = 0; i < results.length; i++) {
      const k = results.kindIndex(i);
      const s = results.statusCode(i);
      counts[k * STATUS_NAMES.length + s]! += 1;
      const note = NOT_PROGRAMMED_BY_INDEX[k];
      if (note !== undefined && s === 0 && results.detail(i).includes(note)) this.notProgrammed.inc({ kind: KINDS[k]! });
    }
    let allOk = true;
    for (let k = 0; k < KINDS.length; k++) {
      for (let s = 0; s < STATUS_NAMES.length; s++) {
        const n = counts[k * STATUS_NAMES.length + s]!;
        if (n === 0) continue;
        if (s !== 0) allOk = false;
        this.resources.inc({ kind: KINDS[k]!, status: STATUS_NAMES[s]! }, n);
      }
    }
    this.goalStates.inc({ transport, result: result ?? (allOk ? 'success' : 'refused') });
    this.applySeconds.observe({ transport }, seconds);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
