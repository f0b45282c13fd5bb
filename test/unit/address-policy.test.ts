import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { classifyAddress, parseNetworks, refusalOf } from '../../src/outbound/address-policy.ts';

// Pure functions: no address below is ever connected to.
describe('classifyAddress', () => {
  const cases: Array<[string, string]> = [
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['::', 'unspecified'],
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['::1', 'loopback'],
    ['10.0.0.1', 'private'],
    ['10.255.255.255', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'link_local'],
    ['169.254.0.1', 'link_local'],
    ['fe80::1', 'link_local'],
    ['fe80::1%eth0', 'link_local'],
    ['febf::1', 'link_local'],
    ['100.64.0.1', 'cgnat'],
    ['100.127.255.255', 'cgnat'],
    ['fc00::1', 'unique_local'],
    ['fd12:3456:789a::1', 'unique_local'],
    ['fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'unique_local'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['ff02::1', 'multicast'],
    ['ff0e::1', 'multicast'],
    ['240.0.0.1', 'reserved'],
    ['255.255.255.255', 'reserved'],
    ['192.0.0.8', 'reserved'],
    ['198.18.0.1', 'reserved'],
    ['192.88.99.1', 'reserved'],
    ['192.0.2.1', 'documentation'],
    ['198.51.100.7', 'documentation'],
    ['203.0.113.9', 'documentation'],
    ['2001:db8::1', 'documentation'],
    ['2001::1', 'reserved'], // Teredo
    ['100::1', 'reserved'],
    ['::1.2.3.4', 'reserved'], // IPv4-compatible
    ['4000::1', 'reserved'], // outside 2000::/3
    ['fec0::1', 'private'],
    ['64:ff9b:1::1', 'private'],
    // IPv4-mapped and other IPv6 forms that embed an IPv4 address take the class of that address.
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['[::ffff:7f00:1]', 'loopback'],
    ['::FFFF:169.254.169.254', 'link_local'],
    ['::ffff:a9fe:a9fe', 'link_local'],
    ['::ffff:10.0.0.1', 'private'],
    ['::ffff:0:10.0.0.1', 'private'],
    ['::ffff:100.64.0.1', 'cgnat'],
    ['::ffff:0.0.0.0', 'unspecified'],
    ['64:ff9b::7f00:1', 'loopback'],
    ['64:ff9b::192.168.0.1', 'private'],
    ['2002:7f00:1::', 'loopback'], // 6to4 of 127.0.0.1
    ['2002:a9fe:a9fe::1', 'link_local'],
    // Public
    ['8.8.8.8', 'public'],
    ['1.1.1.1', 'public'],
    ['172.32.0.1', 'public'],
    ['100.128.0.1', 'public'],
    ['169.255.0.1', 'public'],
    ['2606:4700:4700::1111', 'public'],
    ['::ffff:8.8.8.8', 'public'],
    ['64:ff9b::808:808', 'public'],
    ['2002:808:808::1', 'public'],
    // Not IP literals: names are resolved and their addresses checked, never classified as text.
    ['localhost', 'invalid'],
    ['2130706433', 'invalid'],
    ['0177.0.0.1', 'invalid'],
    ['1.2.3', 'invalid'],
    ['::ffff:1.2.3.256', 'invalid'],
    ['1:2:3:4:5:6:7:8:9', 'invalid'],
    ['', 'invalid'],
  ];
  for (const [address, expected] of cases) {
    test(`${address || '(empty)'} is ${expected}`, () => assert.equal(classifyAddress(address), expected));
  }
});

describe('RELAY_ALLOWED_NETWORKS', () => {
  test('lets listed networks through, and only those', () => {
    const allowed = parseNetworks(['127.0.0.0/8', '10.1.0.0/16', 'fd00::/8']);
    assert.equal(refusalOf('127.0.0.1', allowed), undefined);
    assert.equal(refusalOf('10.1.2.3', allowed), undefined);
    assert.equal(refusalOf('10.2.0.1', allowed), 'private');
    assert.equal(refusalOf('fd00::5', allowed), undefined);
    assert.equal(refusalOf('fc00::5', allowed), 'unique_local');
    // 127.0.0.0/8 is IPv4: ::1 is a different address and stays refused.
    assert.equal(refusalOf('::1', allowed), 'loopback');
    // A mapped address matches the IPv4 network it stands for.
    assert.equal(refusalOf('::ffff:127.0.0.1', allowed), undefined);
    assert.equal(refusalOf('169.254.169.254', allowed), 'link_local');
    assert.equal(refusalOf('8.8.8.8', allowed), undefined);
  });

  test('an empty list refuses every special address', () => {
    const none = parseNetworks([]);
    for (const address of ['127.0.0.1', '::1', '::ffff:127.0.0.1', '10.0.0.1', '169.254.169.254', '0.0.0.0', 'garbage']) {
      assert.notEqual(refusalOf(address, none), undefined, address);
    }
    assert.equal(refusalOf('93.184.215.14', none), undefined);
  });

  test('a single host /32 does not open its neighbours', () => {
    const one = parseNetworks(['127.0.0.2/32', '::1/128']);
    assert.equal(refusalOf('127.0.0.2', one), undefined);
    assert.equal(refusalOf('127.0.0.1', one), 'loopback');
    assert.equal(refusalOf('::1', one), undefined);
    assert.equal(refusalOf('::ffff:127.0.0.1', one), 'loopback');
  });

  test('a malformed CIDR is an error, not an open door', () => {
    assert.throws(() => parseNetworks(['10.0.0.0/33']), /not a CIDR/);
    assert.throws(() => parseNetworks(['example.com/8']), /not a CIDR/);
  });
});
