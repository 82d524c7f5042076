//! `sluice rss` end to end: output forms scripts rely on, cross-checked
//! against the library, and clear errors for bad input.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::{Command, Output};

use sluice_rss::{Ipv4Tuple, Ipv6Tuple, Reta, RssKey, Toeplitz};

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice")).args(args).output().expect("run sluice")
}

fn stdout_ok(args: &[&str]) -> String {
    let out = sluice(args);
    assert!(out.status.success(), "sluice {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn stderr_err(args: &[&str]) -> String {
    let out = sluice(args);
    assert!(!out.status.success(), "sluice {args:?} should fail");
    assert!(out.stdout.is_empty(), "nothing on stdout on error");
    String::from_utf8(out.stderr).expect("utf-8 stderr")
}

#[test]
fn hash_prints_the_microsoft_vectors() {
    // Microsoft "Verifying the RSS Hash Calculation", IPv4 row 1 and IPv6
    // row 1 (source columns first), with and without ports.
    let v4 = ["--src", "66.9.149.187", "--dst", "161.142.100.80"];
    let ports = ["--sport", "2794", "--dport", "1766"];
    let with_ports: Vec<&str> = ["rss", "hash"].iter().chain(&v4).chain(&ports).copied().collect();
    assert_eq!(stdout_ok(&with_ports), "0x51ccc178\n");
    let l3: Vec<&str> = ["rss", "hash"].iter().chain(&v4).copied().collect();
    assert_eq!(stdout_ok(&l3), "0x323e8fc2\n");
    let v6 = [
        "rss",
        "hash",
        "--src",
        "3ffe:2501:200:1fff::7",
        "--dst",
        "3ffe:2501:200:3::1",
        "--sport",
        "2794",
        "--dport",
        "1766",
    ];
    assert_eq!(stdout_ok(&v6), "0x40207d3d\n");
}

#[test]
fn hash_takes_a_key_and_json() {
    let key = RssKey::FSTACK;
    let hex = key.to_colon_hex();
    let out = stdout_ok(&[
        "rss", "hash", "--key", &hex, "--src", "10.1.2.3", "--dst", "10.3.2.1", "--sport", "1000", "--dport", "2000",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let want = Toeplitz::new(&key).hash_v4(&Ipv4Tuple::new(
        Ipv4Addr::new(10, 1, 2, 3),
        Ipv4Addr::new(10, 3, 2, 1),
        1000,
        2000,
    ));
    assert_eq!(v["hash"], format!("0x{want:08x}"));
    assert_eq!(v["fields"], "l4");
}

#[test]
fn queue_is_reta_of_the_low_hash_bits() {
    let toeplitz = Toeplitz::new(&RssKey::MICROSOFT);
    for (queues, size) in [(4u32, 128usize), (6, 128), (3, 512), (16, 64)] {
        let reta = Reta::spread(queues, size).unwrap();
        for dport in [0u16, 1, 49152, 50000, 65535] {
            let tuple = Ipv4Tuple::new(Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 1), 80, dport);
            let want = reta.queue(toeplitz.hash_v4(&tuple));
            let q = queues.to_string();
            let s = size.to_string();
            let d = dport.to_string();
            let out = stdout_ok(&[
                "rss",
                "queue",
                "--src",
                "10.0.0.2",
                "--dst",
                "10.0.0.1",
                "--sport",
                "80",
                "--dport",
                &d,
                "--queues",
                &q,
                "--reta-size",
                &s,
            ]);
            assert_eq!(out, format!("{want}\n"), "queues {queues} size {size} dport {dport}");
        }
    }
    // Default RETA size is 128: index = low 7 bits, entry = index mod Q.
    let out = stdout_ok(&[
        "rss", "queue", "--src", "10.0.0.2", "--dst", "10.0.0.1", "--sport", "80", "--dport", "50000", "--queues", "5",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let hash = u32::from_str_radix(v["hash"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    assert_eq!(v["index"], u64::from(hash & 127));
    assert_eq!(v["queue"], u64::from((hash & 127) % 5));
    assert_eq!(v["reta_size"], 128);
}

/// Every printed port's reply (src/dst swapped, port in dport) lands on the
/// queue, checked both with `sluice rss queue` and the library; the list is
/// complete and sorted.
#[test]
fn ports_replies_land_on_the_queue() {
    for (src, dst, family_v6) in [("10.0.0.1", "10.0.0.2", false), ("2001:db8::1", "2001:db8::2", true)] {
        let out = stdout_ok(&[
            "rss",
            "ports",
            "--src",
            src,
            "--dst",
            dst,
            "--dport",
            "443",
            "--queues",
            "6",
            "--queue",
            "5",
            "--range",
            "40000-42000",
        ]);
        let ports: Vec<u16> = out.lines().map(|l| l.parse().expect("a port per line")).collect();
        assert!(ports.windows(2).all(|w| w[0] < w[1]), "ascending, no duplicates");
        let toeplitz = Toeplitz::new(&RssKey::MICROSOFT);
        let reta = Reta::spread(6, 128).unwrap();
        let lands = |p: u16| {
            let h = if family_v6 {
                toeplitz.hash_v6(&Ipv6Tuple::new(dst.parse().unwrap(), src.parse().unwrap(), 443, p))
            } else {
                toeplitz.hash_v4(&Ipv4Tuple::new(dst.parse().unwrap(), src.parse().unwrap(), 443, p))
            };
            reta.queue(h) == 5
        };
        let want: Vec<u16> = (40000..=42000).filter(|&p| lands(p)).collect();
        assert_eq!(ports, want);
        // A few of them through the CLI's own queue form, on the reply tuple.
        for p in ports.iter().take(3) {
            let ps = p.to_string();
            let q = stdout_ok(&[
                "rss", "queue", "--src", dst, "--dst", src, "--sport", "443", "--dport", &ps, "--queues", "6",
            ]);
            assert_eq!(q, "5\n");
        }
    }
}

#[test]
fn ports_limit_and_json() {
    let args = [
        "rss",
        "ports",
        "--src",
        "10.0.0.1",
        "--dst",
        "10.0.0.2",
        "--dport",
        "80",
        "--queues",
        "4",
        "--queue",
        "2",
        "--reta-size",
        "512",
        "--range",
        "49152-65535",
    ];
    let all: BTreeSet<u16> = stdout_ok(&args).lines().map(|l| l.parse().unwrap()).collect();
    let mut limited = args.to_vec();
    limited.extend(["--limit", "7"]);
    let first: Vec<u16> = stdout_ok(&limited).lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(first, all.iter().copied().take(7).collect::<Vec<_>>());
    limited.push("--json");
    let v: serde_json::Value = serde_json::from_str(&stdout_ok(&limited)).unwrap();
    assert_eq!(v["total"], all.len());
    assert_eq!(v["ports"].as_array().unwrap().len(), 7);
    assert_eq!(v["queue"], 2);
}

#[test]
fn bad_input_names_the_flag_and_the_allowed_values() {
    let base = ["rss", "queue", "--src", "1.1.1.1", "--dst", "2.2.2.2", "--queues", "4"];
    let mut a = base.to_vec();
    a.extend(["--reta-size", "100"]);
    assert!(stderr_err(&a).contains("--reta-size must be 64, 128 or 512, got 100"));

    let mut a = base.to_vec();
    a.extend(["--sport", "1"]);
    assert!(stderr_err(&a).contains("--sport and --dport must be given together"));

    let err = stderr_err(&["rss", "queue", "--src", "1.1.1.1", "--dst", "2.2.2.2", "--queues", "0"]);
    assert!(err.contains("--queues") && err.contains("1..=65535"), "{err}");

    let err = stderr_err(&["rss", "hash", "--src", "1.1.1.1", "--dst", "::1"]);
    assert!(err.contains("--src and --dst must both be IPv4 or both be IPv6"), "{err}");

    let err = stderr_err(&["rss", "hash", "--key", "6d5a", "--src", "1.1.1.1", "--dst", "2.2.2.2"]);
    assert!(err.contains("--key") && err.contains("40 or 52 bytes"), "{err}");

    let err = stderr_err(&["rss", "hash", "--src", "1.1.1.1", "--dst", "2.2.2.2", "--sport", "65536", "--dport", "1"]);
    assert!(err.contains("--sport") && err.contains("65535"), "{err}");

    let ports = ["rss", "ports", "--src", "10.0.0.1", "--dst", "10.0.0.2", "--dport", "80", "--queues", "4"];
    let mut a = ports.to_vec();
    a.extend(["--queue", "4"]);
    assert!(stderr_err(&a).contains("--queue must be between 0 and 3"));
    let mut a = ports.to_vec();
    a.extend(["--queue", "1", "--range", "9-3"]);
    assert!(stderr_err(&a).contains("--range must be LO-HI"));
    // 200 queues but only 128 RETA entries: queue 150 never appears.
    let a = [
        "rss", "ports", "--src", "10.0.0.1", "--dst", "10.0.0.2", "--dport", "80", "--queues", "200", "--queue", "150",
    ];
    assert!(stderr_err(&a).contains("no RETA entry"));
}

#[test]
fn show_fails_clearly_for_a_missing_device() {
    let err = stderr_err(&["rss", "show", "no-such-dev0"]);
    assert!(err.contains("no-such-dev0"), "{err}");
    let err = stderr_err(&["rss", "show", "this-name-is-far-too-long"]);
    assert!(err.contains("1 to 15 bytes"), "{err}");
}
