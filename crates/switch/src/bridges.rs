//! Several NORMAL bridges behind one datapath: the slow path of a packet is
//! the bridge of its input port. Bridges are fixed at start-up; ports move
//! between them at run time through a lock-free port → bridge map.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};

use sluice_datapath::bridge::BridgeConfig as DpBridgeConfig;
use sluice_datapath::pipeline::{NormalSlowPath, PipelineDrop};
use sluice_datapath::{SlowPath, Upcall};
use sluice_flow::{Actions, FlowKey, Mask, Match, Revalidation};
use sluice_packet::{Headers, MacAddr};

use crate::config::BridgeConfig;

/// The bridges and which port is on which.
pub struct BridgeSet {
    bridges: Vec<(String, Arc<NormalSlowPath>)>,
    /// Port number → bridge index + 1 (0: on no bridge).
    port_bridge: Box<[AtomicU16]>,
    generation: AtomicU64,
}

impl BridgeSet {
    /// Bridges from their configs; ports numbered up to `max_ports`.
    pub fn new(configs: &[BridgeConfig], max_ports: u32) -> BridgeSet {
        let bridges = configs
            .iter()
            .map(|c| {
                let cfg = DpBridgeConfig {
                    mac_capacity: c.mac_limit,
                    mac_per_port: c.mac_per_port,
                    mac_max_age_ms: c.mac_max_age_s * 1000,
                };
                (c.name.clone(), Arc::new(NormalSlowPath::new(cfg)))
            })
            .collect();
        BridgeSet {
            bridges,
            port_bridge: (0..=max_ports).map(|_| AtomicU16::new(0)).collect(),
            generation: AtomicU64::new(0),
        }
    }

    /// The bridge called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<NormalSlowPath>> {
        self.bridges.iter().find(|(n, _)| n == name).map(|(_, b)| b)
    }

    /// Names of the bridges, in config order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.bridges.iter().map(|(n, _)| n.as_str())
    }

    /// The bridge port `no` is on.
    pub fn bridge_of(&self, no: u32) -> Option<(&str, &Arc<NormalSlowPath>)> {
        let i = self.port_bridge.get(no as usize)?.load(Ordering::Acquire);
        let (n, b) = self.bridges.get(usize::from(i).checked_sub(1)?)?;
        Some((n.as_str(), b))
    }

    /// Puts port `no` on bridge `name` with `mode` (moving it if it was on
    /// another). False when the bridge or number does not exist.
    pub fn attach(&self, no: u32, name: &str, mode: sluice_datapath::bridge::VlanMode) -> bool {
        let Some(i) = self.bridges.iter().position(|(n, _)| n == name) else { return false };
        let Some(slot) = self.port_bridge.get(no as usize) else { return false };
        if let Some((old, b)) = self.bridge_of(no)
            && old != name
        {
            b.remove_port(no);
        }
        self.bridges[i].1.set_port(no, mode);
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
        self.bridges.iter().fold(self.generation.load(Ordering::Acquire), |g, (_, b)| g.wrapping_add(b.generation()))
    }

    fn revalidate(&self, matching: &Match, actions: &Actions, now: u64) -> Revalidation {
        match self.bridge_of(matching.key().in_port()) {
            Some((_, b)) => b.revalidate(matching, actions, now),
            None if actions.is_drop() => Revalidation::Keep,
            None => Revalidation::Remove,
        }
    }

    fn refresh(&self, stations: &[(u32, u32, MacAddr)], now: u64) {
        for (_, b) in &self.bridges {
            let mine: Vec<_> = stations
                .iter()
                .copied()
                .filter(|(p, _, _)| self.bridge_of(*p).is_some_and(|(_, x)| Arc::ptr_eq(x, b)))
                .collect();
            if !mine.is_empty() {
                b.refresh_stations(&mine, now);
            }
        }
    }

    fn housekeep(&self, now: u64) {
        for (_, b) in &self.bridges {
            b.expire(now);
        }
    }
}
