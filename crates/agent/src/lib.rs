//! `sluice-agent`: the host agent that turns Sluice's switch and SR-IOV
//! manager into one product. Nova/Neutron, Kubernetes or an operator asks
//! it for "a port on network X for VM Y".
//!
//! **Owns:**
//! - the data model and its validation ([`model`]): physical networks with
//!   device specs, networks (flat, VLAN, VXLAN, GRE), ports with vnic types,
//!   security groups and QoS policies;
//! - the intent store ([`store`]): embedded redb, versioned schema with
//!   migration steps; binding and release are single transactions, so VF
//!   pools are never over-subscribed;
//! - VF pools per physical network built from device specs and the host
//!   inventory (several physical networks may share a PF with disjoint VF
//!   ranges), and the host-side claim/reset around assignment ([`host`]);
//! - the reconciler ([`reconcile`]): claim repair at start-up, then passes
//!   that plug every port (VF settings, vfio-pci, macvtap, switch ports)
//!   and write back `bound`/`active`/`error`, through [`plumb::Plumbing`]
//!   (real: `sluice-sriov`; synthetic: memory) and [`switch::SwitchPorts`]
//!   (TAPs now; the datapath once `sluice serve` wires it in);
//! - the REST API on a unix socket ([`api`], [`serve`]) with its OpenAPI
//!   document, Prometheus metrics (with a hook for the datapath's
//!   counters, [`api::MetricsSource`]), and a blocking client ([`client`]);
//! - libvirt XML for every binding form ([`xml`]).
//!
//! **Must not:** touch sysfs, netlink or `/dev/net/tun` itself (that is
//! `sluice-sriov`, reached through [`host::HostSide`], [`plumb`] and
//! [`switch::TapSwitchPorts`]); depend on `sluice-datapath`, forward
//! packets or program flows (the switch is reached only through
//! [`switch::SwitchPorts`]); trust request bodies before
//! [`model::Validate`] has passed.

#![forbid(unsafe_code)]

pub mod api;
pub mod client;
pub mod error;
pub mod host;
pub mod model;
pub mod plumb;
pub mod reconcile;
pub mod serve;
pub mod store;
pub mod switch;
pub mod testhost;
pub mod xml;

pub use error::{Error, Result};
