//! Operations: what Sluice does to a NIC, built from the sysfs, rtnetlink
//! and devlink pieces. Every operation validates its input completely
//! before the first write to the host.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::claim::{ClaimRecord, ClaimStore, ClaimToken};
use crate::error::{Error, Result, errno_text};
use crate::model::{LinkState, MacAddr, VfConfig, VfSettings, VlanProto};
use crate::netlink::Ack;
use crate::netlink::devlink::{BYTES_PER_MBIT, Devlink, DevlinkPort, EswitchMode, PortRate};
use crate::netlink::rt::{Field, Rt, VfTable, vf_attrs};
use crate::quirks::{RefusalContext, meaning};
use crate::sysfs::{Pf, PfKind, SysfsRoot, VfDevice};

/// Progress reporting for slow steps (the CLI prints these on stderr).
pub type Progress<'a> = &'a mut dyn FnMut(&str);

/// The host: a sysfs root plus Sluice's state directory.
#[derive(Debug, Clone)]
pub struct Host {
    sysfs: SysfsRoot,
    state_dir: PathBuf,
    claims: ClaimStore,
}

/// How the VF list was obtained from the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct VfListSource {
    /// `IFLA_NUM_VF`.
    pub num_vf: Option<u32>,
    /// Entries decoded.
    pub parsed: u32,
    /// The nest length had wrapped (more than 64 KiB of VF data) and the
    /// entries were recovered past it; iproute2 shows a truncated list here.
    pub recovered_past_nest: bool,
    /// Declared nest length.
    pub nest_len: Option<u16>,
    /// Reply size in bytes.
    pub reply_bytes: usize,
    /// Fewer entries than `num_vf` could be read.
    pub truncated: bool,
}

impl From<&VfTable> for VfListSource {
    fn from(t: &VfTable) -> Self {
        VfListSource {
            num_vf: t.num_vf,
            parsed: u32::try_from(t.vfs.len()).unwrap_or(u32::MAX),
            recovered_past_nest: t.recovered_past_nest,
            nest_len: t.nest_len,
            reply_bytes: t.reply_bytes,
            truncated: t.truncated(),
        }
    }
}

/// Everything known about one VF.
#[derive(Debug, Clone, Serialize)]
pub struct VfDetail {
    /// sysfs facts.
    #[serde(flatten)]
    pub dev: VfDevice,
    /// Configuration from the PF (None if it could not be read).
    pub config: Option<VfConfig>,
    /// Claim record.
    pub claim: ClaimRecord,
    /// devlink port index (switchdev).
    pub devlink_port: Option<u32>,
    /// devlink port function rate (switchdev), in Mbps.
    pub devlink_rate_mbps: Option<(u64, u64)>,
}

/// A PF with its VFs.
#[derive(Debug, Clone, Serialize)]
pub struct PfDetail {
    /// sysfs facts of the PF.
    pub pf: Pf,
    /// Eswitch mode (None when the device has no devlink eswitch, e.g. igb).
    pub eswitch: Option<EswitchMode>,
    /// Why the eswitch mode is unknown.
    pub eswitch_error: Option<String>,
    /// How the VF list was read.
    pub vf_list: Option<VfListSource>,
    /// Why the VF configuration could not be read.
    pub netlink_error: Option<String>,
    /// The VFs.
    pub vfs: Vec<VfDetail>,
}

/// Options for [`Host::set_numvfs`].
#[derive(Debug, Clone)]
pub struct NumVfsOptions {
    /// Allow a change that removes existing VFs.
    pub force: bool,
    /// Set `sriov_drivers_autoprobe` before creating VFs.
    pub autoprobe: Option<bool>,
    /// Bound for waiting on VF functions and netdevs.
    pub timeout: Duration,
    /// Re-apply the VF settings saved before the VFs were removed.
    pub reapply: bool,
}

/// What [`Host::set_numvfs`] did.
#[derive(Debug, Clone, Serialize)]
pub struct NumVfsReport {
    /// PF name.
    pub pf: String,
    /// VF count before.
    pub before: u32,
    /// VF count after.
    pub after: u32,
    /// VFs whose saved settings were re-applied.
    pub reapplied: u32,
    /// Where the saved settings are.
    pub saved_settings: Option<PathBuf>,
    /// Seconds spent waiting for VFs to appear.
    pub wait_secs: f64,
    /// Eswitch mode restored to switchdev after re-creation.
    pub switchdev_restored: bool,
}

/// What [`Host::bind_vf`] did.
#[derive(Debug, Clone, Serialize)]
pub struct BindReport {
    /// VF PCI address.
    pub vf: String,
    /// Driver before.
    pub before: Option<String>,
    /// Driver after (verified through the `driver` link).
    pub after: Option<String>,
    /// IOMMU group.
    pub iommu_group: Option<u32>,
}

const ESWITCH_UNKNOWN: Option<EswitchMode> = None;

impl Host {
    /// A host with sysfs at `sysfs` and state under `state_dir`.
    pub fn new(sysfs: SysfsRoot, state_dir: impl Into<PathBuf>) -> Self {
        let state_dir = state_dir.into();
        Host { sysfs, claims: ClaimStore::new(state_dir.join("claims")), state_dir }
    }

    /// The sysfs root.
    pub fn sysfs(&self) -> &SysfsRoot {
        &self.sysfs
    }

    /// The claim records.
    pub fn claims(&self) -> &ClaimStore {
        &self.claims
    }

    /// Finds a PF by netdev, PCI address or netdevsim name.
    pub fn pf(&self, key: &str) -> Result<Pf> {
        self.sysfs.find_pf(key)
    }

    /// All PFs.
    pub fn pfs(&self) -> Result<Vec<Pf>> {
        self.sysfs.pfs()
    }

    fn check_index(pf: &Pf, vf: u32) -> Result<()> {
        if vf >= pf.numvfs {
            return Err(Error::NoSuchVf { pf: pf.name.clone(), index: vf, numvfs: pf.numvfs });
        }
        Ok(())
    }

    fn netdev(pf: &Pf) -> Result<&str> {
        pf.netdev.as_deref().ok_or_else(|| {
            Error::Unsupported(format!(
                "{} has no netdev (is the PF bound to its network driver?); VF settings go through the PF netdev",
                pf.name
            ))
        })
    }

    /// The eswitch mode of a PF (`None` if it has no devlink eswitch).
    pub fn eswitch(&self, pf: &Pf) -> Result<EswitchMode> {
        let (bus, dev) = pf.devlink_handle();
        Devlink::open()?.eswitch_mode(&bus, &dev)
    }

    /// Sets the eswitch mode.
    pub fn set_eswitch(&self, pf: &Pf, mode: EswitchMode) -> Result<()> {
        let (bus, dev) = pf.devlink_handle();
        let mut dl = Devlink::open()?;
        dl.set_eswitch_mode(&bus, &dev, mode)?;
        let now = dl.eswitch_mode(&bus, &dev)?;
        if now != mode {
            return Err(Error::Readback {
                pf: pf.name.clone(),
                vf: 0,
                field: "eswitch mode",
                want: mode.to_string(),
                got: now.to_string(),
            });
        }
        Ok(())
    }

    /// The VF table of a PF from rtnetlink.
    pub fn vf_table(&self, pf: &Pf) -> Result<VfTable> {
        Rt::open()?.vf_table(Self::netdev(pf)?)
    }

    /// Raw `RTM_GETLINK` reply bytes (for capturing test fixtures).
    pub fn vf_table_raw(&self, pf: &Pf, with_stats: bool) -> Result<Vec<u8>> {
        Rt::open()?.getlink_raw(Self::netdev(pf)?, with_stats)
    }

    /// Everything about a PF and its VFs. Parts that cannot be read (no
    /// netlink on a synthetic tree, no devlink on igb) are reported, not
    /// fatal.
    pub fn detail(&self, pf: &Pf) -> Result<PfDetail> {
        let devs = self.sysfs.vfs(pf)?;
        let (eswitch, eswitch_error) = match self.eswitch(pf) {
            Ok(m) => (Some(m), None),
            Err(e) => (ESWITCH_UNKNOWN, Some(e.to_string())),
        };
        let (table, netlink_error) = match self.vf_table(pf) {
            Ok(t) => (Some(t), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let mut ports: BTreeMap<u32, DevlinkPort> = BTreeMap::new();
        let mut rates: BTreeMap<u32, PortRate> = BTreeMap::new();
        if eswitch == Some(EswitchMode::Switchdev) {
            let (bus, dev) = pf.devlink_handle();
            if let Ok(mut dl) = Devlink::open() {
                for p in dl.ports(&bus, &dev).unwrap_or_default() {
                    if let Some(vf) = p.vf_number.filter(|_| p.flavour == "pcivf") {
                        ports.insert(u32::from(vf), p);
                    }
                }
                for r in dl.rates(&bus, &dev).unwrap_or_default() {
                    if let Some(i) = r.port_index {
                        rates.insert(i, r);
                    }
                }
            }
        }
        let configs: BTreeMap<u32, VfConfig> =
            table.as_ref().map(|t| t.vfs.iter().map(|c| (c.index, c.clone())).collect()).unwrap_or_default();
        let mut vfs = Vec::with_capacity(devs.len());
        for mut dev in devs {
            let port = ports.get(&dev.index);
            if let Some(n) = port.and_then(|p| p.netdev.clone()) {
                dev.representor = Some(n);
            }
            let claim = self.claims.read(&pf.bus_id, dev.index).unwrap_or_default();
            vfs.push(VfDetail {
                config: configs.get(&dev.index).cloned(),
                claim,
                devlink_port: port.map(|p| p.index),
                devlink_rate_mbps: port
                    .and_then(|p| rates.get(&p.index))
                    .map(|r| (r.tx_share / BYTES_PER_MBIT, r.tx_max / BYTES_PER_MBIT)),
                dev,
            });
        }
        Ok(PfDetail {
            pf: pf.clone(),
            eswitch,
            eswitch_error,
            vf_list: table.as_ref().map(VfListSource::from),
            netlink_error,
            vfs,
        })
    }

    /// Validates VF settings for `pf` without touching the host (index,
    /// duplicates; rates need the current config and are checked in
    /// [`Host::configure`]).
    pub fn validate(pf: &Pf, changes: &[(u32, VfSettings)]) -> Result<()> {
        let mut seen = std::collections::BTreeSet::new();
        for (vf, _) in changes {
            Self::check_index(pf, *vf)?;
            if !seen.insert(*vf) {
                return Err(Error::invalid("vf", format!("index {vf} is given more than once")));
            }
        }
        Ok(())
    }

    /// Applies VF settings, then reads them back and verifies them. Input is
    /// validated first (indexes, ranges, rates against link speed and the
    /// current min/max). One SETLINK per VF, many per datagram. A VF the
    /// driver refuses is rolled back to its previous values and reported
    /// with the field and the refusal's meaning; other VFs keep their
    /// (verified) new settings. In switchdev mode rates go through devlink.
    /// Returns the read-back configuration of the VFs changed.
    pub fn configure(&self, pf: &Pf, changes: &[(u32, VfSettings)]) -> Result<Vec<VfConfig>> {
        Self::validate(pf, changes)?;
        let netdev = Self::netdev(pf)?;
        let mut rt = Rt::open()?;
        let table = rt.vf_table(netdev)?;
        let mut current: BTreeMap<u32, VfConfig> = table.vfs.iter().map(|c| (c.index, c.clone())).collect();
        let wants_rates = changes.iter().any(|(_, s)| s.min_tx_rate.is_some() || s.max_tx_rate.is_some());
        let eswitch = if wants_rates { self.eswitch(pf).ok() } else { None };
        let switchdev = eswitch == Some(EswitchMode::Switchdev);
        if switchdev {
            // In switchdev mode the VF rates live in devlink; compare and
            // merge against those, not the PF's VF table.
            for (vf, (share, max)) in self.devlink_vf_rates(pf)? {
                if let Some(c) = current.get_mut(&vf) {
                    c.min_tx_rate = share;
                    c.max_tx_rate = max;
                }
            }
        }
        for (vf, s) in changes {
            if !current.contains_key(vf) {
                return Err(Error::TruncatedVfList {
                    pf: pf.name.clone(),
                    num_vf: table.num_vf.unwrap_or(0),
                    parsed: u32::try_from(table.vfs.len()).unwrap_or(u32::MAX),
                });
            }
            s.check_rates(current.get(vf), pf.link.speed_mbps)?;
        }

        // What actually changes, per VF.
        let mut diffs: Vec<(u32, VfSettings)> = Vec::new();
        let mut devlink_rates: Vec<(u32, u32, u32)> = Vec::new();
        for (vf, s) in changes {
            // Indexing cannot panic: every VF in `changes` was checked to be
            // in `current` above (else TruncatedVfList).
            let cur = &current[vf];
            let mut d = s.diff(cur);
            if switchdev && let (Some(min), Some(max)) = (d.min_tx_rate.take(), d.max_tx_rate.take()) {
                devlink_rates.push((*vf, min, max));
            }
            if !d.is_empty() {
                diffs.push((*vf, d));
            }
        }

        let acks = rt.set_vfs(table.ifindex, &diffs)?;
        let mut failures: Vec<Error> = Vec::new();
        let mut failed: Vec<u32> = Vec::new();
        for ((vf, d), ack) in diffs.iter().zip(acks) {
            if ack.errno != 0 {
                failed.push(*vf);
                failures.push(self.diagnose_and_rollback(
                    &mut rt,
                    pf,
                    table.ifindex,
                    *vf,
                    d,
                    &current[vf],
                    &ack,
                    eswitch,
                ));
            }
        }
        if !devlink_rates.is_empty() {
            self.devlink_rates(pf, &devlink_rates)?;
        }

        // Read back and verify the VFs that were accepted.
        let after = rt.vf_table(netdev)?;
        let after_map: BTreeMap<u32, &VfConfig> = after.vfs.iter().map(|c| (c.index, c)).collect();
        let mut out = Vec::new();
        for (vf, d) in &diffs {
            if failed.contains(vf) {
                continue;
            }
            let got = after_map.get(vf).ok_or_else(|| Error::TruncatedVfList {
                pf: pf.name.clone(),
                num_vf: after.num_vf.unwrap_or(0),
                parsed: u32::try_from(after.vfs.len()).unwrap_or(u32::MAX),
            })?;
            if let Err(e) = verify(pf, *vf, d, got) {
                // The driver accepted a value it does not keep (netdevsim
                // stores rates as u16): restore the VF and report.
                self.restore(&mut rt, table.ifindex, *vf, d, &current[vf], None);
                return Err(match e {
                    Error::Readback { pf, vf, field, want, got } => Error::Readback {
                        pf,
                        vf,
                        field,
                        want,
                        got: format!(
                            "{got} (the driver does not keep this value; the VF's previous settings were restored)"
                        ),
                    },
                    other => other,
                });
            }
        }
        for (vf, _) in changes {
            if let Some(c) = after_map.get(vf) {
                out.push((*c).clone());
            }
        }
        match failures.len() {
            0 => Ok(out),
            1 => Err(failures.remove(0)),
            n => {
                let first = failures.remove(0);
                Err(Error::Unsupported(format!(
                    "{n} VFs were refused and rolled back (VFs {failed:?}); the first: {first}"
                )))
            }
        }
    }

    /// VF index -> (tx_share, tx_max) in Mbps from devlink.
    fn devlink_vf_rates(&self, pf: &Pf) -> Result<BTreeMap<u32, (u32, u32)>> {
        let (bus, dev) = pf.devlink_handle();
        let mut dl = Devlink::open()?;
        let rates: BTreeMap<u32, PortRate> =
            dl.rates(&bus, &dev)?.into_iter().filter_map(|r| r.port_index.map(|i| (i, r))).collect();
        let mbps = |b: u64| u32::try_from(b / BYTES_PER_MBIT).unwrap_or(u32::MAX);
        Ok(dl
            .ports(&bus, &dev)?
            .into_iter()
            .filter(|p| p.flavour == "pcivf")
            .filter_map(|p| {
                let vf = u32::from(p.vf_number?);
                let r = rates.get(&p.index).cloned().unwrap_or_default();
                Some((vf, (mbps(r.tx_share), mbps(r.tx_max))))
            })
            .collect())
    }

    fn devlink_rates(&self, pf: &Pf, rates: &[(u32, u32, u32)]) -> Result<()> {
        let (bus, dev) = pf.devlink_handle();
        let mut dl = Devlink::open()?;
        let ports: BTreeMap<u32, u32> = dl
            .ports(&bus, &dev)?
            .into_iter()
            .filter(|p| p.flavour == "pcivf")
            .filter_map(|p| p.vf_number.map(|v| (u32::from(v), p.index)))
            .collect();
        for (vf, min, max) in rates {
            let port = *ports.get(vf).ok_or_else(|| {
                Error::Unsupported(format!(
                    "{} is in switchdev mode but VF {vf} has no devlink port; cannot set its rate",
                    pf.name
                ))
            })?;
            dl.set_port_rate(
                &bus,
                &dev,
                port,
                Some(u64::from(*min) * BYTES_PER_MBIT),
                Some(u64::from(*max) * BYTES_PER_MBIT),
            )?;
        }
        let now: BTreeMap<u32, PortRate> =
            dl.rates(&bus, &dev)?.into_iter().filter_map(|r| r.port_index.map(|i| (i, r))).collect();
        for (vf, min, max) in rates {
            // Cannot panic: the loop above returned an error for a VF
            // without a port.
            let port = ports[vf];
            let r = now.get(&port).cloned().unwrap_or_default();
            let got = (r.tx_share / BYTES_PER_MBIT, r.tx_max / BYTES_PER_MBIT);
            if got != (u64::from(*min), u64::from(*max)) {
                return Err(Error::Readback {
                    pf: pf.name.clone(),
                    vf: *vf,
                    field: "devlink rate (tx_share, tx_max) Mbps",
                    want: format!("({min}, {max})"),
                    got: format!("{got:?}"),
                });
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn diagnose_and_rollback(
        &self,
        rt: &mut Rt,
        pf: &Pf,
        ifindex: u32,
        vf: u32,
        d: &VfSettings,
        before: &VfConfig,
        batch_ack: &Ack,
        eswitch: Option<EswitchMode>,
    ) -> Error {
        // Which field? Send them one at a time, in kernel order.
        let mut culprit: Option<(Field, Ack)> = None;
        for (field, attr) in vf_attrs(vf, d) {
            match rt.set_vf_attr(ifindex, attr) {
                Ok(a) if a.errno != 0 => {
                    culprit = Some((field, a));
                    break;
                }
                Ok(_) => {}
                Err(e) => return e,
            }
        }
        // Roll back every field this call touched.
        self.restore(rt, ifindex, vf, d, before, culprit.as_ref().map(|(f, _)| *f));
        let (field, ack) = culprit.unwrap_or((Field::Mac, batch_ack.clone()));
        let cx = RefusalContext {
            driver: pf.driver.as_deref(),
            eswitch,
            carrier: pf.link.carrier,
            speed_mbps: pf.link.speed_mbps,
            min_tx_rate: d.min_tx_rate.unwrap_or(0),
            vlan_proto_ad: d.vlan.is_some_and(|v| v.proto == VlanProto::Dot1Ad),
        };
        Error::DriverRefused {
            pf: pf.name.clone(),
            vf,
            field: match field {
                Field::Rate if d.min_tx_rate.unwrap_or(0) > 0 && pf.driver.as_deref() == Some("igb") => "min_tx_rate",
                Field::Rate => "max_tx_rate",
                f => f.name(),
            },
            meaning: format!("{}; the VF's previous settings were restored", meaning(field, ack.errno, &cx)),
            errno_text: errno_text(ack.errno),
            extack: ack.extack_suffix("; "),
        }
    }

    /// Sends the previous values of the fields in `d` (except `skip`), one
    /// attribute at a time, ignoring errors: best-effort rollback.
    fn restore(&self, rt: &mut Rt, ifindex: u32, vf: u32, d: &VfSettings, before: &VfConfig, skip: Option<Field>) {
        let prev = before.as_settings();
        let restore = VfSettings {
            mac: d.mac.and(prev.mac),
            vlan: d.vlan.and(prev.vlan),
            spoofchk: d.spoofchk.and(prev.spoofchk),
            trust: d.trust.and(prev.trust),
            min_tx_rate: d.min_tx_rate.and(prev.min_tx_rate),
            max_tx_rate: d.max_tx_rate.and(prev.max_tx_rate),
            link_state: d.link_state.and(prev.link_state),
            query_rss: d.query_rss.and(prev.query_rss),
        };
        for (field, attr) in vf_attrs(vf, &restore) {
            if skip == Some(field) {
                continue;
            }
            let _ = rt.set_vf_attr(ifindex, attr);
        }
    }

    /// Resets a VF to the clean state (`mac`, VLAN 0, spoofchk on, trust
    /// off, rates 0, link state auto), guarded by the claim record: with a
    /// token, only if the record still names it; without one, only if the
    /// VF is free, unless `force`. The VF is freed afterwards.
    pub fn reset_vf(
        &self,
        pf: &Pf,
        vf: u32,
        token: Option<&ClaimToken>,
        mac: MacAddr,
        force: bool,
    ) -> Result<VfConfig> {
        Self::check_index(pf, vf)?;
        self.claims.release_with(&pf.bus_id, vf, token, force, || {
            let mut out = self.configure(pf, &[(vf, VfSettings::clean(mac))])?;
            out.pop().ok_or_else(|| Error::TruncatedVfList { pf: pf.name.clone(), num_vf: pf.numvfs, parsed: 0 })
        })
    }

    fn in_use(&self, pf: &Pf) -> Result<String> {
        let mut parts = Vec::new();
        for v in self.sysfs.vfs(pf)? {
            let rec = self.claims.read(&pf.bus_id, v.index).unwrap_or_default();
            if let Some(o) = rec.owner {
                parts.push(format!("VF {} claimed by {o}", v.index));
            }
            if let Some(d) = v.driver.as_deref().filter(|d| matches!(*d, "vfio-pci" | "pci-stub")) {
                parts.push(format!("VF {} bound to {d}", v.index));
            }
        }
        Ok(if parts.is_empty() { "none claimed or bound to vfio-pci".into() } else { parts.join(", ") })
    }

    /// Changes the VF count safely: validates against `totalvfs`, refuses
    /// to destroy existing VFs unless forced, saves their settings, goes
    /// N → 0 → M (the kernel refuses N → M), waits with a bound for the VF
    /// PCI functions and netdevs, and re-applies the saved settings.
    pub fn set_numvfs(&self, pf: &Pf, n: u32, opts: &NumVfsOptions, progress: Progress<'_>) -> Result<NumVfsReport> {
        if let Some(total) = pf.totalvfs
            && n > total
        {
            let src = match pf.kind {
                PfKind::Pci => "sriov_totalvfs",
                PfKind::Netdevsim => "netdevsim max_vfs",
            };
            return Err(Error::invalid("numvfs", format!("must be 0..={total} on {} ({src}), got {n}", pf.name)));
        }
        let before = pf.numvfs;
        let mut report = NumVfsReport {
            pf: pf.name.clone(),
            before,
            after: before,
            reapplied: 0,
            saved_settings: None,
            wait_secs: 0.0,
            switchdev_restored: false,
        };
        if n == before {
            if let Some(a) = opts.autoprobe {
                self.sysfs.write_autoprobe(pf, a)?;
            }
            return Ok(report);
        }
        if before > 0 && !opts.force {
            return Err(Error::DisruptiveChange {
                pf: pf.name.clone(),
                current: before,
                requested: n,
                in_use: self.in_use(pf)?,
            });
        }
        // Save the settings that 0 -> N wipes.
        let mut saved: Vec<VfConfig> = Vec::new();
        if before > 0 && opts.reapply && pf.netdev.is_some() {
            // detail() carries devlink rates in switchdev mode, where the
            // rtnetlink rate fields are not used.
            let d = self.detail(pf)?;
            if let Some(e) = d.netlink_error {
                return Err(Error::Unsupported(format!(
                    "cannot save the VF settings of {} before re-creating its VFs ({e}); pass --no-reapply to go on without them",
                    pf.name
                )));
            }
            saved = d
                .vfs
                .iter()
                .filter_map(|v| {
                    let mut c = v.config.clone()?;
                    if let Some((share, max)) = v.devlink_rate_mbps {
                        c.min_tx_rate = u32::try_from(share).unwrap_or(u32::MAX);
                        c.max_tx_rate = u32::try_from(max).unwrap_or(u32::MAX);
                    }
                    Some(c)
                })
                .collect();
            let dir = self.state_dir.join("settings");
            let p = dir.join(format!("{}.json", pf.bus_id));
            std::fs::create_dir_all(&dir).map_err(|source| Error::State { path: dir.clone(), source })?;
            let body = serde_json::to_vec_pretty(&saved)
                .map_err(|e| Error::State { path: p.clone(), source: std::io::Error::other(e) })?;
            std::fs::write(&p, body).map_err(|source| Error::State { path: p.clone(), source })?;
            report.saved_settings = Some(p);
        }
        let was_switchdev = pf.kind == PfKind::Netdevsim && self.eswitch(pf).ok() == Some(EswitchMode::Switchdev);
        if let Some(a) = opts.autoprobe
            && pf.drivers_autoprobe.is_some()
        {
            self.sysfs.write_autoprobe(pf, a)?;
        }
        if before > 0 {
            progress(&format!("{}: removing {before} VFs", pf.name));
            self.sysfs.write_numvfs(pf, 0)?;
            self.wait_for(pf, 0, opts.timeout, progress)?;
        }
        if was_switchdev {
            // netdevsim drops to legacy when its VFs go (lab §8.4); creating
            // the VFs in switchdev is also much faster than switching after.
            if self.eswitch(pf).ok() != Some(EswitchMode::Switchdev) {
                self.set_eswitch(pf, EswitchMode::Switchdev)?;
                report.switchdev_restored = true;
            }
        }
        let start = Instant::now();
        if n > 0 {
            progress(&format!("{}: creating {n} VFs", pf.name));
            self.sysfs.write_numvfs(pf, n)?;
            self.wait_for(pf, n, opts.timeout, progress)?;
        }
        report.wait_secs = start.elapsed().as_secs_f64();
        let pf = self.sysfs.refresh(pf)?;
        report.after = pf.numvfs;
        let reapply: Vec<(u32, VfSettings)> =
            saved.iter().filter(|c| c.index < n).map(|c| (c.index, c.as_settings())).collect();
        if !reapply.is_empty() {
            // igb drops carrier while it re-creates VFs and refuses
            // max_tx_rate without carrier (lab pitfall 6): wait for it.
            let pf = self.wait_carrier(&pf, opts.timeout, progress)?;
            progress(&format!("{}: re-applying saved settings to {} VFs", pf.name, reapply.len()));
            self.configure(&pf, &reapply)?;
            report.reapplied = u32::try_from(reapply.len()).unwrap_or(u32::MAX);
        }
        Ok(report)
    }

    /// Waits (bounded) until an up PF has carrier again; returns the
    /// refreshed PF. A PF that is administratively down is not waited for.
    fn wait_carrier(&self, pf: &Pf, timeout: Duration, progress: Progress<'_>) -> Result<Pf> {
        let start = Instant::now();
        let mut said = false;
        loop {
            let p = self.sysfs.refresh(pf)?;
            let admin_down = p.link.operstate.as_deref() == Some("down") && p.link.carrier.is_none();
            if p.link.carrier != Some(false) || admin_down || p.kind == PfKind::Netdevsim {
                return Ok(p);
            }
            if !said {
                progress(&format!("{}: waiting for the PF's carrier", p.name));
                said = true;
            }
            if start.elapsed() > timeout {
                return Err(Error::Timeout {
                    pf: p.name.clone(),
                    what: "the PF's carrier (VF rates need it)".into(),
                    secs: timeout.as_secs(),
                });
            }
            sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `n` VFs exist: PCI functions (`virtfn*` links), a driver
    /// on each when autoprobe is on, and a netdev for each VF bound to a
    /// netdev driver; for netdevsim, `IFLA_NUM_VF`.
    fn wait_for(&self, pf: &Pf, n: u32, timeout: Duration, progress: Progress<'_>) -> Result<()> {
        let start = Instant::now();
        let deadline = start + timeout;
        let mut last = String::new();
        let timeout_err = |what: String| Error::Timeout { pf: pf.name.clone(), what, secs: timeout.as_secs() };
        let report = |s: String, last: &mut String, progress: Progress<'_>| {
            if *last != s {
                progress(&format!("{}: {s} ({:.1} s)", pf.name, start.elapsed().as_secs_f64()));
                *last = s;
            }
        };
        match pf.kind {
            PfKind::Netdevsim => loop {
                let p = self.sysfs.refresh(pf)?;
                let num = match Self::netdev(&p) {
                    Ok(_) => self.vf_table(&p).ok().and_then(|t| t.num_vf).unwrap_or(0),
                    Err(_) => p.numvfs,
                };
                if num == n {
                    return Ok(());
                }
                report(format!("{num}/{n} VFs"), &mut last, progress);
                if Instant::now() > deadline {
                    return Err(timeout_err(format!("{n} VFs")));
                }
                sleep(Duration::from_millis(50));
            },
            PfKind::Pci => {
                loop {
                    let have = self.sysfs.virtfn_count(pf)?;
                    if have == n {
                        break;
                    }
                    report(format!("{have}/{n} VF PCI functions"), &mut last, progress);
                    if Instant::now() > deadline {
                        return Err(timeout_err(format!("{n} VF PCI functions (have {have})")));
                    }
                    sleep(Duration::from_millis(50));
                }
                if n == 0 {
                    return Ok(());
                }
                let p = self.sysfs.refresh(pf)?;
                let autoprobe = p.drivers_autoprobe.unwrap_or(true);
                // Drivers: wait while the bound count still grows; a VF with
                // no host driver available stays unbound.
                let mut bound_last = u32::MAX;
                let mut stable_since = Instant::now();
                loop {
                    let vfs = self.sysfs.vfs(&p)?;
                    let bound = vfs.iter().filter(|v| v.driver.is_some()).count() as u32;
                    let netdev_drivers: Vec<&VfDevice> = vfs
                        .iter()
                        .filter(|v| v.driver.as_deref().is_some_and(|d| !matches!(d, "vfio-pci" | "pci-stub")))
                        .collect();
                    let with_netdev = netdev_drivers.iter().filter(|v| v.netdev.is_some()).count() as u32;
                    let want_netdevs = netdev_drivers.len() as u32;
                    report(
                        format!(
                            "{n}/{n} VF PCI functions, {bound}/{n} bound to a driver, {with_netdev}/{want_netdevs} netdevs"
                        ),
                        &mut last,
                        progress,
                    );
                    let drivers_done = !autoprobe || bound == n || stable_since.elapsed() > Duration::from_secs(2);
                    if drivers_done && with_netdev == want_netdevs {
                        return Ok(());
                    }
                    if bound != bound_last {
                        bound_last = bound;
                        stable_since = Instant::now();
                    }
                    if Instant::now() > deadline {
                        return Err(timeout_err(format!(
                            "VF drivers and netdevs ({bound}/{n} bound, {with_netdev}/{want_netdevs} netdevs)"
                        )));
                    }
                    sleep(Duration::from_millis(50));
                }
            }
        }
    }

    /// Binds VF `vf` of `pf` to `driver` (or back to its default driver with
    /// `None`) and verifies the `driver` link. vfio-pci without an IOMMU
    /// "succeeds" while leaving the VF unbound: that is detected, reported,
    /// and the VF is returned to its default driver.
    pub fn bind_vf(&self, pf: &Pf, vf: u32, driver: Option<&str>) -> Result<BindReport> {
        if pf.kind != PfKind::Pci {
            return Err(Error::Unsupported(format!(
                "{} is a netdevsim device: its VFs have no PCI functions to bind",
                pf.name
            )));
        }
        Self::check_index(pf, vf)?;
        if let Some(d) = driver {
            if d.is_empty() || d.contains('/') {
                return Err(Error::invalid("driver", format!("must be a PCI driver name like vfio-pci, got {d:?}")));
            }
            if !self.sysfs.pci_driver_loaded(d) {
                return Err(Error::invalid(
                    "driver",
                    format!(
                        "{d} is not registered with the PCI bus (no /sys/bus/pci/drivers/{d}); load its module first"
                    ),
                ));
            }
        }
        let dev = self
            .sysfs
            .vfs(pf)?
            .into_iter()
            .nth(vf as usize)
            .filter(|d| d.pci_addr.is_some())
            .ok_or_else(|| Error::Unsupported(format!("VF {vf} of {} has no virtfn{vf} link yet", pf.name)))?;
        let addr = dev.pci_addr.clone().unwrap_or_default();
        let mut after = self.sysfs.rebind(&addr, driver)?;
        let start = Instant::now();
        while driver.is_some() && after.as_deref() != driver && start.elapsed() < Duration::from_secs(2) {
            sleep(Duration::from_millis(50));
            after = crate::sysfs::link_name(&self.sysfs.pci_device_dir(&addr).join("driver"))?;
        }
        if let Some(d) = driver
            && after.as_deref() != Some(d)
        {
            let hint = if d == "vfio-pci" && dev.iommu_group.is_none() {
                " - the VF has no IOMMU group, and vfio-pci cannot bind a device without an IOMMU (enable VT-d/AMD-Vi and boot with intel_iommu=on or amd_iommu=on)"
            } else {
                " - the driver's probe failed; see the kernel log"
            };
            // Do not leave the VF driverless.
            let back = self.sysfs.rebind(&addr, None).ok().flatten();
            return Err(Error::BindNotEffective {
                vf: addr,
                driver: d.to_string(),
                actual: after.map(|a| format!("bound to {a}")).unwrap_or_else(|| "unbound".into()),
                hint: format!("{hint}; it was returned to {}", back.unwrap_or_else(|| "no driver".into())),
            });
        }
        Ok(BindReport { vf: addr, before: dev.driver, after, iommu_group: dev.iommu_group })
    }
}

/// Compares read-back values with what was set.
fn verify(pf: &Pf, vf: u32, d: &VfSettings, got: &VfConfig) -> Result<()> {
    let err =
        |field: &'static str, want: String, got: String| Error::Readback { pf: pf.name.clone(), vf, field, want, got };
    if let Some(m) = d.mac
        && m != got.mac
    {
        return Err(err("mac", m.to_string(), got.mac.to_string()));
    }
    if let Some(v) = d.vlan
        && v != got.vlan
    {
        return Err(err(
            "vlan",
            format!("{} qos {} {}", v.id, v.qos, v.proto),
            format!("{} qos {} {}", got.vlan.id, got.vlan.qos, got.vlan.proto),
        ));
    }
    if let Some(m) = d.max_tx_rate
        && m != got.max_tx_rate
    {
        return Err(err("max_tx_rate", m.to_string(), got.max_tx_rate.to_string()));
    }
    if let Some(m) = d.min_tx_rate
        && m != got.min_tx_rate
    {
        return Err(err("min_tx_rate", m.to_string(), got.min_tx_rate.to_string()));
    }
    let b =
        |o: Option<bool>| o.map(|b| if b { "on" } else { "off" }.to_string()).unwrap_or_else(|| "unreported".into());
    for (field, want, have) in [
        ("spoofchk", d.spoofchk, got.spoofchk),
        ("trust", d.trust, got.trust),
        ("query_rss", d.query_rss, got.query_rss),
    ] {
        if let Some(w) = want
            && have.is_some()
            && have != Some(w)
        {
            return Err(err(field, b(Some(w)), b(have)));
        }
    }
    if let Some(l) = d.link_state
        && got.link_state.is_some_and(|g| g != l)
    {
        return Err(err("link_state", l.to_string(), got.link_state.unwrap_or(LinkState::Auto).to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::Path;

    use super::*;
    use crate::sysfs::testtree::Tree;

    fn host(t: &Tree) -> Host {
        Host::new(SysfsRoot::new(t.root()), t.root().join("state"))
    }

    fn opts(timeout_ms: u64) -> NumVfsOptions {
        NumVfsOptions { force: false, autoprobe: None, timeout: Duration::from_millis(timeout_ms), reapply: true }
    }

    /// What the kernel does after `sriov_numvfs` is written: VF functions
    /// appear (here after a delay), a driver binds, a netdev appears.
    fn spawn_vfs(root: &Path, n: u32, delay_ms: u64) -> std::thread::JoinHandle<()> {
        let root = root.to_path_buf();
        std::thread::spawn(move || {
            let pf = root.join("devices/pci0000:00/0000:01:00.0");
            for i in 0..n {
                std::thread::sleep(Duration::from_millis(delay_ms));
                let vf = root.join(format!("devices/pci0000:00/0000:01:10.{}", i * 2));
                fs::create_dir_all(vf.join(format!("net/eth{}", 20 + i))).unwrap();
                symlink(root.join("bus/pci/drivers/igbvf"), vf.join("driver")).unwrap();
                symlink(&vf, root.join(format!("bus/pci/devices/0000:01:10.{}", i * 2))).unwrap();
                symlink(&vf, pf.join(format!("virtfn{i}"))).unwrap();
            }
        })
    }

    #[test]
    fn numvfs_waits_for_functions_and_netdevs_with_progress() {
        let t = Tree::new();
        t.igb_pf("0000:01:00.0", "eth0", 7, 0);
        let h = host(&t);
        let pf = h.pf("eth0").unwrap();
        let worker = spawn_vfs(t.root(), 2, 150);
        let mut lines = Vec::new();
        let r = h.set_numvfs(&pf, 2, &opts(5_000), &mut |s: &str| lines.push(s.to_string())).unwrap();
        worker.join().unwrap();
        assert_eq!((r.before, r.after, r.reapplied), (0, 2, 0));
        assert!(r.wait_secs >= 0.2, "returned before the VFs existed: {r:?}");
        let written = fs::read_to_string(pf.dev_dir.join("sriov_numvfs")).unwrap();
        assert_eq!(written, "2");
        assert!(lines.iter().any(|l| l.contains("0/2 VF PCI functions")), "{lines:?}");
        assert!(lines.iter().any(|l| l.contains("2/2 netdevs")), "{lines:?}");
    }

    #[test]
    fn numvfs_wait_is_bounded() {
        let t = Tree::new();
        t.igb_pf("0000:01:00.0", "eth0", 7, 0);
        let h = host(&t);
        let pf = h.pf("eth0").unwrap();
        let start = Instant::now();
        let e = h.set_numvfs(&pf, 3, &opts(300), &mut |_: &str| {}).unwrap_err().to_string();
        assert!(start.elapsed() < Duration::from_secs(3));
        assert!(e.contains("timed out after 0 s waiting for 3 VF PCI functions (have 0) on eth0"), "{e}");
    }

    #[test]
    fn disruptive_change_names_what_is_in_use_and_writes_nothing() {
        let t = Tree::new();
        t.igb_pf("0000:01:00.0", "eth0", 7, 2);
        t.driver("vfio-pci");
        t.link("devices/pci0000:00/0000:01:10.2/driver", t.root().join("bus/pci/drivers/vfio-pci"));
        let h = host(&t);
        h.claims().claim("0000:01:00.0", 0, "vm-a").unwrap();
        let pf = h.pf("eth0").unwrap();
        let e = h.set_numvfs(&pf, 4, &opts(100), &mut |_: &str| {}).unwrap_err().to_string();
        assert!(e.contains("VF 0 claimed by vm-a") && e.contains("VF 1 bound to vfio-pci"), "{e}");
        assert!(e.contains("--force"), "{e}");
        assert_eq!(fs::read_to_string(pf.dev_dir.join("sriov_numvfs")).unwrap(), "2\n");
        let e = h.set_numvfs(&pf, 8, &opts(100), &mut |_: &str| {}).unwrap_err().to_string();
        assert_eq!(e, "numvfs must be 0..=7 on eth0 (sriov_totalvfs), got 8");
    }

    #[test]
    fn bind_that_does_not_take_is_reported_with_the_iommu_hint() {
        let t = Tree::new();
        t.igb_pf("0000:01:00.0", "eth0", 7, 1);
        t.driver("vfio-pci");
        fs::remove_file(t.root().join("devices/pci0000:00/0000:01:10.0/iommu_group")).unwrap();
        let h = host(&t);
        let pf = h.pf("eth0").unwrap();
        // The synthetic tree has no kernel: the driver link never changes,
        // exactly like vfio-pci failing its probe without an IOMMU.
        let e = h.bind_vf(&pf, 0, Some("vfio-pci")).unwrap_err().to_string();
        assert!(e.contains("binding 0000:01:10.0 to vfio-pci reported success but the VF is bound to igbvf"), "{e}");
        assert!(e.contains("no IOMMU group"), "{e}");
        let e = h.bind_vf(&pf, 0, Some("pci-stub")).unwrap_err().to_string();
        assert!(e.contains("pci-stub is not registered"), "{e}");
    }
}
