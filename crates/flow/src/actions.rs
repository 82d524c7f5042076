//! Compact action lists: what the datapath does with a packet once a
//! cache or the slow path has decided.
//!
//! An [`Actions`] value is an `Arc` over a boxed slice of small `Copy`
//! [`Action`]s (20 bytes each) plus the few tunnel header templates they
//! refer to by index. Building one allocates (on the control path); cloning
//! it is a reference-count increment and walking it allocates nothing, so
//! the slow path can hand the same list to thousands of megaflows.

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use sluice_packet::encap::VxlanV4Template;
use sluice_packet::ethernet::{EtherType, EthernetRepr};
use sluice_packet::gre::GreRepr;
use sluice_packet::ip::IpProtocol;
use sluice_packet::ipv4::{self, Ipv4Repr};
use sluice_packet::{MacAddr, PacketBuf};

/// The most actions one list may hold.
pub const MAX_ACTIONS: usize = 32;
/// The most tunnel headers one list may hold.
pub const MAX_TUNNELS: usize = 4;

/// One action. Executed in order; [`Action::Output`] sends a copy of the
/// packet as it is at that point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send the packet out of a port.
    Output(u32),
    /// Drop the packet (must be the only action of its list).
    Drop,
    /// Push a VLAN tag (outermost) with this TPID and TCI.
    PushVlan {
        /// 0x8100 or 0x88a8.
        tpid: u16,
        /// PCP, DEI and VID.
        tci: u16,
    },
    /// Pop the outermost VLAN tag.
    PopVlan,
    /// Rewrite the outermost tag's VID and PCP.
    SetVlan {
        /// New VLAN id.
        vid: u16,
        /// New priority.
        pcp: u8,
    },
    /// Set the source MAC.
    SetEthSrc(MacAddr),
    /// Set the destination MAC.
    SetEthDst(MacAddr),
    /// Set the IPv4 source (and fix the checksums).
    SetIpv4Src(Ipv4Addr),
    /// Set the IPv4 destination (and fix the checksums).
    SetIpv4Dst(Ipv4Addr),
    /// Set the IPv6 source.
    SetIpv6Src(Ipv6Addr),
    /// Set the IPv6 destination.
    SetIpv6Dst(Ipv6Addr),
    /// Set the L4 source port.
    SetTpSrc(u16),
    /// Set the L4 destination port.
    SetTpDst(u16),
    /// Decrement the TTL / hop limit (drop, or upcall, when it reaches 0).
    DecTtl,
    /// Encapsulate with the list's tunnel header `header` and send out of `out_port`.
    TunnelPush {
        /// Index into [`Actions::tunnel`].
        header: u8,
        /// The underlay port.
        out_port: u32,
    },
    /// Decapsulate (the packet recirculates with tunnel metadata, from this tunnel port).
    TunnelPop {
        /// The tunnel port the inner packet appears on.
        tunnel_port: u32,
    },
    /// Apply a meter (a packet over the rate is dropped).
    Meter(u32),
    /// Send through conntrack.
    Conntrack {
        /// The zone.
        zone: u16,
        /// Commit the connection.
        commit: bool,
    },
    /// Look the packet up again with this recirculation id.
    Recirculate(u32),
    /// Send a copy to a mirror (span) port.
    Mirror(u32),
    /// Send a copy to the slow path with this cookie.
    Upcall {
        /// Opaque to the datapath, for the slow path.
        userdata: u32,
    },
}

/// The kind of a tunnel header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelKind {
    /// VXLAN over IPv4 (UDP 4789).
    Vxlan,
    /// GRE (transparent Ethernet bridging) over IPv4, with a key.
    Gre,
}

/// What a tunnel header is built from: the outer addresses and the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelSpec {
    /// VXLAN or GRE.
    pub kind: TunnelKind,
    /// Outer source MAC.
    pub src_mac: MacAddr,
    /// Outer destination MAC (the next hop).
    pub dst_mac: MacAddr,
    /// Outer IPv4 source.
    pub src: Ipv4Addr,
    /// Outer IPv4 destination.
    pub dst: Ipv4Addr,
    /// VNI (24 bits) or GRE key.
    pub key: u32,
}

/// Outer Ethernet + IPv4 + GRE with key.
pub const GRE_V4_OVERHEAD: usize = 14 + 20 + 8;

/// Prebuilt outer headers for GRE (transparent Ethernet, with key) over IPv4.
#[derive(Debug, Clone, Copy)]
pub struct GreV4Template {
    bytes: [u8; GRE_V4_OVERHEAD],
}

impl GreV4Template {
    fn new(s: &TunnelSpec) -> Result<GreV4Template, ActionError> {
        let mut bytes = [0u8; GRE_V4_OVERHEAD];
        let rest = EthernetRepr::new(s.src_mac, s.dst_mac, EtherType::Ipv4)
            .emit(&mut bytes)
            .map_err(|_| ActionError::Tunnel)?;
        Ipv4Repr::new(s.src, s.dst, IpProtocol::Gre, 8).emit(rest).map_err(|_| ActionError::Tunnel)?;
        GreRepr { protocol: EtherType::TransparentEthernet, checksum: false, key: Some(s.key), seq: None }
            .emit(&mut bytes[34..])
            .map_err(|_| ActionError::Tunnel)?;
        Ok(GreV4Template { bytes })
    }

    /// Prepends the outer headers to the frame in `buf` and fixes the IPv4
    /// total length and checksum.
    pub fn encap(&self, buf: &mut PacketBuf) -> sluice_packet::Result<()> {
        let total = buf.len() + GRE_V4_OVERHEAD - 14;
        let total = u16::try_from(total)
            .map_err(|_| sluice_packet::Error::Malformed(sluice_packet::Malformed::EncapTooLong))?;
        let h = buf.push_front(GRE_V4_OVERHEAD)?;
        h.copy_from_slice(&self.bytes);
        h[16..18].copy_from_slice(&total.to_be_bytes());
        ipv4::Packet::new_unchecked(&mut h[14..34]).fill_checksum();
        Ok(())
    }
}

/// A tunnel header template, built once when the action list is built.
#[derive(Debug, Clone, Copy)]
pub enum TunnelTemplate {
    /// VXLAN (the UDP source port is chosen per packet from the inner flow hash).
    Vxlan(VxlanV4Template),
    /// GRE.
    Gre(GreV4Template),
}

#[derive(Debug, Clone, Copy)]
struct Tunnel {
    spec: TunnelSpec,
    template: TunnelTemplate,
}

/// Why an action list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// Too many actions.
    #[error("an action list holds at most {MAX_ACTIONS} actions, this one has {0}")]
    TooMany(usize),
    /// Too many tunnel headers.
    #[error("an action list holds at most {MAX_TUNNELS} tunnel headers")]
    TooManyTunnels,
    /// Drop mixed with other actions.
    #[error("drop must be the only action of its list")]
    DropNotAlone,
    /// An action after recirculate.
    #[error("recirculate must be the last action of its list")]
    RecirculateNotLast,
    /// A tunnel push naming a missing header.
    #[error("tunnel push names header {0}, which this list does not have")]
    NoSuchTunnel(u8),
    /// A VLAN field out of range.
    #[error("VLAN id {0} is out of range 0..=4095")]
    VlanId(u16),
    /// A VNI out of range.
    #[error("VXLAN VNI {0} is out of range 0..=16777215")]
    Vni(u32),
    /// The tunnel header could not be built.
    #[error("the tunnel header could not be built from its addresses")]
    Tunnel,
}

struct Inner {
    ops: Box<[Action]>,
    tunnels: Box<[Tunnel]>,
}

/// An immutable, shareable action list (see the module docs).
#[derive(Clone)]
pub struct Actions(Arc<Inner>);

impl Actions {
    /// Starts a list.
    pub fn builder() -> ActionsBuilder {
        ActionsBuilder::default()
    }

    /// The list `[Drop]`.
    pub fn drop_all() -> Actions {
        Actions(Arc::new(Inner { ops: Box::new([Action::Drop]), tunnels: Box::new([]) }))
    }

    /// `[Output(port)]`.
    pub fn output(port: u32) -> Actions {
        Actions(Arc::new(Inner { ops: Box::new([Action::Output(port)]), tunnels: Box::new([]) }))
    }

    /// The actions in order.
    #[inline]
    pub fn as_slice(&self) -> &[Action] {
        &self.0.ops
    }

    /// Iterates the actions.
    #[inline]
    pub fn iter(&self) -> core::slice::Iter<'_, Action> {
        self.0.ops.iter()
    }

    /// Tunnel header `i` (as named by [`Action::TunnelPush`]).
    #[inline]
    pub fn tunnel(&self, i: u8) -> Option<&TunnelTemplate> {
        self.0.tunnels.get(usize::from(i)).map(|t| &t.template)
    }

    /// What tunnel header `i` was built from.
    pub fn tunnel_spec(&self, i: u8) -> Option<&TunnelSpec> {
        self.0.tunnels.get(usize::from(i)).map(|t| &t.spec)
    }

    /// True for a list that drops.
    pub fn is_drop(&self) -> bool {
        matches!(&*self.0.ops, [Action::Drop] | [])
    }

    /// True when both handles share one allocation.
    pub fn ptr_eq(&self, other: &Actions) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Bytes this list allocates (for memory accounting).
    pub fn heap_size(&self) -> usize {
        core::mem::size_of::<Inner>()
            + 16
            + self.0.ops.len() * core::mem::size_of::<Action>()
            + self.0.tunnels.len() * core::mem::size_of::<Tunnel>()
    }
}

impl PartialEq for Actions {
    fn eq(&self, other: &Actions) -> bool {
        self.ptr_eq(other)
            || (self.0.ops == other.0.ops
                && self.0.tunnels.len() == other.0.tunnels.len()
                && self.0.tunnels.iter().zip(other.0.tunnels.iter()).all(|(a, b)| a.spec == b.spec))
    }
}

impl Eq for Actions {}

/// Collects actions, then checks them in [`build`](Self::build).
#[derive(Default)]
pub struct ActionsBuilder {
    ops: Vec<Action>,
    tunnels: Vec<Tunnel>,
    error: Option<ActionError>,
}

impl ActionsBuilder {
    /// Appends an action.
    pub fn push(mut self, a: Action) -> Self {
        self.ops.push(a);
        self
    }

    /// Appends a tunnel push: builds the header from `spec` and sends out of `out_port`.
    pub fn tunnel_push(mut self, spec: TunnelSpec, out_port: u32) -> Self {
        if self.tunnels.len() >= MAX_TUNNELS {
            self.error.get_or_insert(ActionError::TooManyTunnels);
            return self;
        }
        let template = match spec.kind {
            TunnelKind::Vxlan if spec.key > 0x00ff_ffff => Err(ActionError::Vni(spec.key)),
            TunnelKind::Vxlan => VxlanV4Template::new(spec.src_mac, spec.dst_mac, spec.src, spec.dst, spec.key)
                .map(TunnelTemplate::Vxlan)
                .map_err(|_| ActionError::Tunnel),
            TunnelKind::Gre => GreV4Template::new(&spec).map(TunnelTemplate::Gre),
        };
        match template {
            Ok(template) => {
                let header = self.tunnels.len() as u8;
                self.tunnels.push(Tunnel { spec, template });
                self.ops.push(Action::TunnelPush { header, out_port });
            }
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        self
    }

    /// Checks the list and freezes it.
    pub fn build(self) -> Result<Actions, ActionError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.ops.len() > MAX_ACTIONS {
            return Err(ActionError::TooMany(self.ops.len()));
        }
        for (i, a) in self.ops.iter().enumerate() {
            match *a {
                Action::Drop if self.ops.len() != 1 => return Err(ActionError::DropNotAlone),
                Action::Recirculate(_) if i + 1 != self.ops.len() => return Err(ActionError::RecirculateNotLast),
                Action::TunnelPush { header, .. } if usize::from(header) >= self.tunnels.len() => {
                    return Err(ActionError::NoSuchTunnel(header));
                }
                Action::SetVlan { vid, .. } if vid > 4095 => return Err(ActionError::VlanId(vid)),
                _ => {}
            }
        }
        Ok(Actions(Arc::new(Inner { ops: self.ops.into_boxed_slice(), tunnels: self.tunnels.into_boxed_slice() })))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Action::Output(p) => write!(f, "output:{p}"),
            Action::Drop => f.write_str("drop"),
            Action::PushVlan { tpid, tci } => {
                write!(f, "push_vlan(tpid={tpid:#06x},vid={},pcp={})", tci & 0x0fff, tci >> 13)
            }
            Action::PopVlan => f.write_str("pop_vlan"),
            Action::SetVlan { vid, pcp } => write!(f, "set_vlan(vid={vid},pcp={pcp})"),
            Action::SetEthSrc(m) => write!(f, "set(eth_src={m})"),
            Action::SetEthDst(m) => write!(f, "set(eth_dst={m})"),
            Action::SetIpv4Src(a) => write!(f, "set(nw_src={a})"),
            Action::SetIpv4Dst(a) => write!(f, "set(nw_dst={a})"),
            Action::SetIpv6Src(a) => write!(f, "set(ipv6_src={a})"),
            Action::SetIpv6Dst(a) => write!(f, "set(ipv6_dst={a})"),
            Action::SetTpSrc(p) => write!(f, "set(tp_src={p})"),
            Action::SetTpDst(p) => write!(f, "set(tp_dst={p})"),
            Action::DecTtl => f.write_str("dec_ttl"),
            Action::TunnelPush { header, out_port } => write!(f, "tnl_push(header={header},out_port={out_port})"),
            Action::TunnelPop { tunnel_port } => write!(f, "tnl_pop({tunnel_port})"),
            Action::Meter(m) => write!(f, "meter({m})"),
            Action::Conntrack { zone, commit } => {
                write!(f, "ct(zone={zone}{})", if commit { ",commit" } else { "" })
            }
            Action::Recirculate(id) => write!(f, "recirc({id:#x})"),
            Action::Mirror(p) => write!(f, "mirror:{p}"),
            Action::Upcall { userdata } => write!(f, "userspace({userdata:#x})"),
        }
    }
}

impl fmt::Display for Actions {
    /// `a,b,c` in the OVS `dump-flows` style; tunnel pushes print their
    /// outer header (`tnl_push(vxlan,src=…,dst=…,key=…,out_port=…)`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.ops.is_empty() {
            return f.write_str("drop");
        }
        for (i, a) in self.0.ops.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match (*a, a_spec(self, a)) {
                (Action::TunnelPush { out_port, .. }, Some(s)) => write!(
                    f,
                    "tnl_push({},eth_src={},eth_dst={},src={},dst={},key={},out_port={out_port})",
                    if s.kind == TunnelKind::Vxlan { "vxlan" } else { "gre" },
                    s.src_mac,
                    s.dst_mac,
                    s.src,
                    s.dst,
                    s.key
                )?,
                _ => write!(f, "{a}")?,
            }
        }
        Ok(())
    }
}

fn a_spec<'a>(list: &'a Actions, a: &Action) -> Option<&'a TunnelSpec> {
    match *a {
        Action::TunnelPush { header, .. } => list.tunnel_spec(header),
        _ => None,
    }
}

impl fmt::Debug for Actions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Actions({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_packet::Headers;

    fn spec(kind: TunnelKind, key: u32) -> TunnelSpec {
        TunnelSpec {
            kind,
            src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            dst_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            key,
        }
    }

    #[test]
    fn builder_checks_the_rules_of_a_list() {
        assert_eq!(
            Actions::builder().push(Action::Drop).push(Action::Output(1)).build().err(),
            Some(ActionError::DropNotAlone)
        );
        assert_eq!(
            Actions::builder().push(Action::Recirculate(1)).push(Action::Output(1)).build().err(),
            Some(ActionError::RecirculateNotLast)
        );
        assert_eq!(
            Actions::builder().push(Action::TunnelPush { header: 0, out_port: 1 }).build().err(),
            Some(ActionError::NoSuchTunnel(0))
        );
        assert_eq!(
            Actions::builder().tunnel_push(spec(TunnelKind::Vxlan, 1 << 24), 1).build().err(),
            Some(ActionError::Vni(1 << 24))
        );
        let mut b = Actions::builder();
        for i in 0..=MAX_ACTIONS as u32 {
            b = b.push(Action::Output(i));
        }
        assert_eq!(b.build().err(), Some(ActionError::TooMany(MAX_ACTIONS + 1)));
        assert!(Actions::drop_all().is_drop());
        assert!(!Actions::output(3).is_drop());
    }

    #[test]
    fn display_reads_like_dump_flows_and_equality_follows_content() {
        let a = Actions::builder()
            .push(Action::PushVlan { tpid: 0x8100, tci: 10 })
            .push(Action::SetEthDst(MacAddr([2, 0, 0, 0, 0, 9])))
            .push(Action::Conntrack { zone: 5, commit: true })
            .tunnel_push(spec(TunnelKind::Vxlan, 42), 7)
            .build()
            .unwrap();
        let s = a.to_string();
        assert_eq!(
            s,
            "push_vlan(tpid=0x8100,vid=10,pcp=0),set(eth_dst=02:00:00:00:00:09),ct(zone=5,commit),\
             tnl_push(vxlan,eth_src=02:00:00:00:00:01,eth_dst=02:00:00:00:00:02,src=10.0.0.1,dst=10.0.0.2,key=42,out_port=7)"
        );
        let b = Actions::builder()
            .push(Action::PushVlan { tpid: 0x8100, tci: 10 })
            .push(Action::SetEthDst(MacAddr([2, 0, 0, 0, 0, 9])))
            .push(Action::Conntrack { zone: 5, commit: true })
            .tunnel_push(spec(TunnelKind::Vxlan, 42), 7)
            .build()
            .unwrap();
        assert_eq!(a, b);
        assert!(!a.ptr_eq(&b));
        assert_ne!(a, Actions::output(1));
        assert_eq!(a.iter().count(), 4);
    }

    #[test]
    fn gre_template_encapsulates_with_valid_outer_headers() {
        let a = Actions::builder().tunnel_push(spec(TunnelKind::Gre, 77), 2).build().unwrap();
        let Some(TunnelTemplate::Gre(t)) = a.tunnel(0) else { panic!("expected a GRE template") };
        let inner: Vec<u8> = (0..60u8).collect();
        let mut buf = PacketBuf::new(2048, 128);
        buf.fill(&inner).unwrap();
        t.encap(&mut buf).unwrap();
        let b = buf.as_slice();
        assert_eq!(b.len(), 60 + GRE_V4_OVERHEAD);
        let ip = ipv4::Packet::new_checked(&b[14..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(usize::from(ip.total_len()), 60 + 28);
        let g = sluice_packet::gre::Packet::new_checked(&b[34..]).unwrap();
        assert_eq!(g.key(), Some(77));
        assert_eq!(g.protocol(), EtherType::TransparentEthernet);
        assert_eq!(&b[GRE_V4_OVERHEAD..], &inner[..]);
        let h = Headers::parse(b).unwrap();
        assert_eq!(h.protocol, IpProtocol::Gre);
    }
}
