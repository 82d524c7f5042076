//! Several NORMAL bridges behind one datapath: the slow path of a packet is
//! the bridge of its input port. Bridges come from the configuration and
//! can be added at run time (a virtio-forwarder's private two-port bridge);
//! ports move between them through a lock-free port → bridge map, and the
//! datapath reads one shared generation counter per batch. The bridge list
//! itself is only read on upcalls and control operations.

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use sluice_datapath::bridge::BridgeConfig as DpBridgeConfig;
use sluice_datapath::pipeline::{NormalSlowPath, PipelineDrop};
use sluice_datapath::{SlowPath, Upcall};
use sluice_flow::{Actions, FlowKey, Mask, Match, Revalidation};
use sluice_packet::{Headers, MacAddr};

use crate::config::BridgeConfig;

type Bridges = Vec<(String, Arc<NormalSlowPath>)>;

/// The bridges and which port is on which.
pub struct BridgeSet {
    bridges: RwLock<Bridges>,
    /// Port number → bridge index + 1 (0: on no bridge).
    port_bridge: Box<[AtomicU16]>,
    /// Bumped by every bridge and by every attach and detach.
    generation: Arc<AtomicU64>,
}

impl BridgeSet {
    /// Bridges from their configs; ports numbered up to `max_ports`.
    pub fn new(configs: &[BridgeConfig], max_ports: u32) -> BridgeSet {
        let set = BridgeSet {
            bridges: RwLock::new(Vec::new()),
            port_bridge: (0..=max_ports).map(|_| AtomicU16::new(0)).collect(),
            generation: Arc::new(AtomicU64::new(1)),
        };
        for c in configs {
            set.add(c);
        }
        set
    }

    fn read(&self) -> RwLockReadGuard<'_, Bridges> {
        // Bridges are only ever appended: a panic mid-push leaves a valid list.
        self.bridges.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a bridge (no-op if one of that name exists); false when the
    /// set is full (65535 bridges).
    pub fn add(&self, c: &BridgeConfig) -> bool {
        let mut b = self.bridges.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if b.iter().any(|(n, _)| *n == c.name) {
            return true;
        }
        if b.len() >= usize::from(u16::MAX) - 1 {
            return false;
        }
        let cfg = DpBridgeConfig {
            mac_capacity: c.mac_limit,
            mac_per_port: c.mac_per_port,
            mac_max_age_ms: c.mac_max_age_s * 1000,
        };
        b.push((c.name.clone(), Arc::new(NormalSlowPath::with_shared_generation(cfg, self.generation.clone()))));
        true
    }

    /// The bridge called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<NormalSlowPath>> {
        self.read().iter().find(|(n, _)| n == name).map(|(_, b)| b.clone())
    }

    /// Names of the bridges, in the order they were added.
    pub fn names(&self) -> Vec<String> {
        self.read().iter().map(|(n, _)| n.clone()).collect()
    }

    /// The bridge port `no` is on.
    pub fn bridge_of(&self, no: u32) -> Option<(String, Arc<NormalSlowPath>)> {
        let i = self.port_bridge.get(no as usize)?.load(Ordering::Acquire);
        let b = self.read();
        let (n, s) = b.get(usize::from(i).checked_sub(1)?)?;
        Some((n.clone(), s.clone()))
    }

    /// Puts port `no` on bridge `name` with `mode` (moving it if it was on
    /// another). False when the bridge or number does not exist.
    pub fn attach(&self, no: u32, name: &str, mode: sluice_datapath::bridge::VlanMode) -> bool {
        let Some(slot) = self.port_bridge.get(no as usize) else { return false };
        let (i, target) = {
            let b = self.read();
            let Some(i) = b.iter().position(|(n, _)| n == name) else { return false };
            (i, b[i].1.clone())
        };
        if let Some((old, b)) = self.bridge_of(no)
            && old != name
        {
            b.remove_port(no);
        }
        target.set_port(no, mode);
        slot.store(i as u16 + 1, Ordering::Release);
        self.generation.fetch_add(1, Ordering::Release);
        true
    }

    /// Takes port `no` off its bridge.
    pub fn detach(&self, no: u32) {
        if let Some((_, b)) = self.bridge_of(no) {
            b.remove_port(no);
        }
        if let Some(slot) = self.port_bridge.get(no as usize) {
            slot.store(0, Ordering::Release);
        }
        self.generation.fetch_add(1, Ordering::Release);
    }
}

impl SlowPath for BridgeSet {
    fn upcall(&self, key: &FlowKey, headers: &Headers, frame: &[u8], now: u64) -> Upcall {
        match self.bridge_of(key.in_port()) {
            Some((_, b)) => b.upcall(key, headers, frame, now),
            None => Upcall {
                actions: Actions::drop_all(),
                mask: Mask::of(&[sluice_flow::Field::InPort, sluice_flow::Field::RecircId]),
                cache: true,
                drop: Some(PipelineDrop::UnknownPort),
            },
        }
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn revalidate(&self, matching: &Match, actions: &Actions, now: u64) -> Revalidation {
        match self.bridge_of(matching.key().in_port()) {
            Some((_, b)) => b.revalidate(matching, actions, now),
            None if actions.is_drop() => Revalidation::Keep,
            None => Revalidation::Remove,
        }
    }

    fn refresh(&self, stations: &[(u32, u32, MacAddr)], now: u64) {
        // A copy: `bridge_of` below takes the read lock again, and a nested
        // read behind a waiting writer would deadlock.
        let list = self.read().clone();
        for (_, b) in &list {
            let mine: Vec<_> = stations
                .iter()
                .copied()
                .filter(|(p, _, _)| self.bridge_of(*p).is_some_and(|(_, x)| Arc::ptr_eq(&x, b)))
                .collect();
            if !mine.is_empty() {
                b.refresh_stations(&mine, now);
            }
        }
    }

    fn housekeep(&self, now: u64) {
        let list = self.read().clone();
        for (_, b) in &list {
            b.expire(now);
        }
    }
}
