//! `sluice sriov`: inventory, VF count, VF settings, reset, driver binding
//! and eswitch mode. All host access goes through `sluice-sriov`; this
//! module parses arguments and prints tables or JSON.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde::Serialize;
use sluice_sriov::{
    ClaimToken, EswitchMode, Host, LinkState, MacAddr, NumVfsOptions, Pf, PfDetail, SysfsRoot, VfConfig, VfSettings,
    Vlan, VlanProto, claim::DEFAULT_STATE_DIR, model::parse_on_off,
};

/// Arguments of `sluice sriov`.
#[derive(Debug, Parser)]
pub struct Args {
    /// Root of the sysfs tree (tests point this at a synthetic tree).
    #[arg(long, global = true, default_value = "/sys", env = "SLUICE_SYSFS_ROOT")]
    sysfs_root: PathBuf,
    /// Directory for claim records and saved VF settings.
    #[arg(long, global = true, default_value = DEFAULT_STATE_DIR, env = "SLUICE_SRIOV_STATE")]
    state_dir: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// List SR-IOV physical functions.
    List,
    /// Show a PF and all its VFs (sysfs, VF settings, claims, representors).
    Show {
        /// PF: netdev name, PCI address or netdevsim device.
        pf: String,
        /// Also write the raw RTM_GETLINK reply to this file (test fixtures).
        #[arg(long, hide = true)]
        capture: Option<PathBuf>,
        /// Capture with VF stats (as iproute2 asks).
        #[arg(long, hide = true, requires = "capture")]
        capture_with_stats: bool,
    },
    /// Change the number of VFs (N -> 0 -> M, waits until they exist).
    Numvfs {
        /// PF.
        pf: String,
        /// New VF count.
        count: u32,
        /// Allow removing existing VFs.
        #[arg(long)]
        force: bool,
        /// Set sriov_drivers_autoprobe (on|off) before creating VFs.
        #[arg(long)]
        autoprobe: Option<String>,
        /// Maximum seconds to wait for VF functions and netdevs.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// Do not re-apply the settings VFs had before re-creation.
        #[arg(long)]
        no_reapply: bool,
    },
    /// Per-VF settings.
    Vf {
        #[command(subcommand)]
        cmd: Box<VfCmd>,
    },
    /// Bind a VF to a driver (e.g. vfio-pci), or `default` for the host driver.
    Bind {
        /// PF.
        pf: String,
        /// VF index.
        vf: u32,
        /// Driver name, or `default`.
        driver: String,
    },
    /// Show or set the eswitch mode (legacy | switchdev).
    Eswitch {
        /// PF.
        pf: String,
        /// New mode.
        mode: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum VfCmd {
    /// Set VF attributes, then read them back and verify.
    Set(SetArgs),
    /// Reset a VF to the clean state, guarded by its claim.
    Reset {
        /// PF.
        pf: String,
        /// VF index.
        vf: u32,
        /// Claim owner (with --generation): reset only if still held by it.
        #[arg(long, requires = "generation")]
        owner: Option<String>,
        /// Claim generation.
        #[arg(long, requires = "owner")]
        generation: Option<u64>,
        /// MAC to leave on the VF (the pool's default); zero by default.
        #[arg(long)]
        mac: Option<String>,
        /// Reset even if someone else holds the VF.
        #[arg(long)]
        force: bool,
    },
    /// Record a claim on a free VF; prints the generation to present on reset.
    Claim {
        /// PF.
        pf: String,
        /// VF index.
        vf: u32,
        /// Owner name (VM, pod, port).
        #[arg(long)]
        owner: String,
    },
}

#[derive(Debug, clap::Args)]
struct SetArgs {
    /// PF.
    pf: String,
    /// VFs: an index, a range `0-255`, a list `1,3,5`, or `all`.
    vfs: String,
    /// Administrative MAC (only with a single VF; 00:00:00:00:00:00 clears).
    #[arg(long)]
    mac: Option<String>,
    /// Give VF i the MAC BASE + i (for several VFs).
    #[arg(long, conflicts_with = "mac")]
    mac_seq: Option<String>,
    /// Port VLAN id, 0..=4094 (0 = none).
    #[arg(long)]
    vlan: Option<u64>,
    /// 802.1p priority for the VLAN, 0..=7.
    #[arg(long, requires = "vlan")]
    qos: Option<u64>,
    /// VLAN protocol: 802.1Q or 802.1ad.
    #[arg(long, requires = "vlan")]
    vlan_proto: Option<String>,
    /// MAC anti-spoofing: on|off.
    #[arg(long)]
    spoofchk: Option<String>,
    /// Trusted VF: on|off.
    #[arg(long)]
    trust: Option<String>,
    /// Minimum TX rate in Mbps (0 = none).
    #[arg(long)]
    min_tx_rate: Option<u64>,
    /// Maximum TX rate in Mbps (0 = unlimited).
    #[arg(long)]
    max_tx_rate: Option<u64>,
    /// Link state: auto|enable|disable.
    #[arg(long)]
    link_state: Option<String>,
    /// Allow the VF to query RSS config: on|off.
    #[arg(long)]
    query_rss: Option<String>,
}

/// Runs `sluice sriov`.
pub fn run(args: Args) -> Result<()> {
    let host = Host::new(SysfsRoot::new(&args.sysfs_root), &args.state_dir);
    let json = args.json;
    let mut progress = |s: &str| eprintln!("sluice: {s}");
    match args.cmd {
        Cmd::List => {
            let pfs = host.pfs()?;
            if json {
                return print_json(&pfs);
            }
            print_pf_table(&pfs);
            Ok(())
        }
        Cmd::Show { pf, capture, capture_with_stats } => {
            let pf = host.pf(&pf)?;
            if let Some(path) = capture {
                let raw = host.vf_table_raw(&pf, capture_with_stats)?;
                std::fs::write(&path, raw).with_context(|| format!("writing {}", path.display()))?;
            }
            let d = host.detail(&pf)?;
            if json {
                return print_json(&d);
            }
            print_detail(&d);
            Ok(())
        }
        Cmd::Numvfs { pf, count, force, autoprobe, timeout, no_reapply } => {
            let autoprobe = autoprobe.map(|a| parse_on_off("autoprobe", &a)).transpose()?;
            let pf = host.pf(&pf)?;
            let opts = NumVfsOptions { force, autoprobe, timeout: Duration::from_secs(timeout), reapply: !no_reapply };
            let r = host.set_numvfs(&pf, count, &opts, &mut progress)?;
            if json {
                return print_json(&r);
            }
            println!(
                "{}: {} -> {} VFs in {:.2} s; re-applied settings to {} VFs{}",
                r.pf,
                r.before,
                r.after,
                r.wait_secs,
                r.reapplied,
                if r.switchdev_restored { "; eswitch set back to switchdev" } else { "" }
            );
            Ok(())
        }
        Cmd::Vf { cmd } => run_vf(&host, *cmd, json),
        Cmd::Bind { pf, vf, driver } => {
            let pf = host.pf(&pf)?;
            let drv = if driver == "default" { None } else { Some(driver.as_str()) };
            let r = host.bind_vf(&pf, vf, drv)?;
            if json {
                return print_json(&r);
            }
            println!(
                "VF {vf} ({}) : {} -> {} (verified through the driver link)",
                r.vf,
                r.before.as_deref().unwrap_or("no driver"),
                r.after.as_deref().unwrap_or("no driver")
            );
            Ok(())
        }
        Cmd::Eswitch { pf, mode } => {
            let pf = host.pf(&pf)?;
            if let Some(m) = mode {
                let m: EswitchMode = m.parse()?;
                eprintln!("sluice: setting {} eswitch mode to {m}", pf.name);
                host.set_eswitch(&pf, m)?;
            }
            let m = host.eswitch(&pf)?;
            if json {
                return print_json(&serde_json::json!({ "pf": pf.name, "eswitch": m }));
            }
            println!("{}: eswitch mode {m}", pf.name);
            Ok(())
        }
    }
}

fn run_vf(host: &Host, cmd: VfCmd, json: bool) -> Result<()> {
    match cmd {
        VfCmd::Set(a) => {
            let pf = host.pf(&a.pf)?;
            let changes = build_changes(&pf, &a)?;
            let out = host.configure(&pf, &changes)?;
            mac_reload_note(host, &pf, &changes);
            if json {
                return print_json(&out);
            }
            print_configs(&out);
            Ok(())
        }
        VfCmd::Reset { pf, vf, owner, generation, mac, force } => {
            let mac = match mac {
                Some(m) => m.parse()?,
                None => MacAddr::ZERO,
            };
            let token = match (owner, generation) {
                (Some(owner), Some(generation)) => Some(ClaimToken { owner, generation }),
                _ => None,
            };
            let pf = host.pf(&pf)?;
            let c = host.reset_vf(&pf, vf, token.as_ref(), mac, force)?;
            if json {
                return print_json(&c);
            }
            print_configs(std::slice::from_ref(&c));
            Ok(())
        }
        VfCmd::Claim { pf, vf, owner } => {
            let pf = host.pf(&pf)?;
            if vf >= pf.numvfs {
                return Err(sluice_sriov::Error::NoSuchVf { pf: pf.name.clone(), index: vf, numvfs: pf.numvfs }.into());
            }
            let t = host.claims().claim(&pf.bus_id, vf, &owner)?;
            if json {
                return print_json(&t);
            }
            println!("VF {vf} of {} claimed by {} generation {}", pf.name, t.owner, t.generation);
            Ok(())
        }
    }
}

/// An administratively set MAC reaches a VF's host driver (igbvf) only
/// after the driver is reloaded (lab pitfall 7): say so.
fn mac_reload_note(host: &Host, pf: &Pf, changes: &[(u32, VfSettings)]) {
    let Ok(devs) = host.sysfs().vfs(pf) else { return };
    for (vf, s) in changes.iter().filter(|(_, s)| s.mac.is_some()) {
        let Some(drv) = devs.get(*vf as usize).and_then(|d| d.driver.as_deref()) else {
            continue;
        };
        if !matches!(drv, "vfio-pci" | "pci-stub") {
            eprintln!(
                "sluice: note: VF {vf} is bound to {drv}; it sees the new MAC {} after its driver is reloaded (sluice sriov bind {} {vf} {drv})",
                s.mac.unwrap_or_default(),
                pf.name
            );
        }
    }
}

/// Parses `3`, `0-255`, `1,3,5-7` or `all` against the PF's VF count.
fn parse_vf_set(spec: &str, numvfs: u32, pf: &str) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    if spec == "all" {
        return Ok((0..numvfs).collect());
    }
    for part in spec.split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let parse = |s: &str| -> Result<u32> {
            s.trim().parse::<u32>().map_err(|_| {
                anyhow::anyhow!("vf must be an index, a range like 0-7, a list like 1,3 or `all`, got {spec:?}")
            })
        };
        let (a, b) = (parse(a)?, parse(b)?);
        if a > b {
            bail!("vf range must be ascending, got {part:?}");
        }
        for i in a..=b {
            if i >= numvfs {
                return Err(sluice_sriov::Error::NoSuchVf { pf: pf.to_string(), index: i, numvfs }.into());
            }
            out.push(i);
        }
    }
    Ok(out)
}

fn build_changes(pf: &Pf, a: &SetArgs) -> Result<Vec<(u32, VfSettings)>> {
    let vfs = parse_vf_set(&a.vfs, pf.numvfs, &pf.name)?;
    if vfs.is_empty() {
        bail!("{} has no VFs; create them first with `sluice sriov numvfs {} N`", pf.name, pf.name);
    }
    let vlan = match a.vlan {
        Some(id) => {
            let id = u32::try_from(id).unwrap_or(u32::MAX);
            let qos = u32::try_from(a.qos.unwrap_or(0)).unwrap_or(u32::MAX);
            let proto = match &a.vlan_proto {
                Some(p) => p.parse()?,
                None => VlanProto::Dot1Q,
            };
            Some(Vlan::new(id, qos, proto)?)
        }
        None => None,
    };
    let rate = |field: &'static str, v: Option<u64>| -> Result<Option<u32>> {
        v.map(|v| {
            u32::try_from(v).map_err(|_| {
                sluice_sriov::Error::Invalid { field, problem: format!("must be 0..={} Mbps, got {v}", u32::MAX) }
                    .into()
            })
        })
        .transpose()
    };
    let onoff = |field: &'static str, v: &Option<String>| -> Result<Option<bool>> {
        Ok(v.as_deref().map(|s| parse_on_off(field, s)).transpose()?)
    };
    let base = VfSettings {
        mac: None,
        vlan,
        spoofchk: onoff("spoofchk", &a.spoofchk)?,
        trust: onoff("trust", &a.trust)?,
        min_tx_rate: rate("min_tx_rate", a.min_tx_rate)?,
        max_tx_rate: rate("max_tx_rate", a.max_tx_rate)?,
        link_state: a.link_state.as_deref().map(str::parse::<LinkState>).transpose()?,
        query_rss: onoff("query_rss", &a.query_rss)?,
    };
    let mac: Option<MacAddr> = a.mac.as_deref().map(str::parse).transpose()?;
    let mac_seq: Option<MacAddr> = a.mac_seq.as_deref().map(str::parse).transpose()?;
    if mac.is_some() && vfs.len() > 1 {
        bail!("mac can be given for one VF only ({} VFs selected); use --mac-seq for several", vfs.len());
    }
    let mut out = Vec::with_capacity(vfs.len());
    for (k, vf) in vfs.iter().enumerate() {
        let mut s = base.clone();
        s.mac = mac.or_else(|| mac_seq.map(|b| mac_add(b, k as u64)));
        if let Some(m) = s.mac.filter(|m| m.is_multicast()) {
            bail!("mac must be a unicast address, --mac-seq reached {m}");
        }
        out.push((*vf, s));
    }
    if base.is_empty() && mac.is_none() && mac_seq.is_none() {
        bail!(
            "nothing to set: give at least one of --mac, --mac-seq, --vlan, --spoofchk, --trust, --min-tx-rate, --max-tx-rate, --link-state, --query-rss"
        );
    }
    Ok(out)
}

fn mac_add(base: MacAddr, k: u64) -> MacAddr {
    let mut v = 0u64;
    for b in base.0 {
        v = (v << 8) | u64::from(b);
    }
    let v = (v.wrapping_add(k)) & 0xffff_ffff_ffff;
    let mut out = [0u8; 6];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (v >> (8 * (5 - i))) as u8;
    }
    MacAddr(out)
}

fn print_json<T: Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}

fn onoff(v: Option<bool>) -> String {
    match v {
        Some(true) => "on".into(),
        Some(false) => "off".into(),
        None => "-".into(),
    }
}

fn table(rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..cols).map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0)).collect();
    for r in rows {
        let line: Vec<String> = r.iter().enumerate().map(|(i, s)| format!("{s:<w$}", w = widths[i])).collect();
        println!("{}", line.join("  ").trim_end());
    }
}

fn print_pf_table(pfs: &[Pf]) {
    let mut rows = vec![
        ["PF", "KIND", "BUS-ID", "DRIVER", "NUMA", "LINK", "SPEED", "VFS", "TOTAL", "AUTOPROBE"]
            .map(String::from)
            .to_vec(),
    ];
    for p in pfs {
        rows.push(vec![
            p.name.clone(),
            format!("{:?}", p.kind).to_lowercase(),
            p.bus_id.clone(),
            opt(&p.driver),
            opt(&p.numa_node),
            opt(&p.link.operstate),
            p.link.speed_mbps.map(|s| format!("{s}Mb/s")).unwrap_or_else(|| "-".into()),
            p.numvfs.to_string(),
            opt(&p.totalvfs),
            onoff(p.drivers_autoprobe),
        ]);
    }
    if pfs.is_empty() {
        println!("no SR-IOV physical functions found");
        return;
    }
    table(&rows);
}

fn print_detail(d: &PfDetail) {
    let p = &d.pf;
    println!(
        "{} ({} {}) driver {} numa {} link {} carrier {} speed {} VFs {}/{} autoprobe {}",
        p.name,
        format!("{:?}", p.kind).to_lowercase(),
        p.bus_id,
        opt(&p.driver),
        opt(&p.numa_node),
        opt(&p.link.operstate),
        onoff(p.link.carrier),
        p.link.speed_mbps.map(|s| format!("{s}Mb/s")).unwrap_or_else(|| "-".into()),
        p.numvfs,
        opt(&p.totalvfs),
        onoff(p.drivers_autoprobe),
    );
    match (&d.eswitch, &d.eswitch_error) {
        (Some(m), _) => println!("eswitch mode: {m}"),
        (None, Some(_)) => println!("eswitch mode: - (no devlink eswitch)"),
        _ => {}
    }
    if let Some(sw) = &p.phys_switch_id {
        println!("switch id: {sw}");
    }
    if let Some(s) = &d.vf_list {
        let note = if s.truncated {
            " - INCOMPLETE: the kernel's list is shorter than IFLA_NUM_VF".to_string()
        } else if s.recovered_past_nest {
            format!(
                " (recovered past the wrapped 64 KiB IFLA_VFINFO_LIST nest, nla_len {}; iproute2 lists fewer)",
                opt(&s.nest_len)
            )
        } else {
            String::new()
        };
        println!(
            "VF list from rtnetlink: {} of {} entries, reply {} bytes{note}",
            s.parsed,
            opt(&s.num_vf),
            s.reply_bytes
        );
    }
    if let Some(e) = &d.netlink_error {
        println!("VF settings unavailable: {e}");
    }
    let mut rows = vec![
        [
            "VF",
            "PCI",
            "DRIVER",
            "NETDEV",
            "IOMMU",
            "MAC",
            "VLAN",
            "QOS",
            "PROTO",
            "SPOOFCHK",
            "TRUST",
            "MIN",
            "MAX",
            "LINK",
            "RSS",
            "REPRESENTOR",
            "OWNER",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for v in &d.vfs {
        let c = v.config.clone().unwrap_or_default();
        let have = v.config.is_some();
        let (min, max) = match v.devlink_rate_mbps {
            Some((s, m)) => (format!("{s}*"), format!("{m}*")),
            None if have => (c.min_tx_rate.to_string(), c.max_tx_rate.to_string()),
            None => ("-".into(), "-".into()),
        };
        rows.push(vec![
            v.dev.index.to_string(),
            opt(&v.dev.pci_addr),
            opt(&v.dev.driver),
            opt(&v.dev.netdev),
            opt(&v.dev.iommu_group),
            if have { c.mac.to_string() } else { "-".into() },
            if have { c.vlan.id.to_string() } else { "-".into() },
            if have { c.vlan.qos.to_string() } else { "-".into() },
            if have { c.vlan.proto.to_string() } else { "-".into() },
            onoff(c.spoofchk),
            onoff(c.trust),
            min,
            max,
            opt(&c.link_state),
            onoff(c.query_rss),
            opt(&v.dev.representor),
            v.claim.owner.as_ref().map(|o| format!("{o}#{}", v.claim.generation)).unwrap_or_else(|| "-".into()),
        ]);
    }
    table(&rows);
    if d.vfs.iter().any(|v| v.devlink_rate_mbps.is_some()) {
        println!("* rate from devlink port function rate (switchdev)");
    }
}

fn print_configs(cs: &[VfConfig]) {
    let mut rows = vec![
        ["VF", "MAC", "VLAN", "QOS", "PROTO", "SPOOFCHK", "TRUST", "MIN", "MAX", "LINK", "RSS"]
            .map(String::from)
            .to_vec(),
    ];
    for c in cs {
        rows.push(vec![
            c.index.to_string(),
            c.mac.to_string(),
            c.vlan.id.to_string(),
            c.vlan.qos.to_string(),
            c.vlan.proto.to_string(),
            onoff(c.spoofchk),
            onoff(c.trust),
            c.min_tx_rate.to_string(),
            c.max_tx_rate.to_string(),
            opt(&c.link_state),
            onoff(c.query_rss),
        ]);
    }
    table(&rows);
    println!("{} VF(s) set and verified by read-back", cs.len());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vf_sets() {
        assert_eq!(parse_vf_set("all", 3, "p").unwrap(), vec![0, 1, 2]);
        assert_eq!(parse_vf_set("0-2,5", 8, "p").unwrap(), vec![0, 1, 2, 5]);
        let e = parse_vf_set("7", 7, "eth0").unwrap_err().to_string();
        assert!(e.contains("0..=6") && e.contains("got 7"), "{e}");
        assert!(parse_vf_set("x", 7, "p").is_err());
        assert!(parse_vf_set("3-1", 7, "p").is_err());
    }

    #[test]
    fn mac_sequence() {
        let b: MacAddr = "02:00:00:00:00:fe".parse().unwrap();
        assert_eq!(mac_add(b, 3).to_string(), "02:00:00:00:01:01");
    }
}
