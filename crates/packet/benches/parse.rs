//! Parse and encapsulation costs on 64-byte frames (criterion).
//!
//! `cargo bench -p sluice-packet --bench parse`; figures in BENCHMARKS.md.

use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_packet::encap::{VxlanV4Template, vxlan_v4_decap};
use sluice_packet::ethernet::{EtherType, EthernetRepr, MacAddr, VlanTag};
use sluice_packet::ipv4::Ipv4Repr;
use sluice_packet::ipv6::Ipv6Repr;
use sluice_packet::tcp::{TcpFlags, TcpRepr};
use sluice_packet::udp::UdpRepr;
use sluice_packet::{Headers, IpProtocol, PacketBuf, ipv4, udp};

const A: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const B: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

/// Eth / IPv4 / UDP, 64 bytes with 18 bytes of payload.
fn udp4_frame() -> Vec<u8> {
    let mut f = vec![0u8; 60];
    let rest = EthernetRepr::new(A, B, EtherType::Ipv4).emit(&mut f).unwrap();
    let ip = Ipv4Repr::new(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2), IpProtocol::Udp, 8 + 18);
    ip.emit(rest).unwrap();
    UdpRepr { src_port: 1234, dst_port: 5678, payload_len: 18 }.emit(&mut rest[20..]).unwrap();
    udp::Packet::new_unchecked(&mut rest[20..46]).fill_checksum_v4(ip.src, ip.dst);
    f.extend([0; 4]); // FCS-sized tail, as a 64-byte frame on the wire
    f
}

/// Eth / 802.1Q / IPv6 / TCP (SYN with 20 bytes of options): 98 bytes.
fn vlan_tcp6_frame() -> Vec<u8> {
    let mut eth = EthernetRepr::new(A, B, EtherType::Ipv6);
    eth.push_inner_tag(VlanTag::dot1q(100)).unwrap();
    let mut tcp = TcpRepr {
        src_port: 40000,
        dst_port: 80,
        seq: 1,
        ack: 0,
        flags: TcpFlags::SYN,
        window: 65535,
        urgent: 0,
        options: [0; 40],
        options_len: 20,
    };
    tcp.options[..20].copy_from_slice(&[2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]);
    let ip = Ipv6Repr {
        src: Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1),
        dst: Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2),
        next_header: IpProtocol::Tcp,
        payload_len: tcp.header_len() as u16,
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0x12345,
    };
    let mut f = vec![0u8; eth.header_len() + ip.buffer_len()];
    let rest = eth.emit(&mut f).unwrap();
    ip.emit(rest).unwrap();
    tcp.emit(&mut rest[40..]).unwrap();
    f
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));
    let f = udp4_frame();
    let f6 = vlan_tcp6_frame();
    // As a datapath thread does it: a batch of 32 frames parsed into 32
    // reused slots. Throughput is per frame.
    g.throughput(Throughput::Elements(32));
    for (name, frame) in [("batch32/eth-ipv4-udp-64B", &f), ("batch32/eth-vlan-ipv6-tcp", &f6)] {
        let frames = vec![frame.clone(); 32];
        let mut slots = [Headers::EMPTY; 32];
        g.bench_function(name, |b| {
            b.iter(|| {
                for (slot, fr) in slots.iter_mut().zip(black_box(&frames)) {
                    let _ = slot.parse_into(fr);
                }
                black_box(&slots);
            })
        });
    }
    g.throughput(Throughput::Elements(1));
    // One frame into a fresh value (80 bytes built and returned).
    g.bench_function("single/eth-ipv4-udp-64B", |b| b.iter(|| Headers::parse(black_box(&f)).unwrap()));
    g.bench_function("repr/ipv4+udp-64B", |b| {
        b.iter(|| {
            let f = black_box(&f[14..]);
            let p = ipv4::Packet::new_checked(f).unwrap();
            let ip = Ipv4Repr::parse(&p).unwrap();
            let u = UdpRepr::parse(&udp::Packet::new_checked(p.payload()).unwrap()).unwrap();
            (ip.src, u.dst_port)
        })
    });
    g.finish();
}

fn tunnel(c: &mut Criterion) {
    let mut g = c.benchmark_group("vxlan");
    g.throughput(Throughput::Elements(1));
    let t = VxlanV4Template::new(A, B, Ipv4Addr::new(192, 168, 1, 1), Ipv4Addr::new(192, 168, 1, 2), 42).unwrap();
    let inner = udp4_frame();
    let mut buf = PacketBuf::new(2048, 128);
    buf.fill(&inner).unwrap();
    // One encap and one decap per iteration keeps the buffer's window
    // stable; each is also measured alone against a refilled buffer.
    g.bench_function("encap+decap-64B", |b| {
        b.iter(|| {
            t.encap(&mut buf, black_box(49152)).unwrap();
            vxlan_v4_decap(black_box(&mut buf)).unwrap()
        })
    });
    g.bench_function("encap-64B", |b| {
        b.iter(|| {
            t.encap(&mut buf, black_box(49152)).unwrap();
            buf.pull_front(sluice_packet::encap::VXLAN_V4_OVERHEAD).unwrap();
        })
    });
    let mut enc = PacketBuf::new(2048, 128);
    enc.fill(&inner).unwrap();
    t.encap(&mut enc, 49152).unwrap();
    let outer_len = enc.len();
    g.bench_function("decap-64B", |b| {
        b.iter(|| {
            let o = vxlan_v4_decap(black_box(&mut enc)).unwrap();
            enc.push_front(sluice_packet::encap::VXLAN_V4_OVERHEAD).unwrap();
            enc.set_len(outer_len).unwrap();
            o
        })
    });
    g.finish();
}

criterion_group!(benches, parse, tunnel);
criterion_main!(benches);
