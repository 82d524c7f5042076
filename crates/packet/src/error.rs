//! The one error type of the packet library: two bytes, `Copy`, and cheap
//! to return on the per-packet path. Every malformation has its own
//! [`Malformed`] value, so a datapath can count drops by reason without
//! comparing strings.

use core::fmt;

/// Why bytes could not be read as a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the header (or than a length field in it
    /// claims).
    Truncated,
    /// A field holds a value the format does not allow.
    Malformed(Malformed),
}

/// Which field of which header was not allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Malformed {
    /// The encapsulated frame exceeds the IPv4 total length.
    EncapTooLong,
    /// UDP length is shorter than its header.
    UdpLengthShort,
    /// TCP data offset is below 5 words.
    TcpDataOffsetShort,
    /// IPv6 version field is not 6.
    Ipv6Version,
    /// IPv4 version field is not 4.
    Ipv4Version,
    /// IPv4 total length is shorter than its header.
    Ipv4TotalLengthShort,
    /// IPv4 header length is below 20 bytes.
    Ipv4HeaderLengthShort,
    /// The outer frame is not untagged IPv4.
    OuterNotIpv4,
    /// The outer UDP destination port is not 4789.
    OuterNotVxlanPort,
    /// The outer IPv4 packet is not an unfragmented UDP datagram.
    OuterNotUdp,
    /// Neighbour discovery option with length 0.
    NdOptionLengthZero,
    /// Neighbour discovery message with a non-zero code.
    NdNonZeroCode,
    /// More than two VLAN tags.
    TooManyVlanTags,
    /// More than 8 IPv6 extension headers.
    TooManyIpv6Extensions,
    /// VXLAN VNI exceeds 24 bits.
    VxlanVniRange,
    /// VXLAN I flag is clear.
    VxlanIFlagClear,
    /// UDP length exceeds 65535.
    UdpTooLong,
    /// TCP reserved bits are set.
    TcpReservedBits,
    /// TCP options length is not a multiple of 4 up to 40.
    TcpOptionsLength,
    /// TCP option length runs past the options.
    TcpOptionOverrun,
    /// TCP flags exceed 9 bits.
    TcpFlagsRange,
    /// IPv6 flow label exceeds 20 bits.
    Ipv6FlowLabelRange,
    /// IPv4 total length exceeds 65535.
    Ipv4TooLong,
    /// IPv4 reserved flag is set.
    Ipv4ReservedFlag,
    /// IPv4 options length is not a multiple of 4 up to 40.
    Ipv4OptionsLength,
    /// IPv4 fragment offset is not a multiple of 8.
    Ipv4FragmentOffset,
    /// Geneve version is not 0.
    GeneveVersion,
    /// Geneve options length is not a multiple of 4 up to 252.
    GeneveOptionsLength,
    /// Geneve VNI exceeds 24 bits.
    GeneveVniRange,
    /// GRE version is not 0.
    GreVersion,
    /// GRE routing or reserved bits are set.
    GreReservedBits,
    /// ARP is not for Ethernet and IPv4.
    ArpNotEthernetIpv4,
}

impl Malformed {
    /// What is wrong, as a sentence fragment.
    pub const fn as_str(self) -> &'static str {
        match self {
            Malformed::EncapTooLong => "the encapsulated frame exceeds the IPv4 total length",
            Malformed::UdpLengthShort => "UDP length is shorter than its header",
            Malformed::TcpDataOffsetShort => "TCP data offset is below 5 words",
            Malformed::Ipv6Version => "IPv6 version field is not 6",
            Malformed::Ipv4Version => "IPv4 version field is not 4",
            Malformed::Ipv4TotalLengthShort => "IPv4 total length is shorter than its header",
            Malformed::Ipv4HeaderLengthShort => "IPv4 header length is below 20 bytes",
            Malformed::OuterNotIpv4 => "the outer frame is not untagged IPv4",
            Malformed::OuterNotVxlanPort => "the outer UDP destination port is not 4789",
            Malformed::OuterNotUdp => "the outer IPv4 packet is not an unfragmented UDP datagram",
            Malformed::NdOptionLengthZero => "neighbour discovery option with length 0",
            Malformed::NdNonZeroCode => "neighbour discovery message with a non-zero code",
            Malformed::TooManyVlanTags => "more than two VLAN tags",
            Malformed::TooManyIpv6Extensions => "more than 8 IPv6 extension headers",
            Malformed::VxlanVniRange => "VXLAN VNI exceeds 24 bits",
            Malformed::VxlanIFlagClear => "VXLAN I flag is clear",
            Malformed::UdpTooLong => "UDP length exceeds 65535",
            Malformed::TcpReservedBits => "TCP reserved bits are set",
            Malformed::TcpOptionsLength => "TCP options length is not a multiple of 4 up to 40",
            Malformed::TcpOptionOverrun => "TCP option length runs past the options",
            Malformed::TcpFlagsRange => "TCP flags exceed 9 bits",
            Malformed::Ipv6FlowLabelRange => "IPv6 flow label exceeds 20 bits",
            Malformed::Ipv4TooLong => "IPv4 total length exceeds 65535",
            Malformed::Ipv4ReservedFlag => "IPv4 reserved flag is set",
            Malformed::Ipv4OptionsLength => "IPv4 options length is not a multiple of 4 up to 40",
            Malformed::Ipv4FragmentOffset => "IPv4 fragment offset is not a multiple of 8",
            Malformed::GeneveVersion => "Geneve version is not 0",
            Malformed::GeneveOptionsLength => "Geneve options length is not a multiple of 4 up to 252",
            Malformed::GeneveVniRange => "Geneve VNI exceeds 24 bits",
            Malformed::GreVersion => "GRE version is not 0",
            Malformed::GreReservedBits => "GRE routing or reserved bits are set",
            Malformed::ArpNotEthernetIpv4 => "ARP is not for Ethernet and IPv4",
        }
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => f.write_str("the packet is shorter than its headers say"),
            Error::Malformed(what) => write!(f, "malformed packet: {what}"),
        }
    }
}

impl std::error::Error for Error {}

/// The result of a parse.
pub type Result<T> = core::result::Result<T, Error>;
