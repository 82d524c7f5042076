//! `sluice dp`: the switch datapath's control client (`show`, `dump-flows`,
//! `trace`, ports and VLANs at run time, MAC tables), and `dp run`, a
//! switch in the foreground on the interfaces named (no agent, no state:
//! what benchmarks and quick experiments want).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::Value;
use sluice_switch::config::DatapathSection;
use sluice_switch::control::{DEFAULT_SOCKET, Request, request};
use sluice_switch::{PortConfig, PortType, Switch, SwitchConfig, VlanConfig};

/// Arguments of `sluice dp`.
#[derive(Debug, Parser)]
pub struct Args {
    /// The switch's control socket.
    #[arg(long, env = "SLUICE_DP_SOCKET", default_value = DEFAULT_SOCKET, global = true)]
    socket: PathBuf,
    /// Print the raw JSON answer.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Kind {
    Tap,
    Afpacket,
    Afxdp,
}

impl From<Kind> for PortType {
    fn from(k: Kind) -> PortType {
        match k {
            Kind::Tap => PortType::Tap,
            Kind::Afpacket => PortType::Afpacket,
            Kind::Afxdp => PortType::Afxdp,
        }
    }
}

#[derive(Debug, clap::Args)]
struct VlanArgs {
    /// Access port of this VLAN (1..=4094).
    #[arg(long, conflicts_with = "trunks")]
    vlan: Option<u16>,
    /// Trunk port of these VLANs (comma-separated, each 1..=4094).
    #[arg(long, value_delimiter = ',')]
    trunks: Option<Vec<u16>>,
    /// On a trunk: the VLAN of untagged frames (1..=4094).
    #[arg(long, requires = "trunks")]
    native: Option<u16>,
}

impl VlanArgs {
    fn config(&self) -> VlanConfig {
        VlanConfig { vlan: self.vlan, trunks: self.trunks.clone(), native: self.native }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bridges, ports and datapath threads with their counters.
    Show,
    /// Megaflows of every datapath thread, with packets, bytes and age.
    DumpFlows,
    /// What the switch would do with a packet: the bridge's steps and the
    /// megaflow it would install. SPEC: in_port=NAME,eth_src=MAC,eth_dst=MAC
    /// [,vlan=VID][,ip_src=A,ip_dst=B,proto=udp|tcp|icmp,tp_src=P,tp_dst=P].
    Trace {
        /// The packet spec.
        spec: String,
    },
    /// Open a port and attach it to a bridge.
    AddPort {
        /// Interface or TAP name.
        name: String,
        /// How to open it.
        #[arg(long = "type", value_enum)]
        kind: Kind,
        /// Bridge (default: the first).
        #[arg(long)]
        bridge: Option<String>,
        /// TAP queues (1..=256).
        #[arg(long)]
        queues: Option<usize>,
        #[command(flatten)]
        vlan: VlanArgs,
    },
    /// Detach and close a port.
    DelPort {
        /// Its name.
        name: String,
    },
    /// Change a port's VLANs (no option: trunk of every VLAN).
    SetVlan {
        /// Its name.
        name: String,
        #[command(flatten)]
        vlan: VlanArgs,
    },
    /// Learned MAC addresses.
    Macs {
        /// One bridge only.
        #[arg(long)]
        bridge: Option<String>,
    },
    /// Run a switch in the foreground on these interfaces (one bridge, every
    /// port a trunk of all VLANs) until SIGINT or SIGTERM.
    Run {
        /// How to open the interfaces.
        #[arg(long = "type", value_enum, default_value_t = Kind::Afxdp)]
        kind: Kind,
        /// Datapath threads (1..=64).
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Print the counters every this many seconds (0: only at exit).
        #[arg(long, default_value_t = 0)]
        stats_every: u64,
        /// Light-load sleep in microseconds, 0..=10000 (OVS's pmd-maxsleep;
        /// 0: busy-poll while traffic flows).
        #[arg(long, default_value_t = 0)]
        pmd_max_sleep_us: u64,
        /// Interfaces (or TAP devices) to switch between.
        #[arg(required = true)]
        ifaces: Vec<String>,
    },
}

/// Runs `sluice dp`.
pub fn run(args: Args) -> Result<()> {
    let req = match args.command {
        Command::Run { kind, threads, stats_every, pmd_max_sleep_us, ifaces } => {
            return run_switch(kind, threads, stats_every, pmd_max_sleep_us, &ifaces);
        }
        Command::Show => Request::Show,
        Command::DumpFlows => Request::DumpFlows,
        Command::Trace { spec } => Request::Trace { packet: spec },
        Command::AddPort { name, kind, bridge, queues, vlan } => {
            let v = vlan.config();
            Request::AddPort {
                port: PortConfig {
                    name,
                    kind: kind.into(),
                    bridge,
                    number: None,
                    queues,
                    vlan: v.vlan,
                    trunks: v.trunks,
                    native: v.native,
                },
            }
        }
        Command::DelPort { name } => Request::DelPort { name },
        Command::SetVlan { name, vlan } => Request::SetVlan { name, vlan: vlan.config() },
        Command::Macs { bridge } => Request::Macs { bridge },
    };
    let v = request(&args.socket, &req).map_err(|e| anyhow!(e))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    match req {
        Request::Show => print_show(&v),
        Request::DumpFlows => print_flows(&v),
        Request::Trace { .. } => print_trace(&v),
        Request::Macs { .. } => {
            println!("{:<8} {:>5}  {:<17}  {:<12} {:>6}", "BRIDGE", "VLAN", "MAC", "PORT", "AGE(s)");
            for m in v.as_array().into_iter().flatten() {
                println!(
                    "{:<8} {:>5}  {:<17}  {:<12} {:>6}",
                    s(&m["bridge"]),
                    s(&m["vlan"]),
                    s(&m["mac"]),
                    s(&m["port"]),
                    s(&m["age_s"])
                );
            }
        }
        Request::AddPort { .. } => println!("port {} added", v["number"]),
        _ => println!("ok"),
    }
    Ok(())
}

fn s(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

fn drops(v: &Value) -> String {
    let m = v.as_object().map(|m| m.iter().map(|(k, n)| format!("{k}={n}")).collect::<Vec<_>>()).unwrap_or_default();
    if m.is_empty() { "-".into() } else { m.join(",") }
}

/// Prints `show` as tables (shared with `sluice demo`).
pub fn print_show(v: &Value) {
    for (bridge, ports) in v["bridges"].as_object().into_iter().flatten() {
        println!("bridge {bridge}");
        println!(
            "  {:<10} {:>3} {:<8} {:<18} {:>10} {:>10} {:>10} {:>10}  {:<7} DROPS",
            "PORT", "NO", "TYPE", "VLAN", "RX-PKTS", "RX-BYTES", "TX-PKTS", "TX-BYTES", "STATE"
        );
        for p in ports.as_array().into_iter().flatten() {
            println!(
                "  {:<10} {:>3} {:<8} {:<18} {:>10} {:>10} {:>10} {:>10}  {:<7} {}",
                s(&p["name"]),
                s(&p["number"]),
                s(&p["type"]),
                s(&p["vlan"]),
                s(&p["rx_packets"]),
                s(&p["rx_bytes"]),
                s(&p["tx_packets"]),
                s(&p["tx_bytes"]),
                if p["closed"] == true { "closed" } else { "up" },
                drops(&p["drops"])
            );
        }
    }
    println!(
        "{:<7} {:>4} {:>10} {:>10} {:>10} {:>8} {:>9} {:>9}  DROPS",
        "THREAD", "RXQ", "PACKETS", "EMC-HITS", "MF-HITS", "UPCALLS", "MEGAFLOWS", "NS/PKT"
    );
    for t in v["threads"].as_array().into_iter().flatten() {
        println!(
            "{:<7} {:>4} {:>10} {:>10} {:>10} {:>8} {:>9} {:>9}  {}",
            s(&t["thread"]),
            s(&t["rx_queues"]),
            s(&t["packets"]),
            s(&t["emc_hits"]),
            s(&t["megaflow_hits"]),
            s(&t["upcalls"]),
            s(&t["megaflows"]),
            s(&t["ns_per_packet"]),
            drops(&t["drops"])
        );
    }
}

fn print_flows(v: &Value) {
    let ports: Vec<String> =
        v["ports"].as_object().into_iter().flatten().map(|(n, name)| format!("{n}={}", s(name))).collect();
    println!("ports: {}", ports.join(" "));
    for t in v["threads"].as_array().into_iter().flatten() {
        let flows = t["flows"].as_array().cloned().unwrap_or_default();
        println!("thread {} ({} megaflows):", t["thread"], flows.len());
        for f in flows {
            println!("  {}", s(&f));
        }
    }
}

fn print_trace(v: &Value) {
    println!("bridge {} in_port {}", s(&v["bridge"]), s(&v["in_port"]));
    for step in v["steps"].as_array().into_iter().flatten() {
        println!("  {}", s(step));
    }
    println!("actions: {}", s(&v["actions"]));
    if let Some(d) = v["drop"].as_str() {
        println!("drop reason: {d}");
    }
    match v["megaflow"].as_str() {
        Some(m) => println!("megaflow: {m}"),
        None => println!("megaflow: none (not cacheable)"),
    }
}

/// SIGINT/SIGTERM set `flag` (a thread with a small tokio runtime waits
/// for them; the main thread polls the flag).
pub fn on_signal(flag: Arc<AtomicBool>) -> Result<()> {
    let rt =
        tokio::runtime::Builder::new_current_thread().enable_io().build().context("cannot start signal handling")?;
    std::thread::Builder::new().name("sluice-signals".into()).spawn(move || {
        rt.block_on(async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
            }
        });
        flag.store(true, Ordering::Release);
    })?;
    Ok(())
}

fn run_switch(kind: Kind, threads: usize, stats_every: u64, pmd_max_sleep_us: u64, ifaces: &[String]) -> Result<()> {
    if !(1..=64).contains(&threads) {
        bail!("--threads must be in 1..=64, got {threads}");
    }
    if pmd_max_sleep_us > 10_000 {
        bail!("--pmd-max-sleep-us must be in 0..=10000, got {pmd_max_sleep_us}");
    }
    let stop = Arc::new(AtomicBool::new(false));
    on_signal(stop.clone())?;
    let config = SwitchConfig {
        datapath: DatapathSection { threads, pmd_max_sleep_us, ..DatapathSection::default() },
        ports: ifaces
            .iter()
            .map(|n| PortConfig {
                name: n.clone(),
                kind: kind.into(),
                bridge: None,
                number: None,
                queues: None,
                vlan: None,
                trunks: None,
                native: None,
            })
            .collect(),
        ..SwitchConfig::default()
    };
    let sw = Switch::start(config)?;
    eprintln!("sluice dp run: switching {} ({:?}); SIGINT or SIGTERM stops", ifaces.join(" "), kind);
    let mut last = std::time::Instant::now();
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(std::time::Duration::from_millis(100));
        if stats_every > 0 && last.elapsed().as_secs() >= stats_every {
            last = std::time::Instant::now();
            print_show(&serde_json::to_value(sw.show())?);
        }
    }
    print_show(&serde_json::to_value(sw.show())?);
    sw.stop();
    Ok(())
}
