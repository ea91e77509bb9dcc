// The fixed parts of the table replies of an Open vSwitch 3.1 bridge on the dummy datapath, as
// ovs-ofctl prints them: what each table can match and do in `dump-tables` (OpenFlow 1.0 to 1.2
// table stats carry it; 1.3 and later do not) and the `dump-table-features` reply. Tables 0 to
// 252 are alike; table 253, the last, has no goto_table. Text as real OVS prints it.

type Lines = readonly string[];

const OF10: Lines = [
  "    max_entries=1000000",
  "    matching:",
  "      exact match or wildcard: in_port eth_{src,dst,type} vlan_{vid,pcp} ip_{src,dst} nw_{proto,tos} tcp_{src,dst}"
];
const OF11: Lines = [
  "    config=controller",
  "    max_entries=1000000",
  "    instructions (table miss and others):",
  "      instructions: apply_actions clear_actions write_actions write_metadata goto_table",
  "      Write-Actions and Apply-Actions features:",
  "        actions: output group set_vlan_vid set_vlan_pcp strip_vlan push_vlan mod_dl_src mod_dl_dst mod_nw_src mod_nw_dst mod_nw_tos mod_nw_ecn mod_nw_ttl mod_tp_src mod_tp_dst dec_ttl set_mpls_label set_mpls_tc set_mpls_ttl dec_mpls_ttl push_mpls pop_mpls set_queue",
  "    matching:",
  "      exact match or wildcard: metadata in_port eth_{src,dst,type} vlan_{vid,pcp} mpls_{label,tc} ip_{src,dst} nw_{proto,tos} tcp_{src,dst}"
];
const OF11_LAST: Lines = [
  "    config=controller",
  "    max_entries=1000000",
  "    instructions (table miss and others):",
  "      instructions: apply_actions clear_actions write_actions write_metadata",
  "      Write-Actions and Apply-Actions features:",
  "        actions: output group set_vlan_vid set_vlan_pcp strip_vlan push_vlan mod_dl_src mod_dl_dst mod_nw_src mod_nw_dst mod_nw_tos mod_nw_ecn mod_nw_ttl mod_tp_src mod_tp_dst dec_ttl set_mpls_label set_mpls_tc set_mpls_ttl dec_mpls_ttl push_mpls pop_mpls set_queue",
  "    (same matching)"
];
const OF12: Lines = [
  "    metadata: match=0xffffffffffffffff write=0xffffffffffffffff",
  "    config=controller",
  "    max_entries=1000000",
  "    instructions (table miss and others):",
  "      instructions: apply_actions clear_actions write_actions write_metadata goto_table",
  "      Write-Actions and Apply-Actions features:",
  "        actions: output group set_field strip_vlan push_vlan mod_nw_ttl dec_ttl set_mpls_ttl dec_mpls_ttl push_mpls pop_mpls set_queue",
  "        supported on Set-Field: metadata in_port_oxm eth_{src,dst} vlan_{vid,pcp} mpls_{label,tc} ip_{src,dst} ipv6_{src,dst,label} ip_dscp nw_ecn arp_{op,spa,tpa,sha,tha} tcp_{src,dst} udp_{src,dst} sctp_{src,dst} icmp_{type,code} icmpv6_{type,code} nd_{target,sll,tll}",
  "    matching:",
  "      exact match or wildcard: metadata in_port_oxm eth_{src,dst,type} vlan_{vid,pcp} mpls_{label,tc} ip_{src,dst} ipv6_{src,dst,label} nw_proto ip_dscp nw_ecn arp_{op,spa,tpa,sha,tha} tcp_{src,dst} udp_{src,dst} sctp_{src,dst} icmp_{type,code} icmpv6_{type,code} nd_{target,sll,tll}"
];
const OF12_LAST: Lines = [
  "    metadata: match=0xffffffffffffffff write=0xffffffffffffffff",
  "    config=controller",
  "    max_entries=1000000",
  "    instructions (table miss and others):",
  "      instructions: apply_actions clear_actions write_actions write_metadata",
  "      (same actions)",
  "    (same matching)"
];

/**
 * What `dump-tables` prints of table `t`'s features after its stats line, for protocol version
 * `v` (empty from OpenFlow 1.3 on), as printed after a table whose features differ.
 */
export function tableFeatures(v: number, t: number): string {
  const lines = v === 10 ? OF10 : v === 11 ? (t === 253 ? OF11_LAST : OF11) : v === 12 ? (t === 253 ? OF12_LAST : OF12) : [];
  return lines.join('\n');
}

const FEATURES13: Lines = [
  "  table 0:",
  "    metadata: match=0xffffffffffffffff write=0xffffffffffffffff",
  "    max_entries=1000000",
  "    instructions (table miss and others):",
  "      next tables: 1-253",
  "      instructions: meter apply_actions clear_actions write_actions write_metadata goto_table",
  "      Write-Actions and Apply-Actions features:",
  "        actions: output group set_field strip_vlan push_vlan mod_nw_ttl dec_ttl set_mpls_ttl dec_mpls_ttl push_mpls pop_mpls set_queue",
  "        supported on Set-Field: tun_{id,src,dst,ipv6_{src,dst},flags,gbp_{id,flags},erspan_{idx,ver,dir,hwid},metadata0...metadata63} metadata in_{port,port_oxm} pkt_mark ct_{mark,label} reg0...reg15 xreg0...xreg7 xxreg0...xxreg3 eth_{src,dst} vlan_{tci,vid,pcp} mpls_{label,tc,ttl} ip_{src,dst} ipv6_{src,dst,label} nw_tos ip_dscp nw_{ecn,ttl} arp_{op,spa,tpa,sha,tha} tcp_{src,dst} udp_{src,dst} sctp_{src,dst} icmp_{type,code} icmpv6_{type,code} nd_{target,sll,tll,reserved,options_type} nsh_{flags,spi,si,c1...c4,ttl}",
  "    matching:",
  "      arbitrary mask: dp_hash tun_{id,src,dst,ipv6_{src,dst},flags,gbp_{id,flags},erspan_{idx,ver,dir,hwid},gtpu_{flags,msgtype},metadata0...metadata63} metadata pkt_mark ct_{state,mark,label,nw_{src,dst},ipv6_{src,dst},tp_{src,dst}} reg0...reg15 xreg0...xreg7 xxreg0...xxreg3 eth_{src,dst} vlan_{tci,vid} ip_{src,dst} ipv6_{src,dst,label} ip_frag arp_{spa,tpa,sha,tha} tcp_{src,dst,flags} udp_{src,dst} sctp_{src,dst} nd_{target,sll,tll} nsh_{flags,c1...c4}",
  "      exact match or wildcard: recirc_id packet_type conj_id in_{port,port_oxm} actset_output ct_{zone,nw_proto} eth_type vlan_pcp mpls_{label,tc,bos,ttl} nw_{proto,tos} ip_dscp nw_{ecn,ttl} arp_op icmp_{type,code} icmpv6_{type,code} nd_{reserved,options_type} nsh_{mdtype,np,spi,si,ttl}",
  "",
  "  tables 1...252: ditto",
  "",
  "  table 253:",
  "    metadata: match=0xffffffffffffffff write=0xffffffffffffffff",
  "    max_entries=1000000",
  "    instructions (table miss and others):",
  "      instructions: meter apply_actions clear_actions write_actions write_metadata",
  "      (same actions)",
  "    (same matching)"
];
const FEATURES14: Lines = [
  "  table 0:",
  "    metadata: match=0xffffffffffffffff write=0xffffffffffffffff",
  "    eviction: not supported",
  "    vacancy events: not supported",
  "    max_entries=1000000",
  "    instructions (table miss and others):",
  "      next tables: 1-253",
  "      instructions: meter apply_actions clear_actions write_actions write_metadata goto_table",
  "      Write-Actions and Apply-Actions features:",
  "        actions: output group set_field strip_vlan push_vlan mod_nw_ttl dec_ttl set_mpls_ttl dec_mpls_ttl push_mpls pop_mpls set_queue",
  "        supported on Set-Field: tun_{id,src,dst,ipv6_{src,dst},flags,gbp_{id,flags},erspan_{idx,ver,dir,hwid},metadata0...metadata63} metadata in_{port,port_oxm} pkt_mark ct_{mark,label} reg0...reg15 xreg0...xreg7 xxreg0...xxreg3 eth_{src,dst} vlan_{tci,vid,pcp} mpls_{label,tc,ttl} ip_{src,dst} ipv6_{src,dst,label} nw_tos ip_dscp nw_{ecn,ttl} arp_{op,spa,tpa,sha,tha} tcp_{src,dst} udp_{src,dst} sctp_{src,dst} icmp_{type,code} icmpv6_{type,code} nd_{target,sll,tll,reserved,options_type} nsh_{flags,spi,si,c1...c4,ttl}",
  "    matching:",
  "      arbitrary mask: dp_hash tun_{id,src,dst,ipv6_{src,dst},flags,gbp_{id,flags},erspan_{idx,ver,dir,hwid},gtpu_{flags,msgtype},metadata0...metadata63} metadata pkt_mark ct_{state,mark,label,nw_{src,dst},ipv6_{src,dst},tp_{src,dst}} reg0...reg15 xreg0...xreg7 xxreg0...xxreg3 eth_{src,dst} vlan_{tci,vid} ip_{src,dst} ipv6_{src,dst,label} ip_frag arp_{spa,tpa,sha,tha} tcp_{src,dst,flags} udp_{src,dst} sctp_{src,dst} nd_{target,sll,tll} nsh_{flags,c1...c4}",
  "      exact match or wildcard: recirc_id packet_type conj_id in_{port,port_oxm} actset_output ct_{zone,nw_proto} eth_type vlan_pcp mpls_{label,tc,bos,ttl} nw_{proto,tos} ip_dscp nw_{ecn,ttl} arp_op icmp_{type,code} icmpv6_{type,code} nd_{reserved,options_type} nsh_{mdtype,np,spi,si,ttl}",
  "",
  "  tables 1...252: ditto",
  "",
  "  table 253:",
  "    metadata: match=0xffffffffffffffff write=0xffffffffffffffff",
  "    eviction: not supported",
  "    vacancy events: not supported",
  "    max_entries=1000000",
  "    instructions (table miss and others):",
  "      instructions: meter apply_actions clear_actions write_actions write_metadata",
  "      (same actions)",
  "    (same matching)"
];
const FEATURES15: Lines = [
  "  table 0:",
  "    metadata: match=0xffffffffffffffff write=0xffffffffffffffff",
  "    eviction: not supported",
  "    vacancy events: not supported",
  "    max_entries=1000000",
  "    instructions (table miss and others):",
  "      next tables: 1-253",
  "      instructions: apply_actions clear_actions write_actions write_metadata goto_table",
  "      Write-Actions and Apply-Actions features:",
  "        actions: output group set_field strip_vlan push_vlan mod_nw_ttl dec_ttl set_mpls_ttl dec_mpls_ttl push_mpls pop_mpls set_queue",
  "        supported on Set-Field: tun_{id,src,dst,ipv6_{src,dst},flags,gbp_{id,flags},erspan_{idx,ver,dir,hwid},metadata0...metadata63} metadata in_{port,port_oxm} pkt_mark ct_{mark,label} reg0...reg15 xreg0...xreg7 xxreg0...xxreg3 eth_{src,dst} vlan_{tci,vid,pcp} mpls_{label,tc,ttl} ip_{src,dst} ipv6_{src,dst,label} nw_tos ip_dscp nw_{ecn,ttl} arp_{op,spa,tpa,sha,tha} tcp_{src,dst} udp_{src,dst} sctp_{src,dst} icmp_{type,code} icmpv6_{type,code} nd_{target,sll,tll,reserved,options_type} nsh_{flags,spi,si,c1...c4,ttl}",
  "    matching:",
  "      arbitrary mask: dp_hash tun_{id,src,dst,ipv6_{src,dst},flags,gbp_{id,flags},erspan_{idx,ver,dir,hwid},gtpu_{flags,msgtype},metadata0...metadata63} metadata pkt_mark ct_{state,mark,label,nw_{src,dst},ipv6_{src,dst},tp_{src,dst}} reg0...reg15 xreg0...xreg7 xxreg0...xxreg3 eth_{src,dst} vlan_{tci,vid} ip_{src,dst} ipv6_{src,dst,label} ip_frag arp_{spa,tpa,sha,tha} tcp_{src,dst,flags} udp_{src,dst} sctp_{src,dst} nd_{target,sll,tll} nsh_{flags,c1...c4}",
  "      exact match or wildcard: recirc_id packet_type conj_id in_{port,port_oxm} actset_output ct_{zone,nw_proto} eth_type vlan_pcp mpls_{label,tc,bos,ttl} nw_{proto,tos} ip_dscp nw_{ecn,ttl} arp_op icmp_{type,code} icmpv6_{type,code} nd_{reserved,options_type} nsh_{mdtype,np,spi,si,ttl}",
  "",
  "  tables 1...252: ditto",
  "",
  "  table 253:",
  "    metadata: match=0xffffffffffffffff write=0xffffffffffffffff",
  "    eviction: not supported",
  "    vacancy events: not supported",
  "    max_entries=1000000",
  "    instructions (table miss and others):",
  "      instructions: apply_actions clear_actions write_actions write_metadata",
  "      (same actions)",
  "    (same matching)"
];

/** The `dump-table-features` reply (OpenFlow 1.3 and later). */
export function tableFeaturesLines(v: number): Lines {
  return v === 13 ? FEATURES13 : v === 14 ? FEATURES14 : FEATURES15;
}
