//! Golden bytes: every frame the real kernel sent in `tests/fixtures/*.pcap`
//! (see the README there) must
//! - walk from L2 to L4 with [`Headers::parse`] without an error,
//! - carry correct checksums by our verifiers, and
//! - come back byte for byte when every layer is parsed into its `Repr`,
//!   emitted again into a buffer pre-filled with 0xa5 (an unwritten byte
//!   shows), and its checksum recomputed.
//!
//! Each file also has its own expectations (VLAN ids, VNIs, keys, options).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use sluice_packet::ethernet::{EtherType, EthernetRepr};
use sluice_packet::geneve::{GeneveOptions, GeneveRepr};
use sluice_packet::gre::GreRepr;
use sluice_packet::icmpv4::Icmpv4Repr;
use sluice_packet::icmpv6::{Icmpv6Repr, NaFlags};
use sluice_packet::ipv4::Ipv4Repr;
use sluice_packet::ipv6::{Ipv6Repr, walk_extensions};
use sluice_packet::tcp::{TcpFlags, TcpOptions, TcpRepr};
use sluice_packet::udp::UdpRepr;
use sluice_packet::vxlan::VxlanRepr;
use sluice_packet::{
    Fragment, Headers, IpProtocol, L3, L4, MacAddr, arp, geneve, gre, icmpv4, icmpv6, ipv4, ipv6, tcp, udp, vxlan,
};

fn fixtures() -> BTreeMap<String, Vec<Vec<u8>>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "pcap") {
            continue;
        }
        let file = std::fs::File::open(&path).unwrap();
        let mut reader = pcap_file::pcap::PcapReader::new(file).unwrap();
        assert_eq!(reader.header().datalink, pcap_file::DataLink::ETHERNET, "{}", path.display());
        let mut frames = Vec::new();
        while let Some(pkt) = reader.next_packet() {
            let pkt = pkt.unwrap();
            assert_eq!(pkt.data.len() as u32, pkt.orig_len, "{}: truncated capture", path.display());
            frames.push(pkt.data.into_owned());
        }
        out.insert(path.file_name().unwrap().to_string_lossy().into_owned(), frames);
    }
    assert!(out.len() >= 17, "expected the 17 fixture files, found {}", out.len());
    out
}

/// What the re-emit walk saw, for per-file expectations.
#[derive(Default, Debug)]
struct Seen {
    vlans: Vec<(EtherType, u16, u8)>,
    vnis: Vec<u32>,
    gre: Vec<GreRepr>,
    geneve_opts: Vec<(u16, u8, usize)>,
    tcp_opts: Vec<String>,
    nd: Vec<Icmpv6Repr>,
    arp: usize,
    frags: usize,
    ipv4_options: usize,
    ipv6_ext: usize,
    zero_udp_csum: usize,
}

/// A buffer of 0xa5 of `n` bytes with `emit` applied.
fn emitted(n: usize, emit: impl FnOnce(&mut [u8])) -> Vec<u8> {
    let mut b = vec![0xa5u8; n];
    emit(&mut b);
    b
}

fn reemit_eth(b: &[u8], seen: &mut Seen) -> Vec<u8> {
    let eth = EthernetRepr::parse(b).unwrap();
    for t in eth.vlans() {
        seen.vlans.push((t.tpid, t.vid, t.pcp));
    }
    let hl = eth.header_len();
    let mut out = emitted(hl, |buf| {
        eth.emit(buf).unwrap();
    });
    out.extend(reemit_l3(eth.ethertype, &b[hl..], seen));
    out
}

fn reemit_l3(et: EtherType, b: &[u8], seen: &mut Seen) -> Vec<u8> {
    match et {
        EtherType::Ipv4 => {
            let p = ipv4::Packet::new_checked(b).unwrap();
            assert!(p.verify_checksum(), "IPv4 header checksum");
            let r = Ipv4Repr::parse(&p).unwrap();
            seen.ipv4_options += usize::from(!r.options().is_empty());
            let frag = p.fragment();
            seen.frags += usize::from(frag != Fragment::No);
            let mut out = emitted(r.header_len(), |buf| r.emit(buf).unwrap());
            let payload = p.payload();
            let src = IpAddr::V4(r.src);
            let dst = IpAddr::V4(r.dst);
            out.extend(reemit_l4(r.protocol, payload, src, dst, frag, seen));
            out.extend(&b[usize::from(p.total_len())..]); // Ethernet padding
            out
        }
        EtherType::Ipv6 => {
            let p = ipv6::Packet::new_checked(b).unwrap();
            let r = Ipv6Repr::parse(&p).unwrap();
            let up = walk_extensions(r.next_header, p.payload()).unwrap();
            seen.ipv6_ext += usize::from(up.extensions);
            seen.frags += usize::from(up.fragment != Fragment::No);
            let mut out = emitted(ipv6::HEADER_LEN, |buf| r.emit(buf).unwrap());
            out.extend(&p.payload()[..up.offset]); // extension headers, raw
            let l4 = &p.payload()[up.offset..];
            out.extend(reemit_l4(up.protocol, l4, IpAddr::V6(r.src), IpAddr::V6(r.dst), up.fragment, seen));
            out.extend(&b[ipv6::HEADER_LEN + usize::from(p.payload_len())..]);
            out
        }
        EtherType::Arp => {
            let r = arp::ArpRepr::parse(&arp::Packet::new_checked(b).unwrap()).unwrap();
            seen.arp += 1;
            let mut out = emitted(arp::PACKET_LEN, |buf| r.emit(buf).unwrap());
            out.extend(&b[arp::PACKET_LEN..]);
            out
        }
        other => panic!("unexpected EtherType {other:?} in a fixture"),
    }
}

/// Re-emits an L4 header and payload. In a fragment the checksum covers
/// bytes in other fragments, so it is copied rather than recomputed.
fn reemit_l4(proto: IpProtocol, b: &[u8], src: IpAddr, dst: IpAddr, frag: Fragment, seen: &mut Seen) -> Vec<u8> {
    if frag == Fragment::Later {
        return b.to_vec();
    }
    let whole = frag == Fragment::No;
    let mut out = match proto {
        IpProtocol::Icmp => {
            let p = icmpv4::Packet::new_checked(b).unwrap();
            if whole {
                assert!(p.verify_checksum(), "ICMPv4 checksum");
            }
            let r = Icmpv4Repr::parse(&p).unwrap();
            let mut out = emitted(8, |buf| r.emit(buf).unwrap());
            out.extend(p.payload());
            if whole {
                icmpv4::Packet::new_unchecked(&mut out[..]).fill_checksum();
            }
            out
        }
        IpProtocol::Icmpv6 => {
            let (IpAddr::V6(s), IpAddr::V6(d)) = (src, dst) else { unreachable!() };
            let p = icmpv6::Packet::new_checked(b).unwrap();
            if whole {
                assert!(p.verify_checksum(s, d), "ICMPv6 checksum");
            }
            let r = Icmpv6Repr::parse(&p).unwrap();
            if matches!(r, Icmpv6Repr::NeighborSolicit { .. } | Icmpv6Repr::NeighborAdvert { .. }) {
                seen.nd.push(r);
            }
            let n = r.buffer_len();
            let mut out = emitted(n, |buf| r.emit(buf).unwrap());
            out.extend(&b[n..]);
            if whole {
                icmpv6::Packet::new_unchecked(&mut out[..]).fill_checksum(s, d);
            }
            out
        }
        IpProtocol::Tcp => {
            let p = tcp::Packet::new_checked(b).unwrap();
            let r = TcpRepr::parse(&p).unwrap();
            for o in TcpOptions::new(r.options()) {
                seen.tcp_opts.push(format!("{:?}", o.unwrap()).split(['(', ' ', '{']).next().unwrap().to_string());
            }
            let mut out = emitted(r.header_len(), |buf| r.emit(buf).unwrap());
            out.extend(p.payload());
            let mut q = tcp::Packet::new_unchecked(&mut out[..]);
            match (src, dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    assert!(p.verify_checksum_v4(s, d), "TCP checksum");
                    q.fill_checksum_v4(s, d)
                }
                (IpAddr::V6(s), IpAddr::V6(d)) => {
                    assert!(p.verify_checksum_v6(s, d), "TCP checksum");
                    q.fill_checksum_v6(s, d)
                }
                _ => unreachable!(),
            }
            out
        }
        IpProtocol::Udp => {
            let p = udp::Packet::new_checked(b).unwrap();
            let r = UdpRepr::parse(&p).unwrap();
            let mut out = emitted(8, |buf| r.emit(buf).unwrap());
            let payload = p.payload();
            out.extend(match r.dst_port {
                vxlan::UDP_PORT => {
                    let v = VxlanRepr::parse(&vxlan::Packet::new_checked(payload).unwrap()).unwrap();
                    seen.vnis.push(v.vni);
                    let mut o = emitted(8, |buf| v.emit(buf).unwrap());
                    o.extend(reemit_eth(&payload[8..], seen));
                    o
                }
                geneve::UDP_PORT => {
                    let g = GeneveRepr::parse(&geneve::Packet::new_checked(payload).unwrap()).unwrap();
                    seen.vnis.push(g.vni);
                    for opt in GeneveOptions::new(g.options()) {
                        let opt = opt.unwrap();
                        seen.geneve_opts.push((opt.class, opt.kind, opt.data.len()));
                    }
                    assert_eq!(g.protocol, EtherType::TransparentEthernet);
                    let mut o = emitted(g.header_len(), |buf| g.emit(buf).unwrap());
                    o.extend(reemit_eth(&payload[g.header_len()..], seen));
                    o
                }
                _ => payload.to_vec(),
            });
            out.extend(&b[usize::from(p.len())..]);
            if p.checksum() == 0 {
                seen.zero_udp_csum += 1;
                assert!(matches!(src, IpAddr::V4(_)), "a zero UDP checksum is only allowed over IPv4");
            } else {
                let len = usize::from(p.len());
                let mut q = udp::Packet::new_unchecked(&mut out[..len]);
                match (src, dst) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => {
                        assert!(p.verify_checksum_v4(s, d), "UDP checksum");
                        q.fill_checksum_v4(s, d)
                    }
                    (IpAddr::V6(s), IpAddr::V6(d)) => {
                        assert!(p.verify_checksum_v6(s, d), "UDP checksum");
                        q.fill_checksum_v6(s, d)
                    }
                    _ => unreachable!(),
                }
            }
            out
        }
        IpProtocol::Gre => {
            let p = gre::Packet::new_checked(b).unwrap();
            assert!(p.verify_checksum(), "GRE checksum");
            let r = GreRepr::parse(&p).unwrap();
            seen.gre.push(r);
            let mut out = emitted(r.header_len(), |buf| r.emit(buf).unwrap());
            let inner = p.payload();
            out.extend(match r.protocol {
                EtherType::TransparentEthernet => reemit_eth(inner, seen),
                other => reemit_l3(other, inner, seen),
            });
            gre::Packet::new_unchecked(&mut out[..]).fill_checksum();
            out
        }
        other => panic!("unexpected L4 protocol {other:?} in a fixture"),
    };
    if !whole {
        // Keep the original checksum bytes of a first fragment.
        let at = match proto {
            IpProtocol::Icmp | IpProtocol::Icmpv6 => 2,
            IpProtocol::Tcp => 16,
            IpProtocol::Udp => 6,
            _ => return out,
        };
        out[at..at + 2].copy_from_slice(&b[at..at + 2]);
    }
    out
}

fn check_file(name: &str, frames: &[Vec<u8>]) -> Seen {
    let mut seen = Seen::default();
    for (i, f) in frames.iter().enumerate() {
        let h = Headers::parse(f).unwrap_or_else(|e| panic!("{name}#{i}: {e}"));
        assert_eq!(h.error, None, "{name}#{i}: the walk stopped early");
        assert!(!matches!(h.l3, L3::None), "{name}#{i}: no L3 found");
        let again = reemit_eth(f, &mut seen);
        assert_eq!(again, *f, "{name}#{i}: emit(parse(bytes)) differs from the captured bytes");
    }
    seen
}

#[test]
fn every_fixture_round_trips_byte_for_byte() {
    let all = fixtures();
    let mut total = 0;
    for (name, frames) in &all {
        assert!(!frames.is_empty(), "{name} is empty");
        check_file(name, frames);
        total += frames.len();
    }
    assert!(total >= 100, "only {total} frames");
}

#[test]
fn fixture_contents_match_what_the_capture_script_sent() {
    let all = fixtures();
    let seen = |n: &str| check_file(n, &all[n]);

    let s = seen("vlan_8021q.pcap");
    assert!(s.vlans.iter().all(|&(t, vid, _)| t == EtherType::Vlan && vid == 100), "{:?}", s.vlans);
    assert!(s.vlans.iter().any(|&(_, _, pcp)| pcp == 5) && s.vlans.iter().any(|&(_, _, pcp)| pcp == 3));

    let s = seen("vlan_qinq.pcap");
    assert_eq!(s.vlans.len(), 12);
    for pair in s.vlans.chunks(2) {
        assert_eq!((pair[0].0, pair[0].1), (EtherType::QinQ, 200));
        assert_eq!((pair[1].0, pair[1].1), (EtherType::Vlan, 100));
    }

    let s = seen("vxlan.pcap");
    assert_eq!(s.vnis, vec![42; 6]);
    assert_eq!(seen("vxlan_v6.pcap").vnis, vec![42; 6]);

    let s = seen("gretap.pcap");
    assert_eq!(s.gre.len(), 6);
    assert!(s.gre.iter().all(|g| g.protocol == EtherType::TransparentEthernet && g.checksum && g.key == Some(7)));
    let mut seqs: Vec<u32> = s.gre.iter().map(|g| g.seq.unwrap()).collect();
    seqs.sort();
    assert_eq!(seqs, vec![0, 0, 1, 1, 2, 2]);
    let s = seen("gre.pcap");
    assert!(s.gre.iter().all(|g| g.protocol == EtherType::Ipv4 && !g.checksum && g.key == Some(9) && g.seq.is_none()));

    let s = seen("geneve.pcap");
    assert_eq!(s.vnis, vec![77; 6]);
    assert!(s.geneve_opts.is_empty());
    assert_eq!(s.zero_udp_csum, 6);
    let s = seen("geneve_opts.pcap");
    assert_eq!(s.geneve_opts, vec![(0x0102, 0x01, 4), (0xff01, 0x7f, 8), (0x0102, 0x01, 4), (0xff01, 0x7f, 8)]);

    let s = seen("icmpv6_nd_ping.pcap");
    let a: MacAddr = "02:00:00:00:00:01".parse().unwrap();
    let b: MacAddr = "02:00:00:00:00:02".parse().unwrap();
    let fd2: std::net::Ipv6Addr = "fd00::2".parse().unwrap();
    assert!(s.nd.contains(&Icmpv6Repr::NeighborSolicit { target: fd2, source_lladdr: Some(a) }), "{:?}", s.nd);
    let na = NaFlags { router: false, solicited: true, override_: true };
    assert!(
        s.nd.contains(&Icmpv6Repr::NeighborAdvert { flags: na, target: fd2, target_lladdr: Some(b) }),
        "{:?}",
        s.nd
    );

    let s = seen("tcp_handshake_v4.pcap");
    for kind in ["Mss", "SackPermitted", "Timestamps", "WindowScale", "Nop"] {
        assert!(s.tcp_opts.iter().any(|o| o == kind), "no {kind} in {:?}", s.tcp_opts);
    }
    let flags: Vec<TcpFlags> = all["tcp_handshake_v4.pcap"]
        .iter()
        .map(|f| match Headers::parse(f).unwrap().l4 {
            L4::Tcp { flags, .. } => flags,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(flags[0], TcpFlags::SYN);
    assert_eq!(flags[1], TcpFlags::SYN | TcpFlags::ACK);
    assert!(flags.iter().filter(|f| f.contains(TcpFlags::FIN)).count() == 2);

    let s = seen("ipv4_options_frag.pcap");
    assert_eq!(s.ipv4_options, 4, "record route and timestamp, both ways");
    assert_eq!(s.frags, 6);
    let s = seen("ipv6_ext_frag.pcap");
    assert_eq!(s.frags, 6);
    assert!(s.ipv6_ext >= 8, "hop-by-hop on MLD and fragment headers: {}", s.ipv6_ext);

    assert_eq!(seen("arp.pcap").arp, 4);
}

#[test]
fn nd_helper_reads_target_and_link_layer_address() {
    let all = fixtures();
    let ns = all["icmpv6_nd_ping.pcap"]
        .iter()
        .find_map(|f| Headers::parse(f).unwrap().nd(f))
        .expect("a neighbour solicitation");
    assert_eq!(ns.0, "fd00::2".parse::<std::net::Ipv6Addr>().unwrap());
    assert_eq!(ns.1, Some("02:00:00:00:00:01".parse().unwrap()));
}
