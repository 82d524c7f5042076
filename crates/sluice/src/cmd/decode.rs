//! `sluice decode`: read a pcap file and print each frame layer by layer,
//! following VXLAN, Geneve and GRE into the inner frame, and checking every
//! checksum on the way. Without a file it decodes captures built into the
//! binary (real kernel traffic from the test fixtures), so it runs anywhere
//! with no NIC and no privileges.

use std::fmt::Write as _;
use std::io::Read;
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Serialize;
use sluice_packet::ethernet::EtherType;
use sluice_packet::geneve::GeneveRepr;
use sluice_packet::gre::GreRepr;
use sluice_packet::icmpv6::Icmpv6Repr;
use sluice_packet::{Headers, IpProtocol, L3, L4, geneve, gre, icmpv4, icmpv6, ipv6, tcp, udp};

/// The captures `sluice decode` shows when given no file.
const BUILT_IN: &[(&str, &[u8])] = &[
    ("icmpv4_ping.pcap", include_bytes!("../../../packet/tests/fixtures/icmpv4_ping.pcap")),
    ("icmpv6_nd_ping.pcap", include_bytes!("../../../packet/tests/fixtures/icmpv6_nd_ping.pcap")),
    ("tcp_handshake_v4.pcap", include_bytes!("../../../packet/tests/fixtures/tcp_handshake_v4.pcap")),
    ("vlan_qinq.pcap", include_bytes!("../../../packet/tests/fixtures/vlan_qinq.pcap")),
    ("vxlan.pcap", include_bytes!("../../../packet/tests/fixtures/vxlan.pcap")),
    ("gretap.pcap", include_bytes!("../../../packet/tests/fixtures/gretap.pcap")),
    ("geneve_opts.pcap", include_bytes!("../../../packet/tests/fixtures/geneve_opts.pcap")),
];

/// Arguments of `sluice decode`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A pcap file (classic libpcap format, Ethernet link type), or `-` for
    /// standard input. Without it, the built-in sample captures are decoded.
    pub file: Option<PathBuf>,
    /// Print one JSON object per frame instead of text.
    #[arg(long)]
    pub json: bool,
    /// Decode at most this many frames per file.
    #[arg(long, value_name = "N")]
    pub count: Option<usize>,
}

/// One frame's decoding.
#[derive(Debug, Serialize)]
struct Decoded {
    file: String,
    index: usize,
    len: usize,
    /// Layers, outermost first: "eth 02:..>ff:.. vlan 100", "ipv4 ...", …
    layers: Vec<String>,
    /// Checksums that did not verify, and why a walk stopped early.
    problems: Vec<String>,
}

/// Runs `sluice decode`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let inputs: Vec<(String, Vec<u8>)> = match &args.file {
        None => BUILT_IN.iter().map(|(n, b)| (format!("built-in:{n}"), b.to_vec())).collect(),
        Some(p) if p.as_os_str() == "-" => {
            let mut b = Vec::new();
            std::io::stdin().read_to_end(&mut b).context("could not read standard input")?;
            vec![("-".to_string(), b)]
        }
        Some(p) => {
            let b = std::fs::read(p).with_context(|| format!("could not read {}", p.display()))?;
            vec![(p.display().to_string(), b)]
        }
    };
    let (mut frames, mut problems) = (0usize, 0usize);
    for (name, bytes) in inputs {
        if args.file.is_none() && !args.json {
            println!("== {name}");
        }
        let packets = read_pcap(&bytes).with_context(|| format!("{name} is not a pcap file Sluice can read"))?;
        for (i, frame) in packets.iter().enumerate().take(args.count.unwrap_or(usize::MAX)) {
            let d = decode(&name, i + 1, frame);
            frames += 1;
            problems += d.problems.len();
            if args.json {
                println!("{}", serde_json::to_string(&d)?);
            } else {
                print_text(&d);
            }
        }
    }
    if !args.json {
        println!("{frames} frames decoded, {problems} problems");
    }
    Ok(())
}

fn print_text(d: &Decoded) {
    let mut line = format!("#{:<3} {:>4} B  ", d.index, d.len);
    for (i, l) in d.layers.iter().enumerate() {
        if i > 0 {
            line.push_str(if l.starts_with("eth ") { "\n              ╰ " } else { " | " });
        }
        line.push_str(l);
    }
    for p in &d.problems {
        let _ = write!(line, "\n              ! {p}");
    }
    println!("{line}");
}

/// Frames of a classic pcap file with the Ethernet link type.
fn read_pcap(bytes: &[u8]) -> anyhow::Result<Vec<Vec<u8>>> {
    if bytes.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
        bail!("pcapng is not supported; convert it with `tcpdump -r IN.pcapng -w OUT.pcap`");
    }
    let mut reader = pcap_file::pcap::PcapReader::new(bytes)?;
    let link = reader.header().datalink;
    if link != pcap_file::DataLink::ETHERNET {
        bail!("link type {link:?} is not Ethernet");
    }
    let mut out = Vec::new();
    while let Some(pkt) = reader.next_packet() {
        out.push(pkt.with_context(|| format!("frame {} is cut short", out.len() + 1))?.data.into_owned());
    }
    Ok(out)
}

fn decode(file: &str, index: usize, frame: &[u8]) -> Decoded {
    let mut d = Decoded { file: file.to_string(), index, len: frame.len(), layers: Vec::new(), problems: Vec::new() };
    decode_eth(frame, &mut d, 0);
    d
}

/// Tunnels nest at most this deep before decoding stops.
const MAX_DEPTH: usize = 4;

fn decode_eth(frame: &[u8], d: &mut Decoded, depth: usize) {
    let h = match Headers::parse(frame) {
        Ok(h) => h,
        Err(e) => {
            d.problems.push(format!("ethernet: {e}"));
            return;
        }
    };
    let mut eth = format!("eth {} > {}", h.eth.src, h.eth.dst);
    for t in h.eth.vlans() {
        let kind = if t.tpid == EtherType::QinQ { "802.1ad" } else { "vlan" };
        let _ = write!(eth, " {kind} {} p{}", t.vid, t.pcp);
    }
    d.layers.push(eth);
    if let Some(e) = h.error {
        d.problems.push(format!("{e}"));
    }
    let (protocol, fragment) = (h.protocol, h.fragment);
    let (src, dst) = if let Some(a) = h.arp(frame) {
        d.layers.push(format!(
            "arp {:?} {} ({}) > {} ({})",
            a.operation, a.sender_ip, a.sender_mac, a.target_ip, a.target_mac
        ));
        return;
    } else if let Some(p) = h.ipv4(frame) {
        let (src, dst) = (p.src(), p.dst());
        let mut s = format!("ipv4 {src} > {dst} ttl {} id {} proto {}", p.ttl(), p.ident(), proto_name(protocol));
        if fragment != sluice_packet::Fragment::No {
            let _ = write!(s, " frag {:?} off {}", fragment, p.frag_offset());
        }
        if !p.options().is_empty() {
            let _ = write!(s, " options {} B", p.options().len());
        }
        if !p.verify_checksum() {
            d.problems.push("ipv4 header checksum is wrong".into());
        }
        d.layers.push(s);
        (IpAddr::V4(src), IpAddr::V4(dst))
    } else if let Some(p) = h.ipv6(frame) {
        let (src, dst) = (p.src(), p.dst());
        let mut s = format!("ipv6 {src} > {dst} hlim {} next {}", p.hop_limit(), proto_name(protocol));
        if fragment != sluice_packet::Fragment::No {
            let _ = write!(s, " frag {fragment:?}");
        }
        if let Ok(up) = ipv6::walk_extensions(p.next_header(), p.payload())
            && up.extensions > 0
        {
            let _ = write!(s, " ext {}", up.extensions);
        }
        d.layers.push(s);
        (IpAddr::V6(src), IpAddr::V6(dst))
    } else {
        if h.error.is_none() && h.l3 == L3::None {
            d.layers.push(format!("ethertype {:?}", h.eth.ethertype));
        }
        return;
    };
    let whole = fragment == sluice_packet::Fragment::No;
    // The L4 bytes up to the IP payload's end (Ethernet padding excluded).
    let l4_end = h.ip_end(frame);
    let l4 = frame.get(usize::from(h.l4_offset)..l4_end).unwrap_or(&[]);
    let check = |ok: bool, what: &str, d: &mut Decoded| {
        if whole && !ok {
            d.problems.push(format!("{what} checksum is wrong"));
        }
    };
    match h.l4 {
        L4::Tcp { src_port, dst_port, flags } => {
            let p = tcp::Packet::new_unchecked(l4);
            d.layers.push(format!(
                "tcp {src_port} > {dst_port} [{}] seq {} len {}",
                tcp_flags(flags),
                p.seq(),
                p.payload().len()
            ));
            check(verify_l4(&src, &dst, l4, true), "tcp", d);
        }
        L4::Udp { src_port, dst_port } => {
            let p = udp::Packet::new_unchecked(l4);
            d.layers.push(format!("udp {src_port} > {dst_port} len {}", p.len().saturating_sub(8)));
            if p.checksum() != 0 || matches!(src, IpAddr::V6(_)) {
                check(verify_l4(&src, &dst, l4, false), "udp", d);
            }
            if let Some((vni, inner)) = h.tunnel(frame)
                && depth < MAX_DEPTH
            {
                let mut s = format!("{} vni {vni}", if dst_port == 6081 { "geneve" } else { "vxlan" });
                if dst_port == 6081 {
                    let payload = p.payload();
                    if let Ok(g) = GeneveRepr::parse(&geneve::Packet::new_unchecked(payload)) {
                        for o in geneve::GeneveOptions::new(g.options()).flatten() {
                            let _ = write!(s, " opt {:04x}:{:02x}:{}", o.class, o.kind, hex(o.data));
                        }
                    }
                }
                d.layers.push(s);
                decode_eth(&frame[inner..l4_end], d, depth + 1);
            }
        }
        L4::Icmpv4 { msg_type, code } => {
            let p = icmpv4::Packet::new_unchecked(l4);
            d.layers.push(format!(
                "icmp {:?} code {code} id {} seq {}",
                icmpv4::Icmpv4Type::from(msg_type),
                p.echo_ident(),
                p.echo_seq()
            ));
            check(p.verify_checksum(), "icmp", d);
        }
        L4::Icmpv6 { .. } => {
            let p = icmpv6::Packet::new_unchecked(l4);
            let s = match Icmpv6Repr::parse(&p) {
                Ok(Icmpv6Repr::NeighborSolicit { target, source_lladdr }) => {
                    format!("icmp6 neighbor-solicit who-has {target} lladdr {}", opt_mac(source_lladdr))
                }
                Ok(Icmpv6Repr::NeighborAdvert { flags, target, target_lladdr }) => format!(
                    "icmp6 neighbor-advert {target} is-at {} [{}{}{}]",
                    opt_mac(target_lladdr),
                    if flags.router { "R" } else { "" },
                    if flags.solicited { "S" } else { "" },
                    if flags.override_ { "O" } else { "" }
                ),
                Ok(Icmpv6Repr::EchoRequest { ident, seq }) => format!("icmp6 echo-request id {ident} seq {seq}"),
                Ok(Icmpv6Repr::EchoReply { ident, seq }) => format!("icmp6 echo-reply id {ident} seq {seq}"),
                Ok(Icmpv6Repr::Other { msg_type, code, .. }) => format!("icmp6 {msg_type:?} code {code}"),
                Err(e) => {
                    d.problems.push(format!("icmp6: {e}"));
                    "icmp6 (malformed)".into()
                }
            };
            d.layers.push(s);
            if let (IpAddr::V6(s6), IpAddr::V6(d6)) = (src, dst) {
                check(p.verify_checksum(s6, d6), "icmp6", d);
            }
        }
        L4::Sctp { src_port, dst_port } => d.layers.push(format!("sctp {src_port} > {dst_port}")),
        L4::None => {
            let proto = protocol;
            let payload = frame.get(usize::from(h.payload_offset)..l4_end).unwrap_or(&[]);
            if proto == IpProtocol::Gre && whole && depth < MAX_DEPTH {
                decode_gre(payload, d, depth);
            }
        }
    }
}

fn decode_gre(b: &[u8], d: &mut Decoded, depth: usize) {
    let p = match gre::Packet::new_checked(b) {
        Ok(p) => p,
        Err(e) => return d.problems.push(format!("gre: {e}")),
    };
    let r = match GreRepr::parse(&p) {
        Ok(r) => r,
        Err(e) => return d.problems.push(format!("gre: {e}")),
    };
    let mut s = format!("gre proto {:?}", r.protocol);
    if let Some(k) = r.key {
        let _ = write!(s, " key {k}");
    }
    if let Some(q) = r.seq {
        let _ = write!(s, " seq {q}");
    }
    if r.checksum {
        s.push_str(" csum");
        if !p.verify_checksum() {
            d.problems.push("gre checksum is wrong".into());
        }
    }
    d.layers.push(s);
    let inner = p.payload();
    match r.protocol {
        EtherType::TransparentEthernet => decode_eth(inner, d, depth + 1),
        EtherType::Ipv4 | EtherType::Ipv6 => {
            // Give the inner packet a synthetic Ethernet header to reuse the walk.
            let mut f = vec![0u8; 14 + inner.len()];
            f[12..14].copy_from_slice(&u16::from(r.protocol).to_be_bytes());
            f[14..].copy_from_slice(inner);
            let before = d.layers.len();
            decode_eth(&f, d, depth + 1);
            if d.layers.len() > before {
                d.layers.remove(before); // the synthetic Ethernet layer
            }
        }
        _ => {}
    }
}

fn verify_l4(src: &IpAddr, dst: &IpAddr, l4: &[u8], is_tcp: bool) -> bool {
    match (src, dst, is_tcp) {
        (IpAddr::V4(s), IpAddr::V4(d), true) => tcp::Packet::new_unchecked(l4).verify_checksum_v4(*s, *d),
        (IpAddr::V6(s), IpAddr::V6(d), true) => tcp::Packet::new_unchecked(l4).verify_checksum_v6(*s, *d),
        (IpAddr::V4(s), IpAddr::V4(d), false) => udp::Packet::new_unchecked(l4).verify_checksum_v4(*s, *d),
        (IpAddr::V6(s), IpAddr::V6(d), false) => udp::Packet::new_unchecked(l4).verify_checksum_v6(*s, *d),
        _ => false,
    }
}

fn proto_name(p: IpProtocol) -> String {
    match p {
        IpProtocol::Unknown(n) => n.to_string(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn tcp_flags(f: tcp::TcpFlags) -> String {
    let names = [
        (0x002, 'S'),
        (0x010, '.'),
        (0x001, 'F'),
        (0x004, 'R'),
        (0x008, 'P'),
        (0x020, 'U'),
        (0x040, 'E'),
        (0x080, 'W'),
    ];
    names.iter().filter(|(bit, _)| f.0 & bit != 0).map(|(_, c)| *c).collect()
}

fn opt_mac(m: Option<sluice_packet::MacAddr>) -> String {
    m.map_or_else(|| "-".to_string(), |m| m.to_string())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_captures_decode_without_problems() {
        for (name, bytes) in BUILT_IN {
            for (i, f) in read_pcap(bytes).unwrap().iter().enumerate() {
                let d = decode(name, i + 1, f);
                assert!(d.problems.is_empty(), "{name}#{}: {:?} {:?}", i + 1, d.layers, d.problems);
                assert!(d.layers.len() >= 2, "{name}#{}: {:?}", i + 1, d.layers);
            }
        }
    }

    #[test]
    fn tunnels_are_followed_to_the_inner_frame() {
        let (_, vx) = BUILT_IN.iter().find(|(n, _)| *n == "vxlan.pcap").unwrap();
        let f = &read_pcap(vx).unwrap()[2];
        let d = decode("vxlan", 3, f);
        assert!(d.layers.iter().any(|l| l == "vxlan vni 42"), "{:?}", d.layers);
        assert!(d.layers.iter().filter(|l| l.starts_with("eth ")).count() == 2, "{:?}", d.layers);
        let (_, gt) = BUILT_IN.iter().find(|(n, _)| *n == "gretap.pcap").unwrap();
        let d = decode("gretap", 1, &read_pcap(gt).unwrap()[0]);
        assert!(d.layers.iter().any(|l| l.starts_with("gre proto TransparentEthernet key 7 seq")), "{:?}", d.layers);
    }

    #[test]
    fn corrupted_checksums_and_truncation_are_reported_not_fatal() {
        let (_, ping) = BUILT_IN.iter().find(|(n, _)| *n == "icmpv4_ping.pcap").unwrap();
        let mut f = read_pcap(ping).unwrap()[2].clone();
        let last = f.len() - 1;
        f[last] ^= 0xff;
        let d = decode("x", 1, &f);
        assert_eq!(d.problems, vec!["icmp checksum is wrong".to_string()]);
        let d = decode("x", 1, &f[..20]);
        assert_eq!(d.problems, vec!["the packet is shorter than its headers say".to_string()]);
        assert!(read_pcap(b"not a pcap").is_err());
    }
}
