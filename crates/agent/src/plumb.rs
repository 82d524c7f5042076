//! What the reconciler does to a host for VF and PF ports: [`Plumbing`].
//!
//! [`SriovPlumbing`] is the real host, through `sluice-sriov` (VF settings
//! over rtnetlink on the PF with read-back, driver binding through sysfs,
//! macvtap and link state over rtnetlink). [`MemoryPlumbing`] keeps the
//! same state in memory for synthetic sysfs trees, where there is no
//! kernel behind the files.

use std::collections::BTreeMap;
use std::sync::Mutex;

use sluice_sriov::netlink::link::Links;
use sluice_sriov::{Host, MacAddr, VfConfig, VfSettings};

use crate::error::{Error, Result};

/// A VF, by PF bus id and index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct VfRef<'a> {
    /// PF bus id (PCI address, or netdevsim name).
    pub pf_bus_id: &'a str,
    /// VF index.
    pub vf: u32,
}

/// A VF's PCI function as the host shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VfFunction {
    /// Bound driver.
    pub driver: Option<String>,
    /// Netdev, when bound to a netdev driver.
    pub netdev: Option<String>,
    /// The netdev is administratively up.
    pub netdev_up: bool,
    /// The netdev's current MAC (a VF driver picks up a new admin MAC only
    /// when it is reloaded, as igbvf does).
    pub mac: Option<MacAddr>,
}

/// A macvtap as the host shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Macvtap {
    /// The lower netdev's name.
    pub lower: Option<String>,
    /// Passthrough mode.
    pub passthrough: bool,
    /// Administratively up.
    pub up: bool,
    /// Its MAC.
    pub mac: Option<MacAddr>,
}

/// The host operations the reconciler needs for VF and PF ports.
pub trait Plumbing: Send + Sync + std::fmt::Debug {
    /// True for a synthetic host (nothing reaches a NIC); shown in status.
    fn synthetic(&self) -> bool;
    /// The VF's configuration as its PF reports it.
    fn vf_config(&self, vf: VfRef<'_>) -> Result<VfConfig>;
    /// Applies `s` to the VF and returns the read-back configuration.
    fn configure_vf(&self, vf: VfRef<'_>, s: &VfSettings) -> Result<VfConfig>;
    /// The VF's PCI function: driver and netdev.
    fn vf_function(&self, vf: VfRef<'_>) -> Result<VfFunction>;
    /// Binds the VF to `driver`, or back to its default driver with `None`.
    fn bind_vf(&self, vf: VfRef<'_>, driver: Option<&str>) -> Result<()>;
    /// Brings a netdev up.
    fn link_up(&self, netdev: &str) -> Result<()>;
    /// The macvtap called `name`, if it exists.
    fn macvtap(&self, name: &str) -> Result<Option<Macvtap>>;
    /// Creates macvtap `name` in passthrough mode on `lower` with `mac`,
    /// and brings it up.
    fn create_macvtap(&self, name: &str, lower: &str, mac: MacAddr) -> Result<()>;
    /// Deletes link `name` if it exists.
    fn delete_link(&self, name: &str) -> Result<()>;
    /// True when the PF's PCI function exists.
    fn pf_present(&self, pf_bus_id: &str) -> Result<bool>;
}

/// The real host.
#[derive(Debug, Clone)]
pub struct SriovPlumbing {
    host: Host,
}

impl SriovPlumbing {
    /// Plumbing through `host`.
    pub fn new(host: Host) -> Self {
        SriovPlumbing { host }
    }

    fn dev(&self, r: VfRef<'_>) -> Result<(sluice_sriov::Pf, sluice_sriov::VfDevice)> {
        let pf = self.host.pf(r.pf_bus_id)?;
        let dev = self.host.sysfs().vfs(&pf)?.into_iter().find(|d| d.index == r.vf).ok_or_else(|| {
            Error::Host(sluice_sriov::Error::NoSuchVf { pf: pf.name.clone(), index: r.vf, numvfs: pf.numvfs })
        })?;
        Ok((pf, dev))
    }
}

impl Plumbing for SriovPlumbing {
    fn synthetic(&self) -> bool {
        false
    }

    fn vf_config(&self, r: VfRef<'_>) -> Result<VfConfig> {
        let pf = self.host.pf(r.pf_bus_id)?;
        let t = self.host.vf_table(&pf)?;
        t.vfs.into_iter().find(|c| c.index == r.vf).ok_or_else(|| {
            Error::Host(sluice_sriov::Error::TruncatedVfList {
                pf: pf.name.clone(),
                num_vf: t.num_vf.unwrap_or(0),
                parsed: r.vf,
            })
        })
    }

    fn configure_vf(&self, r: VfRef<'_>, s: &VfSettings) -> Result<VfConfig> {
        let pf = self.host.pf(r.pf_bus_id)?;
        let mut out = self.host.configure(&pf, &[(r.vf, s.clone())])?;
        match out.pop() {
            Some(c) => Ok(c),
            None => self.vf_config(r),
        }
    }

    fn vf_function(&self, r: VfRef<'_>) -> Result<VfFunction> {
        let (_, dev) = self.dev(r)?;
        let link = match &dev.netdev {
            Some(n) => Links::open()?.find(n)?,
            None => None,
        };
        let netdev_up = link.as_ref().is_some_and(|l| l.up);
        Ok(VfFunction { driver: dev.driver, netdev: dev.netdev, netdev_up, mac: link.and_then(|l| l.mac) })
    }

    fn bind_vf(&self, r: VfRef<'_>, driver: Option<&str>) -> Result<()> {
        let pf = self.host.pf(r.pf_bus_id)?;
        self.host.bind_vf(&pf, r.vf, driver)?;
        Ok(())
    }

    fn link_up(&self, netdev: &str) -> Result<()> {
        let mut links = Links::open()?;
        let l = links.find(netdev)?.ok_or_else(|| Error::invalid("netdev", format!("{netdev} does not exist")))?;
        if !l.up {
            links.set_up(l.ifindex)?;
        }
        Ok(())
    }

    fn macvtap(&self, name: &str) -> Result<Option<Macvtap>> {
        let all = Links::open()?.list()?;
        let Some(l) = all.iter().find(|l| l.name == name && l.kind.as_deref() == Some("macvtap")) else {
            return Ok(None);
        };
        let lower = l.lower.and_then(|i| all.iter().find(|x| x.ifindex == i)).map(|x| x.name.clone());
        Ok(Some(Macvtap { lower, passthrough: l.passthrough, up: l.up, mac: l.mac }))
    }

    fn create_macvtap(&self, name: &str, lower: &str, mac: MacAddr) -> Result<()> {
        let mut links = Links::open()?;
        let low = links.find(lower)?.ok_or_else(|| Error::invalid("netdev", format!("{lower} does not exist")))?;
        if !low.up {
            links.set_up(low.ifindex)?;
        }
        links.create_macvtap_passthrough(name, low.ifindex, mac)?;
        let l = links
            .find(name)?
            .ok_or_else(|| Error::Store(format!("macvtap {name} was created but is not listed by the kernel")))?;
        // Passthrough inherits the lower device's address (a VF netdev may
        // not have picked up its new admin MAC yet): set it, on both.
        if l.mac != Some(mac) {
            links.set_mac(l.ifindex, mac)?;
        }
        links.set_up(l.ifindex)?;
        Ok(())
    }

    fn delete_link(&self, name: &str) -> Result<()> {
        let mut links = Links::open()?;
        if let Some(l) = links.find(name)? {
            links.delete(l.ifindex)?;
        }
        Ok(())
    }

    fn pf_present(&self, pf_bus_id: &str) -> Result<bool> {
        Ok(self.host.pf(pf_bus_id).is_ok())
    }
}

/// A synthetic host: VF settings, drivers and macvtaps in memory, starting
/// from clean VFs on their default driver with a netdev named after the PF
/// (`<pf>v<index>`, like [`crate::testhost`]).
#[derive(Debug, Default)]
pub struct MemoryPlumbing {
    state: Mutex<MemState>,
}

#[derive(Debug, Default)]
struct MemState {
    configs: BTreeMap<(String, u32), VfConfig>,
    drivers: BTreeMap<(String, u32), Option<String>>,
    macvtaps: BTreeMap<String, Macvtap>,
    up: std::collections::BTreeSet<String>,
}

impl MemoryPlumbing {
    fn st(&self) -> std::sync::MutexGuard<'_, MemState> {
        // Every update is a single map operation; a poisoned lock is consistent.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn key(r: VfRef<'_>) -> (String, u32) {
    (r.pf_bus_id.to_string(), r.vf)
}

impl Plumbing for MemoryPlumbing {
    fn synthetic(&self) -> bool {
        true
    }

    fn vf_config(&self, r: VfRef<'_>) -> Result<VfConfig> {
        let st = self.st();
        Ok(st.configs.get(&key(r)).cloned().unwrap_or_else(|| {
            let mut c = VfConfig { index: r.vf, ..Default::default() };
            c.spoofchk = Some(true);
            c.trust = Some(false);
            c.link_state = Some(sluice_sriov::LinkState::Auto);
            c
        }))
    }

    fn configure_vf(&self, r: VfRef<'_>, s: &VfSettings) -> Result<VfConfig> {
        let cur = self.vf_config(r)?;
        s.check_rates(Some(&cur), None)?;
        let new = cur.merged(s);
        self.st().configs.insert(key(r), new.clone());
        Ok(new)
    }

    fn vf_function(&self, r: VfRef<'_>) -> Result<VfFunction> {
        let st = self.st();
        let driver = st.drivers.get(&key(r)).cloned().unwrap_or_else(|| Some("igbvf".into()));
        let netdev = (driver.as_deref() != Some("vfio-pci")).then(|| format!("{}v{}", r.pf_bus_id, r.vf));
        let netdev_up = netdev.as_ref().is_some_and(|n| st.up.contains(n));
        let mac = netdev.as_ref().map(|_| st.configs.get(&key(r)).map_or(MacAddr::ZERO, |c| c.mac));
        Ok(VfFunction { driver, netdev, netdev_up, mac })
    }

    fn bind_vf(&self, r: VfRef<'_>, driver: Option<&str>) -> Result<()> {
        let mut st = self.st();
        let netdev = format!("{}v{}", r.pf_bus_id, r.vf);
        st.up.remove(&netdev);
        st.macvtaps.retain(|_, m| m.lower.as_deref() != Some(netdev.as_str()));
        st.drivers.insert(key(r), Some(driver.unwrap_or("igbvf").to_string()));
        Ok(())
    }

    fn link_up(&self, netdev: &str) -> Result<()> {
        self.st().up.insert(netdev.to_string());
        Ok(())
    }

    fn macvtap(&self, name: &str) -> Result<Option<Macvtap>> {
        Ok(self.st().macvtaps.get(name).cloned())
    }

    fn create_macvtap(&self, name: &str, lower: &str, mac: MacAddr) -> Result<()> {
        let mut st = self.st();
        if st.macvtaps.contains_key(name) {
            return Err(Error::invalid("macvtap", format!("{name} already exists")));
        }
        st.up.insert(lower.to_string());
        st.macvtaps.insert(
            name.to_string(),
            Macvtap { lower: Some(lower.to_string()), passthrough: true, up: true, mac: Some(mac) },
        );
        Ok(())
    }

    fn delete_link(&self, name: &str) -> Result<()> {
        self.st().macvtaps.remove(name);
        Ok(())
    }

    fn pf_present(&self, _pf_bus_id: &str) -> Result<bool> {
        Ok(true)
    }
}
