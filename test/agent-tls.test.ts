// TLS on the agent's gRPC server and clients, with certificates made by openssl for the test:
// TLS pushes (good; plaintext refused; a wrong CA refused), mutual TLS (a client certificate of
// the right CA accepted; none, or one of another CA, refused), certificates re-read on SIGHUP,
// the controller client over mutual TLS, and the warning for plaintext beyond loopback.
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import test from 'ava';
import { type ResultPromise, execa } from 'execa';
import { resolveConfig } from '../agent/config.js';
import { startAgent } from '../agent/daemon.js';
import { createLogger } from '../agent/log.js';
import { OperationStatus, RequestType } from '../proto/gen/alcor/common.js';
import { GoalStateProvisionerService, type HostRequest, type HostRequestReply } from '../proto/gen/alcor/goalstateprovisioner.js';
import { freePort } from './helpers/agents.js';
import { NotifySocket } from './helpers/notify-socket.js';
import { until } from './helpers/wait.js';

const aca = new URL('../bin/aca.mjs', import.meta.url).pathname;
const fixture = new URL('./fixtures/ncm-port-create.json', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'aca-tls-'));
const p = (name: string): string => join(dir, name);
let openssl = true;

async function ssl(args: string[]): Promise<void> {
  await execa('openssl', args, { cwd: dir });
}
/** A CA, and certificates it signs for 127.0.0.1/localhost (server and client use). */
async function makeCa(name: string): Promise<void> {
  await ssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`]);
}
async function makeCert(name: string, ca: string): Promise<void> {
  await ssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
  await ssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', 'ext.cnf']);
}

test.before(async () => {
  if ((await execa('openssl', ['version'], { reject: false }).catch(() => ({ exitCode: 1 }))).exitCode !== 0) {
    openssl = false;
    return;
  }
  writeFileSync(p('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n');
  await makeCa('ca1');
  await makeCa('ca2');
  await makeCert('server1', 'ca1');
  await makeCert('server2', 'ca2');
  await makeCert('client1', 'ca1');
  await makeCert('client2', 'ca2');
});

function skipWithoutOpenssl(t: { pass(): void }): boolean {
  if (openssl) return false;
  console.log('skipped: openssl is not installed, so no test certificates can be made');
  t.pass();
  return true;
}

async function startDaemon(args: string[], env: Record<string, string> = {}): Promise<{ child: ResultPromise; grpc: string; admin: string; log: () => string }> {
  const [g, a] = [await freePort(), await freePort()];
  const child = execa(process.execPath, [aca, 'agent', '--listen', `127.0.0.1:${g}`, '--admin', `127.0.0.1:${a}`, '--host-ip', '10.0.0.11', ...args], { reject: false, env });
  let log = '';
  child.stderr?.on('data', (d: Buffer) => { log += d.toString(); });
  await until(() => fetch(`http://127.0.0.1:${a}/readyz`).then((r) => r.status === 200, () => false), 'the agent to be ready');
  return { child, grpc: `127.0.0.1:${g}`, admin: `127.0.0.1:${a}`, log: () => log };
}

const push = (addr: string, args: string[]) => execa(process.execPath, [aca, 'push', fixture, '--agent', addr, '--connect-timeout', '3', ...args], { reject: false });

test.serial('TLS: a push that trusts the CA succeeds; plaintext and a wrong CA are refused; SIGHUP re-reads the certificate', async (t) => {
  if (skipWithoutOpenssl(t)) return;
  copyFileSync(p('server1.crt'), p('live.crt'));
  copyFileSync(p('server1.key'), p('live.key'));
  const sock = new NotifySocket();
  const d = await startDaemon(['--tls-cert', p('live.crt'), '--tls-key', p('live.key')], { NOTIFY_SOCKET: sock.path });
  try {
    const good = await push(d.grpc, ['--tls-ca', p('ca1.crt')]);
    t.is(good.exitCode, 0, good.stderr);
    t.regex(good.stdout, /PORT\s+P1\s+CREATE\s+SUCCESS/);
    const [plain, wrong] = await Promise.all([push(d.grpc, []), push(d.grpc, ['--tls-ca', p('ca2.crt')])]);
    t.is(plain.exitCode, 2);
    t.regex(plain.stderr, /cannot connect to the agent/);
    t.is(wrong.exitCode, 2);
    t.regex(wrong.stderr, /cannot connect to the agent/);
    // Renewed in place (same paths), then SIGHUP: new connections get the new certificate.
    copyFileSync(p('server2.crt'), p('live.crt'));
    copyFileSync(p('server2.key'), p('live.key'));
    const before = sock.messages.length;
    d.child.kill('SIGHUP');
    await sock.next((m) => m.READY === '1', 'READY=1 after the reload', before);
    t.regex(d.log(), /TLS certificates re-read/);
    const [now2, now1] = await Promise.all([push(d.grpc, ['--tls-ca', p('ca2.crt')]), push(d.grpc, ['--tls-ca', p('ca1.crt')])]);
    t.is(now2.exitCode, 0, now2.stderr);
    t.is(now1.exitCode, 2);
  } finally {
    d.child.kill('SIGTERM');
    await d.child;
    sock.close();
  }
});

test.serial('mutual TLS: a client certificate of the client CA is required', async (t) => {
  if (skipWithoutOpenssl(t)) return;
  const d = await startDaemon(['--tls-cert', p('server1.crt'), '--tls-key', p('server1.key'), '--tls-client-ca', p('ca1.crt')]);
  try {
    const [good, none, foreign] = await Promise.all([
      push(d.grpc, ['--tls-ca', p('ca1.crt'), '--tls-cert', p('client1.crt'), '--tls-key', p('client1.key')]),
      push(d.grpc, ['--tls-ca', p('ca1.crt')]),
      push(d.grpc, ['--tls-ca', p('ca1.crt'), '--tls-cert', p('client2.crt'), '--tls-key', p('client2.key')]),
    ]);
    t.is(good.exitCode, 0, good.stderr);
    t.regex(good.stdout, /PORT\s+P1\s+CREATE\s+SUCCESS/);
    t.is(none.exitCode, 2, 'no client certificate');
    t.is(foreign.exitCode, 2, 'a client certificate of another CA');
    const half = await execa(process.execPath, [aca, 'push', fixture, '--agent', d.grpc, '--tls-ca', p('ca1.crt'), '--tls-cert', p('client1.crt')], { reject: false });
    t.is(half.exitCode, 2);
    t.regex(half.stderr, /give the client certificate and its key together/);
  } finally {
    d.child.kill('SIGTERM');
    await d.child;
  }
});

test.serial('bad TLS settings stop the agent with a clear message', async (t) => {
  if (skipWithoutOpenssl(t)) return;
  const mismatch = await execa(process.execPath, [aca, 'agent', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--host-ip', '10.0.0.11', '--tls-cert', p('server1.crt'), '--tls-key', p('server2.key')], { reject: false });
  t.is(mismatch.exitCode, 2);
  t.regex(mismatch.stderr, /TLS files .* are not usable/);
  const alone = await execa(process.execPath, [aca, 'agent', '--print-config', '--tls-cert', p('server1.crt')], { reject: false });
  t.is(alone.exitCode, 2);
  t.regex(alone.stderr, /tlsCert and tlsKey go together/);
});

test.serial('the controller client speaks mutual TLS to the controller: AGENT_RESTARTED arrives', async (t) => {
  if (skipWithoutOpenssl(t)) return;
  const { readFileSync } = await import('node:fs');
  const requests: HostRequest[] = [];
  const server = new grpc.Server();
  const unimplemented = (_: unknown, cb: grpc.sendUnaryData<never>) => cb({ code: grpc.status.UNIMPLEMENTED });
  server.addService(GoalStateProvisionerService, {
    pushNetworkResourceStates: unimplemented,
    pushGoalStatesStream: (call: grpc.ServerDuplexStream<unknown, unknown>) => call.end(),
    pushGoalstates: unimplemented,
    requestGoalStates: (call: grpc.ServerUnaryCall<HostRequest, HostRequestReply>, cb: grpc.sendUnaryData<HostRequestReply>) => {
      requests.push(call.request);
      cb(null, { formatVersion: 1, operationStatuses: call.request.stateRequests.map((r) => ({ requestId: r.requestId, operationStatus: OperationStatus.SUCCESS })), totalOperationTime: 0 });
    },
  });
  const creds = grpc.ServerCredentials.createSsl(readFileSync(p('ca1.crt')), [{ cert_chain: readFileSync(p('server1.crt')), private_key: readFileSync(p('server1.key')) }], true);
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', creds, (e, n) => (e ? rej(e) : res(n))));
  const agent = await startAgent(resolveConfig({
    listen: '127.0.0.1:0', admin: '127.0.0.1:0', hostIp: '10.0.0.11', controller: `127.0.0.1:${port}`,
    tlsCert: p('client1.crt'), tlsKey: p('client1.key'), controllerTlsCa: p('ca1.crt'),
  }), createLogger('error', 'json', new PassThrough()));
  try {
    await until(() => requests.length > 0, 'AGENT_RESTARTED at the controller');
    t.is(requests[0]!.stateRequests[0]!.requestType, RequestType.AGENT_RESTARTED);
  } finally {
    await agent.stop();
    server.forceShutdown();
  }
});

test.serial('plaintext beyond loopback is logged as a warning; on loopback it is not', async (t) => {
  const capture = async (listen: string): Promise<string> => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (d: Buffer) => { text += d.toString(); });
    const agent = await startAgent(resolveConfig({ listen, admin: '127.0.0.1:0', hostIp: '10.0.0.11', dataplane: 'none' }), createLogger('warn', 'json', out));
    await agent.stop();
    return text;
  };
  t.regex(await capture('0.0.0.0:0'), /gRPC listens beyond loopback without TLS/);
  t.notRegex(await capture('127.0.0.1:0'), /without TLS/);
});
