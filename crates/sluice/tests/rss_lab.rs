//! `sluice rss show` against the real igb driver in the QEMU lab
//! (`shared/lab/sriov-vm.sh`): one boot runs `sluice rss show eth0 --json`
//! over netlink and over the ioctl, `ethtool -x eth0`, and a raw netlink
//! dump, and the test compares key and RETA. `SLUICE_SKIP_LAB=1` skips it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use sluice_testbed::lab::{Lab, LabError, binary_with_libraries};

/// The sluice binary plus the shared libraries the guest may lack.
fn files() -> Vec<PathBuf> {
    binary_with_libraries(Path::new(env!("CARGO_BIN_EXE_sluice")))
}

const SCRIPT: &str = r#"
cp /share/sluice /tmp/sluice
export LD_LIBRARY_PATH=/share
/usr/sbin/ip link set eth0 up
run() { n=$1; shift; out=$("$@" 2>&1); rc=$?; echo "@@$n rc=$rc"; printf '%s\n' "$out" | sed "s/^/@@$n| /"; }
run netlink /tmp/sluice rss show eth0 --json --via netlink
run ioctl /tmp/sluice rss show eth0 --json --via ioctl
run auto /tmp/sluice rss show eth0 --json
run text /tmp/sluice rss show eth0
run raw /tmp/sluice rss show eth0 --dump-netlink
run ethtool /usr/sbin/ethtool -x eth0
run missing /tmp/sluice rss show nosuchdev0
# netdevsim's port, if its driver reports RSS.
for d in /sys/bus/netdevsim/devices/netdevsim1/net/*; do
  [ -e "$d" ] || continue
  n=$(basename "$d")
  /usr/sbin/ip link set "$n" up
  echo "@@nsimdev| $n"
  run nsim /tmp/sluice rss show "$n" --json
  run nsim_ethtool /usr/sbin/ethtool -x "$n"
  break
done
"#;

/// Output sections `@@name| line` and exit codes `@@name rc=N`.
fn section(output: &str, name: &str) -> (i32, String) {
    let mut rc = None;
    let mut text = String::new();
    let tag = format!("@@{name}");
    for line in output.lines() {
        let Some(rest) = line.strip_prefix(&tag) else { continue };
        if let Some(body) = rest.strip_prefix("| ") {
            text.push_str(body);
            text.push('\n');
        } else if let Some(code) = rest.strip_prefix(" rc=") {
            rc = code.trim().parse().ok();
        }
    }
    let rc = rc.unwrap_or_else(|| panic!("section {name} missing from lab output:\n{output}"));
    (rc, text)
}

/// Key bytes and RETA from `ethtool -x` text.
fn parse_ethtool_x(text: &str) -> (Vec<u8>, Vec<u32>) {
    let mut reta = Vec::new();
    let mut key = Vec::new();
    let mut in_key = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("RSS hash key") {
            in_key = true;
            continue;
        }
        if in_key {
            // "6d:5a:…" on one line (or an error text, which yields nothing).
            key = t.split(':').map(|b| u8::from_str_radix(b, 16)).collect::<Result<_, _>>().unwrap_or_default();
            in_key = false;
            continue;
        }
        if let Some((idx, rest)) = t.split_once(':')
            && idx.trim().parse::<usize>().is_ok()
        {
            reta.extend(rest.split_whitespace().map(|q| q.parse::<u32>().expect("RETA entry")));
        }
    }
    (key, reta)
}

fn json_key_reta(v: &Value) -> (Vec<u8>, Vec<u32>) {
    // `null` when the driver reports no key.
    let key = v["key"]
        .as_str()
        .map(|k| k.split(':').map(|b| u8::from_str_radix(b, 16).expect("key byte")).collect())
        .unwrap_or_default();
    let reta = v["reta"].as_array().expect("reta array").iter().map(|q| q.as_u64().expect("queue") as u32).collect();
    (key, reta)
}

#[test]
fn show_matches_ethtool_on_the_igb_pf() {
    let files = files();
    let paths: Vec<&std::path::Path> = files.iter().map(PathBuf::as_path).collect();
    let run = match Lab::new().netdevsim(true).timeout(Duration::from_secs(300)).run_script(SCRIPT, &paths) {
        Ok(run) => run,
        Err(LabError::Skipped) => {
            eprintln!("SKIPPED: SLUICE_SKIP_LAB=1");
            return;
        }
        Err(e) => panic!("lab run failed: {e}"),
    };
    let out = &run.output;

    eprintln!("lab output:\n{out}");
    let (rc, ethtool) = section(out, "ethtool");
    assert_eq!(rc, 0, "ethtool -x failed:\n{ethtool}");
    let (want_key, want_reta) = parse_ethtool_x(&ethtool);
    assert!(!want_reta.is_empty(), "could not parse ethtool -x:\n{ethtool}");
    // igb reports no key ("RSS hash key: Operation not supported"): then
    // sluice must report none either, rather than invent one.
    if want_key.is_empty() {
        assert!(ethtool.contains("Operation not supported"), "{ethtool}");
    }

    for (name, source) in [("netlink", "netlink"), ("ioctl", "ioctl"), ("auto", "netlink")] {
        let (rc, json) = section(out, name);
        assert_eq!(rc, 0, "sluice rss show ({name}) failed:\n{json}");
        let v: Value = serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("{name}: {e}: {json}"));
        let (key, reta) = json_key_reta(&v);
        assert_eq!(key, want_key, "{name}: key differs from ethtool -x");
        assert_eq!(reta, want_reta, "{name}: RETA differs from ethtool -x");
        assert_eq!(v["source"], source, "{name}");
        assert_eq!(v["hfunc"], "toeplitz", "{name}");
        assert_eq!(v["reta_size"], want_reta.len(), "{name}");
        assert_eq!(v["key_len"], want_key.len(), "{name}");
        // igb hashes TCP over addresses and ports.
        let tcp4: Vec<&str> =
            v["fields"]["tcp4"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        assert!(tcp4.contains(&"ip-src") && tcp4.contains(&"l4-dst-port"), "{name}: tcp4 fields {tcp4:?}");
    }

    // The raw reply decodes to the same key and RETA (and is printed for
    // capturing golden bytes).
    let (rc, raw) = section(out, "raw");
    assert_eq!(rc, 0, "{raw}");
    eprintln!("raw ETHTOOL_MSG_RSS_GET_REPLY attributes: {}", raw.trim());
    let bytes: Vec<u8> =
        (0..raw.trim().len()).step_by(2).map(|i| u8::from_str_radix(&raw.trim()[i..i + 2], 16).expect("hex")).collect();
    let reply = sluice_rss::ethtool::parse_rss_reply(&bytes).expect("decode raw reply");
    assert_eq!(reply.hkey, want_key);
    assert_eq!(reply.indir, want_reta);

    let (rc, text) = section(out, "text");
    assert_eq!(rc, 0, "{text}");
    assert!(text.contains("hash function: toeplitz"), "{text}");

    let (rc, missing) = section(out, "missing");
    assert_ne!(rc, 0);
    assert!(missing.contains("nosuchdev0"), "{missing}");

    // netdevsim: compare whatever its driver reports (key included, if any).
    let (rc, nsim_ethtool) = section(out, "nsim_ethtool");
    let (want_key, want_reta) = parse_ethtool_x(&nsim_ethtool);
    let (nrc, nsim) = section(out, "nsim");
    eprintln!(
        "netdevsim: ethtool rc={rc} key {} bytes, RETA {} entries; sluice rc={nrc}",
        want_key.len(),
        want_reta.len()
    );
    if rc == 0 && !want_reta.is_empty() {
        assert_eq!(nrc, 0, "{nsim}");
        let v: Value = serde_json::from_str(nsim.trim()).expect("json");
        let (key, reta) = json_key_reta(&v);
        assert_eq!(key, want_key, "netdevsim key");
        assert_eq!(reta, want_reta, "netdevsim RETA");
    } else {
        assert_ne!(nrc, 0, "sluice must fail where ethtool has no RETA:\n{nsim}");
    }
}
