//! The NORMAL slow path: the learning [`Bridge`] turned into megaflows.
//!
//! On an upcall it learns the source, decides where the frame goes, and
//! returns an action list (VLAN push/pop per output, then the outputs) with
//! a mask of exactly the fields the bridge consulted: input port, outer
//! VLAN tag, source and destination MAC. Anything that can make a cached
//! decision wrong (a station learned, moved or aged out; a port added,
//! removed or re-moded) bumps the generation, and the datapath threads
//! revalidate their megaflows against [`Bridge::decide`], which does not
//! learn.
//!
//! One `NormalSlowPath` is shared by every datapath thread; its bridge sits
//! behind a mutex taken once per upcall (never on a cache hit).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use sluice_flow::{Action, Actions, Field, FlowKey, Mask, Match, Revalidation};
use sluice_packet::ethernet::VlanTag;
use sluice_packet::{EtherType, EthernetRepr, Headers, MacAddr};

use super::{PipelineDrop, SlowPath, Upcall};
use crate::bridge::{Bridge, BridgeConfig, BridgeDrop, Consulted, Egress, Learned, PortId, VlanMode};

/// A port of the bridge and its VLAN mode (datapath port numbers are the
/// bridge's port ids).
#[derive(Debug, Clone)]
pub struct PortVlan {
    /// Datapath port number.
    pub port: u32,
    /// Access or trunk.
    pub mode: VlanMode,
}

/// What the slow path would do with a frame, step by step (the
/// `dp trace` report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceReport {
    /// One line per decision the bridge took, in order.
    pub steps: Vec<String>,
    /// The resulting actions (`drop` when dropped).
    pub actions: String,
    /// Why it is dropped, if it is.
    pub drop: Option<PipelineDrop>,
    /// The megaflow that would be installed (`None`: not cacheable).
    pub megaflow: Option<String>,
}

/// The NORMAL slow path (see the module docs).
#[derive(Debug)]
pub struct NormalSlowPath {
    bridge: Mutex<Bridge>,
    generation: AtomicU64,
    /// Bumped with `generation`: lets a set of bridges offer one counter.
    shared: Option<std::sync::Arc<AtomicU64>>,
}

fn port_id(p: u32) -> Option<PortId> {
    u16::try_from(p).ok().map(PortId)
}

/// The mask of the fields a bridge decision consulted.
fn mask_of(c: Consulted) -> Mask {
    let mut m = Mask::of(&[Field::RecircId]);
    if c.in_port {
        m = m.exact(Field::InPort);
    }
    if c.vlan {
        m = m.exact(Field::Vlan0);
    }
    if c.src_mac {
        m = m.exact(Field::EthSrc);
    }
    if c.dst_mac {
        m = m.exact(Field::EthDst);
    }
    m
}

fn drop_reason(d: BridgeDrop) -> PipelineDrop {
    match d {
        BridgeDrop::UnknownPort => PipelineDrop::UnknownPort,
        BridgeDrop::Ingress(_) => PipelineDrop::VlanRefused,
        BridgeDrop::MulticastSource => PipelineDrop::MulticastSource,
        BridgeDrop::SamePort => PipelineDrop::SamePort,
        BridgeDrop::NoOutput => PipelineDrop::NoOutput,
    }
}

/// The action list that sends a frame whose outer 802.1Q tag is `tag`
/// (as received) out of `outputs`: outputs that want the frame as it is
/// come first, then the others, with one push or pop between.
fn actions_for(tag: Option<VlanTag>, outputs: &[(PortId, Egress)]) -> Actions {
    let as_is = |e: &Egress| match (e, tag) {
        (Egress::Untagged, None) => true,
        (Egress::Tagged(v), Some(t)) => t.tpid == EtherType::Vlan && t.vid == *v,
        _ => false,
    };
    let mut b = Actions::builder();
    for (p, _) in outputs.iter().filter(|(_, e)| as_is(e)) {
        b = b.push(Action::Output(u32::from(p.0)));
    }
    let mut cur = tag.map(|t| t.vid);
    for (p, e) in outputs.iter().filter(|(_, e)| !as_is(e)) {
        match (*e, cur) {
            (Egress::Untagged, Some(_)) => {
                b = b.push(Action::PopVlan);
                cur = None;
            }
            (Egress::Tagged(v), None) => {
                b = b.push(Action::PushVlan { tpid: 0x8100, tci: v & 0x0fff });
                cur = Some(v);
            }
            (Egress::Tagged(v), Some(w)) if v != w => {
                let pcp = tag.map_or(0, |t| t.pcp);
                b = b.push(Action::SetVlan { vid: v, pcp });
                cur = Some(v);
            }
            _ => {}
        }
        b = b.push(Action::Output(u32::from(p.0)));
    }
    // At most 2 × ports actions: a bridge with more ports than an action
    // list holds floods to the first ones only (MAX_ACTIONS = 32).
    b.build().unwrap_or_else(|_| Actions::drop_all())
}

/// The Ethernet header a masked key stands for (revalidation).
fn eth_of_key(k: &FlowKey) -> EthernetRepr {
    let mut eth = EthernetRepr::new(k.eth_src(), k.eth_dst(), k.eth_type());
    let v0 = k.get(Field::Vlan0) as u32;
    if v0 != 0 {
        eth.tags[0] = VlanTag::from_tci(EtherType::from((v0 >> 16) as u16), v0 as u16);
        eth.tag_count = 1;
    }
    eth
}

impl NormalSlowPath {
    /// A bridge with no ports.
    pub fn new(config: BridgeConfig) -> NormalSlowPath {
        NormalSlowPath { bridge: Mutex::new(Bridge::new(config)), generation: AtomicU64::new(1), shared: None }
    }

    /// A bridge that also bumps `shared` whenever its own generation
    /// changes (for several bridges behind one datapath, which then reads
    /// one counter per batch instead of one per bridge).
    pub fn with_shared_generation(config: BridgeConfig, shared: std::sync::Arc<AtomicU64>) -> NormalSlowPath {
        NormalSlowPath { shared: Some(shared), ..NormalSlowPath::new(config) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bridge> {
        // A panic while holding the bridge leaves a consistent table (every
        // mutation is a single map operation): keep going.
        self.bridge.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::Release);
        if let Some(s) = &self.shared {
            s.fetch_add(1, Ordering::Release);
        }
    }

    /// Adds port `port` with `mode`, or changes its mode. Port numbers
    /// above 65535 are refused.
    pub fn set_port(&self, port: u32, mode: VlanMode) -> bool {
        let Some(id) = port_id(port) else { return false };
        self.lock().set_port(id, mode);
        self.bump();
        true
    }

    /// Removes a port (its stations are forgotten).
    pub fn remove_port(&self, port: u32) -> bool {
        let removed = port_id(port).is_some_and(|id| self.lock().remove_port(id));
        self.bump();
        removed
    }

    /// The ports and their modes.
    pub fn ports(&self) -> Vec<PortVlan> {
        self.lock().ports().iter().map(|(p, m)| PortVlan { port: u32::from(p.0), mode: m.clone() }).collect()
    }

    /// Ages out stations; returns how many went.
    pub fn expire(&self, now: u64) -> usize {
        let n = self.lock().expire(now);
        if n > 0 {
            self.bump();
        }
        n
    }

    /// The learning table: (VLAN, MAC, port, age in ms).
    pub fn macs(&self, now: u64) -> Vec<(u16, MacAddr, u32, u64)> {
        let mut v: Vec<_> =
            self.lock().macs().dump(now).into_iter().map(|(vl, m, p, age)| (vl, m, u32::from(p.0), age)).collect();
        v.sort();
        v
    }

    /// Learning table counters.
    pub fn mac_stats(&self) -> crate::bridge::MacTableStats {
        self.lock().macs().stats()
    }

    /// What an upcall of `frame` on `in_port` would decide, without
    /// learning (see [`TraceReport`]).
    pub fn trace(&self, in_port: u32, frame: &[u8], now: u64) -> TraceReport {
        let mut steps = Vec::new();
        let key = FlowKey::extract(frame, &sluice_flow::Metadata::port(in_port), &mut Headers::EMPTY.clone());
        steps.push(format!("flow: {key}"));
        let mut eth = EthernetRepr::new(MacAddr::ZERO, MacAddr::ZERO, EtherType::Unknown(0));
        if eth.parse_from(frame).is_err() {
            steps.push("the frame has no complete Ethernet header: dropped, not cached".into());
            return TraceReport { steps, actions: "drop".into(), drop: Some(PipelineDrop::Malformed), megaflow: None };
        }
        let Some(id) = port_id(in_port) else {
            steps.push(format!("port {in_port} is out of the bridge's range"));
            return TraceReport {
                steps,
                actions: "drop".into(),
                drop: Some(PipelineDrop::UnknownPort),
                megaflow: None,
            };
        };
        let mut bridge = self.lock();
        match bridge.ports().iter().find(|(p, _)| *p == id) {
            Some((_, mode)) => steps.push(format!("in_port {in_port}: {mode:?}")),
            None => steps.push(format!("in_port {in_port} is not on the bridge")),
        }
        let (res, consulted) = bridge.decide(id, &eth, now);
        let tag = eth.vlans().first().copied();
        let (actions, drop) = match res {
            Ok(f) => {
                steps.push(format!("VLAN {}", f.vlan));
                steps.push(match f.learned {
                    Learned::New => format!("learn: {} would be learned on port {in_port}", eth.src),
                    Learned::Refreshed => format!("learn: {} is known on port {in_port}", eth.src),
                    Learned::Moved { from } => {
                        format!("learn: {} would move from port {} to port {in_port}", eth.src, from.0)
                    }
                    other => format!("learn: {} would not be learned ({other:?})", eth.src),
                });
                if f.flooded {
                    steps.push(format!("{} is not a learned unicast station: flood to the VLAN", eth.dst));
                } else {
                    steps.push(format!("{} was learned on port {}", eth.dst, f.outputs[0].0.0));
                }
                (actions_for(tag, f.outputs), None)
            }
            Err(d) => {
                steps.push(format!("dropped: {d:?}"));
                (Actions::drop_all(), Some(drop_reason(d)))
            }
        };
        let mask = mask_of(consulted);
        TraceReport {
            steps,
            actions: actions.to_string(),
            drop,
            megaflow: Some(format!("{}, actions:{actions}", Match::new(&key, &mask))),
        }
    }

    /// Refreshes the stations behind megaflows that carried traffic (a
    /// cache hit does not reach the bridge, so without this a busy station
    /// would age out). Takes (in_port, outer VLAN field, source MAC).
    pub fn refresh_stations(&self, stations: &[(u32, u32, MacAddr)], now: u64) {
        let mut bridge = self.lock();
        let mut changed = false;
        for &(port, vlan0, src) in stations {
            let Some(id) = port_id(port) else { continue };
            let mut eth = EthernetRepr::new(src, MacAddr::BROADCAST, EtherType::Unknown(0));
            if vlan0 != 0 {
                eth.tags[0] = VlanTag::from_tci(EtherType::from((vlan0 >> 16) as u16), vlan0 as u16);
                eth.tag_count = 1;
            }
            if let (Ok(f), _) = bridge.forward(id, &eth, now) {
                changed |= matches!(f.learned, Learned::New | Learned::Moved { .. });
            }
        }
        drop(bridge);
        if changed {
            self.bump();
        }
    }
}

impl SlowPath for NormalSlowPath {
    fn upcall(&self, key: &FlowKey, _headers: &Headers, frame: &[u8], now: u64) -> Upcall {
        let mut eth = EthernetRepr::new(MacAddr::ZERO, MacAddr::ZERO, EtherType::Unknown(0));
        if eth.parse_from(frame).is_err() {
            return Upcall {
                actions: Actions::drop_all(),
                mask: Mask::EXACT,
                cache: false,
                drop: Some(PipelineDrop::Malformed),
            };
        }
        let Some(id) = port_id(key.in_port()) else {
            return Upcall {
                actions: Actions::drop_all(),
                mask: mask_of(Consulted { in_port: true, ..Consulted::default() }),
                cache: true,
                drop: Some(PipelineDrop::UnknownPort),
            };
        };
        let mut bridge = self.lock();
        let (res, consulted) = bridge.forward(id, &eth, now);
        let mask = mask_of(consulted);
        let (actions, dropped, learned) = match res {
            Ok(f) => (actions_for(eth.vlans().first().copied(), f.outputs), None, f.learned),
            Err(d) => (Actions::drop_all(), Some(drop_reason(d)), Learned::Refreshed),
        };
        drop(bridge);
        if matches!(learned, Learned::New | Learned::Moved { .. }) {
            self.bump();
        }
        Upcall { actions, mask, cache: true, drop: dropped }
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn refresh(&self, stations: &[(u32, u32, MacAddr)], now: u64) {
        self.refresh_stations(stations, now);
    }

    fn housekeep(&self, now: u64) {
        self.expire(now);
    }

    fn revalidate(&self, matching: &Match, actions: &Actions, now: u64) -> Revalidation {
        let key = matching.key();
        let Some(id) = port_id(key.in_port()) else { return Revalidation::Keep };
        let eth = eth_of_key(key);
        let mut bridge = self.lock();
        let (res, consulted) = bridge.decide(id, &eth, now);
        if mask_of(consulted) != *matching.mask() {
            return Revalidation::Remove;
        }
        let now_actions = match res {
            Ok(f) => actions_for(eth.vlans().first().copied(), f.outputs),
            Err(_) => Actions::drop_all(),
        };
        if now_actions == *actions { Revalidation::Keep } else { Revalidation::Update(now_actions) }
    }
}
