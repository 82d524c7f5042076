//! `sluice-sriov`: the host half of SR-IOV management — everything Sluice
//! does to a NIC.
//!
//! **Owns:**
//! - inventory of PFs and VFs from sysfs ([`sysfs`]): PCI address,
//!   vendor/device, driver, NUMA node, link and speed, totalvfs/numvfs, VF
//!   index ↔ PCI address ↔ netdev, IOMMU group, representors;
//! - the VF count ([`Host::set_numvfs`]): N → 0 → M, refusal of disruptive
//!   changes unless forced, `sriov_drivers_autoprobe`, a bounded wait with
//!   progress, re-applying saved VF settings;
//! - driver binding with verification of the driver link
//!   ([`Host::bind_vf`]);
//! - VF settings over rtnetlink on the PF with read-back and verification
//!   ([`Host::configure`]), a VF list that stays complete beyond the
//!   64 KiB `IFLA_VFINFO_LIST` wrap ([`netlink::rt`]);
//! - reset to a clean state guarded by an owner/generation claim record
//!   ([`claim`], [`Host::reset_vf`]);
//! - devlink eswitch mode, ports/representors and port function rates
//!   ([`netlink::devlink`]);
//! - the host links put on VFs and in front of VMs: macvtap in
//!   passthrough mode, persistent TAPs, link listing, up and delete
//!   ([`netlink::link`]).
//!
//! **Must not:** own VF pools or allocation policy (that is
//! `sluice-agent`, which keeps intent in its store and passes claim tokens
//! here); touch the datapath or TC rules (`sluice-offload`); touch the host
//! before input is validated; read anything outside the injected
//! [`SysfsRoot`] for sysfs facts.
//!
//! Layout: [`model`] is plain data and validation (no I/O); [`sysfs`] only
//! reads and writes files; [`netlink`] holds all socket code; [`ops`]
//! combines them. The `unsafe` calls (`flock`, `setsockopt`, the TAP
//! `ioctl`s) are in `sys`.

#![deny(unsafe_code)]

pub mod claim;
pub mod error;
pub mod model;
pub mod netlink;
pub mod ops;
mod quirks;
#[allow(unsafe_code)]
mod sys;
pub mod sysfs;

pub use claim::{ClaimRecord, ClaimStore, ClaimToken};
pub use error::{Error, Result};
pub use model::{LinkState, MacAddr, VfConfig, VfSettings, Vlan, VlanProto};
pub use netlink::devlink::EswitchMode;
pub use netlink::rt::VfTable;
pub use ops::{BindReport, Host, NumVfsOptions, NumVfsReport, PfDetail, VfDetail, VfListSource};
pub use sysfs::{Pf, PfKind, SysfsRoot, VfDevice};
