//! [`Switch`]: a datapath with its bridges and the ports it opened.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use sluice_datapath::{Datapath, DatapathConfig, DropReason, PipelineConfig, PipelineDrop, Port};
use sluice_io::{AfPacketPort, AfXdpPort, TapConfig, TapPort};

use crate::bridges::BridgeSet;
use crate::config::{ConfigError, PortConfig, PortType, SwitchConfig, VlanConfig};

/// Why a switch operation failed: a sentence for the operator.
#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    /// Bad configuration or request.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A port could not be opened.
    #[error("cannot open port {name:?} ({kind}): {why}")]
    Open {
        /// The port.
        name: String,
        /// Its type.
        kind: &'static str,
        /// What the OS said.
        why: String,
    },
    /// The datapath refused.
    #[error(transparent)]
    Datapath(#[from] sluice_datapath::DatapathError),
    /// No such port or bridge.
    #[error("{0}")]
    NotFound(String),
    /// Threads could not start.
    #[error("cannot start the datapath threads: {0}")]
    Start(#[from] std::io::Error),
}

#[derive(Debug, Clone)]
struct Attached {
    no: u32,
    bridge: String,
    config: PortConfig,
}

impl std::fmt::Debug for Switch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Switch").field("ports", &self.lock().keys().collect::<Vec<_>>()).finish_non_exhaustive()
    }
}

/// The running switch.
pub struct Switch {
    dp: Datapath,
    bridges: Arc<BridgeSet>,
    ports: Mutex<BTreeMap<String, Attached>>,
    default_bridge: String,
}

/// One port in `show`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PortShow {
    /// Name.
    pub name: String,
    /// Datapath port number.
    pub number: u32,
    /// tap, afpacket or afxdp.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its bridge.
    pub bridge: String,
    /// VLAN mode, e.g. `access 10`.
    pub vlan: String,
    /// True once its device is gone.
    pub closed: bool,
    /// Counters.
    pub rx_packets: u64,
    /// Counters.
    pub rx_bytes: u64,
    /// Counters.
    pub tx_packets: u64,
    /// Counters.
    pub tx_bytes: u64,
    /// Non-zero drop counters by reason.
    pub drops: BTreeMap<String, u64>,
}

/// One datapath thread in `show`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ThreadShow {
    /// Index.
    pub thread: usize,
    /// Rx queues it polls.
    pub rx_queues: usize,
    /// Packets processed.
    pub packets: u64,
    /// Exact-match cache hits.
    pub emc_hits: u64,
    /// Megaflow hits.
    pub megaflow_hits: u64,
    /// Upcalls to the slow path.
    pub upcalls: u64,
    /// Megaflows held.
    pub megaflows: usize,
    /// Packets sent to ports (a flooded packet counts once per port).
    pub outputs: u64,
    /// Non-zero drop counters by reason.
    pub drops: BTreeMap<String, u64>,
    /// Average busy time per packet, ns.
    pub ns_per_packet: f64,
    /// Times it slept for lack of traffic.
    pub sleeps: u64,
    /// Light-load naps (`pmd_max_sleep_us`).
    pub light_sleeps: u64,
}

/// `show`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Show {
    /// Bridges with their ports.
    pub bridges: BTreeMap<String, Vec<PortShow>>,
    /// Datapath threads.
    pub threads: Vec<ThreadShow>,
}

/// A learned station.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MacShow {
    /// Bridge.
    pub bridge: String,
    /// VLAN.
    pub vlan: u16,
    /// MAC.
    pub mac: String,
    /// Port name.
    pub port: String,
    /// Seconds since last seen.
    pub age_s: u64,
}

/// `trace`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Trace {
    /// The input port.
    pub in_port: String,
    /// Its bridge.
    pub bridge: String,
    /// The bridge's steps.
    pub steps: Vec<String>,
    /// Resulting actions, with port numbers.
    pub actions: String,
    /// Drop reason, if dropped.
    pub drop: Option<String>,
    /// The megaflow that would be installed.
    pub megaflow: Option<String>,
}

fn open(cfg: &PortConfig) -> Result<Box<dyn Port>, SwitchError> {
    let e = |why: String| SwitchError::Open { name: cfg.name.clone(), kind: cfg.kind.as_str(), why };
    Ok(match cfg.kind {
        PortType::Tap => Box::new(
            TapPort::with_config(&cfg.name, TapConfig { queues: cfg.queues.unwrap_or(1) })
                .map_err(|x| e(x.to_string()))?,
        ),
        PortType::Afpacket => Box::new(AfPacketPort::open(&cfg.name).map_err(|x| e(x.to_string()))?),
        PortType::Afxdp => Box::new(AfXdpPort::open(&cfg.name).map_err(|x| e(x.to_string()))?),
    })
}

fn drops_map(iter: impl Iterator<Item = (String, u64)>) -> BTreeMap<String, u64> {
    iter.filter(|(_, n)| *n > 0).collect()
}

impl Switch {
    /// Starts the datapath threads and opens every configured port.
    pub fn start(config: SwitchConfig) -> Result<Switch, SwitchError> {
        let mut config = config;
        if config.bridges.is_empty() {
            config.bridges.push(crate::config::BridgeConfig::named("br0"));
        }
        config.validate()?;
        let d = &config.datapath;
        let dp_config = DatapathConfig {
            threads: d.threads,
            pipeline: PipelineConfig { flow_limit: d.flow_limit, ..PipelineConfig::default() },
            buffers: d.buffers,
            spin_rounds: d.spin_rounds,
            pmd_max_sleep_us: d.pmd_max_sleep_us,
            ..DatapathConfig::default()
        };
        let bridges = Arc::new(BridgeSet::new(&config.bridges, dp_config.max_ports));
        let dp = Datapath::start(dp_config, bridges.clone())?;
        let sw =
            Switch { dp, bridges, ports: Mutex::new(BTreeMap::new()), default_bridge: config.bridges[0].name.clone() };
        for p in config.ports {
            sw.add_port(p)?;
        }
        Ok(sw)
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Attached>> {
        self.ports.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The datapath (for benchmarks and tests).
    pub fn datapath(&self) -> &Datapath {
        &self.dp
    }

    /// Opens and attaches a port; returns its number.
    pub fn add_port(&self, cfg: PortConfig) -> Result<u32, SwitchError> {
        cfg.validate(DatapathConfig::default().max_ports)?;
        let bridge = cfg.bridge.clone().unwrap_or_else(|| self.default_bridge.clone());
        if self.bridges.get(&bridge).is_none() {
            return Err(SwitchError::NotFound(format!("`bridge` names {bridge:?}, which does not exist")));
        }
        let mut ports = self.lock();
        if ports.contains_key(&cfg.name) {
            return Err(SwitchError::Datapath(sluice_datapath::DatapathError::Duplicate(cfg.name.clone())));
        }
        let port = open(&cfg)?;
        let no = self.dp.add_port_at(cfg.number, port)?;
        self.bridges.attach(no, &bridge, cfg.vlan_config().mode());
        tracing::info!(port = %cfg.name, no, bridge = %bridge, vlan = %cfg.vlan_config().describe(), "port added");
        ports.insert(cfg.name.clone(), Attached { no, bridge, config: cfg });
        Ok(no)
    }

    /// Adds a bridge at run time (OVS's `add-br`), with the default
    /// learning limits. Adding an existing name is a no-op.
    pub fn add_bridge(&self, name: &str) -> Result<(), SwitchError> {
        if name.is_empty() || name.len() > 32 || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(SwitchError::Config(ConfigError(format!(
                "a bridge name must be 1 to 32 printable characters without spaces, got {name:?}"
            ))));
        }
        if !self.bridges.add(&crate::config::BridgeConfig::named(name)) {
            return Err(SwitchError::Config(ConfigError("the switch holds at most 65534 bridges".into())));
        }
        Ok(())
    }

    /// Detaches and closes a port.
    pub fn remove_port(&self, name: &str) -> Result<(), SwitchError> {
        let mut ports = self.lock();
        let Some(a) = ports.remove(name) else {
            return Err(SwitchError::NotFound(format!("no port is called {name:?}")));
        };
        self.bridges.detach(a.no);
        self.dp.remove_port(a.no);
        tracing::info!(port = %name, "port removed");
        Ok(())
    }

    /// Changes a port's VLAN settings.
    pub fn set_vlan(&self, name: &str, vlan: VlanConfig) -> Result<(), SwitchError> {
        vlan.validate(&format!("port {name:?}"))?;
        let mut ports = self.lock();
        let Some(a) = ports.get_mut(name) else {
            return Err(SwitchError::NotFound(format!("no port is called {name:?}")));
        };
        self.bridges.attach(a.no, &a.bridge, vlan.mode());
        a.config.vlan = vlan.vlan;
        a.config.trunks = vlan.trunks.clone();
        a.config.native = vlan.native;
        tracing::info!(port = %name, vlan = %vlan.describe(), "port VLAN changed");
        Ok(())
    }

    /// A port's configuration and whether its device is gone.
    pub fn port(&self, name: &str) -> Option<(PortConfig, bool)> {
        let a = self.lock().get(name).cloned()?;
        let closed = self.dp.ports().iter().find(|p| p.no == a.no).is_some_and(|p| p.closed);
        Some((a.config, closed))
    }

    /// Ports, bridges and threads with their counters.
    pub fn show(&self) -> Show {
        let ports = self.lock().clone();
        let infos = self.dp.ports();
        let mut bridges: BTreeMap<String, Vec<PortShow>> =
            self.bridges.names().into_iter().map(|n| (n, Vec::new())).collect();
        for (name, a) in &ports {
            let Some(info) = infos.iter().find(|i| i.no == a.no) else { continue };
            let s = &info.stats;
            bridges.entry(a.bridge.clone()).or_default().push(PortShow {
                name: name.clone(),
                number: a.no,
                kind: a.config.kind.as_str().into(),
                bridge: a.bridge.clone(),
                vlan: a.config.vlan_config().describe(),
                closed: info.closed,
                rx_packets: s.rx_packets,
                rx_bytes: s.rx_bytes,
                tx_packets: s.tx_packets,
                tx_bytes: s.tx_bytes,
                drops: drops_map(DropReason::ALL.iter().map(|r| (r.as_str().to_string(), s.drops.get(*r)))),
            });
        }
        let threads = self
            .dp
            .thread_stats()
            .iter()
            .map(|t| ThreadShow {
                thread: t.thread,
                rx_queues: t.rx_queues,
                packets: t.pipeline.packets,
                emc_hits: t.pipeline.emc_hits,
                megaflow_hits: t.pipeline.megaflow_hits,
                upcalls: t.pipeline.upcalls,
                megaflows: t.megaflows,
                outputs: t.pipeline.outputs,
                drops: drops_map(PipelineDrop::ALL.iter().map(|r| (r.as_str().to_string(), t.pipeline.drop_count(*r)))),
                ns_per_packet: (t.ns_per_packet() * 10.0).round() / 10.0,
                sleeps: t.sleeps,
                light_sleeps: t.light_sleeps,
            })
            .collect();
        Show { bridges, threads }
    }

    /// Port number → name, for readable dumps.
    fn names(&self) -> BTreeMap<u32, String> {
        self.lock().iter().map(|(n, a)| (a.no, n.clone())).collect()
    }

    /// Every thread's megaflows (`dump-flows`).
    pub fn dump_flows(&self) -> Vec<(usize, Vec<String>)> {
        self.dp.dump_flows(Duration::from_secs(2))
    }

    /// Port numbers and names, for reading dumps.
    pub fn port_numbers(&self) -> BTreeMap<u32, String> {
        self.names()
    }

    /// What the slow path would do with the packet `spec` (see
    /// [`crate::spec`]); `in_port` must name a port.
    pub fn trace(&self, spec: &str) -> Result<Trace, SwitchError> {
        let p = crate::spec::parse(spec).map_err(|e| SwitchError::Config(ConfigError(e)))?;
        let Some(in_port) = p.in_port else {
            return Err(SwitchError::Config(ConfigError("the packet spec needs `in_port=NAME`".into())));
        };
        let (no, bridge) = match self.lock().get(&in_port) {
            Some(a) => (a.no, a.bridge.clone()),
            None => return Err(SwitchError::NotFound(format!("`in_port` names {in_port:?}, which is not a port"))),
        };
        let b = self.bridges.get(&bridge).ok_or_else(|| SwitchError::NotFound(format!("no bridge {bridge:?}")))?;
        let r = b.trace(no, &p.frame, self.dp.now_ms());
        let names = self.names();
        let mut steps = r.steps;
        steps.push(format!("ports: {}", names.iter().map(|(n, s)| format!("{n}={s}")).collect::<Vec<_>>().join(" ")));
        Ok(Trace {
            in_port,
            bridge,
            steps,
            actions: r.actions,
            drop: r.drop.map(|d| d.as_str().to_string()),
            megaflow: r.megaflow,
        })
    }

    /// Learned stations of one bridge or all.
    pub fn macs(&self, bridge: Option<&str>) -> Result<Vec<MacShow>, SwitchError> {
        if let Some(b) = bridge
            && self.bridges.get(b).is_none()
        {
            return Err(SwitchError::NotFound(format!("`bridge` names {b:?}, which does not exist")));
        }
        let names = self.names();
        let now = self.dp.now_ms();
        let mut out = Vec::new();
        for name in self.bridges.names() {
            if bridge.is_some_and(|b| b != name) {
                continue;
            }
            let Some(b) = self.bridges.get(&name) else { continue };
            for (vlan, mac, port, age) in b.macs(now) {
                out.push(MacShow {
                    bridge: name.clone(),
                    vlan,
                    mac: mac.to_string(),
                    port: names.get(&port).cloned().unwrap_or_else(|| port.to_string()),
                    age_s: age / 1000,
                });
            }
        }
        Ok(out)
    }

    /// Stops the threads and closes every port.
    pub fn stop(self) {
        self.dp.stop();
    }
}
