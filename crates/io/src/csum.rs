//! Completing checksums the kernel left partial.
//!
//! A frame the local stack sent through a device with checksum offload
//! (veth has it) reaches a packet socket with `CHECKSUM_PARTIAL`: the L4
//! checksum field holds only the pseudo-header sum, and the device was
//! expected to finish it. AF_PACKET flags such frames
//! `TP_STATUS_CSUMNOTREADY`. A switch that forwards them must finish the
//! checksum, or the receiver drops the segment.

use sluice_packet::{Headers, IpProtocol, L4};

/// Finishes the TCP or UDP checksum of `frame` in place, given that its
/// checksum field holds the pseudo-header sum (`CHECKSUM_PARTIAL`). Frames
/// that are not TCP/UDP over IP, or too short, are left alone; returns
/// whether it wrote a checksum.
pub(crate) fn complete_partial(frame: &mut [u8]) -> bool {
    let Ok(h) = Headers::parse(frame) else { return false };
    let field = match (h.protocol, h.l4) {
        (IpProtocol::Tcp, L4::Tcp { .. }) => 16,
        (IpProtocol::Udp, L4::Udp { .. }) => 6,
        _ => return false,
    };
    let start = usize::from(h.l4_offset);
    let end = h.ip_end(frame).min(frame.len());
    if start + field + 2 > end {
        return false;
    }
    let segment = &frame[start..end];
    let mut sum = sluice_packet::checksum::checksum(segment);
    if sum == 0 && field == 6 {
        // UDP sends a zero checksum as all ones (zero means "none").
        sum = 0xffff;
    }
    frame[start + field..start + field + 2].copy_from_slice(&sum.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_packet::checksum::{Checksum, pseudo_header_v4};
    use std::net::Ipv4Addr;

    fn udp_frame(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8 + payload.len()];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + 8 + payload.len()) as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
        let c = sluice_packet::checksum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        let udp_len = (8 + payload.len()) as u16;
        f[34..36].copy_from_slice(&1000u16.to_be_bytes());
        f[36..38].copy_from_slice(&2000u16.to_be_bytes());
        f[38..40].copy_from_slice(&udp_len.to_be_bytes());
        f[42..].copy_from_slice(payload);
        f
    }

    #[test]
    fn partial_udp_checksum_is_finished() {
        let mut f = udp_frame(b"hello world");
        let (src, dst) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        // What the stack leaves for the device: the folded pseudo-header sum.
        let pseudo: Checksum = pseudo_header_v4(src, dst, IpProtocol::Udp, (f.len() - 34) as u32);
        f[40..42].copy_from_slice(&pseudo.sum().to_be_bytes());
        assert!(complete_partial(&mut f));
        let mut full = pseudo_header_v4(src, dst, IpProtocol::Udp, (f.len() - 34) as u32);
        assert_eq!(full.add_bytes(&f[34..]).sum(), 0xffff, "checksum verifies");
    }

    #[test]
    fn odd_frames_are_left_alone() {
        for len in [0, 1, 13, 14, 33, 41] {
            let mut f = udp_frame(b"x");
            f.truncate(len);
            let before = f.clone();
            assert!(!complete_partial(&mut f));
            assert_eq!(f, before);
        }
        let mut arp = vec![0u8; 60];
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert!(!complete_partial(&mut arp));
    }
}
