//! Ethernet II frames with up to two VLAN tags (802.1Q, and 802.1ad QinQ).
//!
//! [`Frame`] is a view of the 14-byte Ethernet header. [`VlanTag`] is a view
//! of the 4 bytes that follow a TPID (`0x8100` or `0x88a8`): the TCI and the
//! next EtherType. [`EthernetRepr`] is the whole L2 header, tags included,
//! as a value: `parse` reads it, `emit` writes it, `header_len` tells its
//! size.

use core::fmt;

use crate::field::{array, put_u16, u16_at};

use crate::macros::enum_with_unknown;
use crate::{Error, Result};

enum_with_unknown! {
    /// The EtherType of the next header.
    pub enum EtherType(u16) {
        /// IPv4.
        Ipv4 = 0x0800,
        /// ARP.
        Arp = 0x0806,
        /// Transparent Ethernet bridging (an Ethernet frame inside GRE or Geneve).
        TransparentEthernet = 0x6558,
        /// 802.1Q VLAN tag (customer tag).
        Vlan = 0x8100,
        /// IPv6.
        Ipv6 = 0x86dd,
        /// MPLS unicast.
        Mpls = 0x8847,
        /// 802.1ad service tag (QinQ outer tag).
        QinQ = 0x88a8,
        /// LLDP.
        Lldp = 0x88cc,
    }
}

impl EtherType {
    /// True for the TPIDs of a VLAN tag (802.1Q and 802.1ad).
    #[inline]
    pub fn is_vlan(self) -> bool {
        matches!(self, EtherType::Vlan | EtherType::QinQ)
    }
}

/// A 48-bit MAC address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// The address from a slice of exactly six bytes.
    pub fn from_slice(b: &[u8]) -> Option<MacAddr> {
        Some(MacAddr(b.try_into().ok()?))
    }

    /// The six bytes.
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// The group bit: multicast or broadcast.
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }

    /// ff:ff:ff:ff:ff:ff.
    pub fn is_broadcast(&self) -> bool {
        *self == MacAddr::BROADCAST
    }

    /// Neither multicast nor all zeros: usable as a station's address.
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast() && *self != MacAddr::ZERO
    }

    /// The locally administered bit.
    pub const fn is_local(&self) -> bool {
        self.0[0] & 2 != 0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A MAC address could not be read from text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseMacError;

impl fmt::Display for ParseMacError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a MAC address is six hexadecimal bytes separated by ':' or '-', like 52:54:00:12:34:56")
    }
}

impl std::error::Error for ParseMacError {}

impl core::str::FromStr for MacAddr {
    type Err = ParseMacError;

    fn from_str(s: &str) -> core::result::Result<MacAddr, ParseMacError> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for b in &mut out {
            let p = parts.next().ok_or(ParseMacError)?;
            if p.is_empty() || p.len() > 2 {
                return Err(ParseMacError);
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| ParseMacError)?;
        }
        if parts.next().is_some() {
            return Err(ParseMacError);
        }
        Ok(MacAddr(out))
    }
}

mod field {
    pub const DST: usize = 0;
    pub const SRC: usize = 6;
    pub const ETHERTYPE: usize = 12;
    pub const HEADER_LEN: usize = 14;
}

/// The length of an untagged Ethernet header.
pub const HEADER_LEN: usize = field::HEADER_LEN;
/// The length of one VLAN tag.
pub const VLAN_TAG_LEN: usize = 4;
/// The most VLAN tags this library reads (802.1ad outer + 802.1Q inner).
pub const MAX_VLAN_TAGS: usize = 2;

/// A view of an Ethernet II header over a byte buffer.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking its length; accessors may panic
    /// until [`check_len`](Frame::check_len) succeeds.
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps a buffer that holds at least an Ethernet header.
    pub fn new_checked(buffer: T) -> Result<Frame<T>> {
        let f = Frame::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// Fails unless the buffer holds a whole Ethernet header.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN { Err(Error::Truncated) } else { Ok(()) }
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination address.
    #[inline]
    pub fn dst(&self) -> MacAddr {
        MacAddr(array(self.buffer.as_ref(), field::DST))
    }

    /// Source address.
    #[inline]
    pub fn src(&self) -> MacAddr {
        MacAddr(array(self.buffer.as_ref(), field::SRC))
    }

    /// The EtherType (or TPID, when the frame is tagged).
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType::from(u16_at(self.buffer.as_ref(), field::ETHERTYPE))
    }

    /// Everything after the 14-byte header (tags included).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination address.
    #[inline]
    pub fn set_dst(&mut self, a: MacAddr) {
        self.buffer.as_mut()[field::DST..field::DST + 6].copy_from_slice(&a.0);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src(&mut self, a: MacAddr) {
        self.buffer.as_mut()[field::SRC..field::SRC + 6].copy_from_slice(&a.0);
    }

    /// Sets the EtherType.
    #[inline]
    pub fn set_ethertype(&mut self, t: EtherType) {
        put_u16(self.buffer.as_mut(), field::ETHERTYPE, t.into());
    }

    /// Everything after the header, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// One VLAN tag as a value: which TPID introduced it and its TCI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VlanTag {
    /// The TPID before the TCI: 0x8100 (802.1Q) or 0x88a8 (802.1ad).
    pub tpid: EtherType,
    /// Priority code point, 0..=7.
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN id, 0..=4095 (0: priority tag only; 4095 reserved).
    pub vid: u16,
}

impl VlanTag {
    /// An 802.1Q tag with priority 0.
    pub fn dot1q(vid: u16) -> VlanTag {
        VlanTag { tpid: EtherType::Vlan, pcp: 0, dei: false, vid: vid & 0x0fff }
    }

    /// The 16-bit TCI.
    #[inline]
    pub fn tci(&self) -> u16 {
        (u16::from(self.pcp & 7) << 13) | (u16::from(self.dei) << 12) | (self.vid & 0x0fff)
    }

    /// The tag from its TPID and TCI.
    #[inline]
    pub fn from_tci(tpid: EtherType, tci: u16) -> VlanTag {
        VlanTag { tpid, pcp: (tci >> 13) as u8, dei: tci & 0x1000 != 0, vid: tci & 0x0fff }
    }
}

/// The whole L2 header as a value: addresses, up to two VLAN tags, and the
/// EtherType of the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EthernetRepr {
    /// Destination address.
    pub dst: MacAddr,
    /// Source address.
    pub src: MacAddr,
    /// VLAN tags, outermost first; `tags[..tag_count]` are present.
    pub tags: [VlanTag; MAX_VLAN_TAGS],
    /// How many of `tags` are present (0..=2).
    pub tag_count: u8,
    /// The EtherType after the tags.
    pub ethertype: EtherType,
}

/// 0x8100 (802.1Q) or 0x88a8 (802.1ad), as [`EtherType::is_vlan`].
#[inline(always)]
fn is_vlan_tpid(raw: u16) -> bool {
    raw == 0x8100 || raw == 0x88a8
}

const NO_TAG: VlanTag = VlanTag { tpid: EtherType::Vlan, pcp: 0, dei: false, vid: 0 };

impl EthernetRepr {
    /// An untagged header.
    pub fn new(src: MacAddr, dst: MacAddr, ethertype: EtherType) -> EthernetRepr {
        EthernetRepr { dst, src, tags: [NO_TAG; MAX_VLAN_TAGS], tag_count: 0, ethertype }
    }

    /// The present tags, outermost first.
    #[inline]
    pub fn vlans(&self) -> &[VlanTag] {
        &self.tags[..usize::from(self.tag_count).min(MAX_VLAN_TAGS)]
    }

    /// Adds a tag inside the existing ones (fails when there are two already).
    pub fn push_inner_tag(&mut self, tag: VlanTag) -> Result<()> {
        let n = usize::from(self.tag_count);
        if n >= MAX_VLAN_TAGS {
            return Err(Error::Malformed(crate::error::Malformed::TooManyVlanTags));
        }
        self.tags[n] = tag;
        self.tag_count += 1;
        Ok(())
    }

    /// Reads the header and up to two tags. A third tag is left in the
    /// payload with its TPID as the EtherType.
    #[inline]
    pub fn parse(bytes: &[u8]) -> Result<EthernetRepr> {
        let mut repr = EthernetRepr::new(MacAddr::ZERO, MacAddr::ZERO, EtherType::Unknown(0));
        repr.parse_from(bytes)?;
        Ok(repr)
    }

    /// [`parse`](Self::parse) into an existing value (tags beyond
    /// `tag_count` keep stale contents; they are never read).
    #[inline]
    pub fn parse_from(&mut self, bytes: &[u8]) -> Result<()> {
        // One length check for the fixed header; the reads below index a
        // fixed-size array and need no further checks.
        let Some(h) = bytes.first_chunk::<HEADER_LEN>() else {
            return Err(Error::Truncated);
        };
        self.dst = MacAddr([h[0], h[1], h[2], h[3], h[4], h[5]]);
        self.src = MacAddr([h[6], h[7], h[8], h[9], h[10], h[11]]);
        let raw = u16::from_be_bytes([h[12], h[13]]);
        self.tag_count = 0;
        // Decide on the raw value: a VLAN TPID test costs two compares
        // here, and the enum conversion (a chain of compares) is made once.
        if is_vlan_tpid(raw) {
            return self.parse_tags(bytes, raw);
        }
        self.ethertype = EtherType::from(raw);
        Ok(())
    }

    #[inline]
    fn parse_tags(&mut self, bytes: &[u8], mut raw: u16) -> Result<()> {
        let mut at = HEADER_LEN;
        while is_vlan_tpid(raw) && usize::from(self.tag_count) < MAX_VLAN_TAGS {
            let Some(t) = bytes.get(at..at + VLAN_TAG_LEN) else {
                self.ethertype = EtherType::from(raw);
                return Err(Error::Truncated);
            };
            let tpid = if raw == 0x8100 { EtherType::Vlan } else { EtherType::QinQ };
            self.tags[usize::from(self.tag_count)] = VlanTag::from_tci(tpid, u16_at(t, 0));
            self.tag_count += 1;
            raw = u16_at(t, 2);
            at += VLAN_TAG_LEN;
        }
        self.ethertype = EtherType::from(raw);
        Ok(())
    }

    /// Bytes the header takes, tags included.
    #[inline]
    pub fn header_len(&self) -> usize {
        HEADER_LEN + VLAN_TAG_LEN * self.vlans().len()
    }

    /// Writes the header at the start of `buf` (which must hold
    /// [`header_len`](Self::header_len) bytes) and returns the bytes after it.
    pub fn emit<'a>(&self, buf: &'a mut [u8]) -> Result<&'a mut [u8]> {
        let len = self.header_len();
        if buf.len() < len {
            return Err(Error::Truncated);
        }
        buf[field::DST..field::DST + 6].copy_from_slice(&self.dst.0);
        buf[field::SRC..field::SRC + 6].copy_from_slice(&self.src.0);
        let mut at = field::ETHERTYPE;
        for tag in self.vlans() {
            put_u16(buf, at, tag.tpid.into());
            put_u16(buf, at + 2, tag.tci());
            at += VLAN_TAG_LEN;
        }
        put_u16(buf, at, self.ethertype.into());
        Ok(&mut buf[len..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_qinq_and_keeps_a_third_tag_in_the_payload() {
        let mut f = vec![0u8; 30];
        f[..6].copy_from_slice(&[0xff; 6]);
        f[6..12].copy_from_slice(&[0x52, 0x54, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&[0x88, 0xa8]);
        f[14..16].copy_from_slice(&[0xa0, 0xc8]); // pcp 5, vid 200
        f[16..18].copy_from_slice(&[0x81, 0x00]);
        f[18..20].copy_from_slice(&[0x10, 0x64]); // dei, vid 100
        f[20..22].copy_from_slice(&[0x81, 0x00]); // a third tag
        let r = EthernetRepr::parse(&f).unwrap();
        assert_eq!(r.vlans().len(), 2);
        assert_eq!(r.vlans()[0], VlanTag { tpid: EtherType::QinQ, pcp: 5, dei: false, vid: 200 });
        assert_eq!(r.vlans()[1], VlanTag { tpid: EtherType::Vlan, pcp: 0, dei: true, vid: 100 });
        assert_eq!(r.ethertype, EtherType::Vlan);
        assert_eq!(r.header_len(), 22);
        let mut out = vec![0xa5u8; 30];
        r.emit(&mut out).unwrap();
        assert_eq!(out[..22], f[..22]);
    }

    #[test]
    fn truncated_tag_is_an_error_not_a_panic() {
        let mut f = [0u8; 16];
        f[12..14].copy_from_slice(&[0x81, 0x00]);
        assert_eq!(EthernetRepr::parse(&f), Err(Error::Truncated));
        assert_eq!(EthernetRepr::parse(&f[..13]), Err(Error::Truncated));
    }

    #[test]
    fn mac_text_round_trip_and_rejects() {
        let m: MacAddr = "52:54:00:AB:cd:0f".parse().unwrap();
        assert_eq!(m.to_string(), "52:54:00:ab:cd:0f");
        assert!("52:54:00:ab:cd".parse::<MacAddr>().is_err());
        assert!("52:54:00:ab:cd:0f:11".parse::<MacAddr>().is_err());
        assert!("52:54:00:ab:cd:zz".parse::<MacAddr>().is_err());
        assert!("01:00:5e:00:00:01".parse::<MacAddr>().unwrap().is_multicast());
    }

    #[test]
    fn unknown_ethertype_is_kept() {
        assert_eq!(EtherType::from(0x1234), EtherType::Unknown(0x1234));
        assert_eq!(u16::from(EtherType::Unknown(0x1234)), 0x1234);
    }
}
