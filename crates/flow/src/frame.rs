//! [`FrameKey`]: the exact-match key of a frame of the common shape, read
//! straight from its header bytes, so that an exact-match hit needs no
//! [`FlowKey`](crate::FlowKey) at all.
//!
//! Most frames a datapath sees are untagged Ethernet, IPv4 without options,
//! not a fragment, UDP or TCP ([`sluice_packet::headers::fast_shape`]). For
//! such a frame the flow key is a function of fixed header bytes and the
//! input port: the MACs, TOS, TTL, protocol, addresses, ports and TCP
//! flags. A frame key is those bytes, the others masked to zero (lengths,
//! identification, checksums, sequence numbers, payload), loaded as six
//! words, plus the input port. Two frames with equal frame keys therefore
//! have equal flow keys, and the exact-match cache may map a frame key to
//! the megaflow that the flow key matched: the hit costs a shape check, six
//! loads and masks, a hash and a compare, where building the 18-word flow
//! key costs about twice that (measured, `BENCHMARKS.md`).
//!
//! Frames of that shape with one VLAN tag (a trunk port's; 802.1Q or
//! 802.1ad) have frame keys too: the same bytes four further on, the tag in
//! the place of the source MAC's last four bytes, those in bits the
//! untagged layout masks out, and a bit in the port word that keeps tagged
//! and untagged keys apart ([`sluice_packet::headers::fast_shape_tagged`]).
//! So do frames with two tags (QinQ: a provider's outer tag and a
//! customer's inner one): the same bytes eight further on, the MACs' first
//! eight in the first word as with one tag, the next eight (the source
//! MAC's end and the outer tag) in masked-out bits, and a bit of their own
//! in the port word ([`sluice_packet::headers::fast_shape_double_tagged`]).
//! The flow keys of tagged frames take the general walk, on a miss only.
//!
//! IPv6 frames of the same kind (no extension header, UDP or TCP:
//! [`sluice_packet::headers::fast_shape_v6`]), untagged or with one VLAN
//! tag, have a key of their own type, [`FrameKey6`], eight words, in an
//! exact-match cache of their own. (An IPv6 key has no masked-out bits
//! left for a second tag: QinQ IPv6 frames take the flow-key path.)
//!
//! The shape check is the one the flow-key extractor's own straight line
//! takes (the general walk's, for IPv6), and the property that equal frame
//! keys mean equal flow keys is tested on random frames and byte changes,
//! tagged and not, IPv4 and IPv6 (and fuzzed). Frames of any other shape
//! have no frame key; the caches use their flow key.

use sluice_packet::headers::{
    FAST_V6_L4_OFFSET, fast_shape, fast_shape_double_tagged, fast_shape_v6, fast_shape_v6_tagged,
};

use crate::emc::ExactKey;
use crate::hash::{hash_eight, hash_four};

/// Header bytes a frame key covers (TCP flags end at byte 47), of an
/// untagged frame; four more of a tagged one.
pub const FRAME_KEY_BYTES: usize = 48;

/// Which bits of each of the six header words a frame key keeps (words
/// read little-endian: byte `8 * i + j` is bits `8 * j..8 * j + 8` of
/// word `i`). The last word's mask depends on the protocol.
const MASK: [u64; 5] = [
    // 0..8: destination MAC, source MAC's first two bytes.
    u64::MAX,
    // 8..16: the rest of the source MAC, EtherType, version and IHL, TOS.
    u64::MAX,
    // 16..24: total length, identification, flags and offset (out);
    // TTL (22), protocol (23).
    0xffff << 48,
    // 24..32: checksum (out); source address, first two bytes of the
    // destination.
    !0xffff,
    // 32..40: the rest of the destination, ports (32..38); UDP length or
    // TCP sequence (out).
    0xffff_ffff_ffff,
];
/// In the port word of a tagged frame's key, so that no tagged frame's key
/// equals an untagged one's (their second and third words are laid out
/// differently).
const TAGGED: u64 = 1 << 32;
/// In the port word of a double-tagged frame's key, so that its key equals
/// no single-tagged or untagged one's (laid out differently again).
const DOUBLE_TAGGED: u64 = 1 << 33;

/// Bytes 40..48 for TCP: the low bit of 46 (NS) and 47, the other flags.
/// (For UDP they are payload, out.)
const TCP_FLAGS_MASK: u64 = 0xff01 << 48;

/// The exact-match key of a frame of the common shape (see the module
/// docs). Seven words: six of masked header bytes, then the input port.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameKey {
    w: [u64; 7],
}

impl core::fmt::Debug for FrameKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let tagged = match self.w[6] & (TAGGED | DOUBLE_TAGGED) {
            0 => "",
            TAGGED => ", tagged",
            _ => ", double-tagged",
        };
        write!(f, "FrameKey(in_port {}{tagged}, {:016x?})", self.in_port(), &self.w[..6])
    }
}

impl FrameKey {
    /// The all-zero key (no frame has it: byte 14 of a keyed frame is 0x45).
    pub const ZERO: FrameKey = FrameKey { w: [0; 7] };

    /// The key of `frame`, received on `in_port` with no other metadata
    /// (what [`crate::Metadata::port`] describes), or `None` when the frame
    /// is not of the common shape, untagged or with one or two VLAN tags.
    #[inline]
    pub fn extract(frame: &[u8], in_port: u32) -> Option<FrameKey> {
        FrameKey::untagged(frame, in_port).or_else(|| FrameKey::tagged(frame, in_port))
    }

    /// [`extract`](Self::extract) for an untagged frame: `None` for any
    /// other, tagged ones included. The exact-match loop's path: when this
    /// says no, the loop looks the frame up as a tagged one out of line,
    /// so that the untagged frames keep their registers.
    #[inline(always)]
    pub(crate) fn untagged(frame: &[u8], in_port: u32) -> Option<FrameKey> {
        let tcp = fast_shape(frame)?;
        // A UDP frame may end before byte 48 (a TCP one may not): no key.
        Some(FrameKey::of(frame.first_chunk::<FRAME_KEY_BYTES>()?, tcp, u64::from(in_port)))
    }

    /// [`extract`](Self::extract) for a frame with one or two VLAN tags.
    #[inline(always)]
    pub(crate) fn tagged(frame: &[u8], in_port: u32) -> Option<FrameKey> {
        match FrameKey::tags(frame) {
            1 => FrameKey::one_tag(frame, in_port),
            2 => FrameKey::two_tags(frame, in_port),
            _ => None,
        }
    }

    /// How many VLAN tags a frame that may have a tagged key has: 1 when a
    /// tag's TPID (0x8100 or 0x88a8) stands where an untagged frame has
    /// its EtherType and IPv4's EtherType follows the tag, 2 when a second
    /// TPID follows it, and 0 (no tagged key) otherwise. Most frames that
    /// miss the untagged key are IPv6 ones, tagged or not, on their way to
    /// their own key: this is all they should pay here. (The compares are
    /// on the bytes as they lie, little-endian, which saves swapping them.)
    #[inline(always)]
    pub(crate) fn tags(frame: &[u8]) -> u8 {
        const VLAN: u16 = u16::from_le_bytes([0x81, 0x00]);
        const QINQ: u16 = u16::from_le_bytes([0x88, 0xa8]);
        const IPV4: u16 = u16::from_le_bytes([0x08, 0x00]);
        let Some(h) = frame.first_chunk::<18>() else { return 0 };
        let (outer, inner) = (u16::from_le_bytes([h[12], h[13]]), u16::from_le_bytes([h[16], h[17]]));
        if outer != VLAN && outer != QINQ {
            0
        } else if inner == IPV4 {
            1
        } else if inner == VLAN || inner == QINQ {
            2
        } else {
            0
        }
    }

    /// The key of a frame that [`tags`](Self::tags) says has one VLAN
    /// tag, or `None` when it is not of the shape: the checks of
    /// [`sluice_packet::headers::fast_shape_tagged`] past the tag's TPID,
    /// which `tags` has seen (checking it again costs 4 instructions). The
    /// untagged layout read four bytes further on (so the second word
    /// holds the tag instead of the source MAC's last four bytes, which go
    /// to the third word's masked-out low bits), and [`TAGGED`] with the
    /// port.
    #[inline(always)]
    pub(crate) fn one_tag(frame: &[u8], in_port: u32) -> Option<FrameKey> {
        let view = frame.get(4..)?;
        let tcp = fast_shape(view)?;
        let mut k = FrameKey::of(view.first_chunk::<FRAME_KEY_BYTES>()?, tcp, TAGGED | u64::from(in_port));
        // Bytes 0..8 are the MACs' first eight, as untagged; 8..12 finish
        // the source MAC.
        let h = frame.first_chunk::<12>()?;
        k.w[0] = u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
        k.w[2] |= u64::from(u32::from_le_bytes([h[8], h[9], h[10], h[11]]));
        Some(k)
    }

    /// [`extract`](Self::extract) for a frame with two VLAN tags: the
    /// untagged layout read eight bytes further on (so the second word
    /// holds the inner tag, and the first the source MAC's last four bytes
    /// and the outer tag), then the first word replaced by the frame's
    /// first eight bytes, as a single tag's is, and the eight it held moved
    /// to masked-out bits: six to the third word's low 48 (length,
    /// identification, flags), the outer TCI to the fourth word's low 16
    /// (the checksum). [`DOUBLE_TAGGED`] with the port.
    #[inline(always)]
    pub(crate) fn two_tags(frame: &[u8], in_port: u32) -> Option<FrameKey> {
        let tcp = fast_shape_double_tagged(frame)?;
        let view = frame.get(8..)?;
        let mut k = FrameKey::of(view.first_chunk::<FRAME_KEY_BYTES>()?, tcp, DOUBLE_TAGGED | u64::from(in_port));
        let h = frame.first_chunk::<16>()?;
        k.w[0] = u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
        k.w[2] |= u64::from_le_bytes([h[8], h[9], h[10], h[11], h[12], h[13], 0, 0]);
        k.w[3] |= u64::from(u16::from_le_bytes([h[14], h[15]]));
        Some(k)
    }

    /// The six words of masked header bytes `b` (the untagged layout), and
    /// the port word.
    #[inline(always)]
    fn of(b: &[u8; FRAME_KEY_BYTES], tcp: bool, port: u64) -> FrameKey {
        let word = |i: usize| {
            u64::from_le_bytes([
                b[8 * i],
                b[8 * i + 1],
                b[8 * i + 2],
                b[8 * i + 3],
                b[8 * i + 4],
                b[8 * i + 5],
                b[8 * i + 6],
                b[8 * i + 7],
            ])
        };
        let last = if tcp { TCP_FLAGS_MASK } else { 0 };
        FrameKey {
            w: [
                word(0) & MASK[0],
                word(1) & MASK[1],
                word(2) & MASK[2],
                word(3) & MASK[3],
                word(4) & MASK[4],
                word(5) & last,
                port,
            ],
        }
    }

    /// The input port.
    pub fn in_port(&self) -> u32 {
        self.w[6] as u32
    }

    /// The words: six of masked header bytes, then the port word.
    #[inline(always)]
    pub(crate) fn words(&self) -> &[u64; 7] {
        &self.w
    }

    /// The key with words `w` (for building a frame form's entry).
    pub(crate) fn from_words(w: [u64; 7]) -> FrameKey {
        FrameKey { w }
    }

    /// True for an untagged frame's key (the layout the signature-match
    /// cache's frame forms describe).
    #[inline(always)]
    pub(crate) fn is_untagged(&self) -> bool {
        self.w[6] & (TAGGED | DOUBLE_TAGGED) == 0
    }

    /// The key's hash, for the exact-match cache: the seven words folded
    /// into four (rotated so that the few bits the mask keeps in the third
    /// and sixth words, and the port, land on bits that are constant for
    /// IPv4 or rarely vary), then two multiplies.
    #[inline(always)]
    pub fn hash(&self) -> u64 {
        let w = &self.w;
        hash_four(&[
            w[0],
            // EtherType (bits 32..48) takes TTL and protocol; the source
            // MAC's last two bytes (bits 16..32) take the TCP flags.
            w[1] ^ w[2].rotate_right(16) ^ w[5].rotate_right(32),
            w[3],
            // Bytes 38..40 (bits 48..64) are always masked out.
            w[4] ^ w[6].rotate_right(16),
        ])
    }
}

impl ExactKey for FrameKey {
    const ZERO: FrameKey = FrameKey::ZERO;

    /// All seven words XORed and ORed, one test at the end (see
    /// `same_words`).
    #[inline(always)]
    fn same(&self, other: &FrameKey) -> bool {
        same_words(&self.w, &other.w)
    }
}

/// The frame keys' compare: all words XORed and ORed, one test at the end.
/// The OR goes through [`core::hint::black_box`]: without it LLVM turns
/// the expression into a compare-and-branch pair per word (seen in the
/// disassembly of the seven-word compare). Unlike the flow key's compare,
/// the probed key is not made opaque too: it would be stored to be loaded
/// again as vectors, and a 16-byte load of two 8-byte stores waits for
/// them to retire (measured with criterion: 501 against 466 ns per batch
/// of 32).
#[inline(always)]
fn same_words<const N: usize>(a: &[u64; N], b: &[u64; N]) -> bool {
    let mut d = 0;
    for i in 0..N {
        d |= a[i] ^ b[i];
    }
    core::hint::black_box(d) == 0
}

/// In word 7 of a tagged frame's IPv6 key, above its TCI (bits 32..48).
const TAGGED6: u64 = 1 << 48;
/// In word 7 of a tagged frame's IPv6 key when the tag's TPID is 0x88a8
/// (802.1ad) rather than 0x8100.
const S_TAGGED6: u64 = 1 << 49;

/// Which bits of the first three words of an IPv6 frame key's header
/// bytes it keeps (read little-endian, as [`MASK`]).
const MASK6: [u64; 3] = [
    // 0..8: destination MAC, source MAC's first two bytes.
    u64::MAX,
    // 8..16: the rest of the source MAC, EtherType, version and traffic
    // class (14, and the high half of 15; the low half starts the flow
    // label, out).
    0xf0ff_ffff_ffff_ffff,
    // 16..24: flow label and payload length (out; the port takes their
    // place), next header (20), hop limit (21), source address (22..).
    0xffff_ffff << 32,
];

/// The exact-match key of an untagged IPv6 frame with no extension header
/// and a UDP or TCP header (see the module docs). Eight words:
/// - 0, 1: bytes 0..16, masked (MACs, traffic class);
/// - 2: next header, hop limit and the source address's first two bytes
///   in the high half, the input port in the low half;
/// - 3, 4, 5: bytes 24..48 (addresses);
/// - 6: bytes 48..54 (the destination's last six), and for TCP the flags
///   (the low bit of byte 66, and 67) in the top two bytes;
/// - 7: the ports (54..58).
///
/// A frame with one VLAN tag has the same layout read four bytes further
/// on, except for the MACs (word 0 is the frame's first eight bytes, and
/// the source MAC's last four take the tag's place in word 1), and word 7,
/// which holds the tag's TCI above the ports, and above that a tag bit and
/// a bit for an 802.1ad TPID (no untagged key has any of those bits).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameKey6 {
    w: [u64; 8],
}

impl core::fmt::Debug for FrameKey6 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "FrameKey6(in_port {}, {:016x?})", self.in_port(), &self.w)
    }
}

impl FrameKey6 {
    /// The all-zero key (no frame has it: a keyed frame's next header is 6
    /// or 17).
    pub const ZERO: FrameKey6 = FrameKey6 { w: [0; 8] };

    /// The key of `frame`, received on `in_port` with no other metadata,
    /// or `None` when it is not an IPv6 frame of the common shape,
    /// untagged or with one VLAN tag.
    #[inline(always)]
    pub fn extract(frame: &[u8], in_port: u32) -> Option<FrameKey6> {
        let port = u64::from(in_port);
        match fast_shape_v6(frame) {
            Some(tcp) => FrameKey6::of(frame, tcp, port),
            None => FrameKey6::tagged(frame, port),
        }
    }

    /// [`extract`](Self::extract) for a frame with one VLAN tag.
    #[inline(always)]
    fn tagged(frame: &[u8], port: u64) -> Option<FrameKey6> {
        let tcp = fast_shape_v6_tagged(frame)?;
        let mut k = FrameKey6::of(frame.get(4..)?, tcp, port)?;
        let h = frame.first_chunk::<16>()?;
        k.w[0] = u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
        k.w[1] = (k.w[1] & !0xffff_ffff) | u64::from(u32::from_le_bytes([h[8], h[9], h[10], h[11]]));
        // The shape took a TPID of 0x8100 or 0x88a8: its first byte says which.
        let s_tag = if h[12] == 0x88 { S_TAGGED6 } else { 0 };
        k.w[7] |= TAGGED6 | s_tag | (u64::from(u16::from_be_bytes([h[14], h[15]])) << 32);
        Some(k)
    }

    /// The words of an untagged frame `f` of the shape (TCP when `tcp`),
    /// with the port word `port`.
    #[inline(always)]
    fn of(f: &[u8], tcp: bool, port: u64) -> Option<FrameKey6> {
        let b = f.first_chunk::<{ FAST_V6_L4_OFFSET + 8 }>()?;
        let word =
            |i: usize| u64::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3], b[i + 4], b[i + 5], b[i + 6], b[i + 7]]);
        // A TCP frame is at least 74 bytes long (the shape says so).
        let flags = if tcp { u64::from(u16::from_le_bytes([*f.get(66)?, *f.get(67)?]) & 0xff01) } else { 0 };
        let l4 = FAST_V6_L4_OFFSET;
        Some(FrameKey6 {
            w: [
                word(0) & MASK6[0],
                word(8) & MASK6[1],
                (word(16) & MASK6[2]) | port,
                word(24),
                word(32),
                word(40),
                (word(48) & 0xffff_ffff_ffff) | (flags << 48),
                u64::from(u32::from_le_bytes([b[l4], b[l4 + 1], b[l4 + 2], b[l4 + 3]])),
            ],
        })
    }

    /// The input port.
    pub fn in_port(&self) -> u32 {
        self.w[2] as u32
    }

    /// The key's hash, for the exact-match cache.
    #[inline(always)]
    pub fn hash(&self) -> u64 {
        hash_eight(&self.w)
    }
}

impl ExactKey for FrameKey6 {
    const ZERO: FrameKey6 = FrameKey6::ZERO;

    /// As [`FrameKey`]'s.
    #[inline(always)]
    fn same(&self, other: &FrameKey6) -> bool {
        same_words(&self.w, &other.w)
    }
}

#[cfg(test)]
pub(crate) mod testing {
    /// An untagged IPv4 frame of the common shape: TCP with 20-byte header
    /// when `tcp`, else UDP; `len` bytes in all (at least 54 / 42).
    pub(crate) fn frame(tcp: bool, len: usize, seed: u64) -> Vec<u8> {
        let mut f = vec![0u8; len];
        let mut x = seed | 1;
        for b in f.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        f[0] &= 0xfe; // unicast destination
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&((len - 14) as u16).to_be_bytes());
        f[20] &= 0x40; // DF or nothing: not a fragment
        f[21] = 0;
        if tcp {
            f[23] = 6;
            f[46] = 0x50 | (f[46] & 0x01);
        } else {
            f[23] = 17;
            f[38..40].copy_from_slice(&((len - 34) as u16).to_be_bytes());
        }
        f
    }

    /// An untagged IPv6 frame of the common shape (no extension header):
    /// TCP with a 20-byte header when `tcp`, else UDP; `len` bytes in all
    /// (at least 74 / 62).
    pub(crate) fn frame_v6(tcp: bool, len: usize, seed: u64) -> Vec<u8> {
        let mut f = frame(tcp, len, seed);
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f[14] = 0x60 | (f[14] & 0x0f);
        f[18..20].copy_from_slice(&((len - 54) as u16).to_be_bytes());
        if tcp {
            f[20] = 6;
            f[66] = 0x50 | (f[66] & 0x01);
        } else {
            f[20] = 17;
            f[58..60].copy_from_slice(&((len - 54) as u16).to_be_bytes());
        }
        f
    }

    /// `f` with an 802.1Q tag (`tci`) after its MACs.
    pub(crate) fn tagged(f: &[u8], tci: u16) -> Vec<u8> {
        tagged_as(f, 0x8100, tci)
    }

    /// `f` with a VLAN tag (`tpid`, `tci`) after its MACs, in front of any
    /// it had.
    pub(crate) fn tagged_as(f: &[u8], tpid: u16, tci: u16) -> Vec<u8> {
        [&f[..12], &tpid.to_be_bytes()[..], &tci.to_be_bytes()[..], &f[12..]].concat()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{frame, frame_v6, tagged, tagged_as};
    use super::*;
    use crate::key::{FlowKey, Metadata};
    use proptest::prelude::*;
    use sluice_packet::Headers;

    /// 0x88a8 (802.1ad) when `s`, else 0x8100 (802.1Q).
    fn tpid(s: bool) -> u16 {
        if s { 0x88a8 } else { 0x8100 }
    }

    /// `f` with `edits` (offset, value; those past its end skipped), then
    /// its last `cut` bytes cut off.
    fn edited(f: &[u8], edits: &[(usize, u8)], cut: usize) -> Vec<u8> {
        let mut g = f.to_vec();
        for &(at, v) in edits {
            if let Some(b) = g.get_mut(at) {
                *b = v;
            }
        }
        g.truncate(g.len() - cut);
        g
    }

    fn flow_key(f: &[u8], port: u32) -> FlowKey {
        FlowKey::extract(f, &Metadata::port(port), &mut Headers::EMPTY.clone())
    }

    /// A changed frame `g` of frame `f` (key `k`; `g`'s key is `kg`), both
    /// received on port 3: the key may vanish (the change broke the shape),
    /// but it never stays equal while the flow key changes, nor changes
    /// while the flow key stays. Counts the changes the key kept (the key
    /// changed) and masked out (it did not): `counts`.
    fn check_change<K: PartialEq>(f: &[u8], g: &[u8], k: &K, kg: Option<K>, counts: &mut (u32, u32), what: &str) {
        match kg {
            Some(k2) if k2 == *k => {
                counts.1 += 1;
                assert_eq!(flow_key(g, 3), flow_key(f, 3), "{what}");
            }
            Some(_) => {
                counts.0 += 1;
                assert_ne!(flow_key(g, 3), flow_key(f, 3), "{what}");
            }
            None => {}
        }
    }

    #[test]
    fn common_shapes_have_keys_and_others_do_not() {
        let tcp = frame(true, 60, 1);
        let udp = frame(false, 60, 2);
        assert!(FrameKey::extract(&tcp, 1).is_some());
        assert!(FrameKey::extract(&udp, 1).is_some());
        // A UDP frame that ends before byte 48 has no key (but a flow key).
        assert!(FrameKey::extract(&frame(false, 46, 3), 1).is_none());
        // One VLAN tag: a key, not the untagged frame's, nor that of a tag
        // with another TCI or TPID.
        let one = tagged(&udp, 0x200a);
        let k1 = FrameKey::extract(&one, 1);
        assert!(k1.is_some());
        assert_ne!(k1, FrameKey::extract(&udp, 1));
        assert_ne!(k1, FrameKey::extract(&tagged(&udp, 0x200b), 1));
        let s_tag = tagged_as(&udp, 0x88a8, 0x200a);
        assert!(FrameKey::extract(&s_tag, 1).is_some());
        assert_ne!(FrameKey::extract(&s_tag, 1), k1);
        assert_ne!(flow_key(&s_tag, 1), flow_key(&one, 1));
        // Two tags (QinQ): a key, not the single-tagged frame's, nor that
        // of another outer TCI or TPID; a third tag, or a tag of another
        // kind: none.
        let qinq = tagged_as(&one, 0x88a8, 7);
        let k2 = FrameKey::extract(&qinq, 1);
        assert!(k2.is_some());
        assert_ne!(k2, k1);
        assert_ne!(k2, FrameKey::extract(&tagged_as(&one, 0x88a8, 8), 1));
        assert_ne!(k2, FrameKey::extract(&tagged_as(&one, 0x8100, 7), 1));
        assert!(FrameKey::extract(&tagged_as(&one, 0x8100, 7), 1).is_some());
        assert!(FrameKey::extract(&tagged(&qinq, 9), 1).is_none());
        assert!(FrameKey::extract(&tagged_as(&udp, 0x9100, 7), 1).is_none());
        assert!(FrameKey::extract(&tagged_as(&one, 0x9100, 7), 1).is_none());
        let mut options = tcp.clone();
        options[14] = 0x46;
        assert!(FrameKey::extract(&options, 1).is_none());
        let mut fragment = udp.clone();
        fragment[20] |= 0x20;
        assert!(FrameKey::extract(&fragment, 1).is_none());
        let mut icmp = udp.clone();
        icmp[23] = 1;
        assert!(FrameKey::extract(&icmp, 1).is_none());
        // The port is part of the key.
        assert_ne!(FrameKey::extract(&tcp, 1), FrameKey::extract(&tcp, 2));
    }

    /// An untagged frame whose source MAC ends in what a tag would be,
    /// and a tagged one whose source MAC ends in zeros, lay out the same
    /// bytes in their first three words: the port word tells them apart.
    #[test]
    fn tagged_and_untagged_keys_never_collide() {
        let mut untagged = frame(false, 64, 9);
        untagged[8..12].copy_from_slice(&[0x81, 0x00, 0x20, 0x0a]);
        let mut inner = untagged.clone();
        inner[8..12].fill(0);
        let one = tagged(&inner, 0x200a);
        let (a, b) = (FrameKey::extract(&untagged, 1).unwrap(), FrameKey::extract(&one, 1).unwrap());
        assert_eq!(a.w[..2], b.w[..2]);
        assert_ne!(a, b);
        assert_ne!(flow_key(&untagged, 1), flow_key(&one, 1));
        assert_eq!(b.in_port(), 1);
        // Likewise a double-tagged frame whose inner tag is a single-tagged
        // frame's tag and whose outer TCI is 0.
        let two = tagged_as(&one, 0x8100, 0);
        let c = FrameKey::extract(&two, 1).unwrap();
        assert_eq!(b.w[..2], c.w[..2]);
        assert_ne!(b, c);
        assert_ne!(flow_key(&one, 1), flow_key(&two, 1));
        assert_eq!(c.in_port(), 1);
    }

    #[test]
    fn masked_out_bytes_do_not_change_the_key_and_kept_ones_do() {
        let tags: [&[(u16, u16)]; 5] = [
            &[],
            &[(0x8100, 0x200a)],
            &[(0x88a8, 0xe005)],
            &[(0x8100, 0x200a), (0x88a8, 0x0064)],
            &[(0x8100, 0), (0x8100, 1)],
        ];
        for (tcp, tag) in [false, true].into_iter().flat_map(|tcp| tags.map(|t| (tcp, t))) {
            // Tags listed inner first.
            let f = tag.iter().fold(frame(tcp, 64, 7), |f, &(tpid, tci)| tagged_as(&f, tpid, tci));
            let k = FrameKey::extract(&f, 3).unwrap();
            let mut counts = (0, 0);
            for at in 0..FRAME_KEY_BYTES + 4 * tag.len() {
                let mut g = f.clone();
                g[at] ^= 0x01;
                // Offsets 14 and 46 (TCP) change the shape or the header
                // length: the key may vanish; never may it stay equal while
                // the flow key changes.
                check_change(
                    &f,
                    &g,
                    &k,
                    FrameKey::extract(&g, 3),
                    &mut counts,
                    &format!("byte {at} (tcp {tcp}, tags {tag:x?})"),
                );
            }
            let (kept, out) = counts;
            assert!(kept > 25 && out > 5, "kept {kept}, masked out {out} (tcp {tcp}, tags {tag:x?})");
        }
    }

    #[test]
    fn ipv6_common_shapes_have_keys_and_others_do_not() {
        let tcp = frame_v6(true, 74, 1);
        let udp = frame_v6(false, 62, 2);
        let (kt, ku) = (FrameKey6::extract(&tcp, 1), FrameKey6::extract(&udp, 1));
        assert!(kt.is_some() && ku.is_some());
        assert_eq!(kt.unwrap().in_port(), 1);
        // No IPv4 key for them, and no IPv6 key for IPv4 frames.
        assert!(FrameKey::extract(&tcp, 1).is_none());
        assert!(FrameKey6::extract(&frame(true, 60, 1), 1).is_none());
        // One VLAN tag: a key, not the untagged frame's, even with a TCI
        // of 0, nor that of another TCI or TPID; a tag of another kind, or
        // a second tag: none.
        let one = tagged(&udp, 0x200a);
        let k1 = FrameKey6::extract(&one, 1);
        assert!(k1.is_some());
        assert_ne!(k1, ku);
        assert_ne!(FrameKey6::extract(&tagged(&udp, 0), 1), ku);
        assert_ne!(flow_key(&tagged(&udp, 0), 1), flow_key(&udp, 1));
        assert_ne!(k1, FrameKey6::extract(&tagged(&udp, 0x200b), 1));
        assert_eq!(k1.unwrap().in_port(), 1);
        let s_tag = tagged_as(&udp, 0x88a8, 0x200a);
        assert!(FrameKey6::extract(&s_tag, 1).is_some());
        assert_ne!(FrameKey6::extract(&s_tag, 1), k1);
        assert_ne!(flow_key(&s_tag, 1), flow_key(&one, 1));
        assert!(FrameKey6::extract(&tagged_as(&udp, 0x9100, 7), 1).is_none());
        assert!(FrameKey6::extract(&tagged(&one, 7), 1).is_none());
        // An extension header (hop-by-hop, fragment), ICMPv6, or a payload
        // length past the frame's end: none.
        for nh in [0u8, 44, 58] {
            let mut g = udp.clone();
            g[20] = nh;
            assert!(FrameKey6::extract(&g, 1).is_none(), "next header {nh}");
        }
        assert!(FrameKey6::extract(&udp[..61], 1).is_none());
        // The port is part of the key.
        assert_ne!(FrameKey6::extract(&tcp, 1), FrameKey6::extract(&tcp, 2));
    }

    #[test]
    fn ipv6_masked_out_bytes_do_not_change_the_key_and_kept_ones_do() {
        let shapes = [(false, 62), (false, 80), (true, 74), (true, 90)];
        let tags = [None, Some((0x8100, 0x200a)), Some((0x88a8, 0xe005))];
        for ((tcp, len), tag) in shapes.into_iter().flat_map(|s| tags.map(|t| (s, t))) {
            let f = frame_v6(tcp, len, 11);
            let f = tag.map_or(f.clone(), |(tpid, tci)| tagged_as(&f, tpid, tci));
            let k = FrameKey6::extract(&f, 3).unwrap();
            let mut counts = (0, 0);
            for at in 0..f.len().min(76) {
                for bit in [0x01u8, 0x10, 0x80] {
                    let mut g = f.clone();
                    g[at] ^= bit;
                    // The EtherType, version, lengths and next header change
                    // the shape: the key may vanish; never may it stay equal
                    // while the flow key changes, or change while it stays.
                    let what = format!("byte {at} bit {bit:#x} (tcp {tcp})");
                    check_change(&f, &g, &k, FrameKey6::extract(&g, 3), &mut counts, &what);
                }
            }
            let (kept, out) = counts;
            assert!(kept > 100 && out > 10, "kept {kept}, masked out {out}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The property the exact-match cache relies on: frames with equal
        /// frame keys have equal flow keys, tagged or not; and a frame has
        /// a key exactly when the flow key's straight line takes it (and it
        /// is 48 bytes or more), or takes it with its one or two VLAN tags
        /// taken out (52 or 56 bytes or more).
        #[test]
        fn equal_frame_keys_mean_equal_flow_keys(
            tcp in any::<bool>(),
            len in 54usize..96,
            seed in any::<u64>(),
            tags in proptest::collection::vec((any::<bool>(), any::<u16>()), 0..3),
            edits in proptest::collection::vec((0usize..100, any::<u8>()), 0..6),
            cut in 0usize..8,
        ) {
            let f = tags.iter().fold(frame(tcp, len, seed), |f, &(s, tci)| tagged_as(&f, tpid(s), tci));
            let g = edited(&f, &edits, cut);
            let (kf, kg) = (FrameKey::extract(&f, 5), FrameKey::extract(&g, 5));
            prop_assert!(kf.is_some());
            let mut h = Headers::EMPTY;
            let untagged = g.len() >= FRAME_KEY_BYTES && h.parse_fast(&g);
            let tag_at = |at: usize| g.get(at..at + 2).is_some_and(|t| t == [0x81, 0x00] || t == [0x88, 0xa8]);
            let past = |n: usize| g.len() >= FRAME_KEY_BYTES + 4 * n && g.get(4 * n..).is_some_and(|v| sluice_packet::headers::fast_shape(v).is_some());
            let one_tag = past(1) && tag_at(12);
            let two_tags = past(2) && tag_at(12) && tag_at(16);
            prop_assert_eq!(kg.is_some(), untagged || one_tag || two_tags);
            if kf == kg {
                prop_assert_eq!(flow_key(&f, 5), flow_key(&g, 5));
                prop_assert_eq!(kf.map(|k| k.hash()), kg.map(|k| k.hash()));
            }
        }

        /// The same property for IPv6 frame keys, tagged or not; and an
        /// IPv6 frame has a key exactly when its shape says so.
        #[test]
        fn equal_ipv6_frame_keys_mean_equal_flow_keys(
            tcp in any::<bool>(),
            len in 74usize..110,
            seed in any::<u64>(),
            tag in proptest::option::of((any::<bool>(), any::<u16>())),
            edits in proptest::collection::vec((0usize..84, any::<u8>()), 0..6),
            cut in 0usize..16,
        ) {
            let f = frame_v6(tcp, len, seed);
            let f = tag.map_or(f.clone(), |(s, tci)| tagged_as(&f, tpid(s), tci));
            let g = edited(&f, &edits, cut);
            let (kf, kg) = (FrameKey6::extract(&f, 5), FrameKey6::extract(&g, 5));
            prop_assert!(kf.is_some());
            let shaped = sluice_packet::headers::fast_shape_v6(&g).or(sluice_packet::headers::fast_shape_v6_tagged(&g));
            prop_assert_eq!(kg.is_some(), shaped.is_some());
            if kf == kg {
                prop_assert_eq!(flow_key(&f, 5), flow_key(&g, 5));
                prop_assert_eq!(kf.map(|k| k.hash()), kg.map(|k| k.hash()));
            }
        }
    }
}
