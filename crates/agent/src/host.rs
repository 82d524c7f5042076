//! The agent's view of the host: building VF pools from device specs and
//! the sysfs inventory, and the host-side claim/reset of a VF through
//! `sluice-sriov`. The agent's store decides who holds a VF; the claim
//! record on the host only guards resets against late releases.

use sluice_sriov::{ClaimToken, Host, MacAddr};

use crate::error::{Error, Result};
use crate::model::{PfSlot, Physnet, Pool, VfSlot};

/// What to do to a VF's settings around assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VfReset {
    /// Reset the VF over rtnetlink on its PF (a real host).
    Netlink,
    /// Only move the claim record (synthetic sysfs trees, where there is
    /// no PF netdev to talk to).
    ClaimOnly,
}

/// The host side of binding.
#[derive(Debug, Clone)]
pub struct HostSide {
    host: Host,
    reset: VfReset,
}

impl HostSide {
    /// A host side over `host`.
    pub fn new(host: Host, reset: VfReset) -> Self {
        HostSide { host, reset }
    }

    /// The sluice-sriov host.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Builds the pool of a physical network: every VF its device specs
    /// select, in spec order then VF index.
    pub fn build_pool(&self, p: &Physnet) -> Result<Pool> {
        let mut vfs = Vec::new();
        let mut pfs: Vec<PfSlot> = Vec::new();
        for (i, spec) in p.device_specs.iter().enumerate() {
            let pf = self.host.pf(&spec.pf).map_err(|e| {
                Error::invalid(format!("device_specs[{i}].pf"), format!("must name a PF on this host: {e}"))
            })?;
            if !pfs.iter().any(|s| s.pf_bus_id == pf.bus_id) {
                pfs.push(PfSlot {
                    pf: pf.name.clone(),
                    pf_bus_id: pf.bus_id.clone(),
                    numa_node: pf.numa_node.filter(|n| *n >= 0),
                    holder: None,
                });
            }
            for v in self.host.sysfs().vfs(&pf)? {
                if !spec.selects(v.index) || vfs.iter().any(|s: &VfSlot| s.pf_bus_id == pf.bus_id && s.vf == v.index) {
                    continue;
                }
                vfs.push(VfSlot {
                    pf: pf.name.clone(),
                    pf_bus_id: pf.bus_id.clone(),
                    vf: v.index,
                    pci_addr: v.pci_addr,
                    netdev: v.netdev,
                    numa_node: v.numa_node.or(pf.numa_node).filter(|n| *n >= 0),
                    generation: 0,
                    holder: None,
                });
            }
        }
        Ok(Pool { name: p.name.clone(), vfs, pfs })
    }

    fn reset_now(&self, pf_bus_id: &str, vf: u32) -> Result<()> {
        if self.reset == VfReset::Netlink {
            let pf = self.host.pf(pf_bus_id)?;
            self.host.configure(&pf, &[(vf, sluice_sriov::VfSettings::clean(MacAddr::ZERO))])?;
        }
        Ok(())
    }

    /// Before assignment: resets the VF (it must be free on the host, or
    /// already claimed by this same port after a crash) and claims it for
    /// `port`.
    pub fn claim(&self, pf_bus_id: &str, vf: u32, port: &str) -> Result<ClaimToken> {
        let rec = self.host.claims().read(pf_bus_id, vf)?;
        if rec.owner.is_none() {
            self.host
                .claims()
                .release_with(pf_bus_id, vf, None, false, || self.reset_now(pf_bus_id, vf).map_err(to_sriov))?;
        }
        Ok(self.host.claims().claim(pf_bus_id, vf, port)?)
    }

    /// After release: resets the VF if the host record still names
    /// `token` (or, with `force`, whoever holds it: start-up repair of a
    /// leaked claim), and frees it. A record that is already free is fine
    /// (a crash after the reset).
    pub fn release(&self, pf_bus_id: &str, vf: u32, token: Option<&ClaimToken>, force: bool) -> Result<()> {
        let rec = self.host.claims().read(pf_bus_id, vf)?;
        let token = if rec.owner.is_none() { None } else { token };
        self.host
            .claims()
            .release_with(pf_bus_id, vf, token, force, || self.reset_now(pf_bus_id, vf).map_err(to_sriov))?;
        Ok(())
    }
}

fn to_sriov(e: Error) -> sluice_sriov::Error {
    match e {
        Error::Host(e) => e,
        other => sluice_sriov::Error::Unsupported(other.to_string()),
    }
}
