// Message keys on the MQ path, and the answer to hash-key collisions (docs/mq.md).
//
// Alcor keys a host's goal states with its IP; the agent owns the Key_Shared STICKY slot
// [h, h], h = keySlot(key). Two hosts of one topic (one VPC) whose keys share a slot cannot both
// own it: the broker refuses the second ("Range conflict"). The controller side avoids that with
// salted keys: a host's key is `IP` or `IP#n`, with n the smallest salt that gives the host a slot
// no other host of the topic holds. The agent learns its key from PushNodeSubscribeInfo, owns
// that key's slot, and recognizes its messages by the exact key.
import { HASH_RANGE_SIZE, keySlot } from './pulsar-proto.js';

/** The host a key belongs to: `10.0.0.5` and `10.0.0.5#3` both belong to 10.0.0.5. */
export function keyHost(key: string): string {
  const i = key.indexOf('#');
  return i < 0 ? key : key.slice(0, i);
}

/** The key of a host with salt n (0: the plain IP, as Alcor's DPM sends it). */
export function saltedKey(host: string, n: number): string {
  return n === 0 ? host : `${host}#${n}`;
}

/**
 * Collision-free keys for the hosts of one topic, in the order given (a host keeps its key as
 * long as the hosts before it do: give them in a stable order, e.g. by when they joined the VPC).
 * Hosts already holding a key (`taken`) keep it.
 */
export function assignKeys(hosts: readonly string[], taken: ReadonlyMap<string, string> = new Map()): Map<string, string> {
  const used = new Set<number>();
  const out = new Map<string, string>();
  for (const [host, key] of taken) {
    out.set(host, key);
    used.add(keySlot(key));
  }
  for (const host of hosts) {
    if (out.has(host)) continue;
    for (let n = 0; ; n++) {
      const key = saltedKey(host, n);
      const slot = keySlot(key);
      if (!used.has(slot)) {
        used.add(slot);
        out.set(host, key);
        break;
      }
      if (n > 4 * HASH_RANGE_SIZE) throw new Error(`no free slot for ${host}: a topic holds at most ${HASH_RANGE_SIZE - 1} hosts`);
    }
  }
  return out;
}

/**
 * Birthday bound: the probability that at least two of n hosts share a slot when keys are plain
 * IPs (slots uniform over the 65,535 usable ones; slot 0 is folded into 1).
 */
export function collisionProbability(n: number, slots = HASH_RANGE_SIZE - 1): number {
  let pNone = 1;
  for (let i = 1; i < n; i++) pNone *= (slots - i) / slots;
  return 1 - pNone;
}
