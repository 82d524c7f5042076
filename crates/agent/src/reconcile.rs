//! The reconciler: drives the host toward the stored intent and writes
//! back what it saw, per port: `bound` (resources reserved, not plugged
//! yet), `active` (the host shows the intended state), or `error` with a
//! sentence saying why.
//!
//! Per vnic type ([`Reconciler::port`]):
//! - `direct`, `macvtap`, `virtio-forwarder`: VF settings through
//!   [`Plumbing`] (MAC, VLAN from the network segment, spoofchk on, trust
//!   off, `max_tx_rate` from the QoS policy's egress rate, link state auto),
//!   read back and compared field by field; then `direct` binds the VF to
//!   vfio-pci, `macvtap` keeps it on its netdev driver and puts a macvtap in
//!   passthrough mode on its netdev, `virtio-forwarder` keeps the netdev and
//!   attaches a switch port in front of it ([`SwitchPorts`]);
//! - `direct-physical`: the PF is held whole in the store (no VF of it is
//!   allocated); active while its PCI function exists;
//! - `normal`: a switch port with the segment's VLAN.
//!
//! Every step compares first and changes only what differs, so a pass is
//! idempotent and a crash at any point is repaired by the next pass. A
//! port is reconciled under its port lock (the same lock bind and release
//! take), so a release never races a pass that is plugging it. The
//! statuses a pass observed are written at its end in one transaction,
//! each only if the port is still the one observed.
//!
//! At start-up, [`claims`] first repairs the host claim records against
//! the store (the store is the authority). For every VF of every pool:
//! - held in the store, claim on the host missing, stale or foreign →
//!   (force-)reset and claim for the holding port, record the token;
//! - free in the store, claimed on the host → reset and free it;
//! - held and claimed by the same port → make sure the port has the token.
//!
//! Then [`Reconciler::sweep`] removes what released ports left behind
//! (switch ports without a port, free VFs still on vfio-pci).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use sluice_sriov::{ClaimToken, LinkState, VfConfig, VfSettings, Vlan, VlanProto};

use crate::api::PortLocks;
use crate::error::{Error, Result};
use crate::host::HostSide;
use crate::model::{Network, Pool, Port, PortState, PortStatus, QosPolicy, Segment, VfSlot, VnicType};
use crate::plumb::{Macvtap, Plumbing, VfRef};
use crate::store::{Kind, StatusChange, Store};
use crate::switch::{SwitchPort, SwitchPorts};

/// The driver `direct` ports' VFs are bound to.
pub const VFIO: &str = "vfio-pci";

/// What a claim repair pass changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// VFs claimed on the host for their holder.
    pub claimed: usize,
    /// VFs freed on the host (no holder in the store).
    pub freed: usize,
    /// Ports whose stored token was refreshed.
    pub tokens: usize,
}

/// Repairs the host claim of one VF (see the module doc).
pub fn vf(store: &Store, host: &HostSide, s: &VfSlot, rep: &mut Report) -> Result<()> {
    let claims = host.host().claims();
    let rec = claims.read(&s.pf_bus_id, s.vf)?;
    match (&s.holder, &rec.owner) {
        (Some(h), Some(o)) if *o == h.port => {
            let token = ClaimToken { owner: o.clone(), generation: rec.generation };
            let port: Option<Port> = store.get(Kind::Port, &h.port)?;
            if let Some(p) = port
                && let Some(b) = &p.binding
                && b.host_claim.as_ref() != Some(&token)
            {
                store.set_host_claim(&h.port, b.generation, &token)?;
                rep.tokens += 1;
            }
        }
        (Some(h), owner) => {
            if owner.is_some() {
                claims.release_with(&s.pf_bus_id, s.vf, None, true, || Ok(()))?;
            }
            let token = host.claim(&s.pf_bus_id, s.vf, &h.port)?;
            let port: Option<Port> = store.get(Kind::Port, &h.port)?;
            if let Some(b) = port.and_then(|p| p.binding) {
                store.set_host_claim(&h.port, b.generation, &token)?;
            }
            rep.claimed += 1;
        }
        (None, Some(_)) => {
            host.release(&s.pf_bus_id, s.vf, None, true)?;
            rep.freed += 1;
        }
        (None, None) => {}
    }
    Ok(())
}

/// Repairs every host claim record (see the module doc).
pub fn claims(store: &Store, host: &HostSide) -> Result<Report> {
    let mut rep = Report::default();
    for pool in store.list::<Pool>(Kind::Pool)? {
        for s in &pool.vfs {
            vf(store, host, s, &mut rep)?;
        }
    }
    if rep != Report::default() {
        tracing::info!(?rep, "repaired host claim records");
    }
    Ok(rep)
}

/// Counters of the reconciler, for `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Passes run.
    pub passes: AtomicU64,
    /// Errors: ports a pass left in `error`, and passes that failed.
    pub errors: AtomicU64,
    /// Duration of the last pass, microseconds.
    pub last_pass_us: AtomicU64,
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    /// Ports looked at.
    pub ports: usize,
    /// Ports now active.
    pub active: usize,
    /// Ports in error.
    pub errors: usize,
    /// Ports whose stored status changed.
    pub changed: usize,
}

/// The reconciler (see the module doc).
#[derive(Debug)]
pub struct Reconciler {
    store: Arc<Store>,
    locks: Arc<PortLocks>,
    plumbing: Arc<dyn Plumbing>,
    switch: Arc<dyn SwitchPorts>,
    /// Counters.
    pub stats: Stats,
    /// Wakes the background loop for an early pass.
    trigger: tokio::sync::Notify,
    /// Ports whose bind or release asked for a pass of their own.
    pending: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// A full pass was asked for.
    full: std::sync::atomic::AtomicBool,
    /// One pass at a time.
    pass: std::sync::Mutex<()>,
}

impl Reconciler {
    /// A reconciler over the store, using `plumbing` for VF/PF ports and
    /// `switch` for switch ports.
    pub fn new(
        store: Arc<Store>,
        locks: Arc<PortLocks>,
        plumbing: Arc<dyn Plumbing>,
        switch: Arc<dyn SwitchPorts>,
    ) -> Self {
        Reconciler {
            store,
            locks,
            plumbing,
            switch,
            stats: Stats::default(),
            trigger: tokio::sync::Notify::new(),
            pending: std::sync::Mutex::default(),
            full: std::sync::atomic::AtomicBool::new(false),
            pass: std::sync::Mutex::new(()),
        }
    }

    /// The host plumbing the reconciler uses.
    pub fn plumbing(&self) -> &Arc<dyn Plumbing> {
        &self.plumbing
    }

    /// The switch the reconciler attaches ports to.
    pub fn switch(&self) -> &Arc<dyn SwitchPorts> {
        &self.switch
    }

    /// Asks the background loop for a pass soon (after a bind or release).
    /// Requests coalesce: many triggers during a pass give one more pass.
    pub fn trigger(&self) {
        self.full.store(true, Ordering::Release);
        self.trigger.notify_one();
    }

    /// Asks the background loop to reconcile port `id` soon (after its bind
    /// or release): a pass over the ports asked for, not over every port,
    /// so binds stay cheap however many ports the host has. Requests
    /// coalesce; the periodic full pass still covers every port.
    pub fn trigger_port(&self, id: &str) {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id.to_string());
        self.trigger.notify_one();
    }

    /// Runs what the triggers asked for: a full pass if one was asked,
    /// else a pass over the pending ports (blocking).
    pub fn pass_pending(&self) -> Result<PassReport> {
        let ids = std::mem::take(&mut *self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        if self.full.swap(false, Ordering::AcqRel) {
            return self.pass();
        }
        if ids.is_empty() {
            return Ok(PassReport::default());
        }
        self.counted(|| self.reconcile_ids(ids.into_iter().collect()))
    }

    /// Waits for a [`Reconciler::trigger`].
    pub async fn triggered(&self) {
        self.trigger.notified().await;
    }

    /// Runs one pass over every port (blocking). Counts the pass, and as
    /// errors the ports left in `error` and a pass that could not run.
    pub fn pass(&self) -> Result<PassReport> {
        self.counted(|| self.pass_inner())
    }

    fn counted(&self, f: impl FnOnce() -> Result<PassReport>) -> Result<PassReport> {
        let _one = self.pass.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let t = Instant::now();
        let r = f();
        self.stats.passes.fetch_add(1, Ordering::Relaxed);
        self.stats.last_pass_us.store(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
        match &r {
            Ok(rep) => {
                self.stats.errors.fetch_add(rep.errors as u64, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "reconcile pass failed");
            }
        }
        r
    }

    fn pass_inner(&self) -> Result<PassReport> {
        let ids: Vec<String> = self.store.list::<Port>(Kind::Port)?.into_iter().map(|p| p.spec.id).collect();
        self.reconcile_ids(ids)
    }

    fn reconcile_ids(&self, ids: Vec<String>) -> Result<PassReport> {
        let mut rep = PassReport { ports: ids.len(), ..Default::default() };
        let mut changes = Vec::new();
        for id in ids {
            let _g = self.locks.lock(&id);
            // Re-read under the lock: a release may have won the race.
            let Some(port) = self.store.get::<Port>(Kind::Port, &id)? else { continue };
            let status = match self.port(&port) {
                Ok(s) => s,
                Err(e) => {
                    let at = port.binding.as_ref().map(|b| format!("VF {} of {}: ", b.vf, b.pf)).unwrap_or_default();
                    PortStatus { state: PortState::Error, reason: Some(sentence(&format!("{at}{e}"))) }
                }
            };
            match status.state {
                PortState::Active => rep.active += 1,
                PortState::Error => rep.errors += 1,
                PortState::Bound => {}
            }
            if status != port.status {
                if status.state == PortState::Error {
                    tracing::warn!(port = id, reason = status.reason.as_deref().unwrap_or(""), "port in error");
                } else {
                    tracing::info!(port = id, state = status.state.as_str(), "port status");
                }
                changes.push(StatusChange {
                    id: id.clone(),
                    generation: port.binding.as_ref().map(|b| b.generation),
                    spec: port.spec,
                    status,
                });
            }
        }
        // One transaction for the whole pass, so a pass never queues many
        // commits in front of binds.
        rep.changed = self.store.set_statuses(&changes)?;
        Ok(rep)
    }

    /// Removes what released ports left behind: switch ports without a
    /// port in the store, and VFs free in the store but still on vfio-pci
    /// (returned to their default driver). Run at start-up, before the API
    /// serves, so nothing allocates meanwhile.
    pub fn sweep(&self) -> Result<usize> {
        let ports: Vec<Port> = self.store.list(Kind::Port)?;
        let mut n = 0;
        for id in self.switch.ports()? {
            let keep = ports.iter().any(|p| p.spec.id == id && uses_switch(p.spec.vnic_type));
            if !keep {
                self.switch.detach(&id)?;
                n += 1;
            }
        }
        if self.plumbing.synthetic() {
            return Ok(n);
        }
        for pool in self.store.list::<Pool>(Kind::Pool)? {
            for s in pool.vfs.iter().filter(|s| s.holder.is_none() && !pool.pf_held(&s.pf_bus_id)) {
                let r = VfRef { pf_bus_id: &s.pf_bus_id, vf: s.vf };
                match self.plumbing.vf_function(r) {
                    Ok(f) if f.driver.as_deref() == Some(VFIO) => {
                        self.plumbing.bind_vf(r, None)?;
                        n += 1;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(pool = pool.name, vf = s.vf, error = %e, "cannot inspect a free VF"),
                }
            }
        }
        Ok(n)
    }

    /// Undoes the host side of a port before its release: detaches its
    /// switch port, deletes its macvtap, returns its VF to the default
    /// driver. The VF's settings are reset by the release itself.
    pub fn teardown(&self, port: &Port) -> Result<()> {
        if uses_switch(port.spec.vnic_type) {
            self.switch.detach(&port.spec.id)?;
        }
        if port.spec.vnic_type == VnicType::Macvtap {
            self.plumbing.delete_link(&macvtap_name(&port.spec.id))?;
        }
        if let Some(b) = &port.binding
            && port.spec.vnic_type == VnicType::Direct
            && !self.plumbing.synthetic()
        {
            let r = VfRef { pf_bus_id: &b.pf_bus_id, vf: b.vf };
            if self.plumbing.vf_function(r)?.driver.as_deref() == Some(VFIO) {
                self.plumbing.bind_vf(r, None)?;
            }
        }
        Ok(())
    }

    /// Drives one port toward its intent and says what the host shows.
    pub fn port(&self, port: &Port) -> Result<PortStatus> {
        let vnic = port.spec.vnic_type;
        let note = if self.plumbing.synthetic() && vnic != VnicType::Normal {
            Some("synthetic host: the VF and PF state is kept in memory, no NIC was touched".to_string())
        } else {
            None
        };
        match vnic {
            VnicType::Normal => {
                let want = self.switch_port(port, None)?;
                self.ensure_switch(&want)?;
                Ok(active(None))
            }
            VnicType::DirectPhysical => {
                let b = port.pf_binding.as_ref().ok_or_else(|| missing(port, "pf_binding"))?;
                if !self.plumbing.pf_present(&b.pf_bus_id)? {
                    return Ok(error(format!("PF {} ({}) is no longer on this host", b.pf, b.pf_bus_id)));
                }
                Ok(active(note))
            }
            VnicType::Direct | VnicType::Macvtap | VnicType::VirtioForwarder => {
                let b = port.binding.as_ref().ok_or_else(|| missing(port, "binding"))?;
                if b.host_claim.is_none() {
                    return Ok(PortStatus {
                        state: PortState::Bound,
                        reason: Some(format!("VF {} of {} is not claimed on the host yet", b.vf, b.pf)),
                    });
                }
                let qos = match &port.spec.qos_policy {
                    Some(q) => self.store.get::<QosPolicy>(Kind::QosPolicy, q)?,
                    None => None,
                };
                let want = vf_settings(port, qos.as_ref())?;
                let r = VfRef { pf_bus_id: &b.pf_bus_id, vf: b.vf };
                let vf_name = format!("VF {} of {}", b.vf, b.pf);
                let got = self.plumbing.vf_config(r)?;
                let got = if let Some(field) = mismatch(&want, &got) {
                    tracing::debug!(port = port.spec.id, field, "applying VF settings");
                    self.plumbing.configure_vf(r, &want)?
                } else {
                    got
                };
                if let Some(field) = mismatch(&want, &got) {
                    return Ok(error(format!("{vf_name} reads back a different {field} than the port needs")));
                }
                self.plug_vf(port, r, &vf_name)?;
                let mut reason = note;
                if let Some(q) = &qos
                    && (q.ingress.is_some() || q.egress.is_some_and(|e| e.burst_kb > 0))
                {
                    let s = format!(
                        "qos policy {}: a VF enforces only the egress rate (as max_tx_rate); ingress limits and bursts need the switch",
                        q.id
                    );
                    reason = Some(match reason {
                        Some(r) => format!("{r}; {s}"),
                        None => s,
                    });
                }
                Ok(active(reason))
            }
        }
    }

    /// Driver, macvtap and switch port of a VF port.
    fn plug_vf(&self, port: &Port, r: VfRef<'_>, vf_name: &str) -> Result<()> {
        let f = self.plumbing.vf_function(r)?;
        match port.spec.vnic_type {
            VnicType::Direct => {
                if f.driver.as_deref() != Some(VFIO) {
                    self.plumbing.bind_vf(r, Some(VFIO))?;
                    let f = self.plumbing.vf_function(r)?;
                    if f.driver.as_deref() != Some(VFIO) {
                        return Err(Error::invalid(
                            "vnic_type",
                            format!(
                                "direct needs {vf_name} on {VFIO}, but it is on {}",
                                f.driver.as_deref().unwrap_or("no driver")
                            ),
                        ));
                    }
                }
            }
            VnicType::Macvtap | VnicType::VirtioForwarder => {
                // Back on the netdev driver, and reloaded when the netdev
                // has not picked up the port's (admin) MAC yet: igb refuses
                // a VF that sets its own MAC over an administratively set
                // one, so the reload is the only way.
                let mac = port.spec.effective_mac();
                let f = if f.driver.as_deref() == Some(VFIO) || f.netdev.is_none() || f.mac != Some(mac) {
                    self.plumbing.bind_vf(r, None)?;
                    self.plumbing.vf_function(r)?
                } else {
                    f
                };
                let Some(netdev) = f.netdev.clone() else {
                    return Err(Error::invalid(
                        "vnic_type",
                        format!(
                            "{} needs {vf_name} on a netdev driver, but it has no netdev (driver {})",
                            port.spec.vnic_type.as_str(),
                            f.driver.as_deref().unwrap_or("none")
                        ),
                    ));
                };
                if !f.netdev_up {
                    self.plumbing.link_up(&netdev)?;
                }
                if port.spec.vnic_type == VnicType::Macvtap {
                    self.ensure_macvtap(port, &netdev)?;
                } else {
                    let want = self.switch_port(port, Some(netdev))?;
                    self.ensure_switch(&want)?;
                }
            }
            VnicType::Normal | VnicType::DirectPhysical => {}
        }
        Ok(())
    }

    fn ensure_macvtap(&self, port: &Port, lower: &str) -> Result<()> {
        let name = macvtap_name(&port.spec.id);
        let mac = port.spec.effective_mac();
        let good = |m: &Macvtap| m.lower.as_deref() == Some(lower) && m.passthrough && m.up && m.mac == Some(mac);
        match self.plumbing.macvtap(&name)? {
            Some(m) if good(&m) => return Ok(()),
            Some(_) => {
                self.plumbing.delete_link(&name)?;
                self.plumbing.create_macvtap(&name, lower, mac)?;
            }
            None => self.plumbing.create_macvtap(&name, lower, mac)?,
        }
        match self.plumbing.macvtap(&name)? {
            Some(m) if good(&m) => Ok(()),
            seen => Err(Error::invalid(
                "vnic_type",
                format!(
                    "macvtap {name} should be up in passthrough mode on {lower} with MAC {mac}, but the host shows {}",
                    seen.map_or_else(|| "no such link".to_string(), |m| format!("{m:?}"))
                ),
            )),
        }
    }

    fn switch_port(&self, port: &Port, uplink: Option<String>) -> Result<SwitchPort> {
        let net: Network = self.store.get(Kind::Network, &port.spec.network)?.ok_or_else(|| Error::NotFound {
            kind: "network",
            id: port.spec.network.clone(),
            field: Some("network"),
        })?;
        let vlan = match (net.segment, &uplink) {
            (Segment::Vlan { id }, None) => u16::try_from(id).ok(),
            _ => None,
        };
        Ok(SwitchPort {
            port_id: port.spec.id.clone(),
            tap: crate::xml::tap_name(&port.spec.id),
            mac: port.spec.effective_mac(),
            vlan,
            segment: net.segment,
            uplink,
        })
    }

    fn ensure_switch(&self, want: &SwitchPort) -> Result<()> {
        if self.switch.attached(&want.port_id)?.as_ref() != Some(want) {
            self.switch.attach(want)?;
            if self.switch.attached(&want.port_id)?.as_ref() != Some(want) {
                return Err(Error::invalid(
                    "id",
                    format!("switch port {} (TAP {}) is not attached after attaching it", want.port_id, want.tap),
                ));
            }
        }
        Ok(())
    }
}

/// True for vnic types that have a switch port.
pub fn uses_switch(v: VnicType) -> bool {
    matches!(v, VnicType::Normal | VnicType::VirtioForwarder)
}

/// The macvtap of a `macvtap` port: `mvt` + the first 11 characters of
/// the id that are letters, digits or `-` (like [`crate::xml::tap_name`]).
pub fn macvtap_name(port_id: &str) -> String {
    let s: String = port_id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(11).collect();
    format!("mvt{s}")
}

/// The VF settings a port needs: its MAC, the segment's VLAN, spoofchk on,
/// trust off, link state auto, `max_tx_rate` from the egress rate of its
/// QoS policy (kbit/s rounded up to Mbit/s; 0 = unlimited), no minimum.
pub fn vf_settings(port: &Port, qos: Option<&QosPolicy>) -> Result<VfSettings> {
    let vlan = Vlan::new(port.vlan, 0, VlanProto::Dot1Q)?;
    let max = qos.and_then(|q| q.egress).map_or(0, |e| e.rate_kbps.div_ceil(1000));
    Ok(VfSettings {
        mac: Some(port.spec.effective_mac()),
        vlan: Some(vlan),
        spoofchk: Some(true),
        trust: Some(false),
        min_tx_rate: Some(0),
        max_tx_rate: Some(u32::try_from(max).unwrap_or(u32::MAX)),
        link_state: Some(LinkState::Auto),
        query_rss: None,
    })
}

/// The first field where `got` differs from `want` (fields a driver does
/// not report are taken as matching).
pub fn mismatch(want: &VfSettings, got: &VfConfig) -> Option<&'static str> {
    if want.mac.is_some_and(|m| m != got.mac) {
        return Some("mac");
    }
    if want.vlan.is_some_and(|v| v != got.vlan) {
        return Some("vlan");
    }
    if want.max_tx_rate.is_some_and(|m| m != got.max_tx_rate) {
        return Some("max_tx_rate");
    }
    if want.min_tx_rate.is_some_and(|m| m != got.min_tx_rate) {
        return Some("min_tx_rate");
    }
    if want.spoofchk.is_some_and(|w| got.spoofchk.is_some_and(|g| g != w)) {
        return Some("spoofchk");
    }
    if want.trust.is_some_and(|w| got.trust.is_some_and(|g| g != w)) {
        return Some("trust");
    }
    if want.link_state.is_some_and(|w| got.link_state.is_some_and(|g| g != w)) {
        return Some("link_state");
    }
    None
}

fn active(reason: Option<String>) -> PortStatus {
    PortStatus { state: PortState::Active, reason }
}

fn error(reason: String) -> PortStatus {
    PortStatus { state: PortState::Error, reason: Some(reason) }
}

fn missing(port: &Port, what: &str) -> Error {
    Error::Store(format!("port {} ({}) has no {what} record", port.spec.id, port.spec.vnic_type.as_str()))
}

/// An error message as a status sentence (capitalised).
fn sentence(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => "Unknown error".into(),
    }
}
