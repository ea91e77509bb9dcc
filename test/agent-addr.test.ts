// Address parsing and normalization.
import test from 'ava';
import fc from 'fast-check';
import { cidrContains, parseCidr, parseIp, parseIPv4, parseIPv6, parseMac } from '../agent/addr.js';

const value = <T>(p: { ok: true; value: T } | { ok: false; reason: string }): T | string => (p.ok ? p.value : `!${p.reason}`);

test('MACs: colon, hyphen, unpadded, upper case → lower-case colon form', (t) => {
  t.is(value(parseMac('00:aa:bb:cc:dd:ee')), '00:aa:bb:cc:dd:ee');
  t.is(value(parseMac('00-AA-BB-15-EB-3F')), '00:aa:bb:15:eb:3f');
  t.is(value(parseMac('0:0:a:1:2:3')), '00:00:0a:01:02:03');
  t.is(value(parseMac('FA:16:3E:5A:0:3')), 'fa:16:3e:5a:00:03');
  for (const bad of ['00:11:22:33:44', '00:11:22:33:44:55:66', '000:11:22:33:44:55', 'gg:11:22:33:44:55', '00:11-22:33:44:55', '', '00::11:22:33:44', '00:11:22:33:44:55:']) {
    t.false(parseMac(bad).ok, bad);
  }
});

test('MAC normalization is idempotent and agrees with a reference on every 6-octet form', (t) => {
  fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 6, maxLength: 6 }), fc.constantFrom(':', '-'), fc.boolean(), fc.boolean(), (octets, sep, pad, upper) => {
    let text = octets.map((o) => (pad ? o.toString(16).padStart(2, '0') : o.toString(16))).join(sep);
    if (upper) text = text.toUpperCase();
    const want = octets.map((o) => o.toString(16).padStart(2, '0')).join(':');
    return value(parseMac(text)) === want && value(parseMac(want)) === want;
  }), { numRuns: 500 });
  t.pass();
});

test('IPv4 is strict; IPv6 is normalized', (t) => {
  t.true(parseIPv4('10.0.0.1').ok);
  for (const bad of ['10.0.0.256', '01.0.0.1', '1.2.3', '1.2.3.4.5', '1..2.3', ' 1.2.3.4', 'a.b.c.d']) t.false(parseIPv4(bad).ok, bad);
  t.is(value(parseIPv6('2001:DB8:0:0:0:0:0:1')), '2001:db8::1');
  t.false(parseIPv6('2001:db8::g').ok);
  t.deepEqual(value(parseIp('::ffff:10.0.0.1')), { family: 6, address: '::ffff:a00:1' });
});

test('CIDRs and containment', (t) => {
  t.deepEqual(value(parseCidr('10.1.0.0/24')), { family: 4, address: '10.1.0.0', prefix: 24 });
  t.deepEqual(value(parseCidr('fd00::/8')), { family: 6, address: 'fd00::', prefix: 8 });
  for (const bad of ['10.1.0.0', '10.1.0.0/33', '10.1.0.0/-1', 'fd00::/129', '10.1.0.0/08x']) t.false(parseCidr(bad).ok, bad);
  const c = parseCidr('10.1.0.0/24');
  if (!c.ok) return t.fail();
  t.true(cidrContains(c.value, { family: 4, address: '10.1.0.77' }));
  t.false(cidrContains(c.value, { family: 4, address: '10.1.1.77' }));
});
