//! `sluice demo`: the switch, end to end, in two minutes of reading.
//!
//! Builds four network-namespace "VMs" on this host, attaches them to a
//! Sluice switch running in this process (two by AF_XDP over veth pairs,
//! two by TAP devices, as a VM's tap would be), puts two on VLAN 10 and two
//! on VLAN 20 — all four in one IP subnet, so only the VLANs keep them
//! apart — then pings, sends a UDP burst, shows that the VLANs are
//! isolated, prints the switch's counters, and removes everything it made
//! (also on Ctrl-C, and when a step fails). Needs root. Traffic never
//! leaves the namespaces it creates.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use sluice_switch::{PortConfig, PortType, Switch, SwitchConfig};

/// Arguments of `sluice demo`.
#[derive(Debug, Parser)]
pub struct Args {
    /// UDP datagrams in the burst (1..=1000000).
    #[arg(long, default_value_t = 10_000)]
    burst: u32,
    /// Keep the namespaces and the switch up until Ctrl-C, to look around
    /// (`ip netns`, `sluice dp show --socket …`).
    #[arg(long)]
    keep: bool,
}

/// Arguments of the hidden UDP helper the demo runs inside a namespace.
#[derive(Debug, Parser)]
pub struct UdpArgs {
    /// `send` or `recv`.
    mode: String,
    /// Address: where to send, or where to listen.
    addr: std::net::SocketAddr,
    /// Datagrams to send.
    #[arg(long, default_value_t = 1000)]
    count: u32,
    /// Seconds to wait for the first (recv) or the next (recv) datagram.
    #[arg(long, default_value_t = 3)]
    wait: u64,
}

/// The hidden helper: sends `count` 18-byte datagrams (paced), or counts what
/// arrives until `wait` seconds pass without one, and prints the count.
pub fn udp(args: UdpArgs) -> Result<()> {
    match args.mode.as_str() {
        "send" => {
            let s = std::net::UdpSocket::bind(("0.0.0.0", 0))?;
            for i in 0..args.count {
                s.send_to(&[i as u8; 18], args.addr)?;
                // Paced (about 15k datagrams/s) so that the receiving
                // socket's default buffer keeps up even on a busy host.
                if i % 16 == 15 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            println!("{}", args.count);
        }
        "recv" => {
            let s = std::net::UdpSocket::bind(args.addr)?;
            s.set_read_timeout(Some(Duration::from_secs(args.wait)))?;
            let mut n = 0u64;
            let mut buf = [0u8; 64];
            while s.recv(&mut buf).is_ok() {
                n += 1;
                s.set_read_timeout(Some(Duration::from_millis(500)))?;
            }
            println!("{n}");
        }
        m => bail!("mode must be send or recv, got {m:?}"),
    }
    Ok(())
}

/// What the demo created, removed on drop.
struct Host {
    netns: Vec<String>,
    links: Vec<String>,
}

impl Drop for Host {
    fn drop(&mut self) {
        for l in &self.links {
            let _ = Command::new("ip").args(["link", "del", l]).output();
        }
        for n in &self.netns {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

fn sh(argv: &[&str]) -> Result<Output> {
    let out = Command::new(argv[0]).args(&argv[1..]).output().with_context(|| format!("cannot run {}", argv[0]))?;
    Ok(out)
}

fn must(argv: &[&str]) -> Result<()> {
    let out = sh(argv)?;
    if !out.status.success() {
        bail!("`{}` failed: {}", argv.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

struct Vm {
    ns: String,
    ip: &'static str,
    vlan: u16,
    port: String,
    kind: PortType,
}

fn ping(vm: &Vm, to: &str, count: u32) -> Result<(bool, String)> {
    let c = count.to_string();
    let out = sh(&["ip", "netns", "exec", &vm.ns, "ping", "-c", &c, "-i", "0.2", "-W", "1", to])?;
    let text = String::from_utf8_lossy(&out.stdout);
    let summary = text.lines().find(|l| l.contains("packets transmitted")).unwrap_or("no reply").to_string();
    Ok((out.status.success(), summary))
}

/// Runs `sluice demo`.
pub fn run(args: Args) -> Result<()> {
    if !is_root() {
        bail!("`sluice demo` needs root: it creates network namespaces, veth pairs and TAP devices (try sudo)");
    }
    if !(1..=1_000_000).contains(&args.burst) {
        bail!("--burst must be in 1..=1000000, got {}", args.burst);
    }
    let stop = Arc::new(AtomicBool::new(false));
    super::dp::on_signal(stop.clone())?;
    let exe: PathBuf = std::env::current_exe().context("cannot find this program's path")?;
    let tag = std::process::id();
    let mut host = Host { netns: Vec::new(), links: Vec::new() };
    let mut vms = Vec::new();
    for (i, (ip, vlan, kind)) in [
        ("10.99.0.1", 10, PortType::Afxdp),
        ("10.99.0.2", 10, PortType::Tap),
        ("10.99.0.3", 20, PortType::Afxdp),
        ("10.99.0.4", 20, PortType::Tap),
    ]
    .into_iter()
    .enumerate()
    {
        let ns = format!("sluice-demo-{tag}-vm{}", i + 1);
        must(&["ip", "netns", "add", &ns])?;
        host.netns.push(ns.clone());
        let port = format!("sd{}p{tag}", i + 1);
        let port = port[..port.len().min(15)].to_string();
        if kind == PortType::Afxdp {
            must(&["ip", "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
            host.links.push(port.clone());
            must(&["ip", "link", "set", &port, "up"])?;
            // XDP sees frames as they are: no partial checksums, no GSO; no GRO on our end.
            let off =
                sh(&["ip", "netns", "exec", &ns, "ethtool", "-K", "eth0", "tx", "off", "tso", "off", "gso", "off"]);
            if !off.is_ok_and(|o| o.status.success()) {
                eprintln!(
                    "warning: ethtool could not turn checksum offload off in {ns} (apt install ethtool): UDP and TCP through AF_XDP may arrive with bad checksums"
                );
            }
            let _ = sh(&["ethtool", "-K", &port, "gro", "off"]);
        }
        vms.push(Vm { ns, ip, vlan, port, kind });
    }
    println!("== 4 VMs (network namespaces), one subnet 10.99.0.0/24, two VLANs");
    let config = SwitchConfig {
        ports: vms
            .iter()
            .map(|vm| PortConfig {
                name: vm.port.clone(),
                kind: vm.kind,
                bridge: None,
                number: None,
                queues: None,
                vlan: Some(vm.vlan),
                trunks: None,
                native: None,
            })
            .collect(),
        ..SwitchConfig::default()
    };
    let sw = Switch::start(config).context("the switch did not start")?;
    for vm in &vms {
        if vm.kind == PortType::Tap {
            // The switch opened the TAP here; its other end goes to the "VM".
            must(&["ip", "link", "set", &vm.port, "netns", &vm.ns])?;
            must(&["ip", "-n", &vm.ns, "link", "set", &vm.port, "name", "eth0"])?;
        }
        must(&["ip", "-n", &vm.ns, "link", "set", "lo", "up"])?;
        must(&["ip", "-n", &vm.ns, "link", "set", "eth0", "up"])?;
        must(&["ip", "-n", &vm.ns, "addr", "add", &format!("{}/24", vm.ip), "dev", "eth0"])?;
        println!(
            "   {:<26} {:<10} eth0 {:<10} switch port {:<11} {:<5} VLAN {}",
            vm.ns,
            format!("{:?}", vm.kind).to_lowercase(),
            vm.ip,
            vm.port,
            "",
            vm.vlan
        );
    }
    let result = steps(&args, &exe, &vms, &sw, &stop);
    println!("\n== switch counters");
    super::dp::print_show(&serde_json::to_value(sw.show())?);
    if args.keep && result.is_ok() {
        println!("\n--keep: namespaces stay up until Ctrl-C ({})", host.netns.join(" "));
        while !stop.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    sw.stop();
    drop(host);
    println!("\n== cleaned up: namespaces, veths and TAPs removed");
    result
}

fn steps(args: &Args, exe: &std::path::Path, vms: &[Vm], sw: &Switch, stop: &AtomicBool) -> Result<()> {
    let check = || if stop.load(Ordering::Acquire) { bail!("interrupted") } else { Ok(()) };
    // Let XDP attach and the links come up (first ping may need ARP).
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) && !ping(&vms[0], vms[1].ip, 1)?.0 {
        check()?;
    }
    println!("\n== ping within VLAN 10 (AF_XDP -> TAP) and VLAN 20 (AF_XDP -> TAP)");
    for (a, b) in [(0, 1), (2, 3)] {
        check()?;
        let (ok, summary) = ping(&vms[a], vms[b].ip, 3)?;
        println!("   {} -> {}: {} ({summary})", vms[a].ip, vms[b].ip, if ok { "reachable" } else { "NO REPLY" });
        if !ok {
            bail!("ping from {} to {} failed inside one VLAN", vms[a].ip, vms[b].ip);
        }
    }
    println!("\n== UDP burst of {} datagrams, 10.99.0.1 -> 10.99.0.2:7000", args.burst);
    check()?;
    let exe = exe.to_string_lossy().to_string();
    let recv = Command::new("ip")
        .args(["netns", "exec", &vms[1].ns, &exe, "demo-udp", "recv", &format!("{}:7000", vms[1].ip), "--wait", "5"])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let count = args.burst.to_string();
    must(&[
        "ip",
        "netns",
        "exec",
        &vms[0].ns,
        &exe,
        "demo-udp",
        "send",
        &format!("{}:7000", vms[1].ip),
        "--count",
        &count,
    ])?;
    let sent_in = t.elapsed();
    let out = recv.wait_with_output()?;
    let got: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
    println!(
        "   sent {} in {:.0} ms, received {got} ({:.1}%)",
        args.burst,
        sent_in.as_secs_f64() * 1000.0,
        100.0 * got as f64 / f64::from(args.burst)
    );
    println!("\n== VLAN isolation: same subnet, different VLANs");
    for (a, b) in [(0, 2), (1, 3), (3, 0)] {
        check()?;
        let (ok, _) = ping(&vms[a], vms[b].ip, 2)?;
        println!(
            "   {} (VLAN {}) -> {} (VLAN {}): {}",
            vms[a].ip,
            vms[a].vlan,
            vms[b].ip,
            vms[b].vlan,
            if ok { "REACHABLE (isolation broken!)" } else { "isolated, as it must be" }
        );
        if ok {
            bail!("VLAN {} reached VLAN {}", vms[a].vlan, vms[b].vlan);
        }
    }
    println!("\n== megaflows the slow path installed (`sluice dp dump-flows`)");
    let names = sw.port_numbers();
    println!("   ports: {}", names.iter().map(|(n, s)| format!("{n}={s}")).collect::<Vec<_>>().join(" "));
    for (t, flows) in sw.dump_flows() {
        for f in flows.iter().take(12) {
            println!("   [thread {t}] {f}");
        }
        if flows.len() > 12 {
            println!("   [thread {t}] … {} more", flows.len() - 12);
        }
    }
    Ok(())
}
