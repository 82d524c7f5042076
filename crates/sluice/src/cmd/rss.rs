//! `sluice rss`: Toeplitz hashes, RX queues, RSS-aware source ports, and a
//! NIC's RSS configuration.
//!
//! Scripts call these forms; keep their output stable:
//! `hash` prints `0x%08x`, `queue` prints the queue number, `ports` prints
//! one port per line (ascending), `show` prints the key, RETA and hashed
//! fields. Every form takes `--json`.

use std::net::IpAddr;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::json;
use sluice_rss::ethtool::Via;
use sluice_rss::{HashFields, Ipv4Tuple, Ipv6Tuple, Outgoing, PortRange, PortSolver, Reta, RssKey, Toeplitz};

/// The Microsoft test key, the default for every form.
const MICROSOFT_KEY_HEX: &str = "6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa";

/// Arguments of `sluice rss`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: RssCommand,
}

#[derive(Debug, Subcommand)]
enum RssCommand {
    /// Print the 32-bit Toeplitz hash of a tuple as 0x%08x.
    Hash(HashArgs),
    /// Print the RX queue a tuple lands on (RETA[hash & (size - 1)]).
    Queue(QueueArgs),
    /// Print source ports whose reply (src and dst swapped) lands on a queue.
    Ports(PortsArgs),
    /// Print a NIC's RSS key, RETA and hashed fields (ethtool netlink, ioctl
    /// fallback).
    ///
    /// An 82599/X540 VF has no key or RETA of its own: they belong to the PF.
    /// Read the PF on the host (`sluice rss show <PF>`), or run
    /// `ip link set dev <PF> vf N query_rss on` on the host and read the VF
    /// from a Linux guest bound to ixgbevf. Some drivers (igb) report a RETA
    /// but no key; the key is then shown as not reported (`null` in JSON).
    Show(ShowArgs),
}

#[derive(Debug, clap::Args)]
struct TupleArgs {
    /// RSS key in hex, 40 or 52 bytes (':' separators allowed, as ethtool
    /// prints it). Default: the Microsoft test key.
    #[arg(long, default_value = MICROSOFT_KEY_HEX)]
    key: String,
    /// Source address (IPv4 or IPv6).
    #[arg(long)]
    src: IpAddr,
    /// Destination address (same family as --src).
    #[arg(long)]
    dst: IpAddr,
    /// Source port; with --dport, hash the 4-tuple instead of the addresses.
    #[arg(long)]
    sport: Option<u16>,
    /// Destination port; with --sport, hash the 4-tuple.
    #[arg(long)]
    dport: Option<u16>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct HashArgs {
    #[command(flatten)]
    tuple: TupleArgs,
}

#[derive(Debug, clap::Args)]
struct RetaArgs {
    /// Number of RX queues; the RETA is the kernel default, entry i → i mod Q.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=65535))]
    queues: u32,
    /// RETA size: 64, 128 or 512 entries.
    #[arg(long, default_value_t = 128, value_parser = parse_reta_size)]
    reta_size: usize,
}

#[derive(Debug, clap::Args)]
struct QueueArgs {
    #[command(flatten)]
    tuple: TupleArgs,
    #[command(flatten)]
    reta: RetaArgs,
}

#[derive(Debug, clap::Args)]
struct PortsArgs {
    /// RSS key in hex, 40 or 52 bytes. Default: the Microsoft test key.
    #[arg(long, default_value = MICROSOFT_KEY_HEX)]
    key: String,
    /// Our (local) address: the source of the outgoing connection.
    #[arg(long)]
    src: IpAddr,
    /// The peer's address.
    #[arg(long)]
    dst: IpAddr,
    /// The peer's port.
    #[arg(long)]
    dport: u16,
    #[command(flatten)]
    reta: RetaArgs,
    /// The queue the replies must land on (0 to --queues minus 1).
    #[arg(long)]
    queue: u32,
    /// Allowed source ports, LO-HI inclusive.
    #[arg(long, default_value = "1-65535", value_parser = parse_range)]
    range: PortRange,
    /// Print at most K ports (the lowest K).
    #[arg(long)]
    limit: Option<usize>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct ShowArgs {
    /// Network device, e.g. eth0.
    dev: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Read over: auto (netlink, then ioctl), netlink or ioctl.
    #[arg(long, default_value = "auto", value_parser = parse_via)]
    via: Via,
    /// Print the raw ETHTOOL_MSG_RSS_GET_REPLY attributes in hex (for
    /// capturing test fixtures) and nothing else.
    #[arg(long, hide = true)]
    dump_netlink: bool,
}

fn parse_via(text: &str) -> Result<Via, String> {
    match text {
        "auto" => Ok(Via::Auto),
        "netlink" => Ok(Via::Netlink),
        "ioctl" => Ok(Via::Ioctl),
        _ => Err(format!("--via must be auto, netlink or ioctl, got {text}")),
    }
}

/// Runs `sluice rss`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        RssCommand::Hash(a) => hash(&a),
        RssCommand::Queue(a) => queue(&a),
        RssCommand::Ports(a) => ports(&a),
        RssCommand::Show(a) => show(&a),
    }
}

fn parse_reta_size(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if Reta::SIZES.contains(&n) => Ok(n),
        _ => Err(format!("--reta-size must be 64, 128 or 512, got {text}")),
    }
}

fn parse_range(text: &str) -> Result<PortRange, String> {
    let bad = || format!("--range must be LO-HI with 0 <= LO <= HI <= 65535, got {text}");
    let (lo, hi) = text.split_once('-').ok_or_else(bad)?;
    let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
    PortRange::new(lo, hi).map_err(|_| bad())
}

fn parse_key(text: &str) -> anyhow::Result<RssKey> {
    RssKey::from_hex(text).with_context(|| format!("--key {text:?} is not a usable RSS key"))
}

/// The hash of the tuple and its field set.
fn tuple_hash(toeplitz: &Toeplitz, t: &TupleArgs) -> anyhow::Result<(u32, HashFields)> {
    let (fields, sport, dport) = match (t.sport, t.dport) {
        (Some(s), Some(d)) => (HashFields::L4, s, d),
        (None, None) => (HashFields::L3, 0, 0),
        _ => bail!("--sport and --dport must be given together (or neither, for an address-only hash)"),
    };
    let hash = match (t.src, t.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => toeplitz.hash_v4(&Ipv4Tuple::new(s, d, sport, dport)),
        (IpAddr::V6(s), IpAddr::V6(d)) => toeplitz.hash_v6(&Ipv6Tuple::new(s, d, sport, dport)),
        _ => bail!("--src and --dst must both be IPv4 or both be IPv6, got {} and {}", t.src, t.dst),
    };
    Ok((hash, fields))
}

fn fields_name(fields: HashFields) -> &'static str {
    match fields {
        HashFields::L3 => "l3",
        HashFields::L4 => "l4",
    }
}

fn hash(a: &HashArgs) -> anyhow::Result<()> {
    let key = parse_key(&a.tuple.key)?;
    let (hash, fields) = tuple_hash(&Toeplitz::new(&key), &a.tuple)?;
    if a.tuple.json {
        println!("{}", json!({ "hash": format!("0x{hash:08x}"), "fields": fields_name(fields) }));
    } else {
        println!("0x{hash:08x}");
    }
    Ok(())
}

fn queue(a: &QueueArgs) -> anyhow::Result<()> {
    let key = parse_key(&a.tuple.key)?;
    let reta = Reta::spread(a.reta.queues, a.reta.reta_size)?;
    let (hash, fields) = tuple_hash(&Toeplitz::new(&key), &a.tuple)?;
    let queue = reta.queue(hash);
    if a.tuple.json {
        println!(
            "{}",
            json!({
                "queue": queue,
                "hash": format!("0x{hash:08x}"),
                "index": reta.index(hash),
                "reta_size": reta.size(),
                "fields": fields_name(fields),
            })
        );
    } else {
        println!("{queue}");
    }
    Ok(())
}

fn ports(a: &PortsArgs) -> anyhow::Result<()> {
    let key = parse_key(&a.key)?;
    if a.queue >= a.reta.queues {
        bail!(
            "--queue must be between 0 and {} (one below --queues {}), got {}",
            a.reta.queues - 1,
            a.reta.queues,
            a.queue
        );
    }
    let conn = Outgoing::new(a.src, a.dst, a.dport).map_err(|_| {
        anyhow::anyhow!("--src and --dst must both be IPv4 or both be IPv6, got {} and {}", a.src, a.dst)
    })?;
    let reta = Reta::spread(a.reta.queues, a.reta.reta_size)?;
    // --queue < --queues ≤ 65535, so it fits in u16.
    let queue = u16::try_from(a.queue)?;
    let solver = PortSolver::new(&key, &reta);
    if solver.check_queue(queue).is_err() {
        bail!(
            "--queue {queue} has no RETA entry: with --queues {} and --reta-size {} only queues 0 to {} appear",
            a.reta.queues,
            reta.size(),
            reta.max_queue()
        );
    }
    let mut found: Vec<u16> = solver.ports(&conn, queue, a.range).collect();
    found.sort_unstable();
    let total = found.len();
    if let Some(limit) = a.limit {
        found.truncate(limit);
    }
    if a.json {
        println!(
            "{}",
            json!({
                "queue": queue,
                "range": format!("{}-{}", a.range.low(), a.range.high()),
                "total": total,
                "ports": found,
            })
        );
    } else {
        let mut out = String::with_capacity(found.len() * 6);
        for p in &found {
            out.push_str(&p.to_string());
            out.push('\n');
        }
        print!("{out}");
    }
    Ok(())
}

fn show(a: &ShowArgs) -> anyhow::Result<()> {
    if a.dump_netlink {
        let raw = sluice_rss::ethtool::query_netlink_raw(&a.dev)
            .with_context(|| format!("cannot read the RSS configuration of {}", a.dev))?;
        println!("{}", colon_hex(&raw).replace(':', ""));
        return Ok(());
    }
    let cfg = sluice_rss::ethtool::query_via(&a.dev, a.via)
        .with_context(|| format!("cannot read the RSS configuration of {}", a.dev))?;
    let key_hex = colon_hex(&cfg.key);
    if a.json {
        let fields: serde_json::Map<String, serde_json::Value> =
            cfg.fields.iter().map(|f| (f.flow.name().to_string(), json!(f.field_names()))).collect();
        println!(
            "{}",
            json!({
                "device": cfg.device,
                "source": cfg.source.name(),
                "hfunc": cfg.hfunc.name(),
                "key": (!cfg.key.is_empty()).then_some(key_hex.as_str()),
                "key_len": cfg.key.len(),
                "reta": cfg.indir,
                "reta_size": cfg.indir.len(),
                "fields": fields,
            })
        );
        return Ok(());
    }
    println!("device: {}", cfg.device);
    println!("read via: {}", cfg.source.name());
    println!("hash function: {}", cfg.hfunc.name());
    if cfg.key.is_empty() {
        println!("key: not reported by the driver");
    } else {
        println!("key ({} bytes): {}", cfg.key.len(), key_hex);
    }
    let queues = cfg.indir.iter().max().map_or(0, |m| m + 1);
    println!("RETA ({} entries, queues 0 to {}):", cfg.indir.len(), queues.saturating_sub(1));
    for (row, chunk) in cfg.indir.chunks(8).enumerate() {
        let cells: Vec<String> = chunk.iter().map(|q| format!("{q:5}")).collect();
        println!("  {:5}: {}", row * 8, cells.join(" "));
    }
    println!("hashed fields:");
    if cfg.fields.is_empty() {
        println!("  (not reported by the driver)");
    }
    for f in &cfg.fields {
        println!("  {}: {}", f.flow.name(), f.field_names().join(" "));
    }
    Ok(())
}

fn colon_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}
