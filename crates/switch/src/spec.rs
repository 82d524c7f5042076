//! Packet specs for `sluice dp trace`: `field=value` pairs (comma or space
//! separated) turned into a real frame, so the trace runs the very parser
//! and slow path a received packet would.
//!
//! Fields: `in_port=NAME` (taken by the caller), `eth_src=MAC`,
//! `eth_dst=MAC`, `vlan=VID` (802.1Q), `pcp=0..7`, `ip_src=A.B.C.D`,
//! `ip_dst=A.B.C.D`, `proto=udp|tcp|icmp`, `tp_src=PORT`, `tp_dst=PORT`,
//! `ttl=N`. Without IP fields the frame is bare Ethernet
//! (EtherType 0x88b5, local experimental).

use std::net::Ipv4Addr;

use sluice_packet::MacAddr;
use sluice_packet::checksum;

/// A parsed spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketSpec {
    /// `in_port`, if given.
    pub in_port: Option<String>,
    /// The frame.
    pub frame: Vec<u8>,
}

fn mac(field: &str, v: &str) -> Result<MacAddr, String> {
    let parts: Vec<&str> = v.split(':').collect();
    let bytes: Option<Vec<u8>> = parts.iter().map(|p| u8::from_str_radix(p, 16).ok()).collect();
    match bytes {
        Some(b) if b.len() == 6 && parts.iter().all(|p| p.len() <= 2) => {
            Ok(MacAddr([b[0], b[1], b[2], b[3], b[4], b[5]]))
        }
        _ => Err(format!("`{field}` must be a MAC address like 02:00:00:00:00:01, got {v:?}")),
    }
}

fn num<T: std::str::FromStr + PartialOrd + std::fmt::Display>(field: &str, v: &str, lo: T, hi: T) -> Result<T, String> {
    match v.parse::<T>() {
        Ok(n) if n >= lo && n <= hi => Ok(n),
        _ => Err(format!("`{field}` must be a number in {lo}..={hi}, got {v:?}")),
    }
}

/// Parses `spec` (see the module docs).
pub fn parse(spec: &str) -> Result<PacketSpec, String> {
    let mut in_port = None;
    let mut src = MacAddr([2, 0, 0, 0, 0, 1]);
    let mut dst = MacAddr([2, 0, 0, 0, 0, 2]);
    let (mut vlan, mut pcp) = (None, 0u8);
    let (mut ip_src, mut ip_dst, mut proto, mut ttl) = (None, None, None, 64u8);
    let (mut tp_src, mut tp_dst) = (1024u16, 80u16);
    for item in spec.split([',', ' ']).filter(|s| !s.is_empty()) {
        let Some((k, v)) = item.split_once('=') else {
            match item {
                "udp" | "tcp" | "icmp" => proto = Some(item.to_string()),
                _ => {
                    return Err(format!(
                        "{item:?} is not `field=value` (fields: in_port, eth_src, eth_dst, vlan, pcp, ip_src, ip_dst, proto, tp_src, tp_dst, ttl)"
                    ));
                }
            }
            continue;
        };
        match k {
            "in_port" => in_port = Some(v.to_string()),
            "eth_src" | "dl_src" => src = mac(k, v)?,
            "eth_dst" | "dl_dst" => dst = mac(k, v)?,
            "vlan" | "dl_vlan" => vlan = Some(num::<u16>(k, v, 0, 4095)?),
            "pcp" => pcp = num::<u8>(k, v, 0, 7)?,
            "ip_src" | "nw_src" => {
                ip_src = Some(v.parse::<Ipv4Addr>().map_err(|_| format!("`{k}` must be an IPv4 address, got {v:?}"))?)
            }
            "ip_dst" | "nw_dst" => {
                ip_dst = Some(v.parse::<Ipv4Addr>().map_err(|_| format!("`{k}` must be an IPv4 address, got {v:?}"))?)
            }
            "proto" => match v {
                "udp" | "tcp" | "icmp" => proto = Some(v.to_string()),
                _ => return Err(format!("`proto` must be udp, tcp or icmp, got {v:?}")),
            },
            "tp_src" => tp_src = num::<u16>(k, v, 0, 65535)?,
            "tp_dst" => tp_dst = num::<u16>(k, v, 0, 65535)?,
            "ttl" => ttl = num::<u8>(k, v, 0, 255)?,
            _ => {
                return Err(format!(
                    "unknown field {k:?} (fields: in_port, eth_src, eth_dst, vlan, pcp, ip_src, ip_dst, proto, tp_src, tp_dst, ttl)"
                ));
            }
        }
    }
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    if let Some(v) = vlan {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&((u16::from(pcp) << 13) | v).to_be_bytes());
    }
    let ip = ip_src.is_some() || ip_dst.is_some() || proto.is_some();
    if !ip {
        f.extend_from_slice(&[0x88, 0xb5]);
        f.resize(f.len() + 46, 0);
        return Ok(PacketSpec { in_port, frame: f });
    }
    let s = ip_src.unwrap_or(Ipv4Addr::new(10, 0, 0, 1));
    let d = ip_dst.unwrap_or(Ipv4Addr::new(10, 0, 0, 2));
    let (pnum, l4): (u8, Vec<u8>) = match proto.as_deref() {
        Some("tcp") => {
            let mut h = vec![0u8; 20];
            h[0..2].copy_from_slice(&tp_src.to_be_bytes());
            h[2..4].copy_from_slice(&tp_dst.to_be_bytes());
            h[12] = 5 << 4;
            h[13] = 0x02; // SYN
            h[14..16].copy_from_slice(&64240u16.to_be_bytes());
            (6, h)
        }
        Some("icmp") => {
            let mut h = vec![8u8, 0, 0, 0, 0, 1, 0, 1];
            h.resize(26, 0);
            let c = checksum::checksum(&h);
            h[2..4].copy_from_slice(&c.to_be_bytes());
            (1, h)
        }
        _ => {
            let mut h = vec![0u8; 8 + 18];
            h[0..2].copy_from_slice(&tp_src.to_be_bytes());
            h[2..4].copy_from_slice(&tp_dst.to_be_bytes());
            let len = h.len() as u16;
            h[4..6].copy_from_slice(&len.to_be_bytes());
            (17, h)
        }
    };
    let mut l4 = l4;
    if pnum != 1 {
        let proto = sluice_packet::IpProtocol::from(pnum);
        let mut ps = checksum::pseudo_header_v4(s, d, proto, l4.len() as u32);
        ps.add_bytes(&l4);
        let c = ps.finish();
        let at = if pnum == 6 { 16 } else { 6 };
        l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
    f.extend_from_slice(&[0x08, 0x00]);
    let ip_at = f.len();
    let total = (20 + l4.len()) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x40, 0, ttl, pnum, 0, 0]);
    f.extend_from_slice(&s.octets());
    f.extend_from_slice(&d.octets());
    let c = checksum::checksum(&f[ip_at..ip_at + 20]);
    f[ip_at + 10..ip_at + 12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&l4);
    Ok(PacketSpec { in_port, frame: f })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_packet::{Headers, L4};

    #[test]
    fn specs_become_frames_the_parser_reads_back() {
        let p = parse("in_port=vm1,eth_src=02:00:00:00:00:0a,eth_dst=02:00:00:00:00:0b,vlan=10,ip_src=10.1.1.1,ip_dst=10.1.1.2,proto=tcp,tp_dst=443").unwrap();
        assert_eq!(p.in_port.as_deref(), Some("vm1"));
        let h = Headers::parse(&p.frame).unwrap();
        assert_eq!(h.error, None);
        assert_eq!(h.eth.vlans()[0].vid, 10);
        assert!(matches!(h.l4, L4::Tcp { src_port: 1024, dst_port: 443, .. }));
        let bare = parse("eth_dst=ff:ff:ff:ff:ff:ff").unwrap();
        assert_eq!(bare.frame.len(), 60);
        for (bad, needle) in [
            ("vlan=5000", "`vlan` must be a number in 0..=4095"),
            ("eth_src=zz", "`eth_src` must be a MAC"),
            ("colour=red", "unknown field \"colour\""),
            ("proto=sctp", "`proto` must be udp, tcp or icmp"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
