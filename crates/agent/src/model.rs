//! The agent's data model: what callers ask for (request bodies, which
//! reject unknown fields) and what the store keeps (records). Validation is
//! here and does no I/O: "parse, don't validate" — a request that passed
//! [`Validate::validate`] only refers to ids whose existence the store checks.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use sluice_sriov::MacAddr;

use crate::error::{Error, Result};

/// Requests check their own fields before the store sees them.
pub trait Validate {
    /// Fails with the first invalid field, named, with its allowed range.
    fn validate(&self) -> Result<()>;
}

/// Ids: 1..=63 characters of `[A-Za-z0-9._-]`, not starting with `-`.
pub fn check_id(field: &str, id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 63 {
        return Err(Error::invalid(field, format!("must be 1..=63 characters long, got {}", id.len())));
    }
    if id.starts_with('-') || !id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return Err(Error::invalid(
            field,
            format!("must consist of letters, digits, '.', '_' and '-' and not start with '-', got {id:?}"),
        ));
    }
    Ok(())
}

fn check_range(field: &str, what: &str, v: u64, lo: u64, hi: u64) -> Result<()> {
    if v < lo || v > hi {
        return Err(Error::invalid(field, format!("{what}must be {lo}..={hi}, got {v}")));
    }
    Ok(())
}

// ---------------------------------------------------------------- physnets

/// Which VFs of one PF belong to a physical network (Nova `device_spec`,
/// Neutron `physical_device_mappings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    /// PF netdev name (`enp1s0f0`) or PCI address (`0000:01:00.0`).
    pub pf: String,
    /// First VF index included (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_vf: Option<u32>,
    /// Last VF index included (default: the PF's last VF).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_vf: Option<u32>,
    /// VF indexes excluded (reserved for the host, another agent...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_vfs: Vec<u32>,
}

impl DeviceSpec {
    /// True when VF `index` is selected by this spec.
    pub fn selects(&self, index: u32) -> bool {
        index >= self.first_vf.unwrap_or(0)
            && self.last_vf.is_none_or(|l| index <= l)
            && !self.exclude_vfs.contains(&index)
    }
}

/// A physical network: a name for the wires the listed PFs connect to.
/// Also the VF pool of the same name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Physnet {
    /// Name (`physnet1`).
    pub name: String,
    /// The PFs and VF ranges in this physical network.
    #[serde(default)]
    pub device_specs: Vec<DeviceSpec>,
}

impl Validate for Physnet {
    fn validate(&self) -> Result<()> {
        check_id("name", &self.name)?;
        for (i, d) in self.device_specs.iter().enumerate() {
            if d.pf.is_empty() {
                return Err(Error::invalid(format!("device_specs[{i}].pf"), "must name a PF netdev or PCI address"));
            }
            if let (Some(f), Some(l)) = (d.first_vf, d.last_vf)
                && f > l
            {
                return Err(Error::invalid(
                    format!("device_specs[{i}].last_vf"),
                    format!("must be >= first_vf ({f}), got {l}"),
                ));
            }
            for (field, v) in [("first_vf", d.first_vf), ("last_vf", d.last_vf)] {
                if let Some(v) = v {
                    check_range(&format!("device_specs[{i}].{field}"), "", v.into(), 0, 255)?;
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- networks

/// The segment a network is carried on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Segment {
    /// Untagged on the physical network.
    Flat,
    /// 802.1Q VLAN on the physical network.
    Vlan {
        /// VLAN id, 1..=4094.
        id: u32,
    },
    /// VXLAN overlay.
    Vxlan {
        /// VNI, 1..=16777215.
        vni: u32,
    },
    /// GRE overlay.
    Gre {
        /// GRE key.
        key: u32,
    },
}

impl Segment {
    /// The VLAN tag a VF carries for this segment (0 = untagged).
    pub fn vlan(&self) -> u32 {
        match self {
            Segment::Vlan { id } => *id,
            _ => 0,
        }
    }
}

/// A network: a segment, on a physical network for flat and VLAN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Name.
    pub name: String,
    /// Physical network (required for flat and VLAN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physnet: Option<String>,
    /// Segment.
    pub segment: Segment,
    /// MTU, 68..=9216 (default 1500).
    #[serde(default = "default_mtu")]
    pub mtu: u32,
}

fn default_mtu() -> u32 {
    1500
}

impl Validate for Network {
    fn validate(&self) -> Result<()> {
        check_id("name", &self.name)?;
        if let Some(p) = &self.physnet {
            check_id("physnet", p)?;
        }
        match self.segment {
            Segment::Vlan { id } => check_range("segment.id", "vlan segment ", id.into(), 1, 4094)?,
            Segment::Vxlan { vni } => check_range("segment.vni", "vxlan segment ", vni.into(), 1, 16_777_215)?,
            Segment::Flat | Segment::Gre { .. } => {}
        }
        if matches!(self.segment, Segment::Flat | Segment::Vlan { .. }) && self.physnet.is_none() {
            return Err(Error::invalid("physnet", "is required for flat and vlan segments"));
        }
        check_range("mtu", "", self.mtu.into(), 68, 9216)
    }
}

// ---------------------------------------------------------------- ports

/// How a port reaches the VM or pod (Neutron `binding:vnic_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum VnicType {
    /// A switch port (TAP, later vhost-user).
    #[default]
    Normal,
    /// A VF passed to the VM on vfio-pci.
    Direct,
    /// A macvtap in passthrough mode on a VF netdev.
    Macvtap,
    /// The whole PF passed to the VM.
    DirectPhysical,
    /// A switch port in front of a VF.
    VirtioForwarder,
}

impl VnicType {
    /// True when binding takes a VF from the physical network's pool.
    pub fn needs_vf(self) -> bool {
        matches!(self, VnicType::Direct | VnicType::Macvtap | VnicType::VirtioForwarder)
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            VnicType::Normal => "normal",
            VnicType::Direct => "direct",
            VnicType::Macvtap => "macvtap",
            VnicType::DirectPhysical => "direct-physical",
            VnicType::VirtioForwarder => "virtio-forwarder",
        }
    }
}

/// An extra IP (and optionally MAC) the port may send from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressPair {
    /// IP address or CIDR.
    pub ip_address: String,
    /// MAC (default: the port's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<MacAddr>,
}

/// A bind request: "a port on network X for VM Y".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortRequest {
    /// Port id chosen by the caller (Neutron port UUID, pod interface id).
    pub id: String,
    /// Network name.
    pub network: String,
    /// Binding kind.
    #[serde(default)]
    pub vnic_type: VnicType,
    /// MAC; generated (`fa:16:3e:..`) when absent.
    #[serde(default)]
    pub mac: Option<MacAddr>,
    /// Fixed IPs.
    #[serde(default)]
    pub fixed_ips: Vec<IpAddr>,
    /// Allowed address pairs.
    #[serde(default)]
    pub allowed_address_pairs: Vec<AddressPair>,
    /// Security group ids.
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// QoS policy id.
    #[serde(default)]
    pub qos_policy: Option<String>,
    /// Owner: VM uuid or pod id.
    pub owner: String,
    /// Preferred NUMA node for the VF (the VM's).
    #[serde(default)]
    pub numa_node: Option<i32>,
    /// Opaque binding profile (`trusted`, `pci_slot`...), kept as given.
    #[serde(default)]
    pub binding_profile: BTreeMap<String, serde_json::Value>,
}

impl Validate for PortRequest {
    fn validate(&self) -> Result<()> {
        check_id("id", &self.id)?;
        check_id("network", &self.network)?;
        if self.owner.is_empty() || self.owner.len() > 255 {
            return Err(Error::invalid("owner", format!("must be 1..=255 characters long, got {}", self.owner.len())));
        }
        if let Some(m) = self.mac
            && (m.is_multicast() || m.is_zero())
        {
            return Err(Error::invalid("mac", format!("must be a unicast, non-zero address, got {m}")));
        }
        if let Some(n) = self.numa_node {
            check_range("numa_node", "", u64::try_from(n).unwrap_or(u64::MAX), 0, 1023)?;
        }
        if self.fixed_ips.len() > 64 {
            return Err(Error::invalid("fixed_ips", format!("must have 0..=64 entries, got {}", self.fixed_ips.len())));
        }
        for (i, p) in self.allowed_address_pairs.iter().enumerate() {
            let ip = p.ip_address.split_once('/').map_or(p.ip_address.as_str(), |(a, _)| a);
            if ip.parse::<IpAddr>().is_err() {
                return Err(Error::invalid(
                    format!("allowed_address_pairs[{i}].ip_address"),
                    format!("must be an IP address or CIDR, got {:?}", p.ip_address),
                ));
            }
        }
        for (i, sg) in self.security_groups.iter().enumerate() {
            check_id(&format!("security_groups[{i}]"), sg)?;
        }
        if let Some(q) = &self.qos_policy {
            check_id("qos_policy", q)?;
        }
        Ok(())
    }
}

impl PortRequest {
    /// The MAC the port gets: the requested one, or `fa:16:3e` plus 24
    /// bits of an FNV-1a hash of the id (stable across retries).
    pub fn effective_mac(&self) -> MacAddr {
        self.mac.unwrap_or_else(|| {
            let mut h: u32 = 0x811c_9dc5;
            for b in self.id.bytes() {
                h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
            }
            let [_, a, b, c] = h.to_be_bytes();
            MacAddr([0xfa, 0x16, 0x3e, a, b, c])
        })
    }
}

/// Where a port's VF is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VfBinding {
    /// Pool (physical network).
    pub pool: String,
    /// PF display name.
    pub pf: String,
    /// PF bus id (PCI address).
    pub pf_bus_id: String,
    /// VF index on the PF.
    pub vf: u32,
    /// VF PCI address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci_addr: Option<String>,
    /// VF netdev (when bound to a netdev driver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netdev: Option<String>,
    /// NUMA node of the VF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numa_node: Option<i32>,
    /// Allocation generation in the pool (presented on release).
    pub generation: u64,
    /// The host-side claim token (sluice-sriov), once claimed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_claim: Option<sluice_sriov::ClaimToken>,
}

/// The state of a port as the agent last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortState {
    /// Resources reserved (VF allocated and claimed); host not yet plugged.
    Bound,
    /// Plugged and forwarding.
    Active,
    /// Binding failed; see `reason`.
    Error,
}

impl PortState {
    /// Every state, for metrics.
    pub const ALL: [PortState; 3] = [PortState::Bound, PortState::Active, PortState::Error];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            PortState::Bound => "bound",
            PortState::Active => "active",
            PortState::Error => "error",
        }
    }
}

/// Status written back by the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStatus {
    /// State.
    pub state: PortState,
    /// Why, for `error` (and a note for `bound`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A port record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Port {
    /// The request as accepted, with the effective MAC filled in.
    #[serde(flatten)]
    pub spec: PortRequest,
    /// The physical network the port's network is on, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physnet: Option<String>,
    /// VLAN tag for VF ports (0 = untagged).
    pub vlan: u32,
    /// The VF, for vnic types that take one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<VfBinding>,
    /// The whole PF, for `direct-physical` ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pf_binding: Option<PfBinding>,
    /// Status.
    pub status: PortStatus,
}

/// The PF a `direct-physical` port holds whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PfBinding {
    /// Pool (physical network) it was taken from.
    pub pool: String,
    /// PF display name.
    pub pf: String,
    /// PF bus id (PCI address).
    pub pf_bus_id: String,
    /// NUMA node of the PF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numa_node: Option<i32>,
}

// ---------------------------------------------------------------- security groups

/// Traffic direction of a rule or a rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Towards the VM.
    Ingress,
    /// From the VM.
    Egress,
}

/// One allow rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SgRule {
    /// Direction.
    pub direction: Direction,
    /// `ipv4` or `ipv6`.
    #[serde(default = "default_ethertype")]
    pub ethertype: String,
    /// `tcp`, `udp`, `icmp`, `icmpv6` or absent for any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Lowest destination port, 1..=65535.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_min: Option<u32>,
    /// Highest destination port, port_min..=65535.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_max: Option<u32>,
    /// Remote prefix (CIDR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_ip_prefix: Option<String>,
}

fn default_ethertype() -> String {
    "ipv4".into()
}

/// A security group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroup {
    /// Id.
    pub id: String,
    /// Allow rules (stateful; everything else is dropped).
    #[serde(default)]
    pub rules: Vec<SgRule>,
}

impl Validate for SecurityGroup {
    fn validate(&self) -> Result<()> {
        check_id("id", &self.id)?;
        for (i, r) in self.rules.iter().enumerate() {
            let f = |n: &str| format!("rules[{i}].{n}");
            if !matches!(r.ethertype.as_str(), "ipv4" | "ipv6") {
                return Err(Error::invalid(f("ethertype"), format!("must be ipv4 or ipv6, got {:?}", r.ethertype)));
            }
            if let Some(p) = &r.protocol
                && !matches!(p.as_str(), "tcp" | "udp" | "icmp" | "icmpv6")
            {
                return Err(Error::invalid(f("protocol"), format!("must be tcp, udp, icmp or icmpv6, got {p:?}")));
            }
            if let Some(lo) = r.port_min {
                check_range(&f("port_min"), "", lo.into(), 1, 65535)?;
            }
            if let Some(hi) = r.port_max {
                check_range(&f("port_max"), "", hi.into(), r.port_min.unwrap_or(1).into(), 65535)?;
            }
            if (r.port_min.is_some() || r.port_max.is_some()) && !matches!(r.protocol.as_deref(), Some("tcp" | "udp")) {
                return Err(Error::invalid(f("port_min"), "is only allowed with protocol tcp or udp"));
            }
            if let Some(p) = &r.remote_ip_prefix {
                let (a, len) = p.split_once('/').unwrap_or((p.as_str(), "0"));
                let ok = match a.parse::<IpAddr>() {
                    Ok(IpAddr::V4(_)) => len.parse::<u8>().is_ok_and(|l| l <= 32),
                    Ok(IpAddr::V6(_)) => len.parse::<u8>().is_ok_and(|l| l <= 128),
                    Err(_) => false,
                };
                if !ok {
                    return Err(Error::invalid(f("remote_ip_prefix"), format!("must be a CIDR prefix, got {p:?}")));
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- QoS

/// Rate and burst in one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Rate in kbit/s, 1..=1_000_000_000 (1 Tbit/s).
    pub rate_kbps: u64,
    /// Burst in kbit, 0..=10_000_000 (0 = 80% of one second of rate).
    #[serde(default)]
    pub burst_kb: u64,
}

/// A QoS policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QosPolicy {
    /// Id.
    pub id: String,
    /// Towards the VM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<RateLimit>,
    /// From the VM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<RateLimit>,
}

impl Validate for QosPolicy {
    fn validate(&self) -> Result<()> {
        check_id("id", &self.id)?;
        for (n, r) in [("ingress", self.ingress), ("egress", self.egress)] {
            if let Some(r) = r {
                check_range(&format!("{n}.rate_kbps"), "", r.rate_kbps, 1, 1_000_000_000)?;
                check_range(&format!("{n}.burst_kb"), "", r.burst_kb, 0, 10_000_000)?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- pools

/// Who holds a VF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Port id.
    pub port: String,
    /// Port owner (VM or pod).
    pub owner: String,
}

/// One VF of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VfSlot {
    /// PF display name.
    pub pf: String,
    /// PF bus id.
    pub pf_bus_id: String,
    /// VF index.
    pub vf: u32,
    /// VF PCI address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci_addr: Option<String>,
    /// VF netdev.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netdev: Option<String>,
    /// NUMA node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numa_node: Option<i32>,
    /// Bumped by every allocation.
    pub generation: u64,
    /// Current holder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<Holder>,
}

/// One PF of a pool, as a whole (for `direct-physical` ports).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PfSlot {
    /// PF display name.
    pub pf: String,
    /// PF bus id.
    pub pf_bus_id: String,
    /// NUMA node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numa_node: Option<i32>,
    /// The `direct-physical` port holding the whole PF; none of its VFs
    /// is allocated while it is held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<Holder>,
}

/// A VF pool: the VFs of one physical network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Pool {
    /// Pool name = physical network name.
    pub name: String,
    /// The VFs, in PF then index order.
    pub vfs: Vec<VfSlot>,
    /// The PFs the device specs name (stores written before this field
    /// existed read as empty; the start-up refresh fills it in).
    #[serde(default)]
    pub pfs: Vec<PfSlot>,
}

impl Pool {
    /// VFs without a holder, on PFs not held whole.
    pub fn free(&self) -> usize {
        self.vfs.iter().filter(|v| v.holder.is_none() && !self.pf_held(&v.pf_bus_id)).count()
    }

    /// VFs in use: held, or on a PF held whole.
    pub fn used(&self) -> usize {
        self.vfs.len() - self.free()
    }

    /// True when a `direct-physical` port holds PF `pf_bus_id` (as far as
    /// this pool records).
    pub fn pf_held(&self, pf_bus_id: &str) -> bool {
        self.pfs.iter().any(|p| p.pf_bus_id == pf_bus_id && p.holder.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(seg: Segment) -> Network {
        Network { name: "n1".into(), physnet: Some("p".into()), segment: seg, mtu: 1500 }
    }

    #[test]
    fn vlan_range_error_names_field_and_range() {
        let e = net(Segment::Vlan { id: 5000 }).validate().unwrap_err();
        assert_eq!(e.to_string(), "segment.id vlan segment must be 1..=4094, got 5000");
        assert_eq!(e.field().as_deref(), Some("segment.id"));
        net(Segment::Vlan { id: 4094 }).validate().unwrap();
        assert!(net(Segment::Vlan { id: 0 }).validate().is_err());
        assert!(net(Segment::Vxlan { vni: 1 << 24 }).validate().is_err());
        let flat = Network { physnet: None, ..net(Segment::Flat) };
        assert_eq!(flat.validate().unwrap_err().field().as_deref(), Some("physnet"));
    }

    #[test]
    fn request_bodies_reject_unknown_fields() {
        let e = serde_json::from_str::<PortRequest>(r#"{"id":"p","network":"n","owner":"vm","colour":"red"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `colour`"), "{e}");
        let e = serde_json::from_str::<Network>(r#"{"name":"n","segment":{"type":"vlan","id":5,"x":1}}"#);
        assert!(e.is_err());
    }

    #[test]
    fn ids_macs_and_rules_are_checked() {
        assert!(check_id("id", "a/b").is_err());
        assert!(check_id("id", &"x".repeat(64)).is_err());
        check_id("id", "port-1.a_b").unwrap();
        let e =
            serde_json::from_str::<PortRequest>(r#"{"id":"p1","network":"n","owner":"vm","mac":"01:00:5e:00:00:01"}"#);
        assert!(e.unwrap_err().to_string().contains("unicast"));
        let mut p: PortRequest = serde_json::from_str(r#"{"id":"p1","network":"n","owner":"vm"}"#).unwrap();
        p.validate().unwrap();
        p.owner.clear();
        assert_eq!(p.validate().unwrap_err().field().as_deref(), Some("owner"));
        p.owner = "vm".into();
        let m = p.effective_mac();
        assert_eq!(m.0[..3], [0xfa, 0x16, 0x3e]);
        assert_eq!(m, p.effective_mac());
        let sg: SecurityGroup = serde_json::from_str(
            r#"{"id":"web","rules":[{"direction":"ingress","protocol":"tcp","port_min":80,"port_max":79}]}"#,
        )
        .unwrap();
        assert_eq!(sg.validate().unwrap_err().to_string(), "rules[0].port_max must be 80..=65535, got 79");
        let q = QosPolicy { id: "q".into(), ingress: Some(RateLimit { rate_kbps: 0, burst_kb: 0 }), egress: None };
        assert_eq!(q.validate().unwrap_err().field().as_deref(), Some("ingress.rate_kbps"));
    }

    #[test]
    fn device_spec_selects_ranges_minus_exclusions() {
        let d = DeviceSpec { pf: "eth0".into(), first_vf: Some(2), last_vf: Some(5), exclude_vfs: vec![3] };
        let sel: Vec<u32> = (0..8).filter(|&i| d.selects(i)).collect();
        assert_eq!(sel, [2, 4, 5]);
    }
}
