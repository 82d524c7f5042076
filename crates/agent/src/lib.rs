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
//!   inventory, and the host-side claim/reset around assignment ([`host`]),
//!   repaired at start-up ([`reconcile`]);
//! - the REST API on a unix socket ([`api`], [`serve`]) with its OpenAPI
//!   document, Prometheus metrics, and a blocking client ([`client`]);
//! - libvirt XML for every binding form ([`xml`]).
//!
//! **Must not:** touch sysfs or netlink itself (that is `sluice-sriov`,
//! reached through [`host::HostSide`]); forward packets or program flows
//! (`sluice-datapath`, later); trust request bodies before
//! [`model::Validate`] has passed.

#![forbid(unsafe_code)]

pub mod api;
pub mod client;
pub mod error;
pub mod host;
pub mod model;
pub mod reconcile;
pub mod serve;
pub mod store;
pub mod testhost;
pub mod xml;

pub use error::{Error, Result};
