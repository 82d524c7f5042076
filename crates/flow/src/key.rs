//! The flow key: every header field and metadata value a rule may match,
//! in a fixed layout of [`KEY_WORDS`] 64-bit words, and [`Mask`] /
//! [`Match`] over it.
//!
//! Fields are host-order integers packed into words (see [`Field`] for the
//! position of each), so a mask is a plain bitwise AND, a masked hash reads
//! only the words a mask touches, and every field of a mask can be asked
//! for on its own (the offload manager translates fields one by one into
//! TC flower keys).
//!
//! [`FlowKey::extract`] fills a key from a frame in one pass, and the
//! frame's [`sluice_packet::Headers`] with it (into a slot the caller
//! reuses, which the actions need afterwards anyway). The common shape
//! (untagged IPv4 without options, UDP or TCP) takes a straight line:
//! [`sluice_packet::Headers::parse_fast_tcp_flags`] checks it (and hands
//! over the TCP flags it read), and the key's words are read at fixed
//! offsets and written once each. Every other frame is
//! walked with [`sluice_packet::Headers::parse_into`] and its fields read
//! through the length-checked views. It never panics.
//! [`FlowKey::extract_common`] is the straight line alone, without the
//! headers, for a caller that needs them only if a lookup misses.

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

use sluice_packet::headers::FAST_L4_OFFSET;
use sluice_packet::{EtherType, Fragment, Headers, L3, L4, MacAddr};

use crate::hash;

/// Number of 64-bit words in a key.
pub const KEY_WORDS: usize = 18;

/// Fragment state bit: the packet is an IP fragment.
pub const FRAG_ANY: u8 = 1;
/// Fragment state bit: the packet is a later fragment (no L4 header).
pub const FRAG_LATER: u8 = 2;

/// Tunnel flag: the packet arrived through a tunnel (the tunnel fields are set).
pub const TUN_F_PRESENT: u16 = 1;
/// Tunnel flag: the outer header carried a key (VNI / GRE key).
pub const TUN_F_KEY: u16 = 2;
/// Tunnel flag: the outer IPv4 header had DF set.
pub const TUN_F_DONT_FRAGMENT: u16 = 4;
/// Tunnel flag: the outer header carried a checksum.
pub const TUN_F_CSUM: u16 = 8;
/// Tunnel flag: an OAM frame (VXLAN-GPE / Geneve O bit).
pub const TUN_F_OAM: u16 = 16;

/// Conntrack state bit: the packet went through conntrack.
pub const CT_TRACKED: u8 = 0x20;
/// Conntrack state bit: a new connection.
pub const CT_NEW: u8 = 0x01;
/// Conntrack state bit: an established connection.
pub const CT_ESTABLISHED: u8 = 0x02;
/// Conntrack state bit: related to an established connection.
pub const CT_RELATED: u8 = 0x04;
/// Conntrack state bit: the reply direction.
pub const CT_REPLY: u8 = 0x08;
/// Conntrack state bit: invalid.
pub const CT_INVALID: u8 = 0x10;

/// How a field's value is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Decimal.
    Dec,
    /// Hexadecimal.
    Hex,
    /// A MAC address.
    Mac,
    /// An IPv4 address.
    Ipv4,
    /// An IPv6 address (128 bits over two words).
    Ipv6,
}

/// Where a field lives in the key, and how wide it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDef {
    /// Name as `dump-flows` prints it.
    pub name: &'static str,
    /// Word index (for 128-bit fields, the word holding the high half).
    pub word: usize,
    /// Bit offset of the field's least significant bit within the word.
    pub shift: u32,
    /// Width in bits (1..=64, or 128 for IPv6 addresses).
    pub bits: u32,
    /// Print style.
    pub kind: FieldKind,
}

macro_rules! fields {
    ($( $(#[$doc:meta])* $v:ident = ($name:literal, $word:expr, $shift:expr, $bits:expr, $kind:ident) ),+ $(,)?) => {
        /// A field of the flow key. `Ipv4Src` overlaps the high 32 bits of
        /// `Ipv6Src` (and likewise for the destinations): which one is
        /// meant follows from `eth_type`, as in OVS.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Field { $( $(#[$doc])* $v ),+ }

        impl Field {
            /// Every field, in key order.
            pub const ALL: &'static [Field] = &[$( Field::$v ),+];

            /// The field's position and width.
            pub const fn def(self) -> FieldDef {
                match self {
                    $( Field::$v => FieldDef { name: $name, word: $word, shift: $shift, bits: $bits, kind: FieldKind::$kind } ),+
                }
            }
        }
    };
}

fields! {
    /// Input port.
    InPort = ("in_port", 0, 0, 32, Dec),
    /// Recirculation id (0 for a packet's first pass).
    RecircId = ("recirc_id", 0, 32, 32, Hex),
    /// Tunnel id (VNI or GRE key).
    TunId = ("tun_id", 1, 0, 64, Dec),
    /// Outer IPv4 destination of the tunnel the packet arrived on.
    TunDst = ("tun_dst", 2, 0, 32, Ipv4),
    /// Outer IPv4 source.
    TunSrc = ("tun_src", 2, 32, 32, Ipv4),
    /// Fragment state: [`FRAG_ANY`], [`FRAG_LATER`].
    NwFrag = ("nw_frag", 3, 0, 8, Hex),
    /// IP protocol, or the low byte of the ARP opcode.
    NwProto = ("nw_proto", 3, 8, 8, Dec),
    /// Conntrack zone.
    CtZone = ("ct_zone", 3, 16, 16, Dec),
    /// EtherType after the VLAN tags.
    EthType = ("eth_type", 3, 32, 16, Hex),
    /// Tunnel flags (`TUN_F_*`).
    TunFlags = ("tun_flags", 3, 48, 16, Hex),
    /// Inner VLAN tag: TPID << 16 | TCI; zero when absent.
    Vlan1 = ("vlan1", 4, 0, 32, Hex),
    /// Outer VLAN tag: TPID << 16 | TCI; zero when absent.
    Vlan0 = ("vlan0", 4, 32, 32, Hex),
    /// IP TTL / hop limit.
    NwTtl = ("nw_ttl", 5, 0, 8, Dec),
    /// IP TOS / traffic class (DSCP and ECN).
    NwTos = ("nw_tos", 5, 8, 8, Hex),
    /// Destination MAC.
    EthDst = ("eth_dst", 5, 16, 48, Mac),
    /// TCP flags (9 bits).
    TcpFlags = ("tcp_flags", 6, 0, 16, Hex),
    /// Source MAC.
    EthSrc = ("eth_src", 6, 16, 48, Mac),
    /// IPv4 source (or ARP sender protocol address).
    Ipv4Src = ("nw_src", 7, 32, 32, Ipv4),
    /// IPv6 source.
    Ipv6Src = ("ipv6_src", 7, 0, 128, Ipv6),
    /// IPv4 destination (or ARP target protocol address).
    Ipv4Dst = ("nw_dst", 9, 32, 32, Ipv4),
    /// IPv6 destination.
    Ipv6Dst = ("ipv6_dst", 9, 0, 128, Ipv6),
    /// Conntrack mark.
    CtMark = ("ct_mark", 11, 0, 32, Hex),
    /// L4 destination port, or ICMP code.
    TpDst = ("tp_dst", 11, 32, 16, Dec),
    /// L4 source port, or ICMP type.
    TpSrc = ("tp_src", 11, 48, 16, Dec),
    /// IPv6 ND target address.
    NdTarget = ("nd_target", 12, 0, 128, Ipv6),
    /// Conntrack state (`CT_*`).
    CtState = ("ct_state", 14, 8, 8, Hex),
    /// ARP sender hardware address, or the ND source link-layer address.
    ArpSha = ("arp_sha", 14, 16, 48, Mac),
    /// ARP target hardware address, or the ND target link-layer address.
    ArpTha = ("arp_tha", 15, 16, 48, Mac),
    /// Register 1.
    Reg1 = ("reg1", 16, 0, 32, Hex),
    /// Register 0.
    Reg0 = ("reg0", 16, 32, 32, Hex),
    /// Register 3.
    Reg3 = ("reg3", 17, 0, 32, Hex),
    /// Register 2.
    Reg2 = ("reg2", 17, 32, 32, Hex),
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.def().name)
    }
}

#[inline(always)]
const fn low_bits(bits: u32) -> u64 {
    if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 }
}

/// Reads and writes fields of a word array (shared by keys and masks).
macro_rules! field_access {
    ($t:ty) => {
        impl $t {
            /// The value of `field` (128-bit fields use the whole `u128`).
            #[inline]
            pub fn get(&self, field: Field) -> u128 {
                let d = field.def();
                if d.bits == 128 {
                    (u128::from(self.w[d.word]) << 64) | u128::from(self.w[d.word + 1])
                } else {
                    u128::from((self.w[d.word] >> d.shift) & low_bits(d.bits))
                }
            }

            /// Sets `field` to `value` (truncated to the field's width).
            #[inline]
            pub fn set(&mut self, field: Field, value: u128) {
                let d = field.def();
                if d.bits == 128 {
                    self.w[d.word] = (value >> 64) as u64;
                    self.w[d.word + 1] = value as u64;
                } else {
                    let m = low_bits(d.bits) << d.shift;
                    self.w[d.word] = (self.w[d.word] & !m) | (((value as u64) << d.shift) & m);
                }
            }

            /// Builder form of [`set`](Self::set).
            #[inline]
            pub fn with(mut self, field: Field, value: u128) -> Self {
                self.set(field, value);
                self
            }

            /// The raw words.
            #[inline]
            pub fn words(&self) -> &[u64; KEY_WORDS] {
                &self.w
            }

            /// From raw words.
            #[inline]
            pub const fn from_words(w: [u64; KEY_WORDS]) -> Self {
                Self { w }
            }
        }
    };
}

/// A flow key: the fields of one packet (plus its metadata) in a fixed
/// layout. 144 bytes; `Copy`; hashed with [`FlowKey::hash`].
///
/// Aligned to 16 bytes so that the exact-match cache's full-key compare
/// can read both keys as nine aligned 16-byte vectors (SSE2 folds an
/// aligned operand into the compare itself).
#[derive(Clone, Copy, Eq, Default)]
#[repr(align(16))]
pub struct FlowKey {
    w: [u64; KEY_WORDS],
}

impl PartialEq for FlowKey {
    /// Branch-free: XOR and OR every word (this beats a `memcmp` call at
    /// 144 bytes). The exact-match cache's hit compare is a variant of
    /// this that stays branch-free when inlined (`emc::same_key`).
    #[inline(always)]
    fn eq(&self, other: &FlowKey) -> bool {
        let mut d = 0;
        for i in 0..KEY_WORDS {
            d |= self.w[i] ^ other.w[i];
        }
        d == 0
    }
}

impl core::hash::Hash for FlowKey {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.w.hash(state);
    }
}

/// Which bits of a key matter: a 1 bit is matched, a 0 bit is wildcarded.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Mask {
    w: [u64; KEY_WORDS],
}

field_access!(FlowKey);
field_access!(Mask);

/// Tunnel metadata of a packet that arrived through a tunnel (set by the
/// tunnel-pop action before the packet recirculates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelMeta {
    /// Tunnel id (VNI or GRE key).
    pub id: u64,
    /// Outer source address.
    pub src: Ipv4Addr,
    /// Outer destination address.
    pub dst: Ipv4Addr,
    /// `TUN_F_*` flags; [`TUN_F_PRESENT`] must be set for the rest to count.
    pub flags: u16,
}

impl Default for TunnelMeta {
    fn default() -> Self {
        TunnelMeta { id: 0, src: Ipv4Addr::UNSPECIFIED, dst: Ipv4Addr::UNSPECIFIED, flags: 0 }
    }
}

impl Default for Metadata {
    fn default() -> Self {
        Metadata::port(0)
    }
}

/// What the datapath knows about a packet besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    /// The port it arrived on.
    pub in_port: u32,
    /// Recirculation id (0 on the first pass).
    pub recirc_id: u32,
    /// Tunnel metadata, if it was decapsulated.
    pub tunnel: TunnelMeta,
    /// Conntrack state (`CT_*`).
    pub ct_state: u8,
    /// Conntrack zone.
    pub ct_zone: u16,
    /// Conntrack mark.
    pub ct_mark: u32,
    /// Metadata registers.
    pub regs: [u32; 4],
}

impl Metadata {
    /// A packet fresh from `in_port`: everything else zero.
    pub const fn port(in_port: u32) -> Metadata {
        Metadata {
            in_port,
            recirc_id: 0,
            tunnel: TunnelMeta { id: 0, src: Ipv4Addr::UNSPECIFIED, dst: Ipv4Addr::UNSPECIFIED, flags: 0 },
            ct_state: 0,
            ct_zone: 0,
            ct_mark: 0,
            regs: [0; 4],
        }
    }
}

#[inline(always)]
fn mac_u64(m: MacAddr) -> u64 {
    let b = m.0;
    u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
}

#[inline(always)]
fn u64_mac(v: u64) -> MacAddr {
    let b = v.to_be_bytes();
    MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]])
}

impl FlowKey {
    /// The all-zero key.
    pub const ZERO: FlowKey = FlowKey { w: [0; KEY_WORDS] };

    /// Extracts the key of `frame` that arrived with `meta`, walking its
    /// headers into `headers` (a slot the caller reuses; the actions need
    /// its offsets). Never panics; a frame too short for Ethernet yields a
    /// key with only the metadata, and a malformed upper layer stops the
    /// key at the last good layer (as [`Headers::error`] records).
    #[inline]
    pub fn extract(frame: &[u8], meta: &Metadata, headers: &mut Headers) -> FlowKey {
        let mut k = FlowKey::ZERO;
        k.extract_into(frame, meta, headers);
        k
    }

    /// [`extract`](Self::extract) into an existing key, overwriting all of it.
    ///
    /// Frames of the common shape (untagged Ethernet, IPv4 without options,
    /// not a fragment, UDP or TCP: [`Headers::parse_fast_tcp_flags`] says
    /// so, and hands over the TCP flags it read)
    /// take a straight line that reads the key's fields at fixed offsets and
    /// writes each word once; every other frame walks the parsed headers.
    /// The straight line is inlined into the caller (its packet loop), the
    /// rest is not.
    #[inline(always)]
    pub fn extract_into(&mut self, frame: &[u8], meta: &Metadata, headers: &mut Headers) {
        if let Some(tcp_flags) = headers.parse_fast_tcp_flags(frame)
            && self.fill_common(frame, meta, tcp_flags)
        {
            return;
        }
        self.extract_general(frame, meta, headers);
    }

    /// The key of a frame of the common shape (as for
    /// [`extract_into`](Self::extract_into)'s straight line), without its
    /// headers: true with the key written, false (and nothing written) for
    /// a frame of another shape. For a caller that needs the key to look a
    /// frame up and its offsets only if its actions turn out to read them.
    #[inline(always)]
    pub fn extract_common(&mut self, frame: &[u8], meta: &Metadata) -> bool {
        match sluice_packet::headers::fast_tcp_flags(frame) {
            Some(tcp_flags) => self.fill_common(frame, meta, tcp_flags),
            None => false,
        }
    }

    /// The straight line: the words of a frame that the common-shape checks
    /// accepted, read at fixed offsets and written once each. (False only
    /// for a frame shorter than those checks allow.)
    #[inline(always)]
    fn fill_common(&mut self, frame: &[u8], meta: &Metadata, tcp_flags: u16) -> bool {
        let Some(f) = frame.first_chunk::<{ FAST_L4_OFFSET + 4 }>() else { return false };
        // IPv4 at 14, L4 at 34 (`FAST_L4_OFFSET`), all checked by the caller.
        let be64 =
            |a: usize| u64::from_be_bytes([f[a], f[a + 1], f[a + 2], f[a + 3], f[a + 4], f[a + 5], f[a + 6], f[a + 7]]);
        let be32 = |a: usize| u64::from(u32::from_be_bytes([f[a], f[a + 1], f[a + 2], f[a + 3]]));
        let proto = f[23];
        let t = &meta.tunnel;
        let (tun_id, tun_addrs, tun_flags) = if t.flags & TUN_F_PRESENT != 0 {
            (t.id, (u64::from(u32::from(t.src)) << 32) | u64::from(u32::from(t.dst)), t.flags)
        } else {
            (0, 0, 0)
        };
        self.w = [
            (u64::from(meta.recirc_id) << 32) | u64::from(meta.in_port),
            tun_id,
            tun_addrs,
            (u64::from(tun_flags) << 48) | (0x0800 << 32) | (u64::from(meta.ct_zone) << 16) | (u64::from(proto) << 8),
            0,
            // Destination MAC in the top 48 bits, TOS and TTL below.
            (be64(0) & !0xffff) | (u64::from(f[15]) << 8) | u64::from(f[22]),
            (be64(6) & !0xffff) | u64::from(tcp_flags),
            be32(26) << 32,
            0,
            be32(30) << 32,
            0,
            (be32(FAST_L4_OFFSET) << 32) | u64::from(meta.ct_mark),
            0,
            0,
            u64::from(meta.ct_state) << 8,
            0,
            (u64::from(meta.regs[0]) << 32) | u64::from(meta.regs[1]),
            (u64::from(meta.regs[2]) << 32) | u64::from(meta.regs[3]),
        ];
        true
    }

    /// [`extract_into`](Self::extract_into) for frames off its straight
    /// line: out of line, so that the straight line inlines into the
    /// caller's batch loop.
    #[inline(never)]
    fn extract_general(&mut self, frame: &[u8], meta: &Metadata, headers: &mut Headers) {
        let t = &meta.tunnel;
        let w = &mut self.w;
        *w = [0; KEY_WORDS];
        w[0] = (u64::from(meta.recirc_id) << 32) | u64::from(meta.in_port);
        if t.flags & TUN_F_PRESENT != 0 {
            w[1] = t.id;
            w[2] = (u64::from(u32::from(t.src)) << 32) | u64::from(u32::from(t.dst));
            w[3] = u64::from(t.flags) << 48;
        }
        w[3] |= u64::from(meta.ct_zone) << 16;
        w[11] = u64::from(meta.ct_mark);
        w[14] = u64::from(meta.ct_state) << 8;
        w[16] = (u64::from(meta.regs[0]) << 32) | u64::from(meta.regs[1]);
        w[17] = (u64::from(meta.regs[2]) << 32) | u64::from(meta.regs[3]);
        if headers.parse_into(frame).is_err() {
            return;
        }
        fill_from_headers(w, frame, headers);
    }

    /// The key's hash, for the exact-match cache. It reads the ten words
    /// in which packets of different flows differ (port and recirculation,
    /// EtherType and protocol, VLANs, MACs, IP addresses, L4 ports); keys
    /// that differ only in tunnel, ND, ARP hardware addresses or registers
    /// share a hash and are told apart by the cache's full-key compare.
    ///
    /// The ten words are folded into six first (rotations and XORs that
    /// lose nothing for IPv4 and untagged frames, whose folded-in words
    /// are zero), then three independent multiplies: a short dependency
    /// chain, since an EMC hit waits for it.
    #[inline]
    pub fn hash(&self) -> u64 {
        let w = &self.w;
        hash::hash_six(&[
            w[0] ^ w[3].rotate_left(24) ^ w[4].rotate_left(48),
            w[11],
            w[5],
            w[6],
            w[7] ^ w[8].rotate_left(32),
            w[9] ^ w[10].rotate_left(32),
        ])
    }

    /// This key with only `mask`'s bits kept.
    #[inline]
    pub fn masked(&self, mask: &Mask) -> FlowKey {
        let mut k = *self;
        for (a, m) in k.w.iter_mut().zip(mask.w.iter()) {
            *a &= m;
        }
        k
    }

    /// Destination MAC.
    pub fn eth_dst(&self) -> MacAddr {
        u64_mac(self.w[5] >> 16)
    }

    /// Source MAC.
    pub fn eth_src(&self) -> MacAddr {
        u64_mac(self.w[6] >> 16)
    }

    /// The EtherType after the VLAN tags.
    pub fn eth_type(&self) -> EtherType {
        EtherType::from(self.get(Field::EthType) as u16)
    }

    /// The input port.
    pub fn in_port(&self) -> u32 {
        self.w[0] as u32
    }

    /// The outer VLAN id, if the frame is tagged.
    pub fn vlan_vid(&self) -> Option<u16> {
        let v = self.get(Field::Vlan0) as u32;
        (v != 0).then_some((v & 0x0fff) as u16)
    }
}

/// The key words that come from the frame, for frames off the straight
/// line of [`FlowKey::extract_into`]: walks what `headers` found (`w` holds
/// the metadata words and zeros elsewhere).
fn fill_from_headers(w: &mut [u64; KEY_WORDS], frame: &[u8], headers: &Headers) {
    let h = headers;
    let eth = &h.eth;
    let mut vl = [0u64; 2];
    for (slot, tag) in vl.iter_mut().zip(eth.vlans()) {
        *slot = (u64::from(u16::from(tag.tpid)) << 16) | u64::from(tag.tci());
    }
    w[4] = (vl[0] << 32) | vl[1];
    let ethertype = u16::from(eth.ethertype);
    w[3] |= u64::from(ethertype) << 32;
    w[5] = mac_u64(eth.dst) << 16;
    w[6] = mac_u64(eth.src) << 16;
    let frag = match h.fragment {
        Fragment::No => 0,
        Fragment::First => FRAG_ANY,
        Fragment::Later => FRAG_ANY | FRAG_LATER,
    };
    match h.l3 {
        L3::None => return,
        L3::Ipv4 => {
            // The walk checked the header length; read it as one array.
            let Some(ip) = frame.get(usize::from(h.l3_offset)..).and_then(|b| b.first_chunk::<20>()) else {
                return;
            };
            w[3] |= (u64::from(u8::from(h.protocol)) << 8) | u64::from(frag);
            w[5] |= (u64::from(ip[1]) << 8) | u64::from(ip[8]);
            w[7] = u64::from(u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]])) << 32;
            w[9] = u64::from(u32::from_be_bytes([ip[16], ip[17], ip[18], ip[19]])) << 32;
        }
        L3::Ipv6 => {
            let Some(ip) = frame.get(usize::from(h.l3_offset)..).and_then(|b| b.first_chunk::<40>()) else {
                return;
            };
            w[3] |= (u64::from(u8::from(h.protocol)) << 8) | u64::from(frag);
            let tc = ((u16::from(ip[0]) << 8 | u16::from(ip[1])) >> 4) as u8;
            w[5] |= (u64::from(tc) << 8) | u64::from(ip[7]);
            let word = |at: usize| {
                u64::from_be_bytes([
                    ip[at],
                    ip[at + 1],
                    ip[at + 2],
                    ip[at + 3],
                    ip[at + 4],
                    ip[at + 5],
                    ip[at + 6],
                    ip[at + 7],
                ])
            };
            w[7] = word(8);
            w[8] = word(16);
            w[9] = word(24);
            w[10] = word(32);
        }
        L3::Arp => {
            if let Some(a) = h.arp(frame) {
                w[3] |= u64::from(u16::from(a.operation) & 0xff) << 8;
                w[7] = u64::from(u32::from(a.sender_ip)) << 32;
                w[9] = u64::from(u32::from(a.target_ip)) << 32;
                w[14] |= mac_u64(a.sender_mac) << 16;
                w[15] = mac_u64(a.target_mac) << 16;
            }
            return;
        }
    }
    let (sp, dp, flags) = match h.l4 {
        L4::None => return,
        L4::Tcp { src_port, dst_port, flags } => (src_port, dst_port, flags.0),
        L4::Udp { src_port, dst_port } | L4::Sctp { src_port, dst_port } => (src_port, dst_port, 0),
        L4::Icmpv4 { msg_type, code } => (u16::from(msg_type), u16::from(code), 0),
        L4::Icmpv6 { msg_type, code } => {
            if matches!(msg_type, 135 | 136)
                && let Some((target, ll)) = h.nd(frame)
            {
                let t = u128::from(target);
                w[12] = (t >> 64) as u64;
                w[13] = t as u64;
                if let Some(ll) = ll {
                    // Solicitations carry the source's address, advertisements the target's.
                    let at = if msg_type == 135 { 14 } else { 15 };
                    w[at] |= mac_u64(ll) << 16;
                }
            }
            (u16::from(msg_type), u16::from(code), 0)
        }
    };
    w[6] |= u64::from(flags);
    w[11] |= (u64::from(sp) << 48) | (u64::from(dp) << 32);
}

impl Mask {
    /// Matches nothing in particular: every bit wildcarded.
    pub const CATCH_ALL: Mask = Mask { w: [0; KEY_WORDS] };
    /// Every bit matched (an exact match).
    pub const EXACT: Mask = Mask { w: [u64::MAX; KEY_WORDS] };

    /// A mask that matches all of `fields` exactly.
    pub fn of(fields: &[Field]) -> Mask {
        let mut m = Mask::CATCH_ALL;
        for &f in fields {
            m.set(f, u128::MAX);
        }
        m
    }

    /// The five-tuple, with the input port and EtherType: what an L3/L4
    /// rule over addresses, protocol and ports un-wildcards, and the mask
    /// of a megaflow per microflow.
    pub fn five_tuple() -> Mask {
        Mask::of(&[
            Field::InPort,
            Field::EthType,
            Field::NwProto,
            Field::Ipv4Src,
            Field::Ipv4Dst,
            Field::TpSrc,
            Field::TpDst,
        ])
    }

    /// Adds exact matching on `field`.
    pub fn exact(mut self, field: Field) -> Mask {
        self.set(field, u128::MAX);
        self
    }

    /// Bitwise union: matches every bit either mask matches.
    #[inline]
    pub fn union_with(&mut self, other: &Mask) {
        for (a, b) in self.w.iter_mut().zip(other.w.iter()) {
            *a |= b;
        }
    }

    /// True when every bit `other` matches, this mask matches too.
    #[inline]
    pub fn covers(&self, other: &Mask) -> bool {
        self.w.iter().zip(other.w.iter()).all(|(a, b)| b & !a == 0)
    }

    /// True when no bit is matched.
    pub fn is_catch_all(&self) -> bool {
        self.w.iter().all(|&w| w == 0)
    }

    /// The fields this mask touches (wholly or partly): what a TC flower
    /// translation has to express.
    ///
    /// IPv4 and IPv6 addresses share words: a mask with bits only where the
    /// IPv4 address sits reports `Ipv4Src`/`Ipv4Dst`, otherwise the IPv6 field.
    pub fn fields(&self) -> impl Iterator<Item = Field> + '_ {
        Field::ALL.iter().copied().filter(move |&f| {
            let v6_only = |v4: Field, v6: Field| self.get(v6) & !(self.get(v4) << 96) != 0;
            match f {
                Field::Ipv4Src => self.get(f) != 0 && !v6_only(Field::Ipv4Src, Field::Ipv6Src),
                Field::Ipv4Dst => self.get(f) != 0 && !v6_only(Field::Ipv4Dst, Field::Ipv6Dst),
                Field::Ipv6Src => v6_only(Field::Ipv4Src, Field::Ipv6Src),
                Field::Ipv6Dst => v6_only(Field::Ipv4Dst, Field::Ipv6Dst),
                _ => self.get(f) != 0,
            }
        })
    }

    /// True when `field` is matched exactly (all its bits).
    pub fn is_exact(&self, field: Field) -> bool {
        let d = field.def();
        let all = if d.bits == 128 { u128::MAX } else { u128::from(low_bits(d.bits)) };
        self.get(field) == all
    }

    /// Bitmap of the words this mask touches (bit i: word i).
    #[inline]
    pub fn word_bits(&self) -> u32 {
        let mut b = 0;
        for (i, &w) in self.w.iter().enumerate() {
            if w != 0 {
                b |= 1 << i;
            }
        }
        b
    }
}

/// A key and a mask: the set of packets whose key equals `key` on every
/// bit `mask` matches. The key is stored already masked.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Match {
    key: FlowKey,
    mask: Mask,
}

impl Match {
    /// The match of `key` under `mask` (bits outside the mask are cleared).
    pub fn new(key: &FlowKey, mask: &Mask) -> Match {
        Match { key: key.masked(mask), mask: *mask }
    }

    /// Matches every packet.
    pub const CATCH_ALL: Match = Match { key: FlowKey::ZERO, mask: Mask::CATCH_ALL };

    /// The (masked) key.
    pub fn key(&self) -> &FlowKey {
        &self.key
    }

    /// The mask.
    pub fn mask(&self) -> &Mask {
        &self.mask
    }

    /// True when `key` is in this match.
    #[inline]
    pub fn matches(&self, key: &FlowKey) -> bool {
        self.key.w.iter().zip(key.w.iter()).zip(self.mask.w.iter()).all(|((a, b), m)| a == &(b & m))
    }

    /// True when some packet is in both matches.
    #[inline]
    pub fn overlaps(&self, other: &Match) -> bool {
        (0..KEY_WORDS).all(|i| (self.key.w[i] ^ other.key.w[i]) & self.mask.w[i] & other.mask.w[i] == 0)
    }
}

fn write_value(f: &mut fmt::Formatter<'_>, kind: FieldKind, v: u128) -> fmt::Result {
    match kind {
        FieldKind::Dec => write!(f, "{v}"),
        FieldKind::Hex => write!(f, "{v:#x}"),
        FieldKind::Mac => write!(f, "{}", u64_mac(v as u64)),
        FieldKind::Ipv4 => write!(f, "{}", Ipv4Addr::from(v as u32)),
        FieldKind::Ipv6 => write!(f, "{}", Ipv6Addr::from(v)),
    }
}

/// Whether `field` is the meaningful reading of its bits for this key
/// (IPv4 vs IPv6 addresses share words).
fn field_applies(field: Field, eth_type: u16) -> bool {
    let v6 = eth_type == 0x86dd;
    match field {
        Field::Ipv4Src | Field::Ipv4Dst => !v6,
        Field::Ipv6Src | Field::Ipv6Dst => v6,
        _ => true,
    }
}

fn display_name(field: Field, eth_type: u16) -> &'static str {
    match (field, eth_type) {
        (Field::ArpSha, 0x86dd) => "nd_sll",
        (Field::ArpTha, 0x86dd) => "nd_tll",
        (Field::NwProto, 0x0806) => "arp_op",
        (Field::Ipv4Src, 0x0806) => "arp_spa",
        (Field::Ipv4Dst, 0x0806) => "arp_tpa",
        _ => field.def().name,
    }
}

impl fmt::Display for Match {
    /// `field=value` for each matched field, `field=value/mask` when only
    /// part of it is matched, comma-separated in key order (the
    /// `dump-flows` form). A catch-all match prints as `*`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let eth_type = self.key.get(Field::EthType) as u16;
        let mut first = true;
        for &field in Field::ALL {
            let m = self.mask.get(field);
            if m == 0 || !field_applies(field, eth_type) {
                continue;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            let d = field.def();
            write!(f, "{}=", display_name(field, eth_type))?;
            write_value(f, d.kind, self.key.get(field))?;
            if !self.mask.is_exact(field) {
                f.write_str("/")?;
                write_value(f, d.kind, m)?;
            }
        }
        if first {
            f.write_str("*")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Match({self})")
    }
}

impl fmt::Display for FlowKey {
    /// Every non-zero field as `field=value` (in_port and eth_type always).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let eth_type = self.get(Field::EthType) as u16;
        let mut first = true;
        for &field in Field::ALL {
            let v = self.get(field);
            if (v == 0 && !matches!(field, Field::InPort | Field::EthType)) || !field_applies(field, eth_type) {
                continue;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{}=", display_name(field, eth_type))?;
            write_value(f, field.def().kind, v)?;
        }
        Ok(())
    }
}

impl fmt::Debug for FlowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FlowKey({self})")
    }
}

impl fmt::Display for Mask {
    /// The matched fields, `field` when exact and `field/mask` when partial.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for field in self.fields() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            f.write_str(field.def().name)?;
            if !self.is_exact(field) {
                f.write_str("/")?;
                write_value(f, field.def().kind, self.get(field))?;
            }
        }
        if first {
            f.write_str("*")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Mask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mask({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key of `frame` by the general walk only.
    fn general(frame: &[u8], meta: &Metadata) -> FlowKey {
        let mut base = FlowKey::ZERO;
        // The metadata words, as `extract_into` writes them.
        let mut h = Headers::EMPTY;
        base.extract_into(&[], meta, &mut h);
        if h.parse_into(frame).is_ok() {
            fill_from_headers(&mut base.w, frame, &h);
        }
        base
    }

    /// The straight line of `extract_into` gives the general walk's key,
    /// for every single-byte change of the first 60 bytes of IPv4/UDP and
    /// IPv4/TCP frames (most leave the straight line), with and without
    /// metadata; and `extract_common` gives the same key for exactly the
    /// frames the straight line takes, writing nothing for the others.
    /// `extract_common` on `f`: `k` when the straight line takes `f`, else
    /// false with the key untouched.
    fn common_agrees(f: &[u8], m: &Metadata, k: &FlowKey) {
        let mut c = FlowKey::ZERO.with(Field::TpDst, 77);
        let taken = sluice_packet::headers::fast_tcp_flags(f).is_some();
        assert_eq!(c.extract_common(f, m), taken, "frame {f:02x?}");
        assert_eq!(c, if taken { *k } else { FlowKey::ZERO.with(Field::TpDst, 77) }, "frame {f:02x?}");
    }

    #[test]
    fn straight_line_agrees_with_the_general_walk() {
        let mut meta = Metadata::port(3);
        meta.recirc_id = 9;
        meta.ct_state = CT_TRACKED | CT_ESTABLISHED;
        meta.ct_zone = 5;
        meta.ct_mark = 0xdead;
        meta.regs = [1, 2, 3, 4];
        meta.tunnel = TunnelMeta {
            id: 42,
            src: Ipv4Addr::new(1, 2, 3, 4),
            dst: Ipv4Addr::new(5, 6, 7, 8),
            flags: TUN_F_PRESENT | TUN_F_KEY,
        };
        for proto in [17u8, 6] {
            let mut base = [0u8; 64];
            base[..12].copy_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
            base[12..14].copy_from_slice(&[0x08, 0x00]);
            base[14..24].copy_from_slice(&[0x45, 0xb8, 0, 46, 0, 0, 0x40, 0, 64, proto]);
            base[26..34].copy_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
            base[34..38].copy_from_slice(&[4, 0xd2, 0x16, 0x2e]);
            if proto == 17 {
                base[38..40].copy_from_slice(&26u16.to_be_bytes());
            } else {
                base[46] = 0x50;
                base[47] = 0x12;
            }
            for m in [Metadata::port(1), meta] {
                for at in 0..60 {
                    for v in [0u8, 1, 6, 0x11, 0x14, 0x1c, 0x2e, 0x45, 0x50, 0x51, 0x81, 0xff] {
                        let mut f = base;
                        f[at] = v;
                        let mut h = Headers::EMPTY;
                        let k = FlowKey::extract(&f, &m, &mut h);
                        assert_eq!(k, general(&f, &m), "frame {f:02x?}");
                        assert_eq!(Headers::parse(&f).ok(), Some(h));
                        common_agrees(&f, &m, &k);
                    }
                }
                for len in 0..=64 {
                    let mut h = Headers::EMPTY;
                    let k = FlowKey::extract(&base[..len], &m, &mut h);
                    assert_eq!(k, general(&base[..len], &m));
                    common_agrees(&base[..len], &m, &k);
                }
            }
        }
    }
}
