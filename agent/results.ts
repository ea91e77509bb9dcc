// Per-resource results of one goal state, stored by column. A state can carry a million
// resources; a million result objects would be a million more things for the garbage collector
// to trace while the store is being filled. Rows are materialized on demand.
import type { Kind } from '../dataplane/model.js';
import { KINDS } from '../dataplane/model.js';

export type Status = 'SUCCESS' | 'FAILURE' | 'INVALID_ARG' | 'PENDING' | 'OUT_OF_ORDER';
/** Statuses by their code (the wire numbers). */
export const STATUSES: readonly Status[] = ['SUCCESS', 'FAILURE', 'INVALID_ARG', 'PENDING', 'OUT_OF_ORDER'];
const KIND_INDEX = Object.fromEntries(KINDS.map((k, i) => [k, i])) as Record<Kind, number>;

/** One resource of a goal state and what became of it. */
export interface ResourceResult {
  kind: Kind;
  /** The configuration id the reply reports. */
  id: string;
  /** The wire operation_type, echoed even when unknown. */
  operationType: number;
  status: Status;
  /** Why, when not plainly SUCCESS (also warnings on SUCCESS). */
  detail: string;
  /** Microseconds to validate and store this resource. */
  configUs: number;
  /** Whether it changed the store (and so took part in the dataplane commit). */
  changed: boolean;
}

export class ResultTable {
  length = 0;
  private ids: string[] = [];
  private kinds = new Uint8Array(64);
  private statuses = new Uint8Array(64);
  private changedFlags = new Uint8Array(64);
  private operationTypes = new Int32Array(64);
  private configUs = new Float64Array(64);
  private readonly details = new Map<number, string>();

  add(kind: Kind, id: string, operationType: number): number {
    const i = this.length;
    if (i === this.kinds.length) this.grow();
    this.ids.push(id);
    this.kinds[i] = KIND_INDEX[kind];
    this.operationTypes[i] = operationType;
    this.length = i + 1;
    return i;
  }

  private grow(): void {
    const size = this.kinds.length * 2;
    const widen = <T extends Uint8Array | Int32Array | Float64Array>(a: T, make: (n: number) => T): T => {
      const b = make(size);
      b.set(a);
      return b;
    };
    this.kinds = widen(this.kinds, (n) => new Uint8Array(n));
    this.statuses = widen(this.statuses, (n) => new Uint8Array(n));
    this.changedFlags = widen(this.changedFlags, (n) => new Uint8Array(n));
    this.operationTypes = widen(this.operationTypes, (n) => new Int32Array(n));
    this.configUs = widen(this.configUs, (n) => new Float64Array(n));
  }

  kind(i: number): Kind { return KINDS[this.kinds[i]!]!; }
  id(i: number): string { return this.ids[i]!; }
  operationType(i: number): number { return this.operationTypes[i]!; }
  status(i: number): Status { return STATUSES[this.statuses[i]!]!; }
  detail(i: number): string { return this.details.size === 0 ? '' : this.details.get(i) ?? ''; }
  /** Index into KINDS, and into the status list SUCCESS, FAILURE, INVALID_ARG, PENDING, OUT_OF_ORDER (the wire numbers). */
  kindIndex(i: number): number { return this.kinds[i]!; }
  statusCode(i: number): number { return this.statuses[i]!; }
  changed(i: number): boolean { return this.changedFlags[i] === 1; }
  config(i: number): number { return this.configUs[i]!; }

  setStatus(i: number, status: Status, detail: string): void {
    this.statuses[i] = STATUSES.indexOf(status);
    this.setDetail(i, detail);
  }
  setDetail(i: number, detail: string): void {
    if (detail === '') this.details.delete(i);
    else this.details.set(i, detail);
  }
  markChanged(i: number): void { this.changedFlags[i] = 1; }
  setConfigUs(i: number, us: number): void { this.configUs[i] = us; }

  get(i: number): ResourceResult {
    return {
      kind: this.kind(i), id: this.id(i), operationType: this.operationType(i), status: this.status(i),
      detail: this.detail(i), configUs: this.config(i), changed: this.changed(i),
    };
  }

  toArray(): ResourceResult[] {
    return Array.from({ length: this.length }, (_, i) => this.get(i));
  }
}
