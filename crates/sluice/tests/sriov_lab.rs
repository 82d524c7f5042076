//! `sluice sriov` against real kernel code in the QEMU lab
//! (`shared/lab/sriov-vm.sh`): the igb driver with real VFs, and netdevsim
//! with 256 VFs, switchdev mode and representors.
//!
//! Three boots in all, each running many `sluice sriov` commands from one
//! shell script. Every command's exit status and output come back as
//! `@@<name> rc=N` and `@@<name>| <line>` markers, and the assertions below
//! check them. `SLUICE_SKIP_LAB=1` skips the tests (they print SKIPPED).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use sluice_testbed::lab::{Lab, LabError, LabRun, binary_with_libraries};

/// Shell prelude: run sluice from guest RAM (not over 9p), with the host's
/// shared libraries, and a `run NAME CMD…` helper that prints markers.
const PRELUDE: &str = r#"
cp /share/sluice /tmp/sluice
S=/tmp/sluice
export LD_LIBRARY_PATH=/share SLUICE_SRIOV_STATE=/tmp/sluice-state
IP=/usr/sbin/ip
DL=/usr/sbin/devlink
run() { n=$1; shift; out=$("$@" 2>&1); rc=$?; echo "@@$n rc=$rc"; printf '%s\n' "$out" | sed "s/^/@@$n| /"; }
now() { cut -d' ' -f1 /proc/uptime; }
"#;

/// The sluice binary plus the shared libraries the guest may lack.
fn files() -> Vec<PathBuf> {
    binary_with_libraries(Path::new(env!("CARGO_BIN_EXE_sluice")))
}

struct Sections {
    rc: BTreeMap<String, i32>,
    out: BTreeMap<String, String>,
    raw: String,
}

impl Sections {
    fn parse(run: &LabRun) -> Sections {
        let mut rc = BTreeMap::new();
        let mut out: BTreeMap<String, String> = BTreeMap::new();
        for line in run.output.lines() {
            let Some(rest) = line.strip_prefix("@@") else { continue };
            if let Some((name, tail)) = rest.split_once("| ") {
                let e = out.entry(name.to_string()).or_default();
                e.push_str(tail);
                e.push('\n');
            } else if let Some((name, tail)) = rest.split_once(" rc=")
                && let Ok(v) = tail.trim().parse()
            {
                rc.insert(name.to_string(), v);
            }
        }
        Sections { rc, out, raw: run.output.clone() }
    }

    fn rc(&self, name: &str) -> i32 {
        *self.rc.get(name).unwrap_or_else(|| panic!("section {name} missing from lab output:\n{}", self.raw))
    }

    fn out(&self, name: &str) -> &str {
        self.out.get(name).map(String::as_str).unwrap_or("")
    }

    /// Asserts success and returns the output.
    fn ok(&self, name: &str) -> &str {
        assert_eq!(self.rc(name), 0, "{name} failed:\n{}", self.out(name));
        self.out(name)
    }

    /// Asserts failure and that the message contains every needle.
    fn fails_with(&self, name: &str, needles: &[&str]) {
        assert_ne!(self.rc(name), 0, "{name} should fail:\n{}", self.out(name));
        for n in needles {
            assert!(self.out(name).contains(n), "{name}: expected {n:?} in:\n{}", self.out(name));
        }
    }

    fn json(&self, name: &str) -> Value {
        let s = self.ok(name);
        // Progress lines go to stderr and are merged; JSON starts at the first '{' or '['.
        let start = s.find(['{', '[']).unwrap_or(0);
        serde_json::from_str(&s[start..]).unwrap_or_else(|e| panic!("{name}: bad JSON ({e}):\n{s}"))
    }
}

fn lab_run(lab: Lab, script: &str) -> Option<Sections> {
    let files = files();
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let script = format!("{PRELUDE}\n{script}");
    let start = std::time::Instant::now();
    match lab.run_script(&script, &refs) {
        Err(LabError::Skipped) => {
            eprintln!("SKIPPED: SLUICE_SKIP_LAB=1");
            None
        }
        Err(e) => panic!("lab failed: {e}"),
        Ok(run) => {
            eprintln!("lab boot + script: {:.1} s", start.elapsed().as_secs_f64());
            eprintln!("{}", run.output);
            Some(Sections::parse(&run))
        }
    }
}

fn vf(show: &Value, i: usize) -> &Value {
    &show["vfs"][i]
}

/// igb PF with 2 VFs: every attribute igb accepts, its refusals, bad input
/// that changes nothing, claims and reset, vfio-pci and back, re-creation
/// with re-applied settings.
#[test]
fn igb_vfs_configure_reset_bind_recreate() {
    let script = r#"
run list $S sriov list --json
run show $S sriov show eth0 --json
run set0 $S sriov vf set eth0 0 --mac 02:00:00:00:00:10 --vlan 100 --qos 3 --spoofchk off --trust on --max-tx-rate 100 --min-tx-rate 0 --json
run ip0 $IP -d link show eth0
run rebind0 $S sriov bind eth0 0 igbvf --json
run vfmac sh -c 'cat /sys/bus/pci/devices/0000:01:10.0/net/*/address'
run before_refusals $S sriov show eth0 --json
run min $S sriov vf set eth0 1 --mac 02:00:00:00:00:99 --min-tx-rate 10 --max-tx-rate 100
run linkstate $S sriov vf set eth0 1 --link-state enable
run dot1ad $S sriov vf set eth0 1 --vlan 10 --vlan-proto 802.1ad
run rss $S sriov vf set eth0 1 --query-rss on
run bad_vlan $S sriov vf set eth0 1 --vlan 4095
run bad_qos $S sriov vf set eth0 1 --vlan 5 --qos 8
run bad_rate $S sriov vf set eth0 1 --max-tx-rate 1001
run bad_mac $S sriov vf set eth0 1 --mac 01:00:5e:00:00:01
run bad_mac2 $S sriov vf set eth0 1 --mac 02:00:00:00:00
run bad_index $S sriov vf set eth0 2 --vlan 1
run bad_numvfs $S sriov numvfs eth0 8 --force
run after_refusals $S sriov show eth0 --json
run claim $S sriov vf claim eth0 0 --owner vm-a --json
run reset_unowned $S sriov vf reset eth0 0
run reset_wrong $S sriov vf reset eth0 0 --owner vm-b --generation 1
run reset $S sriov vf reset eth0 0 --owner vm-a --generation 1 --json
run bind_vfio $S sriov bind eth0 1 vfio-pci --json
run show_vfio $S sriov show eth0 --json
run dev_vfio ls /dev/vfio
run bind_back $S sriov bind eth0 1 default --json
run set1 $S sriov vf set eth0 1 --mac 02:00:00:00:00:11 --vlan 7 --spoofchk off --max-tx-rate 50
run numvfs_refused $S sriov numvfs eth0 3
run numvfs $S sriov numvfs eth0 3 --force --json
run show_after $S sriov show eth0 --json
run numvfs_same $S sriov numvfs eth0 3
run noprobe $S sriov numvfs eth0 2 --force --autoprobe off --no-reapply --json
run show_noprobe $S sriov show eth0 --json
run bind_unbound $S sriov bind eth0 0 vfio-pci --json
run probe_on $S sriov numvfs eth0 2 --autoprobe on
run autoprobe_file cat /sys/bus/pci/devices/0000:01:00.0/sriov_drivers_autoprobe
"#;
    let Some(s) = lab_run(Lab::new().vfs(2).timeout(Duration::from_secs(400)), script) else {
        return;
    };
    // Inventory.
    let list = s.json("list");
    let pf = list
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == "eth0"))
        .unwrap_or_else(|| panic!("eth0 not listed: {list}"));
    assert_eq!(pf["bus_id"], "0000:01:00.0");
    assert_eq!(pf["driver"], "igb");
    assert_eq!(pf["totalvfs"], 7);
    assert_eq!(pf["numvfs"], 2);
    assert_eq!(pf["link"]["speed_mbps"], 1000);
    let show = s.json("show");
    assert_eq!(show["vfs"].as_array().map(Vec::len), Some(2));
    assert_eq!(vf(&show, 1)["pci_addr"], "0000:01:10.2");
    assert_eq!(vf(&show, 1)["driver"], "igbvf");
    assert!(vf(&show, 1)["netdev"].is_string());
    assert!(vf(&show, 1)["iommu_group"].is_u64());
    assert!(show["eswitch"].is_null(), "igb has no devlink eswitch");

    // Every attribute igb accepts, verified by our read-back and by iproute2.
    let set0 = s.json("set0");
    assert_eq!(set0[0]["mac"], "02:00:00:00:00:10");
    assert_eq!(set0[0]["vlan"]["id"], 100);
    assert_eq!(set0[0]["vlan"]["qos"], 3);
    assert_eq!(set0[0]["spoofchk"], false);
    assert_eq!(set0[0]["trust"], true);
    assert_eq!(set0[0]["max_tx_rate"], 100);
    let ip0 = s.ok("ip0");
    assert!(ip0.contains("vf 0     link/ether 02:00:00:00:00:10") && ip0.contains("vlan 100, qos 3"), "{ip0}");
    assert!(ip0.contains("max_tx_rate 100Mbps, spoof checking off, link-state auto, trust on"), "{ip0}");

    // The new MAC reaches igbvf only after a driver reload; Sluice says so
    // and `bind … igbvf` does the reload.
    assert!(s.out("set0").contains("after its driver is reloaded"), "{}", s.out("set0"));
    assert_eq!(s.json("rebind0")["after"], "igbvf");
    assert_eq!(s.ok("vfmac").trim(), "02:00:00:00:00:10");

    // igb refusals name the field and their meaning; VF 1 is left as it was.
    s.fails_with("min", &["min_tx_rate", "igb does not support a minimum TX rate", "restored"]);
    s.fails_with("linkstate", &["link_state", "igb does not support setting a VF link state"]);
    s.fails_with("dot1ad", &["vlan", "802.1ad", "Protocol not supported"]);
    s.fails_with("rss", &["query_rss", "igb does not support"]);
    // Bad input: named field and range, refused before touching the host.
    s.fails_with("bad_vlan", &["vlan id must be 0..=4094, got 4095"]);
    s.fails_with("bad_qos", &["qos must be 0..=7, got 8"]);
    s.fails_with("bad_rate", &["max_tx_rate must be 0..=1000 Mbps", "got 1001"]);
    s.fails_with("bad_mac", &["mac must be a unicast address"]);
    s.fails_with("bad_mac2", &["mac must be six hex octets"]);
    s.fails_with("bad_index", &["VF index must be 0..=1 on eth0 (it has 2 VFs), got 2"]);
    s.fails_with("bad_numvfs", &["numvfs must be 0..=7 on eth0 (sriov_totalvfs), got 8"]);
    let before = s.json("before_refusals");
    let after = s.json("after_refusals");
    assert_eq!(vf(&before, 1)["config"], vf(&after, 1)["config"], "a refused or invalid set changed VF 1");
    assert_eq!(after["pf"]["numvfs"], 2);

    // Claims: the reset is a compare-and-reset.
    assert_eq!(s.json("claim")["generation"], 1);
    s.fails_with("reset_unowned", &["held by vm-a (generation 1)"]);
    s.fails_with("reset_wrong", &["held by vm-a (generation 1), not by vm-b (generation 1)"]);
    let reset = s.json("reset");
    assert_eq!(reset["mac"], "00:00:00:00:00:00");
    assert_eq!(reset["vlan"]["id"], 0);
    assert_eq!(reset["spoofchk"], true);
    assert_eq!(reset["trust"], false);
    assert_eq!(reset["max_tx_rate"], 0);
    assert_eq!(reset["link_state"], "auto");

    // vfio-pci and back, verified through the driver link.
    let b = s.json("bind_vfio");
    assert_eq!(b["before"], "igbvf");
    assert_eq!(b["after"], "vfio-pci");
    let sv = s.json("show_vfio");
    assert_eq!(vf(&sv, 1)["driver"], "vfio-pci");
    assert!(vf(&sv, 1)["netdev"].is_null());
    let group = vf(&sv, 1)["iommu_group"].as_u64().expect("iommu group");
    assert!(s.ok("dev_vfio").lines().any(|l| l.trim() == group.to_string()), "{}", s.out("dev_vfio"));
    assert_eq!(s.json("bind_back")["after"], "igbvf");

    // Re-creation: refused without --force, then N -> 0 -> M, settings re-applied.
    s.ok("set1");
    s.fails_with("numvfs_refused", &["eth0 has 2 VFs; changing to 3 first removes all of them", "--force"]);
    let n = s.json("numvfs");
    assert_eq!((n["before"].as_u64(), n["after"].as_u64(), n["reapplied"].as_u64()), (Some(2), Some(3), Some(2)));
    let sa = s.json("show_after");
    assert_eq!(sa["vfs"].as_array().map(Vec::len), Some(3));
    let c1 = &vf(&sa, 1)["config"];
    assert_eq!(c1["mac"], "02:00:00:00:00:11");
    assert_eq!(c1["vlan"]["id"], 7);
    assert_eq!(c1["spoofchk"], false);
    assert_eq!(c1["max_tx_rate"], 50);
    assert_eq!(vf(&sa, 0)["config"]["mac"], "00:00:00:00:00:00");
    assert!(vf(&sa, 2)["netdev"].is_string(), "VF 2 netdev not waited for: {sa}");
    s.ok("numvfs_same");

    // sriov_drivers_autoprobe off: VFs come up without a host driver and
    // can go straight to vfio-pci; the wait does not insist on netdevs.
    let np = s.json("noprobe");
    assert_eq!((np["before"].as_u64(), np["after"].as_u64(), np["reapplied"].as_u64()), (Some(3), Some(2), Some(0)));
    let sn = s.json("show_noprobe");
    assert_eq!(sn["pf"]["drivers_autoprobe"], false);
    assert!(vf(&sn, 0)["driver"].is_null() && vf(&sn, 1)["driver"].is_null(), "{sn}");
    let b = s.json("bind_unbound");
    assert!(b["before"].is_null());
    assert_eq!(b["after"], "vfio-pci");
    s.ok("probe_on");
    assert_eq!(s.ok("autoprobe_file").trim(), "1");
}

/// netdevsim with 256 VFs: the full list where iproute2 truncates, every
/// VF attribute, bad input, the speed comparison, then switchdev with 256
/// representors, devlink rates and re-creation.
#[test]
fn netdevsim_256_vfs_legacy_then_switchdev() {
    let script = r#"
P=$LAB_NSIM
# Speed: 256 sequential ip commands (values A), then one sluice call (values B).
t0=$(now); i=0; f=0
while [ $i -lt 256 ]; do
  $IP link set $P vf $i mac 02:bb:00:00:00:$(printf %02x $i) vlan 200 spoofchk off rate 200 || f=$((f+1))
  i=$((i+1))
done
t1=$(now); echo "@@BENCH ip $t0 $t1 $f"
t0=$(now); $S sriov vf set $P all --mac-seq 02:aa:00:00:00:00 --vlan 100 --spoofchk on --max-tx-rate 100 >/tmp/set.txt 2>&1; rc=$?; t1=$(now)
echo "@@BENCH sluice $t0 $t1 $rc"
run list $S sriov list --json
run show $S sriov show $P --json
run ipshow sh -c "$IP -d link show $P 2>&1"
run every $S sriov vf set netdevsim1 255 --mac 02:00:00:00:02:55 --vlan 4094 --qos 7 --vlan-proto 802.1ad --spoofchk off --trust on --min-tx-rate 10 --max-tx-rate 500 --link-state disable --query-rss on --json
run every2 $S sriov vf set $P 254 --link-state enable --trust on --json
run bad_vlan $S sriov vf set $P 3 --vlan 5000
run bad_qos $S sriov vf set $P 3 --vlan 5 --qos 9
run bad_mac $S sriov vf set $P 3 --mac ff:ff:ff:ff:ff:ff
run bad_minmax $S sriov vf set $P 3 --min-tx-rate 500 --max-tx-rate 100
run bad_u16 $S sriov vf set $P 3 --max-tx-rate 100000
run bad_index $S sriov vf set $P 256 --vlan 1
run bad_numvfs $S sriov numvfs $P 300 --force
run after_bad $S sriov show $P --json
run claim_a $S sriov vf claim $P 5 --owner vm-a --json
run release_a $S sriov vf reset $P 5 --owner vm-a --generation 1
run claim_b $S sriov vf claim $P 5 --owner vm-b --json
run set_b $S sriov vf set $P 5 --mac 02:00:00:00:0b:05 --vlan 55
run late_release_a $S sriov vf reset $P 5 --owner vm-a --generation 1
run eswitch_legacy $S sriov eswitch $P --json
t0=$(now); run switchdev $S sriov eswitch $P switchdev --json; t1=$(now); echo "@@T switchdev $t0 $t1"
run show_sd $S sriov show $P --json
run ports sh -c "$DL port show | grep -c 'flavour pcivf'"
run rate $S sriov vf set $P 7 --max-tx-rate 300 --min-tx-rate 20 --json
run dlrate sh -c "$DL port function rate show"
run iprate sh -c "$IP link set $P vf 7 max_tx_rate 100 2>&1"
run sd_vlan $S sriov vf set $P 7 --vlan 33 --trust on
t0=$(now); run renum $S sriov numvfs $P 8 --force --json; t1=$(now); echo "@@T renum $t0 $t1"
run show_renum $S sriov show $P --json
# Beyond 330 VFs even the stats-free list overflows 64 KiB: 400 VFs.
run zero $S sriov numvfs $P 0 --force --no-reapply
echo 400 > /sys/kernel/debug/netdevsim/netdevsim1/max_vfs
run legacy0 $S sriov eswitch $P legacy
run n400 $S sriov numvfs $P 400 --json
run set399 $S sriov vf set $P 399 --vlan 399 --mac 02:00:00:00:03:99 --json
run show400 sh -c "$S sriov show $P --json > /tmp/s400.json; grep -A7 vf_list /tmp/s400.json; echo entries=\$(grep -c '\"index\"' /tmp/s400.json)"
run ip400 sh -c "$IP -d link show $P 2>&1 | grep -c 'vf [0-9]'"
"#;
    let Some(s) = lab_run(Lab::new().nsim_vfs(256).timeout(Duration::from_secs(500)), script) else {
        return;
    };
    // Speed.
    let bench = |k: &str| -> (f64, f64, i64) {
        let l = s.raw.lines().find_map(|l| l.strip_prefix(&format!("@@BENCH {k} "))).expect(k);
        let v: Vec<&str> = l.split_whitespace().collect();
        (v[0].parse().unwrap(), v[1].parse().unwrap(), v[2].parse().unwrap())
    };
    let (a, b, ip_fail) = bench("ip");
    let (c, d, rc) = bench("sluice");
    let (ip_t, sl_t) = (b - a, d - c);
    eprintln!("BENCH 256 VFs: ip {ip_t:.2} s ({ip_fail} failed), sluice {sl_t:.2} s, {:.1}x", ip_t / sl_t.max(0.01));
    assert_eq!((ip_fail, rc), (0, 0));
    assert!(ip_t >= 10.0 * sl_t, "sluice {sl_t} s is not 10x faster than ip {ip_t} s");

    // All 256 VFs listed, with the values sluice set, where iproute2 truncates.
    let list = s.json("list");
    let nsim = list.as_array().and_then(|a| a.iter().find(|p| p["bus_id"] == "netdevsim1")).expect("netdevsim1");
    assert_eq!(nsim["numvfs"], 256);
    let show = s.json("show");
    let vfs = show["vfs"].as_array().expect("vfs");
    assert_eq!(vfs.len(), 256);
    assert_eq!(show["vf_list"]["parsed"], 256);
    assert_eq!(show["vf_list"]["truncated"], false);
    for (i, v) in vfs.iter().enumerate() {
        let c = &v["config"];
        assert_eq!(c["index"], i as u64);
        assert_eq!(c["mac"], format!("02:aa:00:00:{:02x}:{:02x}", i >> 8, i & 0xff), "VF {i}");
        assert_eq!(c["vlan"]["id"], 100, "VF {i}");
        assert_eq!(c["spoofchk"], true, "VF {i}");
        assert_eq!(c["max_tx_rate"], 100, "VF {i}");
    }
    let ip = s.ok("ipshow");
    let ip_vfs = ip.lines().filter(|l| l.trim_start().starts_with("vf ")).count();
    assert!(ip_vfs < 256 && ip.contains("Truncated VF list"), "iproute2 listed {ip_vfs} VFs");

    // Every VF attribute netdevsim supports, read back.
    let e = &s.json("every")[0];
    assert_eq!(e["mac"], "02:00:00:00:02:55");
    assert_eq!(e["vlan"], serde_json::json!({"id": 4094, "qos": 7, "proto": "802.1ad"}));
    assert_eq!(
        (e["spoofchk"].as_bool(), e["trust"].as_bool(), e["query_rss"].as_bool()),
        (Some(false), Some(true), Some(true))
    );
    assert_eq!((e["min_tx_rate"].as_u64(), e["max_tx_rate"].as_u64()), (Some(10), Some(500)));
    assert_eq!(e["link_state"], "disable");
    assert_eq!(s.json("every2")[0]["link_state"], "enable");

    // Bad input changes nothing.
    s.fails_with("bad_vlan", &["vlan id must be 0..=4094, got 5000"]);
    s.fails_with("bad_qos", &["qos must be 0..=7, got 9"]);
    s.fails_with("bad_mac", &["mac must be a unicast address"]);
    s.fails_with("bad_minmax", &["min_tx_rate must be 0..=100 Mbps", "got 500"]);
    s.fails_with("bad_u16", &["max_tx_rate reads back", "restored"]);
    s.fails_with("bad_index", &["VF index must be 0..=255", "got 256"]);
    s.fails_with("bad_numvfs", &["numvfs must be 0..=256", "got 300"]);
    let after = s.json("after_bad");
    assert_eq!(vf(&show, 3)["config"], vf(&after, 3)["config"]);
    assert_eq!(after["pf"]["numvfs"], 256);

    // A late release of the old holder does not reset the new holder's VF.
    assert_eq!(s.json("claim_a")["generation"], 1);
    s.ok("release_a");
    assert_eq!(s.json("claim_b")["generation"], 2);
    s.ok("set_b");
    s.fails_with("late_release_a", &["held by vm-b (generation 2), not by vm-a (generation 1)"]);

    // switchdev: representors mapped for all 256 VFs, rates through devlink.
    assert_eq!(s.json("eswitch_legacy")["eswitch"], "legacy");
    assert_eq!(s.json("switchdev")["eswitch"], "switchdev");
    let sd = s.json("show_sd");
    assert_eq!(sd["eswitch"], "switchdev");
    let reps: std::collections::BTreeSet<String> = sd["vfs"]
        .as_array()
        .expect("vfs")
        .iter()
        .map(|v| v["representor"].as_str().expect("representor").to_string())
        .collect();
    assert_eq!(reps.len(), 256, "every VF has its own representor");
    assert_eq!(vf(&sd, 7)["devlink_port"], 135);
    assert_eq!(s.ok("ports").trim(), "256");
    assert_eq!(vf(&sd, 5)["claim"]["owner"], "vm-b");
    assert_eq!(vf(&sd, 5)["config"]["vlan"]["id"], 55);
    let r = &s.json("rate")[0];
    assert_eq!(r["index"], 7);
    assert!(
        s.ok("dlrate").contains("netdevsim/netdevsim1/135: type leaf tx_share 20Mbit tx_max 300Mbit"),
        "{}",
        s.out("dlrate")
    );
    assert_ne!(s.rc("iprate"), 0, "ip link vf max_tx_rate is refused in switchdev mode");
    s.ok("sd_vlan");

    // Re-creation in switchdev: netdevsim falls back to legacy, Sluice sets
    // switchdev again, and the settings (devlink rate included) come back.
    let n = s.json("renum");
    assert_eq!((n["before"].as_u64(), n["after"].as_u64(), n["reapplied"].as_u64()), (Some(256), Some(8), Some(8)));
    assert_eq!(n["switchdev_restored"], true);
    let sr = s.json("show_renum");
    assert_eq!(sr["eswitch"], "switchdev");
    assert_eq!(sr["vfs"].as_array().map(Vec::len), Some(8));
    let v7 = vf(&sr, 7);
    assert_eq!(v7["config"]["vlan"]["id"], 33);
    assert_eq!(v7["config"]["trust"], true);
    assert_eq!(v7["devlink_rate_mbps"], serde_json::json!([20, 300]));
    assert!(v7["representor"].is_string());

    // 400 VFs: the nest wraps even without stats; the list is recovered.
    s.ok("zero");
    assert_eq!(s.json("n400")["after"], 400);
    assert_eq!(s.json("set399")[0]["vlan"]["id"], 399);
    let s400 = s.ok("show400");
    assert!(s400.contains("\"parsed\": 400"), "{s400}");
    assert!(s400.contains("\"recovered_past_nest\": true"), "{s400}");
    assert!(s400.contains("\"truncated\": false"), "{s400}");
    // 400 entries with "index" in config and in the VF (flattened) = 800.
    assert!(s400.contains("entries=800"), "{s400}");
    let ip_n: u32 = s.ok("ip400").trim().parse().unwrap_or(0);
    assert!(ip_n < 400, "iproute2 listed {ip_n} of 400 VFs");
}

/// Boot with netdevsim already in switchdev (4 VFs) and an igb VF without
/// an IOMMU: representor mapping, devlink rate, switching to legacy, and
/// the vfio-pci bind that "succeeds" but leaves the VF unbound.
#[test]
fn switchdev_boot_and_vfio_without_iommu() {
    let script = r#"
run eswitch $S sriov eswitch netdevsim1 --json
run show $S sriov show netdevsim1 --json
run reps sh -c "for n in /sys/class/net/*; do echo \$(basename \$n) \$(cat \$n/phys_port_name 2>/dev/null); done"
run rate $S sriov vf set netdevsim1 2 --max-tx-rate 1000 --min-tx-rate 100
run legacy $S sriov eswitch netdevsim1 legacy --json
run show_legacy $S sriov show netdevsim1 --json
run rate_legacy $S sriov vf set netdevsim1 2 --max-tx-rate 400 --json
run vfio $S sriov bind eth0 0 vfio-pci
run after_vfio $S sriov show eth0 --json
"#;
    let lab = Lab::new().vfs(1).no_iommu().switchdev(true).nsim_vfs(4).timeout(Duration::from_secs(300));
    let Some(s) = lab_run(lab, script) else {
        return;
    };
    assert_eq!(s.json("eswitch")["eswitch"], "switchdev");
    let show = s.json("show");
    let reps = s.ok("reps");
    for i in 0..4 {
        let v = vf(&show, i);
        let rep = v["representor"].as_str().expect("representor");
        assert!(reps.lines().any(|l| l == format!("{rep} pf0vf{i}")), "VF {i} -> {rep} not pf0vf{i}:\n{reps}");
        assert_eq!(v["devlink_port"], 128 + i as u64);
    }
    s.ok("rate");
    assert_eq!(s.json("legacy")["eswitch"], "legacy");
    let sl = s.json("show_legacy");
    assert!(vf(&sl, 0)["representor"].is_null());
    assert_eq!(s.json("rate_legacy")[0]["max_tx_rate"], 400);
    s.fails_with("vfio", &["binding", "vfio-pci", "unbound", "no IOMMU group", "returned to igbvf"]);
    assert_eq!(vf(&s.json("after_vfio"), 0)["driver"], "igbvf");
}
