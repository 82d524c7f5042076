//! rtnetlink for the netdevs that sit on top of VFs and in front of VMs:
//! list links (name, kind, lower device, flags), create a macvtap in
//! passthrough mode on a VF netdev, bring a link up, delete a link, and
//! create a persistent TAP (the one `ioctl` lives in `sys`).
//!
//! Requests are built with `netlink-packet-route`; dump replies are walked
//! with [`super::walk`] (total: never panics on any bytes).

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoMacVtap, LinkAttribute, LinkFlags, LinkInfo as NlLinkInfo, LinkMessage, MacVtapMode,
};
use serde::Serialize;

use super::NlSocket;
use super::walk::{attrs, messages};
use crate::error::{Error, Result};
use crate::model::MacAddr;

const RTM_NEWLINK: u16 = 16;
const IFINFOMSG_LEN: usize = 16;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINK: u16 = 5;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const IFLA_MACVLAN_MODE: u16 = 1;
const MACVLAN_MODE_PASSTHRU: u32 = 8;
const IFF_UP: u32 = 1;

/// Longest netdev name the kernel accepts (`IFNAMSIZ` - 1).
pub const IFNAME_MAX: usize = 15;

/// One link as rtnetlink reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    /// Interface index.
    pub ifindex: u32,
    /// Name.
    pub name: String,
    /// `IFLA_INFO_KIND` (`macvtap`, `tun`, `veth`...), if any.
    pub kind: Option<String>,
    /// `IFLA_LINK`: the lower device's index (macvtap, vlan).
    pub lower: Option<u32>,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Hardware address.
    pub mac: Option<MacAddr>,
    /// macvtap/macvlan mode is passthrough.
    pub passthrough: bool,
}

/// Checks a netdev name: 1..=15 bytes, no `/`, whitespace or `:`, not `.`
/// or `..`.
pub fn check_ifname(field: &'static str, name: &str) -> Result<()> {
    let bad_char = name.bytes().any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0);
    if name.is_empty() || name.len() > IFNAME_MAX || bad_char || name == "." || name == ".." {
        return Err(Error::invalid(
            field,
            format!("must be a netdev name of 1..={IFNAME_MAX} bytes without '/', ':' or whitespace, got {name:?}"),
        ));
    }
    Ok(())
}

/// rtnetlink access to links.
pub struct Links {
    sock: NlSocket,
}

impl Links {
    /// Opens a NETLINK_ROUTE socket in the caller's network namespace.
    pub fn open() -> Result<Self> {
        Ok(Links { sock: NlSocket::open(netlink_sys::protocols::NETLINK_ROUTE)? })
    }

    fn serialize(&mut self, msg: RouteNetlinkMessage, flags: u16) -> (Vec<u8>, u32) {
        super::rt::route_request(&mut self.sock, msg, flags)
    }

    fn ack(&mut self, msg: RouteNetlinkMessage, flags: u16, op: &str) -> Result<()> {
        let (buf, seq) = self.serialize(msg, NLM_F_REQUEST | NLM_F_ACK | flags);
        let acks = self.sock.transact_acks(&buf, &[seq])?;
        match acks.into_iter().next() {
            Some(a) => a.into_result(op),
            None => Ok(()),
        }
    }

    /// Every link in the namespace.
    pub fn list(&mut self) -> Result<Vec<Link>> {
        let (buf, seq) =
            self.serialize(RouteNetlinkMessage::GetLink(LinkMessage::default()), NLM_F_REQUEST | NLM_F_DUMP);
        let datagrams = self.sock.request(&buf, seq, true, "RTM_GETLINK dump")?;
        Ok(datagrams.iter().flat_map(|d| parse_links(d)).collect())
    }

    /// The link called `name`, if it exists.
    pub fn find(&mut self, name: &str) -> Result<Option<Link>> {
        Ok(self.list()?.into_iter().find(|l| l.name == name))
    }

    /// Creates macvtap `name` in passthrough mode on `lower` (a VF netdev),
    /// asking for `mac`. The kernel gives a passthrough macvtap the lower
    /// device's address whatever the request says; use [`Links::set_mac`]
    /// afterwards to change both.
    pub fn create_macvtap_passthrough(&mut self, name: &str, lower: u32, mac: MacAddr) -> Result<()> {
        check_ifname("macvtap name", name)?;
        if mac.is_multicast() || mac.is_zero() {
            return Err(Error::invalid("mac", format!("must be a unicast, non-zero address, got {mac}")));
        }
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes.push(LinkAttribute::Link(lower));
        msg.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            NlLinkInfo::Kind(InfoKind::MacVtap),
            NlLinkInfo::Data(InfoData::MacVtap(vec![InfoMacVtap::Mode(MacVtapMode::Passthrough)])),
        ]));
        self.ack(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("RTM_NEWLINK macvtap {name} (passthrough on ifindex {lower})"),
        )
    }

    /// Sets a link administratively up.
    pub fn set_up(&mut self, ifindex: u32) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = ifindex;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.ack(RouteNetlinkMessage::SetLink(msg), 0, &format!("RTM_SETLINK ifindex {ifindex} up"))
    }

    /// Sets a link's hardware address. On a passthrough macvtap this sets
    /// the lower device's too.
    pub fn set_mac(&mut self, ifindex: u32, mac: MacAddr) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = ifindex;
        msg.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
        self.ack(RouteNetlinkMessage::SetLink(msg), 0, &format!("RTM_SETLINK ifindex {ifindex} address {mac}"))
    }

    /// Deletes a link.
    pub fn delete(&mut self, ifindex: u32) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = ifindex;
        self.ack(RouteNetlinkMessage::DelLink(msg), 0, &format!("RTM_DELLINK ifindex {ifindex}"))
    }
}

/// Creates a persistent TAP device `name` (no packet information header,
/// owned by root) in the caller's network namespace. Succeeds if a TAP of
/// that name already exists and is persistent.
pub fn create_persistent_tap(name: &str) -> Result<()> {
    check_ifname("tap name", name)?;
    crate::sys::create_persistent_tap(name)
        .map_err(|source| Error::Netlink { op: format!("TUNSETIFF/TUNSETPERSIST {name}"), source })
}

/// Decodes the `RTM_NEWLINK` messages of one dump datagram. Total.
pub fn parse_links(buf: &[u8]) -> Vec<Link> {
    let mut out = Vec::new();
    for m in messages(buf) {
        if m.kind != RTM_NEWLINK {
            continue;
        }
        let Some(ifi) = m.payload.get(..IFINFOMSG_LEN) else { continue };
        let mut l = Link {
            ifindex: u32::from_ne_bytes([ifi[4], ifi[5], ifi[6], ifi[7]]),
            name: String::new(),
            kind: None,
            lower: None,
            up: u32::from_ne_bytes([ifi[8], ifi[9], ifi[10], ifi[11]]) & IFF_UP != 0,
            mac: None,
            passthrough: false,
        };
        for a in attrs(&m.payload[IFINFOMSG_LEN..]) {
            match a.kind {
                IFLA_IFNAME => l.name = super::c_string(a.value),
                IFLA_LINK => l.lower = super::attr_u32(&a).filter(|i| *i != 0),
                IFLA_ADDRESS => {
                    if let Ok(b) = <[u8; 6]>::try_from(a.value) {
                        l.mac = Some(MacAddr(b));
                    }
                }
                IFLA_LINKINFO => {
                    for i in attrs(a.value) {
                        match i.kind {
                            IFLA_INFO_KIND => l.kind = Some(super::c_string(i.value)),
                            IFLA_INFO_DATA => {
                                l.passthrough = attrs(i.value).any(|d| {
                                    d.kind == IFLA_MACVLAN_MODE && super::attr_u32(&d) == Some(MACVLAN_MODE_PASSTHRU)
                                });
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        out.push(l);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifname_rules_name_the_field() {
        check_ifname("x", "tapabcdef01234").unwrap();
        let e = check_ifname("tap name", "a-name-that-is-too-long").unwrap_err().to_string();
        assert!(e.starts_with("tap name must be a netdev name of 1..=15 bytes"), "{e}");
        assert!(check_ifname("x", "a/b").is_err());
        assert!(check_ifname("x", "..").is_err());
        assert!(check_ifname("x", "").is_err());
    }

    proptest::proptest! {
        #[test]
        fn link_parser_total(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = parse_links(&bytes);
        }
    }
}
