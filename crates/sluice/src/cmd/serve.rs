//! `sluice serve`: runs the switch (datapath threads, bridges, its control
//! socket) and the host agent (REST API on a unix socket) in one process.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use sluice_agent::host::VfReset;
use std::sync::Arc;

use sluice_agent::api::MetricsSource;
use sluice_agent::serve::{Config, Extras, TcpListen};
use sluice_agent::switch::{SwitchPort, SwitchPorts, TapSwitchPorts};
use sluice_switch::{PortConfig, PortType, Switch, VlanConfig};

/// Arguments of `sluice serve`.
#[derive(Debug, Parser)]
#[command(long_about = "Runs Sluice: the switch (datapath threads and bridges, from --switch-config or \
empty, with its control socket for `sluice dp`) and the host agent (the REST API under /v1/ on a unix \
socket, mode 0600, the intent store and the VF pools).")]
pub struct Args {
    /// State directory: store.redb, host claim records, and api.sock
    /// unless --socket is given.
    /// [default: /var/lib/sluice]
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Socket path (default DIR/api.sock with --state-dir, else
    /// /run/sluice/api.sock).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Root of the sysfs tree (tests point this at a synthetic tree).
    #[arg(long, default_value = "/sys")]
    sysfs_root: PathBuf,
    /// How VFs are reset around assignment: over rtnetlink on the PF, or
    /// only the claim records (synthetic trees without PF netdevs).
    #[arg(long, value_enum, default_value_t = ResetMode::Netlink)]
    vf_reset: ResetMode,
    /// Also listen on TCP at this address (requires --token-file).
    #[arg(long, requires = "token_file")]
    tcp: Option<std::net::SocketAddr>,
    /// File holding the bearer token required on the TCP listener.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// The switch's configuration (TOML: bridges, ports, VLANs); without
    /// it the switch starts with one empty bridge, br0.
    #[arg(long)]
    switch_config: Option<PathBuf>,
    /// The switch's control socket (default DIR/dp.sock with --state-dir,
    /// else /run/sluice/dp.sock).
    #[arg(long)]
    dp_socket: Option<PathBuf>,
    /// Seconds between periodic reconcile passes (a pass also runs at
    /// start-up and after every bind and release); 0.1..=86400.
    #[arg(long, default_value_t = 30.0, value_parser = parse_interval)]
    reconcile_interval: f64,
}

fn parse_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.1..=86400.0).contains(&v) => Ok(v),
        _ => Err(format!("must be a number of seconds in 0.1..=86400, got {s:?}")),
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ResetMode {
    Netlink,
    ClaimOnly,
}

/// Runs `sluice serve`.
pub fn run(args: Args) -> Result<()> {
    let socket = args.socket.unwrap_or_else(|| match &args.state_dir {
        Some(d) => d.join("api.sock"),
        None => PathBuf::from(sluice_agent::client::DEFAULT_SOCKET),
    });
    let tcp = match (args.tcp, &args.token_file) {
        (Some(addr), Some(f)) => {
            let token = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the token file {}", f.display()))?
                .trim()
                .to_string();
            if token.len() < 16 {
                bail!("the token in {} must be at least 16 characters long, got {}", f.display(), token.len());
            }
            Some(TcpListen { addr, token })
        }
        _ => None,
    };
    let switch_config = match &args.switch_config {
        Some(f) => {
            let text = std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
            sluice_switch::SwitchConfig::from_toml(&text).with_context(|| format!("in {}", f.display()))?
        }
        None => sluice_switch::SwitchConfig::default(),
    };
    let dp_socket = args.dp_socket.unwrap_or_else(|| match &args.state_dir {
        Some(d) => d.join("dp.sock"),
        None => PathBuf::from(sluice_switch::control::DEFAULT_SOCKET),
    });
    match sluice_mem::thp_mode().as_deref() {
        Some(mode @ ("always" | "madvise")) => {
            tracing::info!(thp = mode, "flow tables on transparent huge pages")
        }
        mode => tracing::warn!(
            thp = mode.unwrap_or("absent"),
            "transparent huge pages are off, so the flow tables use 4 KB pages: lookups at a million flows \
             are about a third slower (echo madvise > /sys/kernel/mm/transparent_hugepage/enabled)"
        ),
    }
    let switch = Arc::new(Switch::start(switch_config).context("the switch did not start")?);
    let _control = sluice_switch::ControlServer::start(&dp_socket, switch.clone())
        .with_context(|| format!("cannot listen on {}", dp_socket.display()))?;
    tracing::info!(socket = %dp_socket.display(), "switch control socket ready");
    let state_dir = args.state_dir.unwrap_or_else(|| PathBuf::from("/var/lib/sluice"));
    let vf_reset = match args.vf_reset {
        ResetMode::Netlink => VfReset::Netlink,
        ResetMode::ClaimOnly => VfReset::ClaimOnly,
    };
    // On a real host the agent's `normal` ports become ports of this
    // switch; synthetic hosts keep the agent's in-memory stand-in.
    let switch_ports: Option<Arc<dyn SwitchPorts>> = match vf_reset {
        VfReset::Netlink => Some(Arc::new(SwitchGlue {
            taps: TapSwitchPorts::new(state_dir.join("switch")).context("cannot keep switch port records")?,
            switch: switch.clone(),
            opened: std::sync::Mutex::default(),
        })),
        VfReset::ClaimOnly => None,
    };
    let metrics: Vec<Arc<dyn MetricsSource>> = vec![Arc::new(SwitchMetrics(switch.clone()))];
    sluice_agent::serve::run_with(
        Config {
            tcp,
            state_dir,
            socket,
            sysfs_root: args.sysfs_root,
            vf_reset,
            reconcile_interval: std::time::Duration::from_secs_f64(args.reconcile_interval),
        },
        Extras { switch: switch_ports, metrics },
    )
}

/// The agent's switch ports on the running switch: the agent keeps making
/// the persistent TAP a VM's QEMU opens (its records say which TAPs are
/// ours), and the switch attaches to the TAP's host side through AF_PACKET,
/// as OVS attaches a tap as a system port.
#[derive(Debug)]
struct SwitchGlue {
    taps: TapSwitchPorts,
    switch: Arc<Switch>,
    /// The interface index each TAP had when the switch opened it: a TAP
    /// deleted and made again has a new index, and the switch's socket on
    /// the old one must be replaced.
    opened: std::sync::Mutex<std::collections::HashMap<String, u32>>,
}

impl SwitchGlue {
    fn ifindex(name: &str) -> sluice_agent::Result<Option<u32>> {
        Ok(sluice_sriov::netlink::link::Links::open()?.find(name)?.map(|l| l.ifindex))
    }

    fn opened(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, u32>> {
        self.opened.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The switch holds `tap` open on its current interface.
    fn current(&self, tap: &str) -> sluice_agent::Result<bool> {
        let now = Self::ifindex(tap)?;
        Ok(now.is_some()
            && self.opened().get(tap).copied() == now
            && self.switch.port(tap).is_some_and(|(_, closed)| !closed))
    }
}

fn glue_err(e: impl std::fmt::Display) -> sluice_agent::Error {
    sluice_agent::Error::Store(format!("the switch refused: {e}"))
}

impl SwitchGlue {
    /// Makes `name` an AF_PACKET port of `bridge` (None: the first bridge)
    /// with `vlan`, opened on the interface as it is now.
    fn ensure(&self, name: &str, bridge: Option<&str>, vlan: VlanConfig) -> sluice_agent::Result<()> {
        let current = self.current(name)?;
        match self.switch.port(name) {
            Some((cfg, _)) if current && cfg.bridge.as_deref() == bridge && cfg.vlan_config() == vlan => Ok(()),
            Some((cfg, _)) if current && cfg.bridge.as_deref() == bridge => {
                self.switch.set_vlan(name, vlan).map_err(glue_err)
            }
            other => {
                if other.is_some() {
                    self.switch.remove_port(name).map_err(glue_err)?;
                }
                let index = Self::ifindex(name)?;
                let cfg = PortConfig {
                    name: name.to_string(),
                    kind: PortType::Afpacket,
                    bridge: bridge.map(str::to_string),
                    number: None,
                    queues: None,
                    vlan: vlan.vlan,
                    trunks: vlan.trunks,
                    native: vlan.native,
                };
                self.switch.add_port(cfg).map_err(glue_err)?;
                if let Some(i) = index {
                    self.opened().insert(name.to_string(), i);
                }
                Ok(())
            }
        }
    }

    /// The private bridge of a virtio-forwarder port: its TAP and its VF.
    fn forwarder_bridge(tap: &str) -> String {
        format!("fwd:{tap}")
    }
}

impl SwitchPorts for SwitchGlue {
    fn attach(&self, port: &SwitchPort) -> sluice_agent::Result<()> {
        self.taps.attach(port)?;
        match &port.uplink {
            None => self.ensure(&port.tap, None, VlanConfig { vlan: port.vlan, trunks: None, native: None }),
            // virtio-forwarder: the TAP and the VF netdev alone on a bridge
            // of their own (the VF tags in hardware: no VLAN here).
            Some(vf) => {
                let bridge = Self::forwarder_bridge(&port.tap);
                self.switch.add_bridge(&bridge).map_err(glue_err)?;
                self.ensure(&port.tap, Some(&bridge), VlanConfig::default())?;
                self.ensure(vf, Some(&bridge), VlanConfig::default())
            }
        }
    }

    fn detach(&self, port_id: &str) -> sluice_agent::Result<()> {
        // By name, not by record: a TAP already gone has no attachment
        // left, but the switch may still hold its port (and a forwarder's
        // VF port on its private bridge).
        let tap = sluice_agent::xml::tap_name(port_id);
        let bridge = Self::forwarder_bridge(&tap);
        let mut names: Vec<String> = self
            .switch
            .show()
            .bridges
            .get(&bridge)
            .map(|ps| ps.iter().map(|p| p.name.clone()).collect())
            .unwrap_or_default();
        names.push(tap.clone());
        names.dedup();
        for n in names {
            if self.switch.port(&n).is_some() {
                self.switch.remove_port(&n).map_err(glue_err)?;
            }
            self.opened().remove(&n);
        }
        self.taps.detach(port_id)
    }

    fn attached(&self, port_id: &str) -> sluice_agent::Result<Option<SwitchPort>> {
        match self.taps.attached(port_id)? {
            Some(p) if self.current(&p.tap)? && p.uplink.as_deref().map_or(Ok(true), |u| self.current(u))? => {
                Ok(Some(p))
            }
            _ => Ok(None),
        }
    }

    fn ports(&self) -> sluice_agent::Result<Vec<String>> {
        self.taps.ports()
    }
}

/// The datapath's counters on the agent's `/metrics`.
#[derive(Debug)]
struct SwitchMetrics(Arc<Switch>);

impl MetricsSource for SwitchMetrics {
    fn write_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let show = self.0.show();
        let _ = writeln!(out, "# HELP sluice_dp_port_packets_total Packets a switch port received (rx) or sent (tx).");
        let _ = writeln!(out, "# TYPE sluice_dp_port_packets_total counter");
        for p in show.bridges.values().flatten() {
            let _ = writeln!(out, "sluice_dp_port_packets_total{{port=\"{}\",dir=\"rx\"}} {}", p.name, p.rx_packets);
            let _ = writeln!(out, "sluice_dp_port_packets_total{{port=\"{}\",dir=\"tx\"}} {}", p.name, p.tx_packets);
        }
        let _ = writeln!(out, "# HELP sluice_dp_port_drops_total Packets a switch port dropped, by reason.");
        let _ = writeln!(out, "# TYPE sluice_dp_port_drops_total counter");
        for p in show.bridges.values().flatten() {
            for (reason, n) in &p.drops {
                let _ = writeln!(out, "sluice_dp_port_drops_total{{port=\"{}\",reason=\"{reason}\"}} {n}", p.name);
            }
        }
        let _ = writeln!(out, "# HELP sluice_dp_thread_packets_total Packets a datapath thread processed, by how.");
        let _ = writeln!(out, "# TYPE sluice_dp_thread_packets_total counter");
        for t in &show.threads {
            for (how, n) in [("emc_hit", t.emc_hits), ("megaflow_hit", t.megaflow_hits), ("upcall", t.upcalls)] {
                let _ = writeln!(out, "sluice_dp_thread_packets_total{{thread=\"{}\",path=\"{how}\"}} {n}", t.thread);
            }
        }
        let _ = writeln!(out, "# HELP sluice_dp_thread_drops_total Packets the pipeline dropped, by reason.");
        let _ = writeln!(out, "# TYPE sluice_dp_thread_drops_total counter");
        for t in &show.threads {
            for (reason, n) in &t.drops {
                let _ =
                    writeln!(out, "sluice_dp_thread_drops_total{{thread=\"{}\",reason=\"{reason}\"}} {n}", t.thread);
            }
        }
        let _ = writeln!(out, "# HELP sluice_dp_megaflows Megaflows a datapath thread holds.");
        let _ = writeln!(out, "# TYPE sluice_dp_megaflows gauge");
        for t in &show.threads {
            let _ = writeln!(out, "sluice_dp_megaflows{{thread=\"{}\"}} {}", t.thread, t.megaflows);
        }
    }
}
