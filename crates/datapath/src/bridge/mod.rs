//! The slow path's NORMAL action: an L2 learning bridge with VLANs, as OVS's
//! `NORMAL` and a hardware switch behave.
//!
//! [`Bridge::forward`] takes one frame's headers, learns its source, and
//! decides where it goes: the learned port of its destination, or every
//! other port of its VLAN (flooding) for broadcast, multicast and unknown
//! destinations. It also says which header fields the decision consulted
//! ([`Consulted`]), so that the caller can install a megaflow that matches
//! exactly those fields and nothing more.
//!
//! Sans-IO and deterministic: `now` is an argument, no syscalls, no locks.
//! It runs on upcalls only, never per packet on the fast path.

mod mac_table;
mod vlan;

pub use mac_table::{Learned, MacTable, MacTableStats};
pub use vlan::{Egress, IngressDrop, VlanMode, VlanSet};

use sluice_packet::{EthernetRepr, MacAddr};

/// A port's number within one bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortId(pub u16);

/// The bridge's limits.
#[derive(Debug, Clone, Copy)]
pub struct BridgeConfig {
    /// Stations the learning table holds.
    pub mac_capacity: usize,
    /// Stations one port may hold (stops a port flooding forged MACs).
    pub mac_per_port: usize,
    /// Milliseconds after which an unseen station is forgotten.
    pub mac_max_age_ms: u64,
}

impl Default for BridgeConfig {
    /// OVS's defaults: 8192 stations, 300 s aging; 1024 per port.
    fn default() -> Self {
        BridgeConfig { mac_capacity: 8192, mac_per_port: 1024, mac_max_age_ms: 300_000 }
    }
}

/// Which fields a forwarding decision looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Consulted {
    /// The input port.
    pub in_port: bool,
    /// The VLAN tag (present or absent, and its VID).
    pub vlan: bool,
    /// The destination MAC.
    pub dst_mac: bool,
    /// The source MAC (learning: a packet from another source must come
    /// back to the slow path to be learned).
    pub src_mac: bool,
}

/// Why the bridge dropped a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeDrop {
    /// The input port is not on this bridge.
    UnknownPort,
    /// The port's VLAN mode refused the frame.
    Ingress(IngressDrop),
    /// The source MAC is multicast or broadcast: no station sends that.
    MulticastSource,
    /// The destination was learned on the input port itself.
    SamePort,
    /// Flooding found no other port in the VLAN.
    NoOutput,
}

/// A forwarding decision: the frame's VLAN and where it leaves.
#[derive(Debug, PartialEq, Eq)]
pub struct Forward<'a> {
    /// The VLAN the frame belongs to on this bridge.
    pub vlan: u16,
    /// Output ports, each with how the frame leaves it.
    pub outputs: &'a [(PortId, Egress)],
    /// True when the destination was not a learned unicast station.
    pub flooded: bool,
    /// What learning the source did.
    pub learned: Learned,
}

/// An L2 learning bridge.
#[derive(Debug)]
pub struct Bridge {
    /// Ports sorted by id.
    ports: Vec<(PortId, VlanMode)>,
    macs: MacTable,
    out: Vec<(PortId, Egress)>,
}

impl Bridge {
    /// An empty bridge.
    pub fn new(config: BridgeConfig) -> Bridge {
        Bridge {
            ports: Vec::new(),
            macs: MacTable::new(config.mac_capacity, config.mac_per_port, config.mac_max_age_ms),
            out: Vec::new(),
        }
    }

    /// Adds a port, or changes the VLAN mode of an existing one (its learned
    /// stations are forgotten: they may belong to VLANs it no longer carries).
    pub fn set_port(&mut self, port: PortId, mode: VlanMode) {
        match self.ports.binary_search_by_key(&port, |p| p.0) {
            Ok(i) => {
                self.ports[i].1 = mode;
                self.macs.flush_port(port);
            }
            Err(i) => self.ports.insert(i, (port, mode)),
        }
        self.out.reserve(self.ports.len());
    }

    /// Removes a port and forgets its stations. Returns whether it existed.
    pub fn remove_port(&mut self, port: PortId) -> bool {
        match self.ports.binary_search_by_key(&port, |p| p.0) {
            Ok(i) => {
                self.ports.remove(i);
                self.macs.flush_port(port);
                true
            }
            Err(_) => false,
        }
    }

    /// The ports and their modes, by id.
    pub fn ports(&self) -> &[(PortId, VlanMode)] {
        &self.ports
    }

    /// The learning table.
    pub fn macs(&self) -> &MacTable {
        &self.macs
    }

    /// Forgets stations older than the maximum age; call it now and then.
    pub fn expire(&mut self, now: u64) -> usize {
        self.macs.expire(now)
    }

    /// Decides where a frame with L2 header `eth`, received on `in_port`,
    /// goes, learning its source on the way. Returns the decision and the
    /// fields it consulted (also on a drop, so a drop can be cached too).
    pub fn forward(
        &mut self,
        in_port: PortId,
        eth: &EthernetRepr,
        now: u64,
    ) -> (Result<Forward<'_>, BridgeDrop>, Consulted) {
        self.run(in_port, eth, now, true)
    }

    /// [`forward`](Self::forward) without learning: what the bridge would
    /// decide for this frame now. For revalidating cached decisions and for
    /// tracing; the learning table is not touched (the returned
    /// [`Forward::learned`] says what learning *would* do).
    pub fn decide(
        &mut self,
        in_port: PortId,
        eth: &EthernetRepr,
        now: u64,
    ) -> (Result<Forward<'_>, BridgeDrop>, Consulted) {
        self.run(in_port, eth, now, false)
    }

    fn run(
        &mut self,
        in_port: PortId,
        eth: &EthernetRepr,
        now: u64,
        learn: bool,
    ) -> (Result<Forward<'_>, BridgeDrop>, Consulted) {
        let mut consulted = Consulted { in_port: true, ..Consulted::default() };
        let Ok(i) = self.ports.binary_search_by_key(&in_port, |p| p.0) else {
            return (Err(BridgeDrop::UnknownPort), consulted);
        };
        consulted.vlan = true;
        let vlan = match self.ports[i].1.ingress(eth.vlans().first()) {
            Ok(v) => v,
            Err(e) => return (Err(BridgeDrop::Ingress(e)), consulted),
        };
        consulted.src_mac = true;
        if eth.src.is_multicast() {
            return (Err(BridgeDrop::MulticastSource), consulted);
        }
        let learned = if learn {
            self.macs.learn(vlan, eth.src, in_port, now)
        } else {
            self.macs.would_learn(vlan, eth.src, in_port, now)
        };
        consulted.dst_mac = true;
        self.out.clear();
        let known = if eth.dst.is_multicast() { None } else { self.macs.lookup(vlan, eth.dst, now) };
        match known {
            Some(p) if p == in_port => return (Err(BridgeDrop::SamePort), consulted),
            Some(p) => {
                if let Some(e) = self.mode(p).and_then(|m| m.egress(vlan)) {
                    self.out.push((p, e));
                }
            }
            None => {
                for (p, mode) in &self.ports {
                    if *p != in_port
                        && let Some(e) = mode.egress(vlan)
                    {
                        self.out.push((*p, e));
                    }
                }
            }
        }
        if self.out.is_empty() {
            return (Err(BridgeDrop::NoOutput), consulted);
        }
        (Ok(Forward { vlan, outputs: &self.out, flooded: known.is_none(), learned }), consulted)
    }

    fn mode(&self, port: PortId) -> Option<&VlanMode> {
        self.ports.binary_search_by_key(&port, |p| p.0).ok().map(|i| &self.ports[i].1)
    }

    /// The port a station was learned on.
    pub fn station(&self, vlan: u16, mac: MacAddr, now: u64) -> Option<PortId> {
        self.macs.lookup(vlan, mac, now)
    }
}

#[cfg(test)]
mod tests;
