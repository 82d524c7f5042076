//! Reading a NIC's RSS key, RETA and hashed fields: the only module of this
//! crate that does I/O (syscalls, netlink).
//!
//! * Key, RETA and hash function: ethtool netlink `ETHTOOL_MSG_RSS_GET`
//!   (Linux ≥ 6.3), with the `SIOCETHTOOL` `ETHTOOL_GRSSH` ioctl as fallback.
//! * Hashed fields per flow type: the `ETHTOOL_GRXFH` ioctl (netlink gained
//!   them only in Linux 6.16, as `ETHTOOL_A_RSS_FLOW_HASH`).
//!
//! The genl messages are written here on top of `netlink-packet-core`,
//! `netlink-packet-generic` and `netlink-sys` because no crate models
//! ethtool's RSS messages (rust-netlink's `ethtool` crate covers pause,
//! features, link modes, rings, coalesce, channels, FEC and timestamping,
//! and is async-only). [`parse_rss_reply`] is total: any bytes give a value
//! or an error, never a panic.
//!
//! **82599-class VFs.** An 82599 or X540 VF has no key or RETA of its own:
//! both belong to the PF, and DPDK's ixgbevf PMD can neither read nor write
//! them (`reta_size = 0`). Two routes work:
//! 1. read the PF on the host: `sluice rss show <PF>` (what `ethtool -x <PF>`
//!    shows is what the VF's traffic is hashed with);
//! 2. let the VF ask: on the host `ip link set dev <PF> vf N query_rss on`,
//!    then in a Linux guest bound to `ixgbevf`, `sluice rss show <VF>` (the
//!    PF answers the `IXGBE_VF_GET_RSS_KEY` / `IXGBE_VF_GET_RETA` mailbox
//!    requests only when `query_rss` is on; the RETA comes back 2 bits per
//!    entry, as the VF has at most 2–4 queues).
//!
//! With a Linux PF the key is random per boot (`netdev_rss_key`), so re-read
//! it after a host reboot or PF reset, and pass it to the stack as config.

use std::ffi::c_void;
use std::num::NonZeroI32;

use netlink_packet_core::{
    DecodeError, Emitable, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload, Nla, NlasIterator, ParseableParametrized,
};
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_GENERIC};
use thiserror::Error;

/// `ETHTOOL_GENL_NAME`.
const ETHTOOL_GENL_NAME: &str = "ethtool";
/// `ETHTOOL_GENL_VERSION`.
const ETHTOOL_GENL_VERSION: u8 = 1;
/// `ETHTOOL_MSG_RSS_GET` (user → kernel).
const ETHTOOL_MSG_RSS_GET: u8 = 38;
/// `ETHTOOL_MSG_RSS_GET_REPLY` (kernel → user).
const ETHTOOL_MSG_RSS_GET_REPLY: u8 = 38;
/// `ETHTOOL_A_RSS_*`.
const ETHTOOL_A_RSS_HEADER: u16 = 1;
const ETHTOOL_A_RSS_CONTEXT: u16 = 2;
const ETHTOOL_A_RSS_HFUNC: u16 = 3;
const ETHTOOL_A_RSS_INDIR: u16 = 4;
const ETHTOOL_A_RSS_HKEY: u16 = 5;
const ETHTOOL_A_RSS_INPUT_XFRM: u16 = 6;
/// `ETHTOOL_A_HEADER_DEV_NAME`.
const ETHTOOL_A_HEADER_DEV_NAME: u16 = 2;
/// `NLA_F_NESTED`.
const NLA_F_NESTED: u16 = 1 << 15;

/// `SIOCETHTOOL` and the ethtool ioctl commands used here.
const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GRSSH: u32 = 0x46;
const ETHTOOL_GRXFH: u32 = 0x29;
/// `sizeof(struct ethtool_rxfh)` without its flexible array.
const RXFH_HEADER: usize = 24;
/// `sizeof(struct ethtool_rxnfc)`.
const RXNFC_SIZE: usize = 192;

/// Why a NIC's RSS configuration could not be read.
#[derive(Debug, Error)]
pub enum EthtoolError {
    /// The device name cannot be a Linux interface name.
    #[error("the device name must be 1 to 15 bytes without NUL or '/', got {0:?}")]
    DeviceName(String),
    /// The kernel or driver refused or failed the request.
    #[error("{what} failed for {device}: {error}")]
    Os {
        /// What was being done.
        what: &'static str,
        /// The device.
        device: String,
        /// The OS error.
        error: std::io::Error,
    },
    /// The kernel's reply could not be decoded.
    #[error("the kernel's ethtool reply could not be decoded: {0}")]
    Decode(String),
    /// The reply had neither a key nor a RETA.
    #[error("the driver of {0} reports neither an RSS key nor a RETA (does it support RSS?)")]
    Missing(String),
}

impl From<DecodeError> for EthtoolError {
    fn from(err: DecodeError) -> Self {
        EthtoolError::Decode(err.to_string())
    }
}

/// How the configuration was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// ethtool generic netlink, `ETHTOOL_MSG_RSS_GET`.
    Netlink,
    /// The `SIOCETHTOOL` ioctl, `ETHTOOL_GRSSH`.
    Ioctl,
}

impl Source {
    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            Source::Netlink => "netlink",
            Source::Ioctl => "ioctl",
        }
    }
}

/// The RSS hash function (`ETH_RSS_HASH_*` bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashFunction {
    /// Toeplitz (`ETH_RSS_HASH_TOP`).
    Toeplitz,
    /// XOR (`ETH_RSS_HASH_XOR`).
    Xor,
    /// CRC32 (`ETH_RSS_HASH_CRC32`).
    Crc32,
    /// Not reported (0) or a value this crate does not know.
    Other(u32),
}

impl HashFunction {
    /// From the `hfunc` bitmask the kernel reports.
    pub fn from_bits(bits: u32) -> HashFunction {
        match bits {
            1 => HashFunction::Toeplitz,
            2 => HashFunction::Xor,
            4 => HashFunction::Crc32,
            other => HashFunction::Other(other),
        }
    }

    /// A short name, as ethtool prints it.
    pub fn name(self) -> &'static str {
        match self {
            HashFunction::Toeplitz => "toeplitz",
            HashFunction::Xor => "xor",
            HashFunction::Crc32 => "crc32",
            HashFunction::Other(0) => "unknown",
            HashFunction::Other(_) => "other",
        }
    }
}

/// A flow type of `ETHTOOL_GRXFH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowType {
    /// `TCP_V4_FLOW`.
    Tcp4,
    /// `UDP_V4_FLOW`.
    Udp4,
    /// `TCP_V6_FLOW`.
    Tcp6,
    /// `UDP_V6_FLOW`.
    Udp6,
}

impl FlowType {
    /// The flow types `show` reports.
    pub const ALL: [FlowType; 4] = [FlowType::Tcp4, FlowType::Udp4, FlowType::Tcp6, FlowType::Udp6];

    fn code(self) -> u32 {
        match self {
            FlowType::Tcp4 => 0x01,
            FlowType::Udp4 => 0x02,
            FlowType::Tcp6 => 0x05,
            FlowType::Udp6 => 0x06,
        }
    }

    /// ethtool's name (`tcp4`, ...).
    pub fn name(self) -> &'static str {
        match self {
            FlowType::Tcp4 => "tcp4",
            FlowType::Udp4 => "udp4",
            FlowType::Tcp6 => "tcp6",
            FlowType::Udp6 => "udp6",
        }
    }
}

/// The fields a NIC hashes for one flow type (`RXH_*` bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowFields {
    /// The flow type.
    pub flow: FlowType,
    /// The raw `RXH_*` bitmask.
    pub bits: u64,
}

impl FlowFields {
    /// Names of the hashed fields, in ethtool's order.
    pub fn field_names(&self) -> Vec<&'static str> {
        const NAMES: [(u64, &str); 9] = [
            (1 << 1, "l2-dst"),
            (1 << 2, "vlan"),
            (1 << 3, "l3-proto"),
            (1 << 4, "ip-src"),
            (1 << 5, "ip-dst"),
            (1 << 6, "l4-src-port"),
            (1 << 7, "l4-dst-port"),
            (1 << 8, "gtp-teid"),
            (1 << 31, "discard"),
        ];
        NAMES.iter().filter(|(bit, _)| self.bits & bit != 0).map(|&(_, name)| name).collect()
    }
}

/// A NIC's RSS configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RssConfig {
    /// The device name.
    pub device: String,
    /// How key and RETA were read.
    pub source: Source,
    /// The hash function.
    pub hfunc: HashFunction,
    /// The key bytes in wire order (as `ethtool -x` prints them); empty when
    /// the driver does not report a key (igb, for one).
    pub key: Vec<u8>,
    /// The indirection table; empty when the driver does not report one.
    pub indir: Vec<u32>,
    /// Hashed fields per flow type (empty when the driver does not say).
    pub fields: Vec<FlowFields>,
}

/// The decoded attributes of an `ETHTOOL_MSG_RSS_GET_REPLY`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RssReply {
    /// `ETHTOOL_A_RSS_CONTEXT`.
    pub context: Option<u32>,
    /// `ETHTOOL_A_RSS_HFUNC`.
    pub hfunc: Option<u32>,
    /// `ETHTOOL_A_RSS_INDIR` (u32 entries in host order).
    pub indir: Vec<u32>,
    /// `ETHTOOL_A_RSS_HKEY`.
    pub hkey: Vec<u8>,
    /// `ETHTOOL_A_RSS_INPUT_XFRM`.
    pub input_xfrm: Option<u32>,
}

/// Decodes the attributes of an `ETHTOOL_MSG_RSS_GET_REPLY` (the bytes after
/// the genl header). Total: unknown attributes are skipped, malformed ones
/// are errors, nothing panics.
pub fn parse_rss_reply(attrs: &[u8]) -> Result<RssReply, DecodeError> {
    let mut reply = RssReply::default();
    for nla in NlasIterator::new(attrs) {
        let nla = nla?;
        let value = nla.value();
        let u32_value = || -> Result<u32, DecodeError> {
            let bytes: [u8; 4] = value
                .try_into()
                .map_err(|_| DecodeError::from(format!("u32 attribute {} has {} bytes", nla.kind(), value.len())))?;
            Ok(u32::from_ne_bytes(bytes))
        };
        match nla.kind() & !NLA_F_NESTED {
            ETHTOOL_A_RSS_CONTEXT => reply.context = Some(u32_value()?),
            ETHTOOL_A_RSS_HFUNC => reply.hfunc = Some(u32_value()?),
            ETHTOOL_A_RSS_INPUT_XFRM => reply.input_xfrm = Some(u32_value()?),
            ETHTOOL_A_RSS_INDIR => {
                if value.len() % 4 != 0 {
                    return Err(format!("RSS indirection table has {} bytes, not a multiple of 4", value.len()).into());
                }
                reply.indir = value.chunks_exact(4).map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]])).collect();
            }
            ETHTOOL_A_RSS_HKEY => reply.hkey = value.to_vec(),
            _ => {}
        }
    }
    Ok(reply)
}

/// Which route [`query_via`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Via {
    /// Netlink, then the ioctl if netlink cannot answer.
    #[default]
    Auto,
    /// Netlink only.
    Netlink,
    /// The ioctl only.
    Ioctl,
}

/// Reads `device`'s RSS configuration: netlink first, the ioctl if netlink
/// cannot answer (old kernel, no ethtool family); hashed fields by ioctl.
pub fn query(device: &str) -> Result<RssConfig, EthtoolError> {
    query_via(device, Via::Auto)
}

/// As [`query`], over the given route.
pub fn query_via(device: &str, via: Via) -> Result<RssConfig, EthtoolError> {
    check_name(device)?;
    let (source, reply) = match via {
        Via::Netlink => (Source::Netlink, query_netlink(device)?),
        Via::Ioctl => (Source::Ioctl, query_ioctl(device)?),
        Via::Auto => match query_netlink(device) {
            Ok(reply) => (Source::Netlink, reply),
            Err(netlink_err) => match query_ioctl(device) {
                Ok(reply) => (Source::Ioctl, reply),
                // Report the netlink error: it is the primary route.
                Err(_) => return Err(netlink_err),
            },
        },
    };
    // Some drivers report a RETA but no key (igb: `ethtool -x` says "RSS
    // hash key: Operation not supported"); an empty key means "not reported".
    if reply.hkey.is_empty() && reply.indir.is_empty() {
        return Err(EthtoolError::Missing(device.to_string()));
    }
    let fields = FlowType::ALL
        .iter()
        .filter_map(|&flow| flow_fields(device, flow).ok().map(|bits| FlowFields { flow, bits }))
        .collect();
    Ok(RssConfig {
        device: device.to_string(),
        source,
        hfunc: HashFunction::from_bits(reply.hfunc.unwrap_or(0)),
        key: reply.hkey,
        indir: reply.indir,
        fields,
    })
}

fn check_name(device: &str) -> Result<(), EthtoolError> {
    if device.is_empty() || device.len() > 15 || device.contains(['\0', '/']) {
        return Err(EthtoolError::DeviceName(device.to_string()));
    }
    Ok(())
}

/// The genl payload of an ethtool RSS message: command plus raw attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EthtoolRss {
    cmd: u8,
    /// For requests: the device; for replies: the raw attribute bytes.
    device: Option<String>,
    attrs: Vec<u8>,
}

/// The request header nest: `ETHTOOL_A_RSS_HEADER { DEV_NAME }`.
struct HeaderNla<'a>(&'a str);

/// `ETHTOOL_A_HEADER_DEV_NAME`, a NUL-terminated string.
struct DevNameNla<'a>(&'a str);

impl Nla for DevNameNla<'_> {
    fn value_len(&self) -> usize {
        self.0.len() + 1
    }
    fn kind(&self) -> u16 {
        ETHTOOL_A_HEADER_DEV_NAME
    }
    fn emit_value(&self, buffer: &mut [u8]) {
        let n = self.0.len();
        buffer[..n].copy_from_slice(self.0.as_bytes());
        buffer[n] = 0;
    }
}

impl Nla for HeaderNla<'_> {
    fn value_len(&self) -> usize {
        DevNameNla(self.0).buffer_len()
    }
    fn kind(&self) -> u16 {
        ETHTOOL_A_RSS_HEADER | NLA_F_NESTED
    }
    fn emit_value(&self, buffer: &mut [u8]) {
        DevNameNla(self.0).emit(buffer);
    }
}

impl GenlFamily for EthtoolRss {
    fn family_name() -> &'static str {
        ETHTOOL_GENL_NAME
    }
    fn command(&self) -> u8 {
        self.cmd
    }
    fn version(&self) -> u8 {
        ETHTOOL_GENL_VERSION
    }
}

impl Emitable for EthtoolRss {
    fn buffer_len(&self) -> usize {
        self.device.as_deref().map_or(0, |d| HeaderNla(d).buffer_len()) + self.attrs.len()
    }
    fn emit(&self, buffer: &mut [u8]) {
        let mut at = 0;
        if let Some(d) = self.device.as_deref() {
            let nla = HeaderNla(d);
            nla.emit(&mut buffer[..nla.buffer_len()]);
            at = nla.buffer_len();
        }
        buffer[at..at + self.attrs.len()].copy_from_slice(&self.attrs);
    }
}

impl ParseableParametrized<[u8], GenlHeader> for EthtoolRss {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        Ok(EthtoolRss { cmd: header.cmd, device: None, attrs: buf.to_vec() })
    }
}

fn os_error(what: &'static str, device: &str, error: std::io::Error) -> EthtoolError {
    EthtoolError::Os { what, device: device.to_string(), error }
}

fn nl_error(what: &'static str, device: &str, code: NonZeroI32) -> EthtoolError {
    os_error(what, device, std::io::Error::from_raw_os_error(-code.get()))
}

/// Sends one genl request and returns the first reply message's payload.
fn genl_request<F>(
    socket: &Socket,
    mut msg: GenlMessage<F>,
    what: &'static str,
    device: &str,
) -> Result<GenlMessage<F>, EthtoolError>
where
    F: GenlFamily + Emitable + ParseableParametrized<[u8], GenlHeader> + std::fmt::Debug,
{
    msg.finalize();
    let mut nl = NetlinkMessage::from(msg);
    nl.header.flags = NLM_F_REQUEST;
    nl.header.sequence_number = 1;
    nl.finalize();
    let mut tx = vec![0u8; nl.buffer_len()];
    nl.serialize(&mut tx);
    socket.send(&tx, 0).map_err(|e| os_error(what, device, e))?;
    let (rx, _) = socket.recv_from_full().map_err(|e| os_error(what, device, e))?;
    let reply = NetlinkMessage::<GenlMessage<F>>::deserialize(&rx)?;
    match reply.payload {
        NetlinkPayload::InnerMessage(m) => Ok(m),
        NetlinkPayload::Error(err) => match err.code {
            Some(code) => Err(nl_error(what, device, code)),
            None => Err(EthtoolError::Decode(format!("{what}: an ACK instead of a reply"))),
        },
        other => Err(EthtoolError::Decode(format!("{what}: unexpected netlink message {other:?}"))),
    }
}

/// Key, RETA and hash function over ethtool netlink.
pub fn query_netlink(device: &str) -> Result<RssReply, EthtoolError> {
    Ok(parse_rss_reply(&query_netlink_raw(device)?)?)
}

/// The raw attribute bytes of the kernel's `ETHTOOL_MSG_RSS_GET_REPLY` for
/// `device` (for capturing test fixtures; decode with [`parse_rss_reply`]).
pub fn query_netlink_raw(device: &str) -> Result<Vec<u8>, EthtoolError> {
    check_name(device)?;
    let mut socket = Socket::new(NETLINK_GENERIC).map_err(|e| os_error("netlink socket", device, e))?;
    socket.bind_auto().map_err(|e| os_error("netlink bind", device, e))?;
    socket.connect(&SocketAddr::new(0, 0)).map_err(|e| os_error("netlink connect", device, e))?;

    let resolve = GenlMessage::from_payload(GenlCtrl {
        cmd: GenlCtrlCmd::GetFamily,
        nlas: vec![GenlCtrlAttrs::FamilyName(ETHTOOL_GENL_NAME.to_string())],
    });
    let family = genl_request(&socket, resolve, "resolving the ethtool genl family", device)?;
    let family_id = family
        .payload
        .nlas
        .iter()
        .find_map(|a| match a {
            GenlCtrlAttrs::FamilyId(id) => Some(*id),
            _ => None,
        })
        .ok_or_else(|| EthtoolError::Decode("the genl controller did not give the ethtool family id".into()))?;

    let mut request = GenlMessage::from_payload(EthtoolRss {
        cmd: ETHTOOL_MSG_RSS_GET,
        device: Some(device.to_string()),
        attrs: Vec::new(),
    });
    request.set_resolved_family_id(family_id);
    let reply = genl_request(&socket, request, "ETHTOOL_MSG_RSS_GET", device)?;
    if reply.payload.cmd != ETHTOOL_MSG_RSS_GET_REPLY {
        return Err(EthtoolError::Decode(format!(
            "expected ETHTOOL_MSG_RSS_GET_REPLY ({ETHTOOL_MSG_RSS_GET_REPLY}), got command {}",
            reply.payload.cmd
        )));
    }
    Ok(reply.payload.attrs)
}

/// `struct ifreq` with `ifr_data` (40 bytes on 64-bit Linux).
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    data: *mut c_void,
    _pad: [u8; 16],
}

/// Runs one `SIOCETHTOOL` request with `buf` as the command structure.
fn ethtool_ioctl(device: &str, buf: &mut [u8], what: &'static str) -> Result<(), EthtoolError> {
    check_name(device)?;
    let mut req = IfReq { name: [0; libc::IFNAMSIZ], data: buf.as_mut_ptr().cast(), _pad: [0; 16] };
    req.name[..device.len()].copy_from_slice(device.as_bytes());
    // SAFETY: plain socket(2) call with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(os_error("socket", device, std::io::Error::last_os_error()));
    }
    // SAFETY: `req` is a valid ifreq whose `data` points to `buf`, which is
    // large enough for the command in it (the callers size it from the
    // kernel's struct layouts) and lives until the call returns.
    let rc = unsafe { libc::ioctl(fd, SIOCETHTOOL as _, &mut req as *mut IfReq) };
    let err = std::io::Error::last_os_error();
    // SAFETY: `fd` is the socket opened above, closed exactly once.
    unsafe { libc::close(fd) };
    if rc < 0 {
        return Err(os_error(what, device, err));
    }
    Ok(())
}

/// Key, RETA and hash function over the ioctl (`ETHTOOL_GRSSH`).
pub fn query_ioctl(device: &str) -> Result<RssReply, EthtoolError> {
    // First call: sizes only (indir_size = key_size = 0).
    let mut head = [0u8; RXFH_HEADER];
    head[0..4].copy_from_slice(&ETHTOOL_GRSSH.to_ne_bytes());
    ethtool_ioctl(device, &mut head, "ETHTOOL_GRSSH (sizes)")?;
    let field = |b: &[u8], at: usize| u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let indir_size = field(&head, 8) as usize;
    let key_size = field(&head, 12) as usize;
    if indir_size > 1 << 16 || key_size > 1 << 12 {
        return Err(EthtoolError::Decode(format!(
            "implausible RSS sizes from the driver: {indir_size} RETA entries, {key_size} key bytes"
        )));
    }
    let mut buf = vec![0u8; RXFH_HEADER + 4 * indir_size + key_size];
    buf[..RXFH_HEADER].copy_from_slice(&head);
    ethtool_ioctl(device, &mut buf, "ETHTOOL_GRSSH")?;
    let indir = buf[RXFH_HEADER..RXFH_HEADER + 4 * indir_size]
        .chunks_exact(4)
        .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(RssReply {
        context: None,
        hfunc: Some(u32::from(buf[16])),
        indir,
        hkey: buf[RXFH_HEADER + 4 * indir_size..].to_vec(),
        input_xfrm: Some(u32::from(buf[17])),
    })
}

/// The `RXH_*` fields hashed for `flow` (`ETHTOOL_GRXFH`).
pub fn flow_fields(device: &str, flow: FlowType) -> Result<u64, EthtoolError> {
    let mut buf = [0u8; RXNFC_SIZE];
    buf[0..4].copy_from_slice(&ETHTOOL_GRXFH.to_ne_bytes());
    buf[4..8].copy_from_slice(&flow.code().to_ne_bytes());
    ethtool_ioctl(device, &mut buf, "ETHTOOL_GRXFH")?;
    let mut data = [0u8; 8];
    data.copy_from_slice(&buf[8..16]);
    Ok(u64::from_ne_bytes(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bytes_are_a_nested_header_with_the_device_name() {
        let msg = EthtoolRss { cmd: ETHTOOL_MSG_RSS_GET, device: Some("eth0".into()), attrs: Vec::new() };
        let mut buf = vec![0xa5u8; msg.buffer_len()];
        msg.emit(&mut buf);
        // nla(len 16, HEADER|NESTED) { nla(len 9, DEV_NAME) "eth0\0" + 3 pad }
        assert_eq!(buf, [16, 0, 0x01, 0x80, 9, 0, 2, 0, b'e', b't', b'h', b'0', 0, 0, 0, 0]);
    }

    #[test]
    fn parse_is_total_on_arbitrary_bytes() {
        // Every prefix of a well-formed reply, and some garbage, must give a
        // value or an error without panicking.
        let good = sample_reply();
        for n in 0..=good.len() {
            let _ = parse_rss_reply(&good[..n]);
        }
        let mut x: u32 = 0x1234_5678;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = parse_rss_reply(&bytes);
        }
        assert!(parse_rss_reply(&[8, 0, 3, 0, 1, 0]).is_err(), "truncated attribute");
        assert!(parse_rss_reply(&[6, 0, 3, 0, 1, 0, 0, 0]).is_err(), "u32 of 2 bytes");
    }

    proptest::proptest! {
        /// Any bytes, and any single-byte corruption of a real reply, give a
        /// value or an error: the parser never panics.
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..700),
                              at in 0usize..548, value in proptest::prelude::any::<u8>()) {
            let _ = parse_rss_reply(&bytes);
            let mut real = hex::decode(IGB_REPLY_HEX.concat()).unwrap();
            let n = real.len();
            real[at % n] = value;
            let _ = parse_rss_reply(&real);
        }
    }

    #[test]
    fn parse_reads_hfunc_indir_and_key() {
        let reply = parse_rss_reply(&sample_reply()).unwrap();
        assert_eq!(reply.hfunc, Some(1));
        assert_eq!(reply.indir, vec![0, 1, 0, 1]);
        assert_eq!(reply.hkey, vec![0x6d, 0x5a, 0x56, 0xda]);
    }

    /// `ETHTOOL_MSG_RSS_GET_REPLY` attributes captured from the igb PF (an
    /// emulated 82576, Linux 6.12) in the QEMU lab with
    /// `sluice rss show eth0 --dump-netlink`; `ethtool -x eth0` showed the
    /// same RETA (64 × queue 0, then 64 × queue 1), "RSS hash key:
    /// Operation not supported" and toeplitz.
    const IGB_REPLY_HEX: [&str; 12] = [
        "180001800800010002000000090002006574683000000000040204000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001000000",
        "010000000100000001000000010000000100000001000000010000000100000001000000010000000100000001000000",
        "010000000100000001000000010000000100000001000000010000000100000001000000010000000100000001000000",
        "010000000100000001000000010000000100000001000000010000000100000001000000010000000100000001000000",
        "010000000100000001000000010000000100000001000000010000000100000001000000010000000100000001000000",
        "010000000100000001000000010000000100000001000000010000000100000001000000010000000100000001000000",
        "0100000001000000010000000800030001000000",
    ];

    #[test]
    fn parse_decodes_a_captured_igb_reply() {
        let bytes = hex::decode(IGB_REPLY_HEX.concat()).unwrap();
        let reply = parse_rss_reply(&bytes).unwrap();
        assert_eq!(reply.hfunc, Some(1));
        assert_eq!(HashFunction::from_bits(1), HashFunction::Toeplitz);
        assert_eq!(reply.indir.len(), 128);
        assert!(reply.indir[..64].iter().all(|&q| q == 0));
        assert!(reply.indir[64..].iter().all(|&q| q == 1));
        assert!(reply.hkey.is_empty(), "igb reports no key");
        assert_eq!(reply.context, None);
        // Truncations of real bytes never panic.
        for n in 0..bytes.len() {
            let _ = parse_rss_reply(&bytes[..n]);
        }
    }

    /// A small synthetic reply in the kernel's layout (header nest, hfunc,
    /// indir, hkey).
    fn sample_reply() -> Vec<u8> {
        let mut v = vec![];
        let mut nla = |kind: u16, value: &[u8]| {
            v.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
            v.extend_from_slice(&kind.to_ne_bytes());
            v.extend_from_slice(value);
            while v.len() % 4 != 0 {
                v.push(0);
            }
        };
        nla(ETHTOOL_A_RSS_HEADER | NLA_F_NESTED, &[9, 0, 2, 0, b'e', b't', b'h', b'0', 0]);
        nla(ETHTOOL_A_RSS_HFUNC, &1u32.to_ne_bytes());
        let indir: Vec<u8> = [0u32, 1, 0, 1].iter().flat_map(|q| q.to_ne_bytes()).collect();
        nla(ETHTOOL_A_RSS_INDIR, &indir);
        nla(ETHTOOL_A_RSS_HKEY, &[0x6d, 0x5a, 0x56, 0xda]);
        v
    }
}
