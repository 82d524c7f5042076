//! Port VLAN modes, as an operator of OVS or a hardware switch knows them:
//! access ports carry one VLAN untagged; trunk ports carry a set of VLANs
//! tagged, and optionally a native VLAN untagged.

use core::fmt;

use sluice_packet::{EtherType, VlanTag};

/// A set of VLAN ids, 0..=4095, as a 4096-bit map.
#[derive(Clone, PartialEq, Eq)]
pub struct VlanSet([u64; 64]);

impl VlanSet {
    /// No VLAN.
    pub const fn empty() -> VlanSet {
        VlanSet([0; 64])
    }

    /// VLANs 1..=4094 (0 and 4095 are reserved).
    pub fn all() -> VlanSet {
        let mut s = VlanSet([u64::MAX; 64]);
        s.remove(0);
        s.remove(4095);
        s
    }

    /// A set from a list of ids.
    pub fn of(ids: impl IntoIterator<Item = u16>) -> VlanSet {
        let mut s = VlanSet::empty();
        for id in ids {
            s.insert(id);
        }
        s
    }

    /// Adds `vid` (ids above 4095 are ignored).
    pub fn insert(&mut self, vid: u16) {
        if vid < 4096 {
            self.0[usize::from(vid / 64)] |= 1 << (vid % 64);
        }
    }

    /// Removes `vid`.
    pub fn remove(&mut self, vid: u16) {
        if vid < 4096 {
            self.0[usize::from(vid / 64)] &= !(1 << (vid % 64));
        }
    }

    /// True when `vid` is in the set.
    #[inline]
    pub fn contains(&self, vid: u16) -> bool {
        vid < 4096 && self.0[usize::from(vid / 64)] & (1 << (vid % 64)) != 0
    }

    /// The ids in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (0..4096u16).filter(|&v| self.contains(v))
    }
}

impl fmt::Debug for VlanSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// How a port takes part in VLANs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "one per port, read in place on upcalls: a 512-byte bitmap beats a pointer chase"
)]
pub enum VlanMode {
    /// Untagged frames belong to `vid`. Tagged frames are dropped, except
    /// priority-tagged ones (VID 0), which belong to `vid` too.
    Access {
        /// The port's VLAN, 1..=4094.
        vid: u16,
    },
    /// 802.1Q-tagged frames of an allowed VLAN are accepted and keep their
    /// VLAN; untagged (and priority-tagged) frames belong to `native`, or
    /// are dropped without one. Frames of the native VLAN leave untagged.
    Trunk {
        /// VLANs the port carries.
        allowed: VlanSet,
        /// The VLAN of untagged frames, if any.
        native: Option<u16>,
    },
}

/// How a frame leaves a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Egress {
    /// Without a VLAN tag.
    Untagged,
    /// With an 802.1Q tag of this VLAN.
    Tagged(u16),
}

/// Why a frame was not accepted on a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngressDrop {
    /// Tagged with a VLAN the port does not carry (or tagged at all, on an
    /// access port).
    VlanNotAllowed,
    /// Untagged on a trunk without a native VLAN.
    NoNativeVlan,
    /// The outer tag is 802.1ad (QinQ), which these modes do not carry.
    ServiceTag,
}

impl VlanMode {
    /// The VLAN a frame received on this port belongs to, given its outer
    /// tag (if any).
    pub fn ingress(&self, outer: Option<&VlanTag>) -> Result<u16, IngressDrop> {
        let tagged_vid = match outer {
            Some(t) if t.tpid != EtherType::Vlan => return Err(IngressDrop::ServiceTag),
            Some(t) if t.vid != 0 => Some(t.vid),
            _ => None, // untagged or priority-tagged
        };
        match (self, tagged_vid) {
            (VlanMode::Access { vid }, None) => Ok(*vid),
            (VlanMode::Access { .. }, Some(_)) => Err(IngressDrop::VlanNotAllowed),
            (VlanMode::Trunk { native: Some(n), .. }, None) => Ok(*n),
            (VlanMode::Trunk { native: None, .. }, None) => Err(IngressDrop::NoNativeVlan),
            (VlanMode::Trunk { allowed, .. }, Some(v)) if allowed.contains(v) => Ok(v),
            (VlanMode::Trunk { .. }, Some(_)) => Err(IngressDrop::VlanNotAllowed),
        }
    }

    /// How a frame of VLAN `vid` leaves this port, or `None` when the port
    /// does not carry that VLAN.
    pub fn egress(&self, vid: u16) -> Option<Egress> {
        match self {
            VlanMode::Access { vid: v } => (*v == vid).then_some(Egress::Untagged),
            VlanMode::Trunk { native: Some(n), .. } if *n == vid => Some(Egress::Untagged),
            VlanMode::Trunk { allowed, .. } => allowed.contains(vid).then_some(Egress::Tagged(vid)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(vid: u16) -> VlanTag {
        VlanTag::dot1q(vid)
    }

    #[test]
    fn access_ports_take_untagged_and_priority_tagged_only() {
        let m = VlanMode::Access { vid: 10 };
        assert_eq!(m.ingress(None), Ok(10));
        assert_eq!(m.ingress(Some(&tag(0))), Ok(10));
        assert_eq!(m.ingress(Some(&tag(10))), Err(IngressDrop::VlanNotAllowed));
        assert_eq!(m.egress(10), Some(Egress::Untagged));
        assert_eq!(m.egress(20), None);
    }

    #[test]
    fn trunks_carry_allowed_vlans_tagged_and_the_native_untagged() {
        let m = VlanMode::Trunk { allowed: VlanSet::of([10, 20]), native: Some(30) };
        assert_eq!(m.ingress(Some(&tag(20))), Ok(20));
        assert_eq!(m.ingress(Some(&tag(40))), Err(IngressDrop::VlanNotAllowed));
        assert_eq!(m.ingress(None), Ok(30));
        assert_eq!(m.egress(20), Some(Egress::Tagged(20)));
        assert_eq!(m.egress(30), Some(Egress::Untagged));
        assert_eq!(m.egress(40), None);
        let t = VlanMode::Trunk { allowed: VlanSet::all(), native: None };
        assert_eq!(t.ingress(None), Err(IngressDrop::NoNativeVlan));
        let mut qinq = tag(5);
        qinq.tpid = EtherType::QinQ;
        assert_eq!(t.ingress(Some(&qinq)), Err(IngressDrop::ServiceTag));
    }

    #[test]
    fn vlan_set_bounds() {
        let s = VlanSet::all();
        assert!(!s.contains(0) && !s.contains(4095) && s.contains(1) && s.contains(4094));
        assert!(!s.contains(5000));
        assert_eq!(VlanSet::of([3, 1, 4000]).iter().collect::<Vec<_>>(), vec![1, 3, 4000]);
    }
}
