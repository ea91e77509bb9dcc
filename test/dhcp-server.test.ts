// DHCP server decisions (RFC 2131) for every client state, independent of packet bytes.
import test from 'ava';
import { DHCP, type DhcpClientMessage, type DhcpLease, decide, prefixToMask } from '../dataplane/dhcp-server.js';

const lease: DhcpLease = {
  ip: '10.1.0.5', prefix: 24, gateway: { ip: '10.1.0.1', mac: '6c:dd:ee:00:00:40' },
  dns: ['10.1.0.2', '8.8.8.8'], hostName: 'vm-1', mtu: 1450,
};
const config = { leaseSeconds: 86400, domain: 'openstacklocal' };
const msg = (over: Partial<DhcpClientMessage>): DhcpClientMessage => ({
  type: DHCP.DISCOVER, xid: 0x1234, broadcast: false, ciaddr: '0.0.0.0', giaddr: '0.0.0.0',
  chaddr: '00:aa:bb:15:eb:3f', requestedIp: null, serverId: null, ...over,
});
const reply = (d: ReturnType<typeof decide>) => {
  if (!('reply' in d)) throw new Error(`expected a reply, got: ${d.ignored}`);
  return d.reply;
};

test('DISCOVER gets an OFFER with every option, from the gateway', (t) => {
  const r = reply(decide(msg({}), lease, config));
  t.is(r.type, DHCP.OFFER);
  t.is(r.yiaddr, '10.1.0.5');
  t.is(r.serverId, '10.1.0.1');
  t.is(r.serverMac, '6c:dd:ee:00:00:40');
  t.deepEqual(r.options, {
    subnetMask: '255.255.255.0', router: '10.1.0.1', dns: ['10.1.0.2', '8.8.8.8'], hostName: 'vm-1',
    domain: 'openstacklocal', mtu: 1450, leaseSeconds: 86400, renewalSeconds: 43200, rebindingSeconds: 75600,
  });
  // No broadcast flag, no ciaddr: unicast to the offered address.
  t.deepEqual(r.to, { mac: '00:aa:bb:15:eb:3f', ip: '10.1.0.5' });
});

test('the broadcast flag is honoured', (t) => {
  t.deepEqual(reply(decide(msg({ broadcast: true }), lease, config)).to, { mac: 'ff:ff:ff:ff:ff:ff', ip: '255.255.255.255' });
  t.true(reply(decide(msg({ broadcast: true }), lease, config)).broadcastFlag);
});

test('REQUEST while SELECTING: ACK for our address, NAK for a wrong one, silence for another server', (t) => {
  t.is(reply(decide(msg({ type: DHCP.REQUEST, serverId: '10.1.0.1', requestedIp: '10.1.0.5' }), lease, config)).type, DHCP.ACK);
  const nak = reply(decide(msg({ type: DHCP.REQUEST, serverId: '10.1.0.1', requestedIp: '10.1.0.9' }), lease, config));
  t.is(nak.type, DHCP.NAK);
  t.is(nak.to.ip, '255.255.255.255');
  t.regex(nak.options.message ?? '', /requested 10\.1\.0\.9, bound 10\.1\.0\.5/);
  t.true('ignored' in decide(msg({ type: DHCP.REQUEST, serverId: '10.9.9.9', requestedIp: '10.1.0.5' }), lease, config));
});

test('REQUEST in INIT-REBOOT checks the remembered address', (t) => {
  t.is(reply(decide(msg({ type: DHCP.REQUEST, requestedIp: '10.1.0.5' }), lease, config)).type, DHCP.ACK);
  t.is(reply(decide(msg({ type: DHCP.REQUEST, requestedIp: '10.1.0.77' }), lease, config)).type, DHCP.NAK);
});

test('REQUEST while RENEWING (unicast) and REBINDING (broadcast) is answered to ciaddr', (t) => {
  const renew = reply(decide(msg({ type: DHCP.REQUEST, ciaddr: '10.1.0.5' }), lease, config));
  t.is(renew.type, DHCP.ACK);
  t.is(renew.ciaddr, '10.1.0.5');
  t.deepEqual(renew.to, { mac: '00:aa:bb:15:eb:3f', ip: '10.1.0.5' });
  const rebind = reply(decide(msg({ type: DHCP.REQUEST, ciaddr: '10.1.0.5', broadcast: true }), lease, config));
  t.is(rebind.type, DHCP.ACK);
  t.is(reply(decide(msg({ type: DHCP.REQUEST, ciaddr: '10.1.0.6' }), lease, config)).type, DHCP.NAK);
});

test('INFORM gets configuration without an address or lease times', (t) => {
  const r = reply(decide(msg({ type: DHCP.INFORM, ciaddr: '10.1.0.5' }), lease, config));
  t.is(r.type, DHCP.ACK);
  t.is(r.yiaddr, '0.0.0.0');
  t.is(r.options.leaseSeconds, undefined);
  t.is(r.options.renewalSeconds, undefined);
  t.is(r.options.router, '10.1.0.1');
  t.is(r.to.ip, '10.1.0.5');
});

test('RELEASE and DECLINE get no reply, with a reason', (t) => {
  const rel = decide(msg({ type: DHCP.RELEASE, ciaddr: '10.1.0.5' }), lease, config);
  t.true('ignored' in rel && /RELEASE/.test(rel.ignored));
  const dec = decide(msg({ type: DHCP.DECLINE, requestedIp: '10.1.0.5' }), lease, config);
  t.true('ignored' in dec && /in use/.test(dec.ignored));
});

test('unbound MACs and server message types are ignored', (t) => {
  t.true('ignored' in decide(msg({}), undefined, config));
  t.true('ignored' in decide(msg({ type: DHCP.OFFER }), lease, config));
  t.true('ignored' in decide(msg({}), { ...lease, gateway: null }, config));
});

test('prefix to netmask', (t) => {
  t.is(prefixToMask(0), '0.0.0.0');
  t.is(prefixToMask(8), '255.0.0.0');
  t.is(prefixToMask(20), '255.255.240.0');
  t.is(prefixToMask(32), '255.255.255.255');
});
