// A private, rootless Open vSwitch 3.1 for tests: its own ovsdb-server and ovs-vswitchd in a
// temporary directory, dummy datapath, no kernel interfaces. Child processes get argument
// arrays; nothing reaches a shell.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

export interface OvsSandbox {
  dir: string;
  env: Record<string, string>;
  dbSocket: string;
  vsctl(...args: string[]): Promise<string>;
  ofctl(...args: string[]): Promise<string>;
  appctl(...args: string[]): Promise<string>;
  /** Stop ovs-vswitchd (as a package upgrade or crash would) and wait until it is gone. */
  stopVswitchd(): Promise<void>;
  startVswitchd(): Promise<void>;
  stop(): Promise<void>;
}

const VSWITCHD_ARGS = ['--detach', '--no-chdir', '--pidfile', '--log-file', '-vconsole:off', '--enable-dummy', '--disable-system', '--disable-system-route'];

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Why real-OVS tests cannot run here, or null when they can. */
export async function ovsMissing(): Promise<string | null> {
  for (const bin of ['ovsdb-server', 'ovs-vswitchd', 'ovs-vsctl', 'ovs-ofctl', 'ovs-appctl', 'ovsdb-tool']) {
    const r = await execa('which', [bin], { reject: false });
    if (r.exitCode !== 0) return `${bin} is not installed (apt-get install openvswitch-switch); real-OVS tests skipped`;
  }
  return null;
}

export async function startSandbox(): Promise<OvsSandbox> {
  const dir = mkdtempSync(join(tmpdir(), 'ovs-sb-'));
  const env = { OVS_RUNDIR: dir, OVS_LOGDIR: dir, OVS_DBDIR: dir, OVS_SYSCONFDIR: dir };
  const run = (bin: string, args: string[]): Promise<string> =>
    execa(bin, args, { env, extendEnv: true }).then((r) => r.stdout);
  const db = join(dir, 'conf.db');
  const dbSocket = join(dir, 'db.sock');
  await run('ovsdb-tool', ['create', db, '/usr/share/openvswitch/vswitch.ovsschema']);
  await run('ovsdb-server', ['--detach', '--no-chdir', '--pidfile', '--log-file', '-vconsole:off', `--remote=punix:${dbSocket}`, db]);
  await run('ovs-vsctl', ['--no-wait', 'init']);
  await run('ovs-vswitchd', VSWITCHD_ARGS);
  return {
    dir, env, dbSocket,
    vsctl: (...args) => run('ovs-vsctl', args),
    ofctl: (...args) => run('ovs-ofctl', args),
    appctl: (...args) => run('ovs-appctl', args),
    async stopVswitchd() {
      const pid = Number(readFileSync(join(dir, 'ovs-vswitchd.pid'), 'utf8').trim());
      await execa('ovs-appctl', ['-t', 'ovs-vswitchd', 'exit'], { env, reject: false });
      // `exit` answers before the process is gone; a new one would find the pidfile still held.
      for (let i = 0; i < 2000 && alive(pid); i++) await new Promise((r) => setTimeout(r, 10));
    },
    async startVswitchd() {
      await run('ovs-vswitchd', VSWITCHD_ARGS);
    },
    async stop() {
      await execa('ovs-appctl', ['-t', 'ovs-vswitchd', 'exit'], { env, reject: false });
      await execa('ovs-appctl', ['-t', 'ovsdb-server', 'exit'], { env, reject: false });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Run each command line of a script against a fresh sandbox (file arguments relative to cwd). */
export async function runOnRealOvs(lines: string[], cwd: string): Promise<{ stdout: string; stderr: string; status: number }[]> {
  const { words } = await import('../../ovs-sim/index.js');
  const sb = await startSandbox();
  try {
    const out: { stdout: string; stderr: string; status: number }[] = [];
    for (const line of lines) {
      const argv = words(line);
      const r = await execa(argv[0]!, argv.slice(1), { env: sb.env, cwd, reject: false, stdin: 'ignore' });
      out.push({ stdout: r.stdout, stderr: r.stderr, status: r.exitCode ?? 1 });
    }
    return out;
  } finally {
    await sb.stop();
  }
}
