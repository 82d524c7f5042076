//! One pass over a frame from L2 to L4: the offsets of each layer and the
//! fields a flow key, a trace or a counter needs, without copying payloads.
//!
//! [`Headers::parse`] fails only when the Ethernet header itself is
//! truncated. A malformed or truncated upper layer stops the walk there and
//! is recorded in [`Headers::error`], so a switch can still forward (or
//! count and drop) the frame by its L2 header.
//!
//! Most frames on a datapath are untagged IPv4 (no options, not a
//! fragment) carrying UDP or TCP; those take a straight line of fixed-offset
//! reads ([`Headers::parse_fast`]) that makes the same checks as the
//! general walk and gives the same result (a unit test compares the two on
//! every single-byte change of such frames; the fuzz targets compare
//! `parse` with the flow-key extractor's use of it).

use core::net::{IpAddr, Ipv6Addr};

use crate::ethernet::{EtherType, EthernetRepr};
use crate::field::{array, u16_at};
use crate::ip::{Fragment, IpProtocol};
use crate::{Error, Result, arp, ipv4, ipv6};

/// Where the L4 header starts in a frame for which
/// [`Headers::parse_fast`] returned true (untagged Ethernet,
/// 20-byte IPv4 header).
pub const FAST_L4_OFFSET: usize = crate::ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN;

/// Whether `frame` has the common shape that [`Headers::parse_fast`]
/// takes (untagged Ethernet, IPv4 with a 20-byte header, not a fragment, a
/// total length within the frame, a complete UDP or TCP header within
/// that), and if so whether it is TCP. It makes the same checks as
/// `parse_fast` (the same functions), without reading the fields.
///
/// When it says yes, what the walk finds depends only on bytes at fixed
/// offsets: the MACs (0..12), TOS (15), TTL (22), protocol (23), addresses
/// and ports (26..38) and, for TCP, the flags (the low bit of 46, and 47).
/// A cache may be keyed on exactly those bytes (the flow crate's frame key
/// is).
#[inline(always)]
pub fn fast_shape(frame: &[u8]) -> Option<bool> {
    let (f, l4_len) = fast_ipv4(frame)?;
    match f[23] {
        17 => fast_udp(f, l4_len).then_some(false),
        6 => fast_tcp(frame, l4_len).map(|_| true),
        _ => None,
    }
}

/// [`fast_shape`] for a frame with one VLAN tag (TPID 0x8100, 802.1Q, or
/// 0x88a8, 802.1ad) in front of the IPv4 EtherType: the same checks on the
/// frame with the tag's four bytes taken out (everything the walk reads
/// past the MACs sits four bytes further on). When it says yes, what the
/// walk finds depends only on the bytes [`fast_shape`] names, four further
/// on, and on the MACs and the tag (0..16).
#[inline(always)]
pub fn fast_shape_tagged(frame: &[u8]) -> Option<bool> {
    fast_shape(past_tags::<1>(frame)?)
}

/// [`fast_shape_tagged`] for a frame with two VLAN tags (802.1ad QinQ: an
/// outer and an inner tag, each with TPID 0x8100 or 0x88a8, as the general
/// walk takes them): when it says yes, what the walk finds depends only on
/// the bytes [`fast_shape`] names, eight further on, and on the MACs and
/// the tags (0..20).
#[inline(always)]
pub fn fast_shape_double_tagged(frame: &[u8]) -> Option<bool> {
    fast_shape(past_tags::<2>(frame)?)
}

/// `frame` seen as if its `N` VLAN tags (each a TPID of 0x8100 or 0x88a8
/// and a TCI, from byte 12 on) were not there: from byte `4 * N` on, whose
/// bytes `12 - 4 * N..12` are then the tags. `None` for a frame without
/// that many tags. (Whether a further tag follows is the caller's check:
/// the shapes want their EtherType there.)
#[inline(always)]
fn past_tags<const N: usize>(frame: &[u8]) -> Option<&[u8]> {
    for t in 0..N {
        let at = crate::ethernet::HEADER_LEN - 2 + 4 * t;
        // A TPID, 0x8100 or 0x88a8, compared on the bytes as they lie
        // (little-endian), which saves swapping them.
        let raw = frame.get(at..at + 2)?;
        let le = u16::from_le_bytes([raw[0], raw[1]]);
        if le != u16::from_le_bytes([0x81, 0x00]) && le != u16::from_le_bytes([0x88, 0xa8]) {
            return None;
        }
    }
    frame.get(4 * N..)
}

/// Where the L4 header starts in a frame for which [`fast_shape_v6`] says
/// yes (untagged Ethernet, IPv6 without extension headers).
pub const FAST_V6_L4_OFFSET: usize = crate::ethernet::HEADER_LEN + ipv6::HEADER_LEN;

/// [`fast_shape`] for IPv6: whether `frame` is untagged Ethernet carrying
/// IPv6 with no extension header (next header UDP or TCP), a payload
/// length within the frame and a whole UDP or TCP header within that; and
/// if so whether it is TCP. The same checks as the general walk's.
///
/// When it says yes, what the walk finds depends only on bytes at fixed
/// offsets: the MACs (0..12), the traffic class (the low half of 14 and
/// the high half of 15), next header (20), hop limit (21), addresses
/// (22..54), ports (54..58) and, for TCP, the flags (the low bit of 66,
/// and 67).
#[inline(always)]
pub fn fast_shape_v6(frame: &[u8]) -> Option<bool> {
    const L4: usize = FAST_V6_L4_OFFSET;
    let f = frame.first_chunk::<{ L4 + crate::udp::HEADER_LEN }>()?;
    // EtherType 0x86dd, then version 6.
    if f[12] != 0x86 || f[13] != 0xdd || f[14] >> 4 != 6 {
        return None;
    }
    let payload = usize::from(u16::from_be_bytes([f[18], f[19]]));
    if frame.len() - L4 < payload {
        return None;
    }
    match f[20] {
        17 => {
            let len = usize::from(u16::from_be_bytes([f[L4 + 4], f[L4 + 5]]));
            (len >= crate::udp::HEADER_LEN && payload >= len).then_some(false)
        }
        6 => {
            let t = frame.get(L4..).and_then(|b| b.first_chunk::<{ crate::tcp::MIN_HEADER_LEN }>())?;
            let hl = usize::from(t[12] >> 4) * 4;
            (hl >= crate::tcp::MIN_HEADER_LEN && payload >= hl).then_some(true)
        }
        _ => None,
    }
}

/// [`fast_shape_v6`] for a frame with one VLAN tag (TPID 0x8100 or
/// 0x88a8) in front of the IPv6 EtherType, as [`fast_shape_tagged`] is for
/// IPv4: when it says yes, what the walk finds depends only on the bytes
/// [`fast_shape_v6`] names, four further on, and on the MACs and the tag
/// (0..16).
#[inline(always)]
pub fn fast_shape_v6_tagged(frame: &[u8]) -> Option<bool> {
    fast_shape_v6(past_tags::<1>(frame)?)
}

/// [`fast_shape`]'s checks, returning what the flow key needs beyond the
/// fixed bytes: the TCP flags (the 9 flag bits; 0 for UDP). For a caller
/// that wants the key of a common-shape frame but none of its offsets.
#[inline(always)]
pub fn fast_tcp_flags(frame: &[u8]) -> Option<u16> {
    let (f, l4_len) = fast_ipv4(frame)?;
    match f[23] {
        17 => fast_udp(f, l4_len).then_some(0),
        6 => fast_tcp(frame, l4_len).map(|(t, _)| u16::from_be_bytes([t[12], t[13]]) & 0x01ff),
        _ => None,
    }
}

/// The common shape's Ethernet and IPv4 checks: its first 42 bytes (up to
/// the end of a UDP header) and the L4 length.
#[inline(always)]
fn fast_ipv4(frame: &[u8]) -> Option<(&[u8; FAST_L4_OFFSET + crate::udp::HEADER_LEN], usize)> {
    let f = frame.first_chunk::<{ FAST_L4_OFFSET + crate::udp::HEADER_LEN }>()?;
    // EtherType 0x0800, then version 4 with a 20-byte header (0x45).
    if u32::from_le_bytes([f[12], f[13], f[14], 0]) != 0x0045_0008 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
    // Neither "more fragments" nor an offset: `Fragment::No`.
    let not_fragment = u16::from_be_bytes([f[20], f[21]]) & 0x3fff == 0;
    if !not_fragment || total < ipv4::MIN_HEADER_LEN || frame.len() - crate::ethernet::HEADER_LEN < total {
        return None;
    }
    Some((f, total - ipv4::MIN_HEADER_LEN))
}

/// The common shape's UDP check. (The general walk also requires
/// `l4_len >= 8`; that follows from these two, so it costs no separate
/// compare here.)
#[inline(always)]
fn fast_udp(f: &[u8; FAST_L4_OFFSET + crate::udp::HEADER_LEN], l4_len: usize) -> bool {
    let len = usize::from(u16::from_be_bytes([f[38], f[39]]));
    len >= crate::udp::HEADER_LEN && l4_len >= len
}

/// The common shape's TCP check: the TCP header and its length. (As for
/// UDP, `l4_len >= 20` follows.)
#[inline(always)]
fn fast_tcp(frame: &[u8], l4_len: usize) -> Option<(&[u8; crate::tcp::MIN_HEADER_LEN], usize)> {
    let t = frame.get(FAST_L4_OFFSET..).and_then(|b| b.first_chunk::<{ crate::tcp::MIN_HEADER_LEN }>())?;
    let hl = usize::from(t[12] >> 4) * 4;
    (hl >= crate::tcp::MIN_HEADER_LEN && l4_len >= hl).then_some((t, hl))
}

/// The network layer the walk found. Its fields are read through
/// [`Headers::ipv4`], [`Headers::ipv6`] and [`Headers::arp`], which hand out
/// views whose lengths were already checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L3 {
    /// No network layer this library reads (or the walk stopped before it).
    None,
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
    /// ARP (Ethernet/IPv4).
    Arp,
}

/// The transport layer as the walk found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    /// None read.
    None,
    /// TCP.
    Tcp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// Flags.
        flags: crate::tcp::TcpFlags,
    },
    /// UDP.
    Udp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
    },
    /// SCTP (ports only).
    Sctp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
    },
    /// ICMPv4.
    Icmpv4 {
        /// Type.
        msg_type: u8,
        /// Code.
        code: u8,
    },
    /// ICMPv6.
    Icmpv6 {
        /// Type.
        msg_type: u8,
        /// Code.
        code: u8,
    },
}

/// The result of one pass over a frame: the L2 header as a value, and for
/// L3 and L4 their kind, offsets and the few fields every packet's
/// classification needs. It is small (about 80 bytes) so that a batch of
/// them stays in cache; addresses are read from the frame on demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Headers {
    /// The L2 header, VLAN tags included.
    pub eth: EthernetRepr,
    /// The kind of L3 header at `l3_offset`.
    pub l3: L3,
    /// For IP: the upper-layer protocol after any IPv6 extension headers.
    pub protocol: IpProtocol,
    /// For IP: the fragment state.
    pub fragment: Fragment,
    /// Offset of the L3 header.
    pub l3_offset: u16,
    /// Offset of the L4 header (0 when there is none).
    pub l4_offset: u16,
    /// Offset of the L4 payload (or of whatever the walk stopped at).
    pub payload_offset: u16,
    /// The L4 header.
    pub l4: L4,
    /// Why the walk stopped early, if it did.
    pub error: Option<Error>,
}

impl Headers {
    /// Headers of nothing: an all-zero untagged Ethernet header and no
    /// upper layers. A starting value for arrays of reusable slots.
    pub const EMPTY: Headers = Headers {
        eth: EthernetRepr {
            dst: crate::MacAddr::ZERO,
            src: crate::MacAddr::ZERO,
            tags: [crate::ethernet::VlanTag { tpid: EtherType::Vlan, pcp: 0, dei: false, vid: 0 }; 2],
            tag_count: 0,
            ethertype: EtherType::Unknown(0),
        },
        l3: L3::None,
        protocol: IpProtocol::Unknown(255),
        fragment: Fragment::No,
        l3_offset: 0,
        l4_offset: 0,
        payload_offset: 0,
        l4: L4::None,
        error: None,
    };

    /// Walks a frame from Ethernet to the L4 header. Fails only when the
    /// Ethernet header (with its VLAN tags) is truncated; never panics.
    #[inline]
    pub fn parse(frame: &[u8]) -> Result<Headers> {
        let mut h = Headers::EMPTY;
        h.parse_into(frame)?;
        Ok(h)
    }

    /// [`parse`](Self::parse) into an existing value, overwriting all of
    /// it: the datapath keeps a batch of these and reuses them, so that no
    /// 80-byte value is built and then copied per packet. On error the
    /// value is unspecified (but safe to overwrite again).
    #[inline]
    pub fn parse_into(&mut self, frame: &[u8]) -> Result<()> {
        if self.parse_ipv4_fast(frame).is_some() {
            return Ok(());
        }
        self.parse_general(frame)
    }

    /// [`parse_into`](Self::parse_into) for frames of the common shape
    /// only: untagged Ethernet, an unfragmented IPv4 header of 20 bytes and
    /// a complete UDP or TCP header. Returns true when the frame is of that
    /// shape (and `self` then holds exactly what `parse_into` gives), false
    /// having written nothing otherwise. A caller that gets true may read
    /// fields at fixed offsets: the IPv4 header at 14, the L4 header at
    /// [`FAST_L4_OFFSET`]. The flow-key extractor does, and falls back to
    /// `parse_into` when it gets false.
    #[inline(always)]
    pub fn parse_fast(&mut self, frame: &[u8]) -> bool {
        self.parse_ipv4_fast(frame).is_some()
    }

    /// [`parse_fast`](Self::parse_fast), returning on success the TCP
    /// flags (the 9 flag bits; 0 for UDP) it read anyway, so that the
    /// flow-key extractor need not test the protocol and read them again.
    #[inline(always)]
    pub fn parse_fast_tcp_flags(&mut self, frame: &[u8]) -> Option<u16> {
        self.parse_ipv4_fast(frame)
    }

    /// The common case in one straight line: an untagged Ethernet frame
    /// carrying an unfragmented IPv4 packet without options and a UDP or
    /// TCP header. Every check of the general walk is made here too (on
    /// fixed offsets, so the compiler needs no bounds checks and no enum
    /// conversions; the checks are [`fast_shape`]'s); anything else returns
    /// `None` having written nothing, and the general walk takes over. The result is identical to the
    /// general walk's (the `frame` fuzz target and the unit tests compare
    /// them). On success it returns the TCP flags (0 for UDP).
    #[inline(always)]
    fn parse_ipv4_fast(&mut self, frame: &[u8]) -> Option<u16> {
        const L3_AT: usize = crate::ethernet::HEADER_LEN;
        const L4_AT: usize = FAST_L4_OFFSET;
        let (f, l4_len) = fast_ipv4(frame)?;
        let (src_port, dst_port) = (u16::from_be_bytes([f[34], f[35]]), u16::from_be_bytes([f[36], f[37]]));
        let (protocol, l4, hl, tcp_flags) = match f[23] {
            17 if fast_udp(f, l4_len) => (IpProtocol::Udp, L4::Udp { src_port, dst_port }, crate::udp::HEADER_LEN, 0),
            6 => {
                let (t, hl) = fast_tcp(frame, l4_len)?;
                let bits = u16::from_be_bytes([t[12], t[13]]) & 0x01ff;
                (IpProtocol::Tcp, L4::Tcp { src_port, dst_port, flags: crate::tcp::TcpFlags(bits) }, hl, bits)
            }
            _ => return None,
        };
        self.eth.dst = crate::MacAddr([f[0], f[1], f[2], f[3], f[4], f[5]]);
        self.eth.src = crate::MacAddr([f[6], f[7], f[8], f[9], f[10], f[11]]);
        self.eth.ethertype = EtherType::Ipv4;
        self.eth.tag_count = 0;
        self.l3 = L3::Ipv4;
        self.protocol = protocol;
        self.fragment = Fragment::No;
        self.l3_offset = L3_AT as u16;
        self.l4_offset = L4_AT as u16;
        self.payload_offset = (L4_AT + hl) as u16;
        self.l4 = l4;
        self.error = None;
        Some(tcp_flags)
    }

    /// The whole walk, for every frame the fast path does not take.
    fn parse_general(&mut self, frame: &[u8]) -> Result<()> {
        self.eth.parse_from(frame)?;
        let l3_offset = self.eth.header_len();
        self.l3 = L3::None;
        self.protocol = IpProtocol::Unknown(255);
        self.fragment = Fragment::No;
        self.l3_offset = l3_offset as u16;
        self.l4_offset = 0;
        self.payload_offset = l3_offset as u16;
        self.l4 = L4::None;
        let rest = &frame[l3_offset..];
        let r = match self.eth.ethertype {
            EtherType::Ipv4 => self.parse_ipv4(rest, l3_offset),
            EtherType::Ipv6 => self.parse_ipv6(rest, l3_offset),
            EtherType::Arp => arp::ArpRepr::parse(&arp::Packet::new_unchecked(rest)).map(|_| {
                self.l3 = L3::Arp;
                self.payload_offset = (l3_offset + arp::PACKET_LEN) as u16;
            }),
            _ => Ok(()),
        };
        self.error = r.err();
        Ok(())
    }

    /// The IPv4 header of `frame` (the frame these headers came from).
    #[inline]
    pub fn ipv4<'a>(&self, frame: &'a [u8]) -> Option<ipv4::Packet<&'a [u8]>> {
        (self.l3 == L3::Ipv4)
            .then(|| frame.get(usize::from(self.l3_offset)..))
            .flatten()
            .map(ipv4::Packet::new_unchecked)
    }

    /// The IPv6 header of `frame`.
    #[inline]
    pub fn ipv6<'a>(&self, frame: &'a [u8]) -> Option<ipv6::Packet<&'a [u8]>> {
        (self.l3 == L3::Ipv6)
            .then(|| frame.get(usize::from(self.l3_offset)..))
            .flatten()
            .map(ipv6::Packet::new_unchecked)
    }

    /// The ARP packet of `frame`.
    #[inline]
    pub fn arp(&self, frame: &[u8]) -> Option<arp::ArpRepr> {
        if self.l3 != L3::Arp {
            return None;
        }
        let b = frame.get(usize::from(self.l3_offset)..)?;
        arp::ArpRepr::parse(&arp::Packet::new_unchecked(b)).ok()
    }

    /// Source and destination IP addresses, for IPv4 or IPv6.
    #[inline]
    pub fn ip_addrs(&self, frame: &[u8]) -> Option<(IpAddr, IpAddr)> {
        if let Some(p) = self.ipv4(frame) {
            return Some((IpAddr::V4(p.src()), IpAddr::V4(p.dst())));
        }
        self.ipv6(frame).map(|p| (IpAddr::V6(p.src()), IpAddr::V6(p.dst())))
    }

    /// The L4 bytes of `frame`, from the L4 header to the end of the IP
    /// payload (Ethernet padding excluded). Empty without an L4 header.
    pub fn l4_bytes<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        if self.l4 == L4::None {
            return &[];
        }
        let end = self.ip_end(frame);
        frame.get(usize::from(self.l4_offset)..end).unwrap_or(&[])
    }

    /// Where the IP packet ends in `frame` (its total or payload length).
    pub fn ip_end(&self, frame: &[u8]) -> usize {
        let l3 = usize::from(self.l3_offset);
        if let Some(p) = self.ipv4(frame) {
            l3 + usize::from(p.total_len())
        } else if let Some(p) = self.ipv6(frame) {
            l3 + ipv6::HEADER_LEN + usize::from(p.payload_len())
        } else {
            frame.len()
        }
        .min(frame.len())
    }

    #[inline(always)]
    fn parse_ipv4(&mut self, b: &[u8], base: usize) -> Result<()> {
        // The same checks as `ipv4::Packet::check_len`, on a fixed-size
        // array so that the field reads need no bounds checks.
        let Some(h) = b.first_chunk::<{ ipv4::MIN_HEADER_LEN }>() else {
            return Err(Error::Truncated);
        };
        if h[0] >> 4 != 4 {
            return Err(Error::Malformed(crate::error::Malformed::Ipv4Version));
        }
        let hl = usize::from(h[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
        if hl < ipv4::MIN_HEADER_LEN {
            return Err(Error::Malformed(crate::error::Malformed::Ipv4HeaderLengthShort));
        }
        if total < hl {
            return Err(Error::Malformed(crate::error::Malformed::Ipv4TotalLengthShort));
        }
        if b.len() < total {
            return Err(Error::Truncated);
        }
        let flags = u16::from_be_bytes([h[6], h[7]]);
        let fragment = if flags & 0x1fff != 0 {
            Fragment::Later
        } else if flags & 0x2000 != 0 {
            Fragment::First
        } else {
            Fragment::No
        };
        let protocol = IpProtocol::from(h[9]);
        self.l3 = L3::Ipv4;
        self.protocol = protocol;
        self.fragment = fragment;
        self.payload_offset = (base + hl) as u16;
        if fragment == Fragment::Later {
            return Ok(());
        }
        self.l4(protocol, &b[hl..total], base + hl, false)
    }

    #[inline(always)]
    fn parse_ipv6(&mut self, b: &[u8], base: usize) -> Result<()> {
        let Some(h) = b.first_chunk::<{ ipv6::HEADER_LEN }>() else {
            return Err(Error::Truncated);
        };
        if h[0] >> 4 != 6 {
            return Err(Error::Malformed(crate::error::Malformed::Ipv6Version));
        }
        let end = ipv6::HEADER_LEN + usize::from(u16::from_be_bytes([h[4], h[5]]));
        let Some(payload) = b.get(ipv6::HEADER_LEN..end) else {
            return Err(Error::Truncated);
        };
        let first = IpProtocol::from(h[6]);
        self.l3 = L3::Ipv6;
        // Most packets carry no extension header: go straight to L4.
        let up = match first {
            IpProtocol::Tcp | IpProtocol::Udp | IpProtocol::Icmpv6 => {
                ipv6::UpperLayer { protocol: first, offset: 0, fragment: Fragment::No, frag_ident: None, extensions: 0 }
            }
            _ => ipv6::walk_extensions(first, payload)?,
        };
        self.protocol = up.protocol;
        self.fragment = up.fragment;
        let at = ipv6::HEADER_LEN + up.offset;
        self.payload_offset = (base + at) as u16;
        if up.fragment == Fragment::Later {
            return Ok(());
        }
        self.l4(up.protocol, &payload[up.offset..], base + at, true)
    }

    #[inline(always)]
    fn l4(&mut self, proto: IpProtocol, b: &[u8], at: usize, v6: bool) -> Result<()> {
        let (l4, hl) = match proto {
            IpProtocol::Tcp => {
                let Some(h) = b.first_chunk::<{ crate::tcp::MIN_HEADER_LEN }>() else {
                    return Err(Error::Truncated);
                };
                let hl = usize::from(h[12] >> 4) * 4;
                if hl < crate::tcp::MIN_HEADER_LEN {
                    return Err(Error::Malformed(crate::error::Malformed::TcpDataOffsetShort));
                }
                if b.len() < hl {
                    return Err(Error::Truncated);
                }
                let flags = crate::tcp::TcpFlags(u16::from_be_bytes([h[12], h[13]]) & 0x01ff);
                let (src_port, dst_port) = (u16::from_be_bytes([h[0], h[1]]), u16::from_be_bytes([h[2], h[3]]));
                (L4::Tcp { src_port, dst_port, flags }, hl)
            }
            IpProtocol::Udp => {
                let Some(h) = b.first_chunk::<{ crate::udp::HEADER_LEN }>() else {
                    return Err(Error::Truncated);
                };
                let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
                if len < crate::udp::HEADER_LEN {
                    return Err(Error::Malformed(crate::error::Malformed::UdpLengthShort));
                }
                if b.len() < len {
                    return Err(Error::Truncated);
                }
                let (src_port, dst_port) = (u16::from_be_bytes([h[0], h[1]]), u16::from_be_bytes([h[2], h[3]]));
                (L4::Udp { src_port, dst_port }, crate::udp::HEADER_LEN)
            }
            IpProtocol::Sctp => {
                if b.len() < 12 {
                    return Err(Error::Truncated);
                }
                (L4::Sctp { src_port: u16_at(b, 0), dst_port: u16_at(b, 2) }, 12)
            }
            IpProtocol::Icmp if !v6 => {
                if b.len() < 8 {
                    return Err(Error::Truncated);
                }
                (L4::Icmpv4 { msg_type: b[0], code: b[1] }, 8)
            }
            IpProtocol::Icmpv6 if v6 => {
                if b.len() < 8 {
                    return Err(Error::Truncated);
                }
                (L4::Icmpv6 { msg_type: b[0], code: b[1] }, 8)
            }
            _ => return Ok(()),
        };
        self.l4 = l4;
        self.l4_offset = at as u16;
        self.payload_offset = (at + hl) as u16;
        Ok(())
    }

    /// The IPv6 ND target and link-layer address of a neighbour
    /// solicitation or advertisement in `frame` (which must be the frame
    /// these headers were parsed from).
    pub fn nd(&self, frame: &[u8]) -> Option<(Ipv6Addr, Option<crate::MacAddr>)> {
        let L4::Icmpv6 { msg_type: 135 | 136, .. } = self.l4 else { return None };
        let b = frame.get(usize::from(self.l4_offset)..)?;
        let p = crate::icmpv6::Packet::new_checked(b).ok()?;
        let target = p.target()?;
        let ll = p.nd_options().filter_map(|o| o.ok()).find_map(|o| o.link_layer_addr());
        Some((target, ll))
    }

    /// The inner frame's offset, when this frame is VXLAN (UDP 4789) or
    /// Geneve (UDP 6081) carrying Ethernet, with the VNI.
    pub fn tunnel(&self, frame: &[u8]) -> Option<(u32, usize)> {
        let L4::Udp { dst_port, .. } = self.l4 else { return None };
        let at = usize::from(self.payload_offset);
        let b = frame.get(at..)?;
        match dst_port {
            crate::vxlan::UDP_PORT => {
                let v = crate::vxlan::VxlanRepr::parse(&crate::vxlan::Packet::new_unchecked(b)).ok()?;
                Some((v.vni, at + crate::vxlan::HEADER_LEN))
            }
            crate::geneve::UDP_PORT => {
                let p = crate::geneve::Packet::new_checked(b).ok()?;
                (p.protocol() == EtherType::TransparentEthernet).then(|| (p.vni(), at + p.header_len()))
            }
            _ => None,
        }
    }
}

/// The source MAC of a frame, for MAC learning without a full parse.
#[inline]
pub fn src_mac(frame: &[u8]) -> Option<crate::MacAddr> {
    (frame.len() >= 12).then(|| crate::MacAddr(array(frame, 6)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Eth/IPv4/UDP (proto 17) or TCP (proto 6) with valid lengths, 64 bytes.
    fn frame(proto: u8) -> [u8; 64] {
        let mut f = [0u8; 64];
        f[..12].copy_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14..24].copy_from_slice(&[0x45, 0, 0, 46, 0, 0, 0x40, 0, 64, proto]);
        f[26..34].copy_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        f[34..38].copy_from_slice(&[4, 0xd2, 0x16, 0x2e]);
        if proto == 17 {
            f[38..40].copy_from_slice(&26u16.to_be_bytes());
        } else {
            f[46] = 0x50;
            f[47] = 0x12;
        }
        f
    }

    /// `base` with each of its first `upto` bytes set to each of `values`,
    /// then every truncation of it.
    fn changes(base: &[u8], upto: usize, values: &[u8]) -> Vec<Vec<u8>> {
        let mut cases = Vec::new();
        for at in 0..upto {
            for &v in values {
                let mut f = base.to_vec();
                f[at] = v;
                cases.push(f);
            }
        }
        cases.extend((0..=base.len()).map(|len| base[..len].to_vec()));
        cases
    }

    fn general(frame: &[u8]) -> (Result<()>, Headers) {
        let mut h = Headers::EMPTY;
        let r = h.parse_general(frame);
        (r, h)
    }

    /// What the general walk says of `f` as one of the fast shapes:
    /// `Some(tcp)` when it reads `tags` VLAN tags, `l3` with no option or
    /// extension header (the L4 header at `l4_offset`, that many tags
    /// further on), not a fragment, and a whole UDP or TCP header.
    fn walk_shape(f: &[u8], tags: usize, l3: L3, l4_offset: usize) -> Option<bool> {
        let (r, h) = general(f);
        let walk = r.is_ok()
            && usize::from(h.eth.tag_count) == tags
            && h.l3 == l3
            && h.fragment == Fragment::No
            && usize::from(h.l4_offset) == l4_offset + 4 * tags
            && matches!(h.l4, L4::Udp { .. } | L4::Tcp { .. });
        walk.then(|| h.protocol == IpProtocol::Tcp)
    }

    /// The straight-line IPv4 path gives what the general walk gives, and
    /// [`fast_shape`] says yes to the same frames, for every single-byte
    /// change of the header bytes they read and every truncation.
    #[test]
    fn fast_path_agrees_with_the_general_walk() {
        let mut taken = 0;
        for proto in [17u8, 6] {
            let base = frame(proto);
            let values =
                [0u8, 1, 0x05, 0x06, 0x08, 0x11, 0x14, 0x1c, 0x20, 0x28, 0x2e, 0x3f, 0x45, 0x46, 0x50, 0x86, 0xff];
            for f in &changes(&base, 60, &values) {
                let mut fast = Headers::EMPTY;
                let r = fast.parse_into(f);
                let mut again = Headers::EMPTY;
                if again.parse_fast(f) {
                    taken += 1;
                    assert_eq!(again, fast);
                } else {
                    assert_eq!(again, Headers::EMPTY, "nothing written");
                }
                // The flags variant takes the same frames and hands over
                // the TCP flags the walk recorded (0 for UDP).
                let mut flagged = Headers::EMPTY;
                let flags = flagged.parse_fast_tcp_flags(f);
                assert_eq!(flags.is_some(), again != Headers::EMPTY);
                // The predicate alone takes the same frames, and so does
                // the header-free variant, with the same flags.
                assert_eq!(fast_shape(f), flags.map(|_| fast.protocol == IpProtocol::Tcp), "frame {f:02x?}");
                assert_eq!(fast_tcp_flags(f), flags, "frame {f:02x?}");
                if let Some(bits) = flags {
                    assert_eq!(flagged, fast);
                    let want = match fast.l4 {
                        L4::Tcp { flags, .. } => flags.0,
                        _ => 0,
                    };
                    assert_eq!(bits, want);
                }
                assert_eq!((r, fast), general(f), "frame {f:02x?}");
            }
        }
        assert!(taken > 1000, "the fast path took only {taken} frames");
    }

    /// Eth/IPv6/UDP (next header 17) or TCP (6) with valid lengths, 80
    /// bytes (a UDP payload of 18 bytes; a 20-byte TCP header and 6 bytes).
    fn frame_v6(proto: u8) -> [u8; 80] {
        let mut f = [0u8; 80];
        f[..12].copy_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f[14..18].copy_from_slice(&[0x6a, 0xb1, 0x23, 0x45]);
        f[18..20].copy_from_slice(&26u16.to_be_bytes());
        f[20..22].copy_from_slice(&[proto, 64]);
        for (i, b) in f[22..54].iter_mut().enumerate() {
            *b = 0x20 + i as u8;
        }
        f[54..58].copy_from_slice(&[4, 0xd2, 0x16, 0x2e]);
        if proto == 17 {
            f[58..60].copy_from_slice(&26u16.to_be_bytes());
        } else {
            f[66] = 0x50;
            f[67] = 0x12;
        }
        f
    }

    /// [`fast_shape_v6`] says yes exactly to the frames the general walk
    /// reads as untagged IPv6 with no extension header, not a fragment, and
    /// a whole UDP or TCP header, and [`fast_shape_v6_tagged`] to those it
    /// reads so with one VLAN tag (either TPID), for every single-byte change of the
    /// header bytes and every truncation.
    #[test]
    fn v6_shapes_agree_with_the_general_walk() {
        let mut taken = [0; 2];
        for proto in [17u8, 6] {
            let untagged = frame_v6(proto).to_vec();
            let mut tagged = untagged[..12].to_vec();
            tagged.extend_from_slice(&[0x81, 0x00, 0x20, 0x0a]);
            tagged.extend_from_slice(&untagged[12..]);
            let values = [0u8, 1, 0x06, 0x08, 0x11, 0x14, 0x1a, 0x2c, 0x3a, 0x50, 0x60, 0x81, 0x86, 0xa8, 0xdd, 0xff];
            for (tags, base) in [(0, untagged), (1, tagged)] {
                for f in &changes(&base, 72 + 4 * tags, &values) {
                    let want = walk_shape(f, tags, L3::Ipv6, FAST_V6_L4_OFFSET);
                    let got = if tags == 0 { fast_shape_v6(f) } else { fast_shape_v6_tagged(f) };
                    assert_eq!(got, want, "frame {f:02x?}");
                    taken[tags] += usize::from(want.is_some());
                }
            }
        }
        assert!(taken[0] > 1000 && taken[1] > 1000, "the IPv6 shapes took only {taken:?} frames");
    }

    /// [`fast_shape_tagged`] and [`fast_shape_double_tagged`] say yes
    /// exactly to the frames the general walk reads as one or two VLAN tags
    /// (either TPID), IPv4 without options, not a fragment, and a whole UDP
    /// or TCP header, for every single-byte change of the header bytes of
    /// such frames and every truncation.
    #[test]
    fn tagged_shapes_agree_with_the_general_walk() {
        // Frames taken, by tag count, and how many of them had an 802.1ad
        // tag.
        let (mut taken, mut s_tagged) = ([0; 3], [0; 3]);
        for proto in [17u8, 6] {
            let inner = frame(proto);
            let with = |tags: &[u8]| [&inner[..12], tags, &inner[12..]].concat();
            let bases = [
                (1, with(&[0x81, 0x00, 0x20, 0x0a])),
                (1, with(&[0x88, 0xa8, 0x20, 0x0a])),
                (2, with(&[0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x20, 0x0a])),
                (2, with(&[0x81, 0x00, 0x00, 0x64, 0x81, 0x00, 0x20, 0x0a])),
            ];
            let values = [0u8, 1, 0x06, 0x08, 0x11, 0x14, 0x28, 0x45, 0x46, 0x50, 0x81, 0x88, 0xa8, 0xff];
            for (tags, base) in bases {
                for f in &changes(&base, 60 + 4 * tags, &values) {
                    let want = walk_shape(f, tags, L3::Ipv4, FAST_L4_OFFSET);
                    let (one, two) = (fast_shape_tagged(f), fast_shape_double_tagged(f));
                    assert_eq!(if tags == 1 { one } else { two }, want, "frame {f:02x?}");
                    // Each tag count has one shape: no frame takes both.
                    assert!(one.is_none() || two.is_none(), "frame {f:02x?}");
                    if want.is_some() {
                        taken[tags] += 1;
                        s_tagged[tags] += usize::from(general(f).1.eth.tags[0].tpid == EtherType::QinQ);
                    }
                }
            }
        }
        assert!(taken[1] > 2000 && taken[2] > 2000, "the tagged shapes took only {taken:?} frames");
        assert!(s_tagged[1] > 1000 && s_tagged[2] > 1000, "802.1ad frames taken: {s_tagged:?}");
    }
}
