//! The reconciler's view of Sluice's user-space switch: [`SwitchPorts`].
//!
//! `normal` ports, and the VM side of `virtio-forwarder` ports, become
//! ports of the switch. The agent does not depend on `sluice-datapath`:
//! the reconciler only calls this trait. Two implementations live here:
//! - [`TapSwitchPorts`]: creates a persistent TAP per port in the host
//!   network namespace (named [`crate::xml::tap_name`], Nova's `tap` + 11
//!   characters of the port id, which the libvirt XML also names) and keeps
//!   a small record per TAP under the state directory, so that it knows,
//!   across restarts, which TAPs are its own;
//! - [`MemorySwitchPorts`]: remembers attachments in memory (synthetic
//!   hosts and tests).
//!
//! **Wiring:** `sluice serve` passes its datapath in as a `SwitchPorts`
//! (through [`crate::serve::Extras::switch`]) once the switch runs inside
//! it; its `attach` then adds the TAP (or vhost-user socket) to the
//! bridge with the port's VLAN and MAC, and `detach` removes it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sluice_sriov::MacAddr;
use sluice_sriov::netlink::link::{Links, create_persistent_tap};

use crate::error::{Error, Result};
use crate::model::Segment;

/// What the switch is asked to attach for one port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchPort {
    /// Port id.
    pub port_id: String,
    /// The TAP the VM side uses ([`crate::xml::tap_name`]).
    pub tap: String,
    /// The port's MAC (the VM's).
    pub mac: MacAddr,
    /// Access VLAN on the switch (VLAN segments of `normal` ports); `None`
    /// for untagged, for overlays, and for `virtio-forwarder` ports (their
    /// VF already tags).
    pub vlan: Option<u16>,
    /// The network's segment (overlays need the VNI or GRE key).
    pub segment: Segment,
    /// `virtio-forwarder`: the VF netdev the switch forwards to and from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uplink: Option<String>,
}

/// The switch, as the reconciler sees it. Implementations must be
/// idempotent: `attach` of an already attached, identical port and
/// `detach` of an unknown port succeed.
pub trait SwitchPorts: Send + Sync + std::fmt::Debug {
    /// Makes `port` a switch port (creating its TAP if needed) and brings
    /// it up. Attaching a port id again with different settings replaces
    /// the old attachment.
    fn attach(&self, port: &SwitchPort) -> Result<()>;
    /// Removes the port and its TAP. Unknown ids are fine.
    fn detach(&self, port_id: &str) -> Result<()>;
    /// The attachment of `port_id` as the switch currently has it, or
    /// `None` when it is not attached or its TAP is missing or down.
    fn attached(&self, port_id: &str) -> Result<Option<SwitchPort>>;
    /// Ids of every attached port (for removing leftovers).
    fn ports(&self) -> Result<Vec<String>>;
}

/// Switch ports kept in memory (synthetic hosts, tests).
#[derive(Debug, Default)]
pub struct MemorySwitchPorts {
    ports: Mutex<BTreeMap<String, SwitchPort>>,
}

impl MemorySwitchPorts {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, SwitchPort>> {
        // A poisoned map is still consistent: every update is one insert or remove.
        self.ports.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl SwitchPorts for MemorySwitchPorts {
    fn attach(&self, port: &SwitchPort) -> Result<()> {
        let mut m = self.map();
        if let Some((other, _)) = m.iter().find(|(id, p)| p.tap == port.tap && **id != port.port_id) {
            return Err(tap_taken(&port.tap, other, &port.port_id));
        }
        m.insert(port.port_id.clone(), port.clone());
        Ok(())
    }

    fn detach(&self, port_id: &str) -> Result<()> {
        self.map().remove(port_id);
        Ok(())
    }

    fn attached(&self, port_id: &str) -> Result<Option<SwitchPort>> {
        Ok(self.map().get(port_id).cloned())
    }

    fn ports(&self) -> Result<Vec<String>> {
        Ok(self.map().keys().cloned().collect())
    }
}

fn tap_taken(tap: &str, holder: &str, port: &str) -> Error {
    Error::invalid(
        "id",
        format!(
            "of port {port} maps to TAP {tap}, which port {holder} already uses (TAP names keep the first 11 \
             characters of the id; make the ids differ there)"
        ),
    )
}

/// Switch ports as persistent TAP devices in the agent's network
/// namespace, with one record per TAP (`<dir>/<tap>.json`, the
/// [`SwitchPort`]) so only TAPs this agent made are ever deleted.
#[derive(Debug)]
pub struct TapSwitchPorts {
    dir: PathBuf,
    lock: Mutex<()>,
}

impl TapSwitchPorts {
    /// Keeps its records under `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::Store(format!("cannot create the switch record directory {}: {e}", dir.display())))?;
        Ok(TapSwitchPorts { dir, lock: Mutex::new(()) })
    }

    fn records(&self) -> Result<Vec<SwitchPort>> {
        let rd = std::fs::read_dir(&self.dir)
            .map_err(|e| Error::Store(format!("cannot read {}: {e}", self.dir.display())))?;
        let mut out = Vec::new();
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json")
                && let Ok(b) = std::fs::read(&p)
                && let Ok(r) = serde_json::from_slice::<SwitchPort>(&b)
            {
                out.push(r);
            }
        }
        Ok(out)
    }

    fn record_path(&self, tap: &str) -> PathBuf {
        self.dir.join(format!("{tap}.json"))
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, ()> {
        // Guards only the record files; nothing to repair after a panic.
        self.lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl SwitchPorts for TapSwitchPorts {
    fn attach(&self, port: &SwitchPort) -> Result<()> {
        let _g = self.guard();
        let records = self.records()?;
        if let Some(other) = records.iter().find(|r| r.tap == port.tap && r.port_id != port.port_id) {
            return Err(tap_taken(&port.tap, &other.port_id, &port.port_id));
        }
        // A port whose TAP name changed (cannot happen with a fixed id,
        // but a record from an older naming could): drop the old TAP.
        for old in records.iter().filter(|r| r.port_id == port.port_id && r.tap != port.tap) {
            delete_tap(&old.tap)?;
            let _ = std::fs::remove_file(self.record_path(&old.tap));
        }
        // Record first: a crash after creating the TAP must not leave a TAP
        // nobody knows is ours.
        let body = serde_json::to_vec_pretty(port).map_err(|e| Error::Store(e.to_string()))?;
        let path = self.record_path(&port.tap);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, body)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| Error::Store(format!("cannot write {}: {e}", path.display())))?;
        create_persistent_tap(&port.tap)?;
        let mut links = Links::open()?;
        let link = links
            .find(&port.tap)?
            .ok_or_else(|| Error::Store(format!("TAP {} was created but is not listed by the kernel", port.tap)))?;
        if !link.up {
            links.set_up(link.ifindex)?;
        }
        Ok(())
    }

    fn detach(&self, port_id: &str) -> Result<()> {
        let _g = self.guard();
        for r in self.records()?.into_iter().filter(|r| r.port_id == port_id) {
            delete_tap(&r.tap)?;
            let _ = std::fs::remove_file(self.record_path(&r.tap));
        }
        Ok(())
    }

    fn attached(&self, port_id: &str) -> Result<Option<SwitchPort>> {
        let Some(r) = self.records()?.into_iter().find(|r| r.port_id == port_id) else { return Ok(None) };
        let link = Links::open()?.find(&r.tap)?;
        Ok(link.filter(|l| l.up && l.kind.as_deref() == Some("tun")).map(|_| r))
    }

    fn ports(&self) -> Result<Vec<String>> {
        Ok(self.records()?.into_iter().map(|r| r.port_id).collect())
    }
}

/// Deletes TAP `name` if it exists.
fn delete_tap(name: &str) -> Result<()> {
    let mut links = Links::open()?;
    if let Some(l) = links.find(name)? {
        links.delete(l.ifindex)?;
    }
    Ok(())
}
