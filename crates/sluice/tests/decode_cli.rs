//! `sluice decode` as a user runs it: the built-in captures, a file, and
//! bad input.

use std::process::Command;

fn sluice(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sluice")).args(args).output().unwrap()
}

#[test]
fn decodes_the_built_in_captures_with_no_problems() {
    let out = sluice(&["decode"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("vxlan vni 42"), "{text}");
    assert!(text.contains("gre proto TransparentEthernet key 7"), "{text}");
    assert!(text.contains("icmp6 neighbor-solicit who-has fd00::2 lladdr 02:00:00:00:00:01"), "{text}");
    assert!(text.contains("802.1ad 200 p3 vlan 100 p5"), "{text}");
    assert!(text.trim_end().ends_with("46 frames decoded, 0 problems"), "{text}");
}

#[test]
fn decodes_a_file_as_json_lines() {
    let f = concat!(env!("CARGO_MANIFEST_DIR"), "/../packet/tests/fixtures/geneve_opts.pcap");
    let out = sluice(&["decode", f, "--json"]);
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4);
    let layers = lines[0]["layers"].as_array().unwrap();
    assert!(layers.iter().any(|l| l.as_str().unwrap().starts_with("geneve vni 77 opt 0102:01:00800022")), "{layers:?}");
    assert!(lines.iter().all(|l| l["problems"].as_array().unwrap().is_empty()));
}

#[test]
fn a_file_that_is_not_a_pcap_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.pcap");
    std::fs::write(&bad, b"hello, this is not a capture").unwrap();
    let out = sluice(&["decode", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a pcap file Sluice can read"), "{err}");
    let out = sluice(&["decode", "/nonexistent/file.pcap"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("could not read /nonexistent/file.pcap"));
}
