// The state dir (`--state-dir`): the resource store on disk, so that a restarted agent knows the
// desired state it was given. Every goal state that changed the store is one journal record,
// appended and fdatasync'ed before its reply is sent; a snapshot of the whole store (written to a
// temporary file, fsync'ed, renamed, directory fsync'ed) replaces the journal once the journal
// has outgrown it. docs/restart.md describes the files and what an operator sees.
//
// Files (all in the one directory):
//   state.snapshot        the store as of record `seq` (absent until the first compaction)
//   journal.<seq>         records from <seq> on (16 digits, so names sort in order)
//   state.snapshot.tmp    a snapshot being written (removed at start)
//   corrupt-<time>/       state found corrupt at a start, moved aside
// Both kinds of file are a sequence of frames:
//   magic "ACAF" | flags u32 | seq f64 | payload length u32 | payload crc32 | header crc32 (of the
//   24 bytes before it) | payload (UTF-8 lines)
// flags: 1 = END (last frame of a record), 2 = META (the file's header, JSON). A record is one or
// more frames with the same seq, the last with END; it applies only when its END frame is there.
// Payload lines, tab-separated, values and keys as JSON (which has no raw tab or newline):
//   U <kind> [<value>,...]    each value's key holds it (a value carries its key)
//   D <kind> <tomb> <key>     the key holds nothing; tombstone revision <tomb> (0: none)
//   T <kind> <tomb> <key>     snapshot only: a tombstone
// Each line states a key's whole state, so replaying a record twice, or over a snapshot that
// already holds it, gives the same store.
import { type FileHandle, mkdir, open, readdir, rename, rm, stat, truncate, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Logger } from 'winston';
import { KINDS, type Kind, type ResourceOf } from '../dataplane/model.js';
import type { ChangeLog, ResourceStore } from './store.js';

export const SNAPSHOT_FILE = 'state.snapshot';
const TMP_SUFFIX = '.tmp';
const JOURNAL_RE = /^journal\.(\d{16})$/;
const journalName = (startSeq: number): string => `journal.${String(startSeq).padStart(16, '0')}`;

const MAGIC = 0x46414341; // "ACAF" in file order
const HEADER = 28;
const END = 1;
const META = 2;
const VERSION = 1;
/** Payload bytes per frame (a frame closes at the first line past this). */
const FRAME_BYTES = 1 << 20;
/** Bytes gathered before one write(2). */
const BUFFER_BYTES = 8 << 20;
/** Characters of JSON per line of upserts. */
const GROUP_CHARS = 256 << 10;
/** A background fdatasync every this many bytes of a large write. */
const SYNC_BYTES = 64 << 20;
/** A journal smaller than this is never compacted, whatever the snapshot's size. */
const COMPACT_MIN_BYTES = 4 << 20;
/** After a failed write: how long replies fail fast before the next attempt to save everything. */
const RETRY_MS = 2000;

const KIND_SET = new Set<string>(KINDS);

export class CorruptState extends Error {
  constructor(readonly file: string, readonly reason: string) {
    super(`${file}: ${reason}`);
  }
}

export interface StateDirOptions {
  /** The journal is compacted once larger than both this and the snapshot (default 4 MiB). */
  compactMinBytes?: number;
}

export interface LoadReport {
  /** Resources loaded, per kind. */
  counts: Record<Kind, number>;
  tombstones: number;
  /** Seq of the snapshot loaded (0: none). */
  snapshotSeq: number;
  /** Journal records replayed on top of it. */
  records: number;
  journals: number;
  bytes: number;
  /** Why the last record of a journal was ignored (a write cut short), if one was. */
  torn: string | null;
  /** The state was corrupt or unreadable and moved here; the agent starts empty. */
  movedAside: string | null;
  ms: number;
}

interface Frame { flags: number; seq: number; payload: Buffer; offset: number; end: number }

interface Entry { seq: number; changes: ChangeLog | null; resolve: (e: Error | null) => void }

interface Journal { name: string; bytes: number }

const asError = (e: unknown): Error => (e instanceof Error ? e : new Error(String(e)));

async function readExactly(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesRead } = await fh.read(buf, off, buf.length - off, position + off);
    if (bytesRead === 0) throw new Error(`unexpected end of file at offset ${position + off}`);
    off += bytesRead;
  }
}

async function writeAll(fh: FileHandle, buf: Buffer): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off, null);
    off += bytesWritten;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/**
 * Frames built straight into large buffers (each line written into place: no concatenated
 * strings, no copy per line), handed to write(2) one buffer at a time while the next one fills,
 * with an fdatasync started in the background every SYNC_BYTES so that the final one has little
 * left to do. Lines go into an open frame; a frame closes by itself past FRAME_BYTES (flags 0,
 * same seq) and explicitly with end(flags).
 */
class FrameWriter {
  private buf = Buffer.allocUnsafe(BUFFER_BYTES);
  private pos = 0;
  private frameStart = -1;
  private seq = 0;
  private writing: Promise<void> = Promise.resolve();
  private inFlight = 0;
  private syncing: Promise<void> = Promise.resolve();
  private unsynced = 0;
  /** Set after a buffer was handed off: the caller should await pace() (backpressure, and a turn for the event loop). */
  needsPace = false;
  /** Bytes written so far (all of them once flush() resolved). */
  bytes = 0;

  constructor(private readonly fh: FileHandle) {}

  begin(seq: number): void {
    this.seq = seq;
    this.frameStart = this.pos;
    this.pos += HEADER;
  }

  /** One line: `prefix` (ASCII) then `text` then a newline. */
  line(prefix: Buffer, text: string): void {
    const need = prefix.length + 3 * text.length + 1;
    if (this.pos - this.frameStart - HEADER >= FRAME_BYTES || this.pos + need > this.buf.length) {
      this.end(0);
      if (this.buf.length - this.pos < FRAME_BYTES + need + HEADER) this.spill(need + HEADER);
      this.begin(this.seq);
    }
    this.pos += prefix.copy(this.buf, this.pos);
    this.pos += this.buf.write(text, this.pos);
    this.buf[this.pos++] = 10;
  }

  /** Close the open frame. */
  end(flags: number): void {
    const h = this.frameStart;
    const payload = this.buf.subarray(h + HEADER, this.pos);
    this.buf.writeUInt32LE(MAGIC, h);
    this.buf.writeUInt32LE(flags, h + 4);
    this.buf.writeDoubleLE(this.seq, h + 8);
    this.buf.writeUInt32LE(payload.length, h + 16);
    this.buf.writeUInt32LE(crc32(payload), h + 20);
    this.buf.writeUInt32LE(crc32(this.buf.subarray(h, h + 24)), h + 24);
    this.frameStart = -1;
  }

  /** Hand the closed frames to the writer; continue in a new buffer of at least `room` bytes. */
  private spill(room = 0): void {
    if (this.pos === 0) return;
    const chunk = this.buf.subarray(0, this.pos);
    this.buf = Buffer.allocUnsafe(Math.max(BUFFER_BYTES, room + FRAME_BYTES));
    this.pos = 0;
    this.inFlight += 1;
    this.writing = this.writing.then(async () => {
      await writeAll(this.fh, chunk);
      this.inFlight -= 1;
      this.bytes += chunk.length;
      this.unsynced += chunk.length;
      if (this.unsynced >= SYNC_BYTES) {
        this.unsynced = 0;
        this.syncing = Promise.all([this.syncing, this.fh.datasync()]).then(() => undefined);
        this.syncing.catch(() => undefined);
      }
    });
    this.writing.catch(() => undefined);
    this.needsPace = true;
  }

  async pace(): Promise<void> {
    this.needsPace = false;
    if (this.inFlight >= 2) await this.writing;
    else await new Promise<void>((resolve) => setImmediate(resolve));
  }

  /** Write everything and fdatasync (fsync with `full`); rejects with the first error. */
  async flush(full = false): Promise<void> {
    this.spill();
    await this.writing;
    await this.syncing;
    await (full ? this.fh.sync() : this.fh.datasync());
  }
}

const prefixes = (tag: string): Record<Kind, Buffer> =>
  Object.fromEntries(KINDS.map((k) => [k, Buffer.from(`${tag}\t${k}\t`)])) as Record<Kind, Buffer>;
const UPSERT = prefixes('U');
const REMOVE = prefixes('D');
const TOMBSTONE = prefixes('T');
const NO_PREFIX = Buffer.alloc(0);

/**
 * Upserts of one kind in a row go out as one line holding a JSON array of values: one
 * JSON.stringify and one buffer write per few hundred values instead of one per value (and one
 * JSON.parse when loading). The group size follows the values' size, for lines of about
 * GROUP_CHARS.
 */
class UpsertGroups {
  private kind: Kind | null = null;
  private values: ResourceOf[Kind][] = [];
  private target = 64;

  constructor(private readonly w: FrameWriter) {}

  add(kind: Kind, value: ResourceOf[Kind]): void {
    if (kind !== this.kind) {
      this.flush();
      this.kind = kind;
    }
    this.values.push(value);
    if (this.values.length >= this.target) this.flush();
  }

  flush(): void {
    const n = this.values.length;
    if (n === 0) return;
    const text = JSON.stringify(this.values);
    this.w.line(UPSERT[this.kind!], text);
    this.target = Math.max(1, Math.min(4096, Math.floor((GROUP_CHARS * n) / text.length)));
    this.values = [];
  }
}

/**
 * Read a file's frames. Returns where the last whole frame ends and, when the file ends in a cut
 * frame (a write cut short), why; throws CorruptState for anything else that is not a frame.
 */
async function scanFrames(path: string, onFrame: (f: Frame) => void): Promise<{ size: number; torn: string | null }> {
  const fh = await open(path, 'r');
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new CorruptState(path, 'not a regular file');
    const size = st.size;
    const head = Buffer.allocUnsafe(HEADER);
    let pos = 0;
    while (pos < size) {
      if (size - pos < HEADER) return { size, torn: `the last ${size - pos} bytes (offset ${pos}) are a cut frame header` };
      await readExactly(fh, head, pos);
      if (head.readUInt32LE(0) !== MAGIC || crc32(head.subarray(0, 24)) !== head.readUInt32LE(24)) {
        if (await zeroesFrom(fh, pos, size)) return { size, torn: `the last ${size - pos} bytes (offset ${pos}) are zeroes` };
        throw new CorruptState(path, `no valid frame header at offset ${pos}`);
      }
      const len = head.readUInt32LE(16);
      const end = pos + HEADER + len;
      if (end > size) return { size, torn: `the frame at offset ${pos} is cut short (${size - pos - HEADER} of ${len} payload bytes)` };
      const payload = Buffer.allocUnsafe(len);
      await readExactly(fh, payload, pos + HEADER);
      if (crc32(payload) !== head.readUInt32LE(20)) {
        if (end === size) return { size, torn: `the last frame (offset ${pos}) fails its checksum` };
        throw new CorruptState(path, `the frame at offset ${pos} fails its checksum`);
      }
      onFrame({ flags: head.readUInt32LE(4), seq: head.readDoubleLE(8), payload, offset: pos, end });
      pos = end;
    }
    return { size, torn: null };
  } finally {
    await fh.close();
  }
}

async function zeroesFrom(fh: FileHandle, from: number, size: number): Promise<boolean> {
  const buf = Buffer.allocUnsafe(Math.min(1 << 20, size - from));
  for (let pos = from; pos < size; pos += buf.length) {
    const n = Math.min(buf.length, size - pos);
    await readExactly(fh, buf.subarray(0, n), pos);
    for (let i = 0; i < n; i++) if (buf[i] !== 0) return false;
  }
  return true;
}

function parseMeta(path: string, f: Frame, format: string): Record<string, unknown> {
  if ((f.flags & META) === 0) throw new CorruptState(path, 'the file does not start with its header frame');
  let meta: unknown;
  try {
    meta = JSON.parse(f.payload.toString('utf8'));
  } catch {
    throw new CorruptState(path, 'the header frame is not JSON');
  }
  const m = meta as Record<string, unknown>;
  if (m.format !== format) throw new CorruptState(path, `the header says format ${JSON.stringify(m.format)}, not ${format}`);
  if (m.version !== VERSION) throw new CorruptState(path, `format version ${JSON.stringify(m.version)} is not known to this agent (it reads ${VERSION})`);
  return m;
}

/** One record's lines, parsed, not yet applied. */
class Ops {
  kinds: Kind[] = [];
  keys: string[] = [];
  values: (ResourceOf[Kind] | null)[] = [];
  tombs: number[] = [];

  parse(path: string, text: string, snapshot: boolean): void {
    let start = 0;
    while (start < text.length) {
      let nl = text.indexOf('\n', start);
      if (nl < 0) nl = text.length;
      const line = text.slice(start, nl);
      start = nl + 1;
      const t1 = line.indexOf('\t');
      const t2 = line.indexOf('\t', t1 + 1);
      const tag = line.slice(0, t1);
      const kind = line.slice(t1 + 1, t2 < 0 ? undefined : t2);
      if (t1 !== 1 || t2 < 0 || !KIND_SET.has(kind)) throw new CorruptState(path, `not a state line: ${line.slice(0, 80)}`);
      try {
        if (tag === 'U') {
          const values = JSON.parse(line.slice(t2 + 1)) as unknown;
          if (!Array.isArray(values)) throw new Error('not an array of values');
          for (const value of values as ResourceOf[Kind][]) {
            if (typeof value !== 'object' || value === null || typeof value.key !== 'string') throw new Error('a value without a key');
            this.push(kind as Kind, value.key, value, 0);
          }
        } else if (tag === 'D' || (snapshot && tag === 'T')) {
          const t3 = line.indexOf('\t', t2 + 1);
          const tomb = Number(line.slice(t2 + 1, t3));
          const key = JSON.parse(line.slice(t3 + 1)) as unknown;
          if (t3 < 0 || !Number.isInteger(tomb) || tomb < 0 || typeof key !== 'string') throw new Error('bad removal');
          this.push(kind as Kind, key, null, tomb);
        } else {
          throw new Error(`unknown tag ${tag}`);
        }
      } catch (e) {
        if (e instanceof CorruptState) throw e;
        throw new CorruptState(path, `bad state line (${asError(e).message}): ${line.slice(0, 80)}`);
      }
    }
  }

  private push(kind: Kind, key: string, value: ResourceOf[Kind] | null, tomb: number): void {
    if (value !== null) upgradeValue(kind, value);
    this.kinds.push(kind);
    this.keys.push(key);
    this.values.push(value);
    this.tombs.push(tomb);
  }

  applyTo(store: ResourceStore): void {
    for (let i = 0; i < this.kinds.length; i++) store.restore(this.kinds[i]!, this.keys[i]!, this.values[i]!, this.tombs[i]!);
  }

  clear(): void {
    this.kinds = [];
    this.keys = [];
    this.values = [];
    this.tombs = [];
  }

  get length(): number { return this.kinds.length; }
}

/**
 * The state dir of one agent. open() loads what it holds into the store (before the dataplane
 * starts) and makes the store record its changes; commit() saves one goal state's changes and
 * resolves once they are on disk (null) or could not be saved (the error).
 */
export class StateDir {
  /** Seq of the last record handed to commit() (the store holds every change up to it). */
  private seq = 0;
  private queue: Entry[] = [];
  private writing: Promise<void> | null = null;
  private journals: Journal[] = [];
  private current: FileHandle | null = null;
  private snapshotBytes = 0;
  private compacting: Promise<void> | null = null;
  /** A compaction is starting (its journal rotation), before `compacting` is set. */
  private compactionStarting = false;
  private compactAfter = 0;
  /** Set when a write failed: until a full snapshot succeeds, nothing counts as saved. */
  private broken: Error | null = null;
  private retryAt = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private closing = false;
  private readonly compactMinBytes: number;

  private constructor(readonly dir: string, private readonly store: ResourceStore, private readonly log: Logger, opts: StateDirOptions) {
    this.compactMinBytes = opts.compactMinBytes ?? COMPACT_MIN_BYTES;
  }

  /** Create the dir if missing, load it into the (empty) store, get ready to append. */
  static async open(dir: string, store: ResourceStore, log: Logger, opts: StateDirOptions = {}): Promise<{ state: StateDir; report: LoadReport }> {
    const s = new StateDir(dir, store, log, opts);
    try {
      await mkdir(dir, { recursive: true });
    } catch (e) {
      throw new Error(`state dir ${dir}: cannot create it: ${asError(e).message}`);
    }
    const report = await s.load();
    store.recordChanges(true);
    return { state: s, report };
  }

  /** What /v1/info shows. */
  info(): Record<string, unknown> {
    return {
      dir: this.dir, seq: this.seq, saving: this.broken === null ? 'ok' : `failing: ${this.broken.message}`,
      journalBytes: this.journalBytes(), snapshotBytes: this.snapshotBytes, compacting: this.compacting !== null || this.compactionStarting,
    };
  }

  private journalBytes(): number {
    let n = 0;
    for (const j of this.journals) n += j.bytes;
    return n;
  }

  private async load(): Promise<LoadReport> {
    const t0 = performance.now();
    const report: LoadReport = {
      counts: this.store.counts(), tombstones: 0, snapshotSeq: 0, records: 0, journals: 0, bytes: 0, torn: null, movedAside: null, ms: 0,
    };
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (e) {
      throw new Error(`state dir ${this.dir}: cannot read it: ${asError(e).message}`);
    }
    for (const n of names) if (n.endsWith(TMP_SUFFIX)) await rm(join(this.dir, n), { force: true });
    const journalNames = names.filter((n) => JOURNAL_RE.test(n)).sort();
    const hasSnapshot = names.includes(SNAPSHOT_FILE);
    let file = '';
    try {
      if (hasSnapshot) {
        file = join(this.dir, SNAPSHOT_FILE);
        const r = await this.loadSnapshot(file);
        report.snapshotSeq = this.seq;
        report.bytes += r;
        this.snapshotBytes = r;
      }
      for (const name of journalNames) {
        file = join(this.dir, name);
        const r = await this.loadJournal(file);
        report.records += r.records;
        report.bytes += r.size;
        if (r.torn && r.good > 0) {
          report.torn = `${file}: ${r.torn}`;
          this.log.warn('state: the last journal record was cut short (a write interrupted); ignored', { file, reason: r.torn, keptBytes: r.good });
          await truncate(file, r.good);
          const fh = await open(file, 'r+');
          await fh.sync().finally(() => fh.close());
        }
        // A journal whose header never made it to disk (a crash right after creating it) held nothing.
        if (r.good === 0) await unlink(file);
        else this.journals.push({ name, bytes: r.torn ? r.good : r.size });
      }
      report.journals = journalNames.length;
    } catch (e) {
      const reason = e instanceof CorruptState ? e.reason : asError(e).message;
      const where = e instanceof CorruptState ? e.file : file;
      this.store.clear();
      this.seq = 0;
      this.journals = [];
      this.snapshotBytes = 0;
      const aside = join(this.dir, `corrupt-${new Date().toISOString().replace(/:/g, '-')}`);
      await mkdir(aside, { recursive: true });
      for (const n of [...(hasSnapshot ? [SNAPSHOT_FILE] : []), ...journalNames]) {
        await rename(join(this.dir, n), join(aside, n)).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
        });
      }
      await fsyncDir(this.dir);
      this.log.error('state: corrupt or unreadable, moved aside; starting with an empty store', { file: where, reason, movedTo: aside });
      report.movedAside = aside;
      report.torn = null;
      report.records = 0;
      report.snapshotSeq = 0;
    }
    if (this.journals.length === 0) await this.newJournal();
    this.current = await open(join(this.dir, this.journals[this.journals.length - 1]!.name), 'a');
    report.counts = this.store.counts();
    report.tombstones = this.store.tombstoneCount();
    report.ms = performance.now() - t0;
    this.log.info('state loaded', {
      dir: this.dir, resources: report.counts, tombstones: report.tombstones, snapshotSeq: report.snapshotSeq,
      journalRecords: report.records, bytes: report.bytes, ms: Math.round(report.ms),
    });
    return report;
  }

  private async loadSnapshot(path: string): Promise<number> {
    let meta: Record<string, unknown> | null = null;
    let ended = false;
    let n = 0;
    const ops = new Ops();
    const r = await scanFrames(path, (f) => {
      if (meta === null) {
        meta = parseMeta(path, f, 'aca-state-snapshot');
        return;
      }
      if (ended) throw new CorruptState(path, `data after the end (offset ${f.offset})`);
      ops.parse(path, f.payload.toString('utf8'), true);
      n += ops.length;
      ops.applyTo(this.store);
      ops.clear();
      if (f.flags & END) ended = true;
    });
    // A snapshot is renamed into place whole: a cut one is corrupt, not torn.
    if (r.torn) throw new CorruptState(path, r.torn);
    if (meta === null || !ended) throw new CorruptState(path, 'the snapshot has no end frame (cut short)');
    const m = meta as Record<string, unknown>;
    const expected = Number(m.entries);
    if (n !== expected) throw new CorruptState(path, `the snapshot holds ${n} entries, its header says ${expected}`);
    const seq = Number(m.seq);
    if (!Number.isSafeInteger(seq) || seq < 0) throw new CorruptState(path, `the header's seq ${JSON.stringify(m.seq)} is not a record number`);
    this.seq = seq;
    return r.size;
  }

  private async loadJournal(path: string): Promise<{ records: number; size: number; good: number; torn: string | null }> {
    let meta = false;
    let records = 0;
    let pending: Ops | null = null;
    let pendingSeq = 0;
    let pendingStart = 0;
    let good = 0;
    const r = await scanFrames(path, (f) => {
      if (!meta) {
        parseMeta(path, f, 'aca-state-journal');
        meta = true;
        good = f.end;
        return;
      }
      if (pending === null) {
        pending = new Ops();
        pendingSeq = f.seq;
        pendingStart = f.offset;
      } else if (f.seq !== pendingSeq) {
        throw new CorruptState(path, `record ${pendingSeq} (offset ${pendingStart}) has no end frame but record ${f.seq} follows`);
      }
      pending.parse(path, f.payload.toString('utf8'), false);
      if (f.flags & END) {
        if (pendingSeq > this.seq) {
          pending.applyTo(this.store);
          this.seq = pendingSeq;
          records += 1;
        }
        pending = null;
        good = f.end;
      }
    });
    let torn = r.torn;
    if (pending !== null) torn = `record ${pendingSeq} (offset ${pendingStart}) has no end frame${torn ? `; ${torn}` : ''}`;
    // An empty journal (a crash right after it was created) is fine: nothing was in it.
    return { records, size: r.size, good, torn };
  }

  private async newJournal(): Promise<void> {
    const name = journalName(this.seq + 1);
    const path = join(this.dir, name);
    const fh = await open(path, 'w');
    try {
      const w = new FrameWriter(fh);
      w.begin(0);
      w.line(NO_PREFIX, JSON.stringify({ format: 'aca-state-journal', version: VERSION, startSeq: this.seq + 1, createdAt: new Date().toISOString() }));
      w.end(META | END);
      await w.flush(true);
      await fsyncDir(this.dir);
      this.journals.push({ name, bytes: w.bytes });
    } catch (e) {
      await fh.close().catch(() => undefined);
      await rm(path, { force: true });
      throw e;
    }
    await fh.close();
  }

  /**
   * Save one goal state's changes (taken from the store right after it changed it; null or empty
   * when it changed nothing). Resolves with null once they, and everything before them, are on
   * disk; with the error when they could not be saved.
   */
  commit(changes: ChangeLog | null): Promise<Error | null> {
    if (this.closing) return Promise.resolve(new Error('the state dir is closed'));
    const seq = changes && changes.kinds.length > 0 ? ++this.seq : 0;
    return new Promise((resolve) => {
      this.queue.push({ seq, changes: seq > 0 ? changes : null, resolve });
      this.kick();
    });
  }

  private kick(): void {
    if (this.writing) return;
    this.writing = this.drain().finally(() => {
      this.writing = null;
      if (this.queue.length > 0) this.kick();
    });
  }

  /** One writer: batches of records, each batch one fdatasync (group commit). */
  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.queue.length);
      let error: Error | null = null;
      // Whether this batch tried the disk (a batch that only waits for the next retry does not
      // move that retry later: steady traffic must not starve it).
      let tried = true;
      try {
        if (this.broken) {
          if (Date.now() < this.retryAt) {
            tried = false;
            throw this.broken;
          }
          await this.saveEverything();
        } else if (batch.some((e) => e.changes !== null)) {
          await this.append(batch);
        }
      } catch (e) {
        error = asError(e);
        if (this.broken === null) this.log.error('state: cannot save goal states; their resources answer FAILURE until it can', { dir: this.dir, error: error.message });
        this.broken = error;
        if (tried) this.retryAt = Date.now() + RETRY_MS;
        this.scheduleRetry();
      }
      for (const e of batch) e.resolve(error);
      if (this.broken === null && this.compacting === null && !this.closing && Date.now() >= this.compactAfter
        && this.journalBytes() > Math.max(this.snapshotBytes, this.compactMinBytes)) {
        await this.startCompaction();
      }
    }
  }

  private async append(batch: Entry[]): Promise<void> {
    const fh = this.current!;
    const w = new FrameWriter(fh);
    const journal = this.journals[this.journals.length - 1]!;
    try {
      for (const e of batch) {
        const c = e.changes;
        if (c === null) continue;
        w.begin(e.seq);
        const upserts = new UpsertGroups(w);
        for (let i = 0; i < c.kinds.length; i++) {
          const item = c.items[i]!;
          if (typeof item === 'string') {
            upserts.flush();
            w.line(REMOVE[c.kinds[i]!], `${c.tombs[i]!}\t${JSON.stringify(item)}`);
          } else {
            upserts.add(c.kinds[i]!, item);
          }
          if (w.needsPace) await w.pace();
        }
        upserts.flush();
        w.end(END);
      }
      await w.flush();
    } finally {
      journal.bytes += w.bytes;
    }
  }

  /** After a failed write: a new journal and a snapshot of the whole store, then the old journals go. */
  private async saveEverything(): Promise<void> {
    if (this.compacting) await this.compacting;
    await this.rotate();
    const old = this.journals.slice(0, -1);
    await this.writeSnapshot(this.seq, this.store.capture());
    await this.dropJournals(old);
    this.broken = null;
    this.log.info('state: saved again (a full snapshot); goal states answer SUCCESS again', { dir: this.dir, seq: this.seq });
  }

  private scheduleRetry(): void {
    if (this.retryTimer || this.closing) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.broken === null || this.closing) return;
      this.queue.push({ seq: 0, changes: null, resolve: () => undefined });
      this.kick();
    }, RETRY_MS + 10);
    this.retryTimer.unref();
  }

  /** Later records go to a new journal file (unless the current one holds none yet). */
  private async rotate(): Promise<void> {
    if (this.journals[this.journals.length - 1]?.name === journalName(this.seq + 1)) return;
    await this.newJournal();
    const previous = this.current;
    this.current = await open(join(this.dir, this.journals[this.journals.length - 1]!.name), 'a');
    await previous?.close().catch(() => undefined);
  }

  /**
   * Compaction: later records go to a new journal; a snapshot of the store as of now is written
   * in the background (records keep being appended meanwhile); once it is in place the journals
   * it covers are deleted. A failure loses nothing: the journals still hold every record.
   */
  private async startCompaction(): Promise<void> {
    let old: Journal[];
    this.compactionStarting = true;
    try {
      await this.rotate();
      old = this.journals.slice(0, -1);
    } catch (e) {
      this.log.warn('state: compaction could not start a new journal; retrying later', { error: asError(e).message });
      this.compactAfter = Date.now() + 30_000;
      return;
    } finally {
      this.compactionStarting = false;
    }
    const seq = this.seq;
    const image = this.store.capture();
    const t0 = performance.now();
    this.compacting = this.writeSnapshot(seq, image)
      .then(async (bytes) => {
        await this.dropJournals(old);
        this.log.info('state compacted', { dir: this.dir, seq, snapshotBytes: bytes, ms: Math.round(performance.now() - t0) });
      })
      .catch((e: unknown) => {
        if (!this.closing) this.log.warn('state: compaction failed; the journal still holds everything; retrying later', { dir: this.dir, error: asError(e).message });
        this.compactAfter = Date.now() + 30_000;
      })
      .finally(() => { this.compacting = null; });
  }

  private async dropJournals(old: Journal[]): Promise<void> {
    for (const j of old) await unlink(join(this.dir, j.name)).catch(() => undefined);
    this.journals = this.journals.filter((j) => !old.includes(j));
    await fsyncDir(this.dir);
  }

  /** The store as captured, as of record `seq`: to a temporary file, fsync, rename, fsync the dir. */
  private async writeSnapshot(seq: number, image: ReturnType<ResourceStore['capture']>): Promise<number> {
    const path = join(this.dir, SNAPSHOT_FILE);
    const tmp = path + TMP_SUFFIX;
    const counts = {} as Record<Kind, number>;
    let entries = 0;
    let tombstones = 0;
    for (const k of KINDS) {
      counts[k] = image.tables[k].size;
      entries += image.tables[k].size + image.tombstones[k].size;
      tombstones += image.tombstones[k].size;
    }
    const fh = await open(tmp, 'w');
    const w = new FrameWriter(fh);
    try {
      w.begin(seq);
      w.line(NO_PREFIX, JSON.stringify({ format: 'aca-state-snapshot', version: VERSION, seq, createdAt: new Date().toISOString(), counts, tombstones, entries }));
      w.end(META);
      w.begin(seq);
      const upserts = new UpsertGroups(w);
      for (const k of KINDS) {
        for (const v of image.tables[k].values()) {
          upserts.add(k, v);
          if (w.needsPace) {
            if (this.closing) throw new Error('closing');
            await w.pace();
          }
        }
        upserts.flush();
        for (const [key, tomb] of image.tombstones[k]) {
          w.line(TOMBSTONE[k], `${tomb}\t${JSON.stringify(key)}`);
          if (w.needsPace) await w.pace();
        }
      }
      w.end(END);
      await w.flush(true);
      await fh.close();
    } catch (e) {
      await fh.close().catch(() => undefined);
      await rm(tmp, { force: true });
      throw e;
    }
    await rename(tmp, path);
    await fsyncDir(this.dir);
    this.snapshotBytes = w.bytes;
    return w.bytes;
  }

  /** Everything committed so far is on disk (or failed); for tests and stop. */
  async idle(): Promise<void> {
    while (this.writing || this.compacting) {
      await this.writing;
      await this.compacting;
    }
  }

  /** Finish what was committed, abandon a compaction in progress, close the journal. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    await this.idle();
    await this.current?.close().catch(() => undefined);
    this.current = null;
  }
}

/** Sizes of the files in a state dir (for tests and the benchmark). */
export async function stateDirFiles(dir: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const n of await readdir(dir).catch(() => [] as string[])) {
    const st = await stat(join(dir, n));
    out[n] = st.isFile() ? st.size : -1;
  }
  return out;
}

/**
 * Fields a resource gained after a state dir was written take their "absent" value when it is
 * loaded, so an upgraded agent reads its predecessor's state (docs/install.md, upgrades).
 */
function upgradeValue(kind: Kind, value: ResourceOf[Kind]): void {
  const v = value as unknown as Record<string, unknown>;
  if (kind === 'port' && v.elasticIps === undefined) v.elasticIps = [];
  if (kind === 'router' && v.externalGateway === undefined) v.externalGateway = null;
}
