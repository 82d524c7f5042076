//! Start-up repair of the host claim records against the store, so that a
//! crash between the store transaction and the host step of a bind or
//! release leaves nothing leaked and nothing double-assigned.
//!
//! The store is the authority. For every VF of every pool:
//! - held in the store, claim on the host missing, stale or foreign →
//!   (force-)reset and claim for the holding port, record the token;
//! - free in the store, claimed on the host → reset and free it;
//! - held and claimed by the same port → make sure the port has the token.
//!
//! The full reconciler (VF settings, switch ports, per-port status) comes
//! with the datapath.

use sluice_sriov::ClaimToken;

use crate::error::Result;
use crate::host::HostSide;
use crate::model::{Pool, Port, VfSlot};
use crate::store::{Kind, Store};

/// What a pass changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// VFs claimed on the host for their holder.
    pub claimed: usize,
    /// VFs freed on the host (no holder in the store).
    pub freed: usize,
    /// Ports whose stored token was refreshed.
    pub tokens: usize,
}

/// Repairs one VF (see the module doc).
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

/// Runs one pass (see the module doc).
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
