//! The embedded intent store (redb): physical networks, networks, ports,
//! security groups, QoS policies and VF pools, as JSON records keyed by id.
//!
//! Every mutation is one redb write transaction, so a crash leaves either
//! the old or the new state. Binding a port (allocating a VF and writing the
//! port) and releasing it are each a single transaction: the pool can never
//! be over-subscribed, and a VF is never held by a port that does not exist.
//!
//! Schema: the `meta` table holds `schema_version`; [`Store::open`] runs
//! [`migrate_step`] from the file's version up to [`SCHEMA_VERSION`], each
//! step in its own transaction, and refuses files from a newer agent.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::model::{
    Holder, Network, PfBinding, Physnet, Pool, Port, PortRequest, PortState, PortStatus, VfBinding, VfSlot, VnicType,
};

/// Schema version this build writes.
pub const SCHEMA_VERSION: u64 = 1;

const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const SCHEMA_KEY: &str = "schema_version";

/// A status a reconcile pass observed, for [`Store::set_statuses`].
#[derive(Debug, Clone, PartialEq)]
pub struct StatusChange {
    /// Port id.
    pub id: String,
    /// The port's request as observed.
    pub spec: PortRequest,
    /// Its VF allocation generation as observed.
    pub generation: Option<u64>,
    /// The new status.
    pub status: PortStatus,
}

/// Tables of JSON records keyed by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Physical networks.
    Physnet,
    /// Networks.
    Network,
    /// Ports.
    Port,
    /// Security groups.
    SecurityGroup,
    /// QoS policies.
    QosPolicy,
    /// VF pools (one per physical network).
    Pool,
}

impl Kind {
    /// Every table.
    pub const ALL: [Kind; 6] =
        [Kind::Physnet, Kind::Network, Kind::Port, Kind::SecurityGroup, Kind::QosPolicy, Kind::Pool];

    /// Singular name used in messages.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Physnet => "physical network",
            Kind::Network => "network",
            Kind::Port => "port",
            Kind::SecurityGroup => "security group",
            Kind::QosPolicy => "qos policy",
            Kind::Pool => "pool",
        }
    }

    fn table(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        TableDefinition::new(match self {
            Kind::Physnet => "physnets",
            Kind::Network => "networks",
            Kind::Port => "ports",
            Kind::SecurityGroup => "security_groups",
            Kind::QosPolicy => "qos_policies",
            Kind::Pool => "pools",
        })
    }
}

/// One migration step: brings a store at `from` to `from + 1` inside `txn`.
/// Version 0 is an empty (or pre-versioned) file.
pub fn migrate_step(txn: &WriteTransaction, from: u64) -> Result<()> {
    match from {
        0 => {
            for k in Kind::ALL {
                txn.open_table(k.table()).map_err(Error::store)?;
            }
            Ok(())
        }
        v => Err(Error::SchemaTooNew { found: v, supported: SCHEMA_VERSION }),
    }
}

/// The intent store.
#[derive(Debug)]
pub struct Store {
    db: Database,
}

fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::Store(format!("cannot encode record: {e}")))
}

fn dec<T: DeserializeOwned>(kind: Kind, id: &str, b: &[u8]) -> Result<T> {
    serde_json::from_slice(b).map_err(|e| Error::Store(format!("{} {id} is corrupt: {e}", kind.noun())))
}

/// Reads a record inside a write transaction.
fn tget<T: DeserializeOwned>(txn: &WriteTransaction, kind: Kind, id: &str) -> Result<Option<T>> {
    let t = txn.open_table(kind.table()).map_err(Error::store)?;
    let v = t.get(id).map_err(Error::store)?;
    v.map(|g| dec(kind, id, g.value())).transpose()
}

fn tput<T: Serialize>(txn: &WriteTransaction, kind: Kind, id: &str, v: &T) -> Result<()> {
    let mut t = txn.open_table(kind.table()).map_err(Error::store)?;
    t.insert(id, enc(v)?.as_slice()).map_err(Error::store)?;
    Ok(())
}

fn tlist<T: DeserializeOwned>(txn: &WriteTransaction, kind: Kind) -> Result<Vec<T>> {
    let t = txn.open_table(kind.table()).map_err(Error::store)?;
    let mut out = Vec::new();
    for e in t.iter().map_err(Error::store)? {
        let (k, v) = e.map_err(Error::store)?;
        out.push(dec(kind, k.value(), v.value())?);
    }
    Ok(out)
}

fn must<T>(v: Option<T>, kind: Kind, id: &str, field: Option<&'static str>) -> Result<T> {
    v.ok_or_else(|| Error::NotFound { kind: kind.noun(), id: id.to_string(), field })
}

impl Store {
    /// Opens (or creates) the store at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Store> {
        let db = Database::create(path).map_err(Error::store)?;
        let store = Store { db };
        loop {
            let txn = store.db.begin_write().map_err(Error::store)?;
            let v = {
                let t = txn.open_table(META).map_err(Error::store)?;
                t.get(SCHEMA_KEY).map_err(Error::store)?.map_or(0, |g| g.value())
            };
            if v == SCHEMA_VERSION {
                txn.abort().map_err(Error::store)?;
                return Ok(store);
            }
            if v > SCHEMA_VERSION {
                return Err(Error::SchemaTooNew { found: v, supported: SCHEMA_VERSION });
            }
            migrate_step(&txn, v)?;
            txn.open_table(META).map_err(Error::store)?.insert(SCHEMA_KEY, v + 1).map_err(Error::store)?;
            txn.commit().map_err(Error::store)?;
            tracing::info!(from = v, to = v + 1, "migrated store schema");
        }
    }

    /// The schema version in the file.
    pub fn schema_version(&self) -> Result<u64> {
        let r = self.db.begin_read().map_err(Error::store)?;
        let t = r.open_table(META).map_err(Error::store)?;
        Ok(t.get(SCHEMA_KEY).map_err(Error::store)?.map_or(0, |g| g.value()))
    }

    /// Overwrites the schema version (tests of migration refusal).
    #[doc(hidden)]
    pub fn force_schema_version(&self, v: u64) -> Result<()> {
        self.write(|txn| {
            txn.open_table(META).map_err(Error::store)?.insert(SCHEMA_KEY, v).map_err(Error::store)?;
            Ok(())
        })
    }

    fn write<T>(&self, f: impl FnOnce(&WriteTransaction) -> Result<T>) -> Result<T> {
        let txn = self.db.begin_write().map_err(Error::store)?;
        match f(&txn) {
            Ok(v) => {
                txn.commit().map_err(Error::store)?;
                Ok(v)
            }
            Err(e) => {
                // Dropping an uncommitted transaction aborts it; say so explicitly.
                let _ = txn.abort();
                Err(e)
            }
        }
    }

    /// One record, if present.
    pub fn get<T: DeserializeOwned>(&self, kind: Kind, id: &str) -> Result<Option<T>> {
        let r = self.db.begin_read().map_err(Error::store)?;
        let t = r.open_table(kind.table()).map_err(Error::store)?;
        let v = t.get(id).map_err(Error::store)?;
        v.map(|g| dec(kind, id, g.value())).transpose()
    }

    /// All records of a kind, in id order.
    pub fn list<T: DeserializeOwned>(&self, kind: Kind) -> Result<Vec<T>> {
        let r = self.db.begin_read().map_err(Error::store)?;
        let t = r.open_table(kind.table()).map_err(Error::store)?;
        let mut out = Vec::new();
        for e in t.iter().map_err(Error::store)? {
            let (k, v) = e.map_err(Error::store)?;
            out.push(dec(kind, k.value(), v.value())?);
        }
        Ok(out)
    }

    /// Creates a security group or QoS policy (no references to check).
    pub fn create_plain<T: Serialize>(&self, kind: Kind, id: &str, v: &T) -> Result<()> {
        self.write(|txn| {
            if tget::<serde_json::Value>(txn, kind, id)?.is_some() {
                return Err(Error::Exists { kind: kind.noun(), id: id.into() });
            }
            tput(txn, kind, id, v)
        })
    }

    /// Creates a physical network together with its pool.
    pub fn create_physnet(&self, p: &Physnet, pool: &Pool) -> Result<()> {
        self.write(|txn| {
            if tget::<Physnet>(txn, Kind::Physnet, &p.name)?.is_some() {
                return Err(Error::Exists { kind: Kind::Physnet.noun(), id: p.name.clone() });
            }
            let mut existing = Vec::new();
            for o in tlist::<Physnet>(txn, Kind::Physnet)? {
                let opool: Pool = tget(txn, Kind::Pool, &o.name)?.unwrap_or_default();
                existing.push((o, opool));
            }
            check_disjoint(p, pool, &existing)?;
            tput(txn, Kind::Physnet, &p.name, p)?;
            tput(txn, Kind::Pool, &p.name, pool)
        })
    }

    /// Merges a fresh inventory into a pool: keeps holders and generations
    /// of VFs still present and of held VFs that vanished (so they are not
    /// lost), adds new VFs.
    pub fn refresh_pool(&self, fresh: &Pool) -> Result<Pool> {
        self.write(|txn| {
            let old: Pool = tget(txn, Kind::Pool, &fresh.name)?.unwrap_or_default();
            let mut merged = fresh.clone();
            for s in &mut merged.vfs {
                if let Some(o) = old.vfs.iter().find(|o| o.pf_bus_id == s.pf_bus_id && o.vf == s.vf) {
                    s.generation = o.generation;
                    s.holder = o.holder.clone();
                }
            }
            for o in &old.vfs {
                if o.holder.is_some() && !merged.vfs.iter().any(|s| s.pf_bus_id == o.pf_bus_id && s.vf == o.vf) {
                    merged.vfs.push(o.clone());
                }
            }
            for p in &mut merged.pfs {
                if let Some(o) = old.pfs.iter().find(|o| o.pf_bus_id == p.pf_bus_id) {
                    p.holder = o.holder.clone();
                }
            }
            for o in &old.pfs {
                if o.holder.is_some() && !merged.pfs.iter().any(|p| p.pf_bus_id == o.pf_bus_id) {
                    merged.pfs.push(o.clone());
                }
            }
            tput(txn, Kind::Pool, &merged.name, &merged)?;
            Ok(merged)
        })
    }

    /// Creates a network after checking its physical network exists.
    pub fn create_network(&self, n: &Network) -> Result<()> {
        self.write(|txn| {
            if let Some(p) = &n.physnet {
                must(tget::<Physnet>(txn, Kind::Physnet, p)?, Kind::Physnet, p, Some("physnet"))?;
            }
            if tget::<Network>(txn, Kind::Network, &n.name)?.is_some() {
                return Err(Error::Exists { kind: Kind::Network.noun(), id: n.name.clone() });
            }
            tput(txn, Kind::Network, &n.name, n)
        })
    }

    /// Deletes a record that no other record refers to.
    pub fn delete(&self, kind: Kind, id: &str) -> Result<()> {
        self.write(|txn| {
            must(tget::<serde_json::Value>(txn, kind, id)?, kind, id, None)?;
            let user = match kind {
                Kind::Physnet => tlist::<Network>(txn, Kind::Network)?
                    .into_iter()
                    .find(|n| n.physnet.as_deref() == Some(id))
                    .map(|n| format!("network {}", n.name)),
                Kind::Network | Kind::SecurityGroup | Kind::QosPolicy => tlist::<Port>(txn, Kind::Port)?
                    .into_iter()
                    .find(|p| match kind {
                        Kind::Network => p.spec.network == id,
                        Kind::SecurityGroup => p.spec.security_groups.iter().any(|s| s == id),
                        _ => p.spec.qos_policy.as_deref() == Some(id),
                    })
                    .map(|p| format!("port {}", p.spec.id)),
                Kind::Port | Kind::Pool => None,
            };
            if let Some(user) = user {
                return Err(Error::InUse { kind: kind.noun(), id: id.into(), user });
            }
            txn.open_table(kind.table()).map_err(Error::store)?.remove(id).map_err(Error::store)?;
            if kind == Kind::Physnet {
                txn.open_table(Kind::Pool.table()).map_err(Error::store)?.remove(id).map_err(Error::store)?;
            }
            Ok(())
        })
    }

    /// Binds a port in ONE transaction: checks references, allocates a VF
    /// when the vnic type needs one (a free VF on `numa_node` if the caller
    /// gave one and one is free, else the first free VF), bumps its
    /// generation, records the holder, and writes the port.
    pub fn bind(&self, req: &PortRequest) -> Result<Port> {
        self.write(|txn| {
            if tget::<Port>(txn, Kind::Port, &req.id)?.is_some() {
                return Err(Error::Exists { kind: Kind::Port.noun(), id: req.id.clone() });
            }
            let net: Network =
                must(tget(txn, Kind::Network, &req.network)?, Kind::Network, &req.network, Some("network"))?;
            for (i, sg) in req.security_groups.iter().enumerate() {
                if tget::<serde_json::Value>(txn, Kind::SecurityGroup, sg)?.is_none() {
                    return Err(Error::invalid(
                        format!("security_groups[{i}]"),
                        format!("names security group {sg}, which does not exist"),
                    ));
                }
            }
            if let Some(q) = &req.qos_policy {
                must(tget::<serde_json::Value>(txn, Kind::QosPolicy, q)?, Kind::QosPolicy, q, Some("qos_policy"))?;
            }
            let mut spec = req.clone();
            spec.mac = Some(req.effective_mac());
            let mut binding = None;
            let mut pf_binding = None;
            let pools: Vec<Pool> = if net.physnet.is_some() { tlist(txn, Kind::Pool)? } else { Vec::new() };
            let held_whole = |bus: &str| pools.iter().any(|p| p.pf_held(bus));
            if req.vnic_type == VnicType::DirectPhysical {
                let Some(pn) = net.physnet.clone() else {
                    return Err(Error::invalid(
                        "vnic_type",
                        format!(
                            "direct-physical needs a network on a physical network; network {} is an overlay",
                            net.name
                        ),
                    ));
                };
                let mut pool: Pool = must(tget(txn, Kind::Pool, &pn)?, Kind::Pool, &pn, Some("network"))?;
                let vf_in_use =
                    |bus: &str| pools.iter().flat_map(|p| &p.vfs).any(|s| s.pf_bus_id == bus && s.holder.is_some());
                let free = |p: &crate::model::PfSlot| !held_whole(&p.pf_bus_id) && !vf_in_use(&p.pf_bus_id);
                let idx = pool
                    .pfs
                    .iter()
                    .position(|p| free(p) && req.numa_node.is_some() && p.numa_node == req.numa_node)
                    .or_else(|| pool.pfs.iter().position(free));
                let Some(idx) = idx else {
                    return Err(Error::PfExhausted { pool: pn, total: pool.pfs.len() });
                };
                let slot = &mut pool.pfs[idx];
                slot.holder = Some(Holder { port: req.id.clone(), owner: req.owner.clone() });
                pf_binding = Some(PfBinding {
                    pool: pn.clone(),
                    pf: slot.pf.clone(),
                    pf_bus_id: slot.pf_bus_id.clone(),
                    numa_node: slot.numa_node,
                });
                tput(txn, Kind::Pool, &pn, &pool)?;
            }
            if req.vnic_type.needs_vf() {
                let Some(pn) = net.physnet.clone() else {
                    return Err(Error::invalid(
                        "vnic_type",
                        format!(
                            "{} needs a network on a physical network; network {} is an overlay",
                            req.vnic_type.as_str(),
                            net.name
                        ),
                    ));
                };
                let mut pool: Pool = must(tget(txn, Kind::Pool, &pn)?, Kind::Pool, &pn, Some("network"))?;
                let free = |s: &VfSlot| s.holder.is_none() && !held_whole(&s.pf_bus_id);
                let idx = pool
                    .vfs
                    .iter()
                    .position(|s| free(s) && req.numa_node.is_some() && s.numa_node == req.numa_node)
                    .or_else(|| pool.vfs.iter().position(free));
                let Some(idx) = idx else {
                    return Err(Error::PoolExhausted { pool: pn, total: pool.vfs.len() });
                };
                let slot = &mut pool.vfs[idx];
                slot.generation += 1;
                slot.holder = Some(Holder { port: req.id.clone(), owner: req.owner.clone() });
                binding = Some(VfBinding {
                    pool: pn.clone(),
                    pf: slot.pf.clone(),
                    pf_bus_id: slot.pf_bus_id.clone(),
                    vf: slot.vf,
                    pci_addr: slot.pci_addr.clone(),
                    netdev: slot.netdev.clone(),
                    numa_node: slot.numa_node,
                    generation: slot.generation,
                    host_claim: None,
                });
                tput(txn, Kind::Pool, &pn, &pool)?;
            }
            let port = Port {
                spec,
                physnet: net.physnet.clone(),
                vlan: net.segment.vlan(),
                binding,
                pf_binding,
                status: PortStatus {
                    state: PortState::Bound,
                    reason: Some("resources reserved; waiting for the reconciler to plug the port".into()),
                },
            };
            tput(txn, Kind::Port, &req.id, &port)?;
            Ok(port)
        })
    }

    /// Records the host claim token of a bound VF port, if the port still
    /// holds allocation `generation`.
    pub fn set_host_claim(&self, id: &str, generation: u64, token: &sluice_sriov::ClaimToken) -> Result<Port> {
        self.write(|txn| {
            let mut port: Port = must(tget(txn, Kind::Port, id)?, Kind::Port, id, None)?;
            match &mut port.binding {
                Some(b) if b.generation == generation => b.host_claim = Some(token.clone()),
                _ => {
                    return Err(Error::StaleRelease {
                        port: id.into(),
                        expected: format!("generation {generation}"),
                        actual: format!("generation {:?}", port.binding.as_ref().map(|b| b.generation)),
                    });
                }
            }
            tput(txn, Kind::Port, id, &port)?;
            Ok(port)
        })
    }

    /// Writes the statuses a reconcile pass observed, in ONE transaction,
    /// each only if the port is still the one observed (same request, same
    /// VF allocation generation): a port released and bound again meanwhile
    /// keeps its own status. Status is observed state that every pass
    /// recomputes, so the commit does not wait for the disk
    /// (`Durability::None`; the next durable commit persists it, a crash
    /// before that loses only statuses). Returns how many were written.
    pub fn set_statuses(&self, changes: &[StatusChange]) -> Result<usize> {
        if changes.is_empty() {
            return Ok(0);
        }
        let mut txn = self.db.begin_write().map_err(Error::store)?;
        txn.set_durability(redb::Durability::None).map_err(|e| Error::Store(e.to_string()))?;
        let mut n = 0;
        for c in changes {
            let Some(mut port) = tget::<Port>(&txn, Kind::Port, &c.id)? else { continue };
            if port.spec != c.spec || port.binding.as_ref().map(|b| b.generation) != c.generation {
                continue;
            }
            port.status = c.status.clone();
            tput(&txn, Kind::Port, &c.id, &port)?;
            n += 1;
        }
        txn.commit().map_err(Error::store)?;
        Ok(n)
    }

    /// Sets a port's status.
    pub fn set_status(&self, id: &str, status: PortStatus) -> Result<Port> {
        self.write(|txn| {
            let mut port: Port = must(tget(txn, Kind::Port, id)?, Kind::Port, id, None)?;
            port.status = status;
            tput(txn, Kind::Port, id, &port)?;
            Ok(port)
        })
    }

    /// Releases a port in ONE transaction: checks `owner` and `generation`
    /// when given, frees the VF only if the pool still records this port at
    /// this generation, and deletes the port. Returns the removed port.
    pub fn release(&self, id: &str, owner: Option<&str>, generation: Option<u64>) -> Result<Port> {
        self.write(|txn| {
            let port: Port = must(tget(txn, Kind::Port, id)?, Kind::Port, id, None)?;
            let held_gen = port.binding.as_ref().map(|b| b.generation);
            let owner_ok = owner.is_none_or(|o| o == port.spec.owner);
            let gen_ok = generation.is_none_or(|g| Some(g) == held_gen);
            if !owner_ok || !gen_ok {
                return Err(Error::StaleRelease {
                    port: id.into(),
                    expected: format!("owner {} generation {:?}", owner.unwrap_or("(any)"), generation),
                    actual: format!("owner {} generation {:?}", port.spec.owner, held_gen),
                });
            }
            if let Some(b) = &port.binding {
                let mut pool: Pool = must(tget(txn, Kind::Pool, &b.pool)?, Kind::Pool, &b.pool, None)?;
                if let Some(s) = pool.vfs.iter_mut().find(|s| s.pf_bus_id == b.pf_bus_id && s.vf == b.vf)
                    && s.generation == b.generation
                    && s.holder.as_ref().is_some_and(|h| h.port == id)
                {
                    s.holder = None;
                    tput(txn, Kind::Pool, &b.pool, &pool)?;
                } else {
                    tracing::warn!(port = id, pool = b.pool, vf = b.vf, "pool no longer records this port");
                }
            }
            if let Some(b) = &port.pf_binding {
                let mut pool: Pool = must(tget(txn, Kind::Pool, &b.pool)?, Kind::Pool, &b.pool, None)?;
                if let Some(p) = pool
                    .pfs
                    .iter_mut()
                    .find(|p| p.pf_bus_id == b.pf_bus_id && p.holder.as_ref().is_some_and(|h| h.port == id))
                {
                    p.holder = None;
                    tput(txn, Kind::Pool, &b.pool, &pool)?;
                }
            }
            txn.open_table(Kind::Port.table()).map_err(Error::store)?.remove(id).map_err(Error::store)?;
            Ok(port)
        })
    }
}

/// Refuses a new physical network whose device specs could select a VF
/// index that a device spec of an existing physical network on the same PF
/// could select too. The ranges are compared as written (0..=255, minus
/// exclusions), not only against the VFs that exist now, so VFs created
/// later never land in two pools. Several physical networks may share a
/// PF only with disjoint VF ranges.
fn check_disjoint(p: &Physnet, pool: &Pool, existing: &[(Physnet, Pool)]) -> Result<()> {
    let bus = |spec: &crate::model::DeviceSpec, pool: &Pool| {
        pool.pfs.iter().find(|s| s.pf == spec.pf || s.pf_bus_id == spec.pf).map(|s| (s.pf.clone(), s.pf_bus_id.clone()))
    };
    for (i, spec) in p.device_specs.iter().enumerate() {
        let Some((name, b)) = bus(spec, pool) else { continue };
        for (op, opool) in existing.iter().filter(|(o, _)| o.name != p.name) {
            for ospec in &op.device_specs {
                if bus(ospec, opool).is_none_or(|(_, ob)| ob != b) {
                    continue;
                }
                if let Some(vf) = (0..=MAX_VF_INDEX).find(|v| spec.selects(*v) && ospec.selects(*v)) {
                    return Err(Error::invalid(
                        format!("device_specs[{i}]"),
                        format!(
                            "of physical network {} selects VF {vf} of PF {name} ({b}), which physical network {} \
                             selects too; physical networks sharing a PF must select disjoint VF ranges (first_vf, \
                             last_vf, exclude_vfs)",
                            p.name, op.name
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Highest VF index a device spec may name (see [`Physnet`] validation).
const MAX_VF_INDEX: u32 = 255;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Segment, VnicType};

    fn slot(vf: u32, numa: i32) -> VfSlot {
        VfSlot {
            pf: "eth0".into(),
            pf_bus_id: "0000:01:00.0".into(),
            vf,
            pci_addr: None,
            netdev: None,
            numa_node: Some(numa),
            generation: 0,
            holder: None,
        }
    }

    fn setup(n: u32) -> (tempfile::TempDir, Store) {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(&d.path().join("store.redb")).unwrap();
        let pn = Physnet { name: "phys".into(), device_specs: vec![] };
        let pool = Pool { name: "phys".into(), vfs: (0..n).map(|i| slot(i, i32::from(i >= 2))).collect(), pfs: vec![] };
        s.create_physnet(&pn, &pool).unwrap();
        s.create_network(&Network {
            name: "net".into(),
            physnet: Some("phys".into()),
            segment: Segment::Vlan { id: 10 },
            mtu: 1500,
        })
        .unwrap();
        (d, s)
    }

    fn req(id: &str, numa: Option<i32>) -> PortRequest {
        PortRequest {
            id: id.into(),
            network: "net".into(),
            vnic_type: VnicType::Direct,
            mac: None,
            fixed_ips: vec![],
            allowed_address_pairs: vec![],
            security_groups: vec![],
            qos_policy: None,
            owner: format!("vm-{id}"),
            numa_node: numa,
            binding_profile: Default::default(),
        }
    }

    #[test]
    fn allocation_prefers_numa_never_oversubscribes_and_release_checks_generation() {
        let (_d, s) = setup(3);
        let p = s.bind(&req("a", Some(1))).unwrap();
        let b = p.binding.unwrap();
        assert_eq!((b.vf, b.numa_node, b.generation, p.vlan), (2, Some(1), 1, 10));
        // NUMA 1 is now full: falls back to node 0.
        assert_eq!(s.bind(&req("b", Some(1))).unwrap().binding.unwrap().vf, 0);
        s.bind(&req("c", None)).unwrap();
        let e = s.bind(&req("d", None)).unwrap_err();
        assert_eq!(e.to_string(), "pool exhausted: pool phys has 0 of 3 VFs free");
        assert_eq!(e.status(), 409);
        assert!(matches!(s.bind(&req("a", None)).unwrap_err(), Error::Exists { .. }));
        // Wrong owner / generation: refused, nothing changes.
        assert!(matches!(s.release("a", Some("vm-x"), None).unwrap_err(), Error::StaleRelease { .. }));
        assert!(matches!(s.release("a", None, Some(7)).unwrap_err(), Error::StaleRelease { .. }));
        s.release("a", Some("vm-a"), Some(1)).unwrap();
        let pool: Pool = s.get(Kind::Pool, "phys").unwrap().unwrap();
        assert_eq!(pool.free(), 1);
        // Re-allocation of the same VF gets a new generation.
        let b = s.bind(&req("e", Some(1))).unwrap().binding.unwrap();
        assert_eq!((b.vf, b.generation), (2, 2));
        assert!(matches!(s.delete(Kind::Network, "net").unwrap_err(), Error::InUse { .. }));
    }

    #[test]
    fn reopens_a_v1_store_and_refuses_a_newer_one() {
        let (d, s) = setup(2);
        s.bind(&req("a", None)).unwrap();
        assert_eq!(s.schema_version().unwrap(), 1);
        drop(s);
        let s = Store::open(&d.path().join("store.redb")).unwrap();
        assert_eq!(s.schema_version().unwrap(), 1);
        assert!(s.get::<Port>(Kind::Port, "a").unwrap().is_some());
        s.force_schema_version(2).unwrap();
        drop(s);
        let e = Store::open(&d.path().join("store.redb")).unwrap_err();
        assert!(matches!(e, Error::SchemaTooNew { found: 2, supported: 1 }), "{e}");
        assert!(matches!(migrate_step_probe(5), Err(Error::SchemaTooNew { found: 5, .. })));
    }

    fn migrate_step_probe(v: u64) -> Result<()> {
        let d = tempfile::tempdir().unwrap();
        let db = Database::create(d.path().join("x.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        migrate_step(&txn, v)
    }

    #[test]
    fn statuses_land_only_on_the_port_that_was_observed() {
        let (_d, s) = setup(2);
        let observed = s.bind(&req("a", None)).unwrap();
        let active = PortStatus { state: PortState::Active, reason: None };
        let change = |p: &Port| StatusChange {
            id: p.spec.id.clone(),
            spec: p.spec.clone(),
            generation: p.binding.as_ref().map(|b| b.generation),
            status: active.clone(),
        };
        // Released and bound again (a new VF generation) since the pass saw it.
        s.release("a", None, None).unwrap();
        s.bind(&req("a", None)).unwrap();
        assert_eq!(s.set_statuses(&[change(&observed)]).unwrap(), 0);
        let now: Port = s.get(Kind::Port, "a").unwrap().unwrap();
        assert_eq!(now.status.state, PortState::Bound);
        assert_eq!(s.set_statuses(&[change(&now)]).unwrap(), 1);
        let now: Port = s.get(Kind::Port, "a").unwrap().unwrap();
        assert_eq!(now.status, active);
        // A port gone meanwhile is skipped.
        s.release("a", None, None).unwrap();
        assert_eq!(s.set_statuses(&[change(&now)]).unwrap(), 0);
    }

    #[test]
    fn refresh_keeps_holders() {
        let (_d, s) = setup(2);
        s.bind(&req("a", None)).unwrap();
        let fresh = Pool { name: "phys".into(), vfs: vec![slot(1, 0), slot(2, 0)], pfs: vec![] };
        let m = s.refresh_pool(&fresh).unwrap();
        assert_eq!(m.vfs.len(), 3, "held VF 0 vanished from sysfs but stays recorded");
        assert_eq!(m.vfs.iter().filter(|v| v.holder.is_some()).count(), 1);
    }
}
