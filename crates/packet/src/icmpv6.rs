//! ICMP for IPv6 (RFC 4443) and the neighbour discovery messages a switch
//! must read to stop address spoofing (RFC 4861): neighbour solicitation and
//! advertisement with their link-layer address options.

use core::net::Ipv6Addr;

use crate::checksum;
use crate::ethernet::MacAddr;
use crate::field::{array, put_u16, put_u32, u16_at, u32_at};
use crate::ip::IpProtocol;
use crate::macros::enum_with_unknown;
use crate::{Error, Result};

/// Type, code, checksum and the 4-byte message body start.
pub const HEADER_LEN: usize = 8;
/// A neighbour solicitation or advertisement without options.
pub const ND_LEN: usize = 24;

enum_with_unknown! {
    /// The ICMPv6 message type.
    pub enum Icmpv6Type(u8) {
        /// Destination unreachable.
        DstUnreachable = 1,
        /// Packet too big.
        PacketTooBig = 2,
        /// Time exceeded.
        TimeExceeded = 3,
        /// Parameter problem.
        ParamProblem = 4,
        /// Echo request.
        EchoRequest = 128,
        /// Echo reply.
        EchoReply = 129,
        /// MLD query.
        MldQuery = 130,
        /// MLDv1 report.
        MldReport = 131,
        /// Router solicitation.
        RouterSolicit = 133,
        /// Router advertisement.
        RouterAdvert = 134,
        /// Neighbour solicitation.
        NeighborSolicit = 135,
        /// Neighbour advertisement.
        NeighborAdvert = 136,
        /// Redirect.
        Redirect = 137,
        /// MLDv2 report.
        Mldv2Report = 143,
    }
}

enum_with_unknown! {
    /// The type of a neighbour discovery option.
    pub enum NdOptionType(u8) {
        /// Source link-layer address.
        SourceLinkLayerAddr = 1,
        /// Target link-layer address.
        TargetLinkLayerAddr = 2,
        /// Prefix information.
        PrefixInfo = 3,
        /// Redirected header.
        RedirectedHeader = 4,
        /// MTU.
        Mtu = 5,
        /// Nonce (RFC 3971, used by duplicate address detection).
        Nonce = 14,
    }
}

/// One neighbour discovery option: its type and its data (the bytes after
/// type and length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdOption<'a> {
    /// The option type.
    pub kind: NdOptionType,
    /// The bytes after the type and length octets.
    pub data: &'a [u8],
}

impl NdOption<'_> {
    /// The link-layer address, when this is a source or target link-layer
    /// address option for Ethernet.
    pub fn link_layer_addr(&self) -> Option<MacAddr> {
        match self.kind {
            NdOptionType::SourceLinkLayerAddr | NdOptionType::TargetLinkLayerAddr => {
                self.data.get(..6).and_then(MacAddr::from_slice)
            }
            _ => None,
        }
    }
}

/// Iterates over neighbour discovery options. A zero length (which RFC 4861
/// says must make the packet be discarded) or an option past the end yields
/// one error and stops.
#[derive(Debug, Clone)]
pub struct NdOptions<'a> {
    rest: &'a [u8],
}

impl<'a> NdOptions<'a> {
    /// Options from the bytes after a message's fixed part.
    pub fn new(bytes: &'a [u8]) -> NdOptions<'a> {
        NdOptions { rest: bytes }
    }
}

impl<'a> Iterator for NdOptions<'a> {
    type Item = Result<NdOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let bad = |s: &mut Self, e| {
            s.rest = &[];
            Some(Err(e))
        };
        if self.rest.len() < 2 {
            return bad(self, Error::Truncated);
        }
        let len = usize::from(self.rest[1]) * 8;
        if len == 0 {
            return bad(self, Error::Malformed(crate::error::Malformed::NdOptionLengthZero));
        }
        if self.rest.len() < len {
            return bad(self, Error::Truncated);
        }
        let opt = NdOption { kind: NdOptionType::from(self.rest[0]), data: &self.rest[2..len] };
        self.rest = &self.rest[len..];
        Some(Ok(opt))
    }
}

/// A view of an ICMPv6 message.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps without checks.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }
    /// Wraps after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// Fails unless the buffer holds the header, and for neighbour
    /// solicitations and advertisements their 24-byte fixed part.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.is_nd() && b.len() < ND_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }
    fn is_nd(&self) -> bool {
        matches!(self.msg_type(), Icmpv6Type::NeighborSolicit | Icmpv6Type::NeighborAdvert)
    }
    /// Message type.
    #[inline]
    pub fn msg_type(&self) -> Icmpv6Type {
        Icmpv6Type::from(self.buffer.as_ref()[0])
    }
    /// Code.
    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }
    /// Checksum as on the wire.
    #[inline]
    pub fn checksum(&self) -> u16 {
        u16_at(self.buffer.as_ref(), 2)
    }
    /// The first body word (echo identifier and sequence; ND flags).
    #[inline]
    pub fn rest(&self) -> u32 {
        u32_at(self.buffer.as_ref(), 4)
    }
    /// The ND target address (neighbour solicitation or advertisement only;
    /// `None` for other messages).
    pub fn target(&self) -> Option<Ipv6Addr> {
        self.is_nd().then(|| Ipv6Addr::from(array::<16>(self.buffer.as_ref(), 8)))
    }
    /// The ND options (empty for other messages).
    pub fn nd_options(&self) -> NdOptions<'_> {
        let b = self.buffer.as_ref();
        NdOptions::new(if self.is_nd() { &b[ND_LEN..] } else { &[] })
    }
    /// The bytes after the 8-byte header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
    /// True when the checksum with the IPv6 pseudo-header is right.
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        let b = self.buffer.as_ref();
        let mut c = checksum::pseudo_header_v6(src, dst, IpProtocol::Icmpv6, b.len() as u32);
        c.add_bytes(b).sum() == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Computes the checksum over the whole buffer with the pseudo-header.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        let b = self.buffer.as_mut();
        put_u16(b, 2, 0);
        let mut c = checksum::pseudo_header_v6(src, dst, IpProtocol::Icmpv6, b.len() as u32);
        let v = c.add_bytes(b).finish();
        put_u16(b, 2, v);
    }
}

/// The flags of a neighbour advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NaFlags {
    /// R: the sender is a router.
    pub router: bool,
    /// S: sent in answer to a solicitation.
    pub solicited: bool,
    /// O: override an existing cache entry.
    pub override_: bool,
}

impl NaFlags {
    fn to_word(self) -> u32 {
        (u32::from(self.router) << 31) | (u32::from(self.solicited) << 30) | (u32::from(self.override_) << 29)
    }
    fn from_word(w: u32) -> NaFlags {
        NaFlags { router: w & (1 << 31) != 0, solicited: w & (1 << 30) != 0, override_: w & (1 << 29) != 0 }
    }
}

/// An ICMPv6 message header as a value. For neighbour discovery the value
/// holds the whole message, with the link-layer address option; for other
/// messages the data after the 8-byte header is the caller's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Icmpv6Repr {
    /// Echo request.
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq: u16,
    },
    /// Echo reply.
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq: u16,
    },
    /// Neighbour solicitation.
    NeighborSolicit {
        /// The address being resolved.
        target: Ipv6Addr,
        /// The sender's link-layer address (absent in DAD probes).
        source_lladdr: Option<MacAddr>,
    },
    /// Neighbour advertisement.
    NeighborAdvert {
        /// R, S, O flags.
        flags: NaFlags,
        /// The address advertised.
        target: Ipv6Addr,
        /// The link-layer address for it.
        target_lladdr: Option<MacAddr>,
    },
    /// Any other message: type, code and first body word.
    Other {
        /// Message type.
        msg_type: Icmpv6Type,
        /// Code.
        code: u8,
        /// First body word.
        rest: u32,
    },
}

impl Icmpv6Repr {
    /// Reads a message. Neighbour discovery messages must have code 0 and
    /// well-formed options; options other than the link-layer address are
    /// skipped.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Icmpv6Repr> {
        p.check_len()?;
        let lladdr = |want: NdOptionType| -> Result<Option<MacAddr>> {
            let mut found = None;
            for opt in p.nd_options() {
                let opt = opt?;
                if opt.kind == want {
                    found = opt.link_layer_addr();
                }
            }
            Ok(found)
        };
        Ok(match p.msg_type() {
            Icmpv6Type::EchoRequest | Icmpv6Type::EchoReply if p.code() == 0 => {
                let (ident, seq) = ((p.rest() >> 16) as u16, p.rest() as u16);
                if p.msg_type() == Icmpv6Type::EchoRequest {
                    Icmpv6Repr::EchoRequest { ident, seq }
                } else {
                    Icmpv6Repr::EchoReply { ident, seq }
                }
            }
            Icmpv6Type::NeighborSolicit | Icmpv6Type::NeighborAdvert if p.code() != 0 => {
                return Err(Error::Malformed(crate::error::Malformed::NdNonZeroCode));
            }
            Icmpv6Type::NeighborSolicit => Icmpv6Repr::NeighborSolicit {
                target: p.target().unwrap_or(Ipv6Addr::UNSPECIFIED),
                source_lladdr: lladdr(NdOptionType::SourceLinkLayerAddr)?,
            },
            Icmpv6Type::NeighborAdvert => Icmpv6Repr::NeighborAdvert {
                flags: NaFlags::from_word(p.rest()),
                target: p.target().unwrap_or(Ipv6Addr::UNSPECIFIED),
                target_lladdr: lladdr(NdOptionType::TargetLinkLayerAddr)?,
            },
            msg_type => Icmpv6Repr::Other { msg_type, code: p.code(), rest: p.rest() },
        })
    }

    /// The bytes this value emits: 8 for echo and other messages; 24 or 32
    /// for neighbour discovery.
    pub fn buffer_len(&self) -> usize {
        match self {
            Icmpv6Repr::NeighborSolicit { source_lladdr: l, .. }
            | Icmpv6Repr::NeighborAdvert { target_lladdr: l, .. } => ND_LEN + if l.is_some() { 8 } else { 0 },
            _ => HEADER_LEN,
        }
    }

    /// Writes the message with a zero checksum; write any data, then call
    /// [`Packet::fill_checksum`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        if buf.len() < self.buffer_len() {
            return Err(Error::Truncated);
        }
        let (ty, code, rest) = match *self {
            Icmpv6Repr::EchoRequest { ident, seq } => {
                (Icmpv6Type::EchoRequest, 0, (u32::from(ident) << 16) | u32::from(seq))
            }
            Icmpv6Repr::EchoReply { ident, seq } => {
                (Icmpv6Type::EchoReply, 0, (u32::from(ident) << 16) | u32::from(seq))
            }
            Icmpv6Repr::NeighborSolicit { .. } => (Icmpv6Type::NeighborSolicit, 0, 0),
            Icmpv6Repr::NeighborAdvert { flags, .. } => (Icmpv6Type::NeighborAdvert, 0, flags.to_word()),
            Icmpv6Repr::Other { msg_type, code, rest } => (msg_type, code, rest),
        };
        buf[0] = ty.into();
        buf[1] = code;
        put_u16(buf, 2, 0);
        put_u32(buf, 4, rest);
        let nd = match *self {
            Icmpv6Repr::NeighborSolicit { target, source_lladdr } => {
                Some((target, source_lladdr, NdOptionType::SourceLinkLayerAddr))
            }
            Icmpv6Repr::NeighborAdvert { target, target_lladdr, .. } => {
                Some((target, target_lladdr, NdOptionType::TargetLinkLayerAddr))
            }
            _ => None,
        };
        if let Some((target, lladdr, kind)) = nd {
            buf[8..24].copy_from_slice(&target.octets());
            if let Some(mac) = lladdr {
                buf[24] = kind.into();
                buf[25] = 1;
                buf[26..32].copy_from_slice(&mac.0);
            }
        }
        Ok(())
    }
}
