//! `sluice sriov` on a synthetic sysfs tree (`--sysfs-root`): inventory,
//! and bad input that must be refused with a named field and range before
//! anything under the tree changes. Runs anywhere; no SR-IOV hardware.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    /// An igb-like PF `eth0` at 0000:01:00.0 with 2 VFs (igbvf, netdevs
    /// eth1/eth2, IOMMU groups 7/8) and a netdevsim device with 4 VFs.
    fn new() -> Tree {
        let t = Tree { dir: tempfile::tempdir().unwrap() };
        let pf = PathBuf::from("devices/pci0000:00/0000:01:00.0");
        for (f, c) in [
            ("vendor", "0x8086"),
            ("device", "0x10c9"),
            ("numa_node", "0"),
            ("sriov_totalvfs", "7"),
            ("sriov_numvfs", "2"),
            ("sriov_drivers_autoprobe", "1"),
        ] {
            t.file(pf.join(f), c);
        }
        t.dir("bus/pci/drivers/igb");
        t.dir("bus/pci/drivers/igbvf");
        t.file("bus/pci/drivers/igbvf/unbind", "");
        t.file("bus/pci/drivers_probe", "");
        t.link(pf.join("driver"), "bus/pci/drivers/igb");
        t.link("bus/pci/devices/0000:01:00.0", &pf);
        t.netdev("eth0", &pf, &[("operstate", "up"), ("carrier", "1"), ("speed", "1000")]);
        for (i, addr) in ["0000:01:10.0", "0000:01:10.2"].iter().enumerate() {
            let vf = PathBuf::from("devices/pci0000:00").join(addr);
            t.file(vf.join("vendor"), "0x8086");
            t.file(vf.join("device"), "0x10ca");
            t.file(vf.join("driver_override"), "(null)");
            t.link(vf.join("driver"), "bus/pci/drivers/igbvf");
            t.dir(&format!("kernel/iommu_groups/{}", 7 + i));
            t.link(vf.join("iommu_group"), format!("kernel/iommu_groups/{}", 7 + i));
            t.link(pf.join(format!("virtfn{i}")), &vf);
            t.link(format!("bus/pci/devices/{addr}"), &vf);
            t.netdev(&format!("eth{}", i + 1), &vf, &[("operstate", "up")]);
        }
        let ns = PathBuf::from("devices/netdevsim/netdevsim1");
        t.file(ns.join("sriov_numvfs"), "4");
        t.link("bus/netdevsim/devices/netdevsim1", &ns);
        t.file("kernel/debug/netdevsim/netdevsim1/max_vfs", "256");
        t.netdev("eth9", &ns, &[("phys_port_name", "p1"), ("phys_switch_id", "abcd")]);
        t
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }
    fn dir(&self, rel: &str) {
        fs::create_dir_all(self.root().join(rel)).unwrap();
    }
    fn file(&self, rel: impl AsRef<Path>, content: &str) {
        let p = self.root().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, format!("{content}\n")).unwrap();
    }
    fn link(&self, rel: impl AsRef<Path>, target: impl AsRef<Path>) {
        let p = self.root().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        symlink(self.root().join(target), p).unwrap();
    }
    fn netdev(&self, name: &str, dev: &Path, files: &[(&str, &str)]) {
        let d = dev.join("net").join(name);
        self.dir(d.to_str().unwrap());
        for (f, c) in files {
            self.file(d.join(f), c);
        }
        self.link(format!("class/net/{name}"), &d);
    }

    fn sluice(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("sriov")
            .arg("--sysfs-root")
            .arg(self.root())
            .arg("--state-dir")
            .arg(self.root().join("state"))
            .args(args)
            .output()
            .unwrap()
    }

    /// Every file's content, to check nothing changed.
    fn snapshot(&self) -> Vec<(PathBuf, String)> {
        let mut out = Vec::new();
        let mut stack = vec![self.root().join("devices"), self.root().join("bus/pci")];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap().flatten() {
                let ft = e.file_type().unwrap();
                if ft.is_dir() {
                    stack.push(e.path());
                } else if ft.is_file() {
                    out.push((e.path(), fs::read_to_string(e.path()).unwrap()));
                }
            }
        }
        out.sort();
        out
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn list_and_show_from_synthetic_sysfs() {
    let t = Tree::new();
    let o = t.sluice(&["list", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let pfs = v.as_array().unwrap();
    assert_eq!(pfs.len(), 2);
    assert_eq!(pfs[0]["name"], "eth0");
    assert_eq!(pfs[0]["numvfs"], 2);
    assert_eq!(pfs[0]["totalvfs"], 7);
    assert_eq!(pfs[0]["link"]["speed_mbps"], 1000);
    assert_eq!(pfs[1]["name"], "eth9");
    assert_eq!(pfs[1]["kind"], "netdevsim");
    assert_eq!(pfs[1]["totalvfs"], 256);

    let o = t.sluice(&["list"]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.lines().next().unwrap().starts_with("PF"), "{table}");
    assert!(table.contains("0000:01:00.0") && table.contains("igb"), "{table}");

    // show works without netlink for this PF: sysfs facts, with the netlink
    // part reported as unavailable (eth0 is not a real interface here).
    let o = t.sluice(&["show", "0000:01:00.0", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["vfs"][1]["pci_addr"], "0000:01:10.2");
    assert_eq!(v["vfs"][1]["netdev"], "eth2");
    assert_eq!(v["vfs"][1]["iommu_group"], 8);
    assert_eq!(v["vfs"][0]["driver"], "igbvf");
}

#[test]
fn bad_input_names_the_field_and_range_and_changes_nothing() {
    let t = Tree::new();
    let before = t.snapshot();
    let cases: &[(&[&str], &str)] = &[
        (&["vf", "set", "eth0", "0", "--vlan", "5000"], "vlan id must be 0..=4094, got 5000"),
        (&["vf", "set", "eth0", "0", "--vlan", "10", "--qos", "8"], "qos must be 0..=7, got 8"),
        (&["vf", "set", "eth0", "0", "--mac", "01:00:5e:00:00:01"], "mac must be a unicast address"),
        (&["vf", "set", "eth0", "0", "--mac", "zz:00:00:00:00:01"], "mac must be six hex octets"),
        (&["vf", "set", "eth0", "2", "--vlan", "1"], "VF index must be 0..=1 on eth0 (it has 2 VFs), got 2"),
        (&["vf", "set", "eth0", "0", "--max-tx-rate", "5000000000"], "max_tx_rate must be 0..=4294967295 Mbps"),
        (&["vf", "set", "eth0", "0", "--link-state", "maybe"], "link-state must be auto, enable or disable"),
        (&["vf", "set", "eth0", "0", "--spoofchk", "perhaps"], "spoofchk must be on or off"),
        (&["vf", "set", "eth0", "0"], "nothing to set"),
        (&["numvfs", "eth0", "8"], "numvfs must be 0..=7 on eth0 (sriov_totalvfs), got 8"),
        (&["numvfs", "netdevsim1", "300", "--force"], "numvfs must be 0..=256"),
        (&["numvfs", "eth0", "3"], "eth0 has 2 VFs; changing to 3 first removes all of them"),
        (&["bind", "eth0", "5", "vfio-pci"], "VF index must be 0..=1"),
        (&["bind", "eth0", "0", "vfio-pci"], "vfio-pci is not registered with the PCI bus"),
        (&["bind", "netdevsim1", "0", "vfio-pci"], "netdevsim device"),
        (&["show", "eth7"], "no SR-IOV physical function matches \"eth7\""),
        (&["vf", "reset", "eth0", "9"], "VF index must be 0..=1"),
    ];
    for (args, needle) in cases {
        let o = t.sluice(args);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(stderr(&o).contains(needle), "{args:?}: expected {needle:?}, got {}", stderr(&o));
    }
    assert_eq!(t.snapshot(), before, "a refused command changed the sysfs tree");
}

#[test]
fn claims_guard_reset_before_any_netlink() {
    let t = Tree::new();
    let o = t.sluice(&["vf", "claim", "eth0", "1", "--owner", "vm-a", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let tok: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(tok["generation"], 1);
    // Another owner cannot claim it; a reset without the token is refused.
    let o = t.sluice(&["vf", "claim", "eth0", "1", "--owner", "vm-b"]);
    assert!(stderr(&o).contains("held by vm-a (generation 1)"), "{}", stderr(&o));
    let o = t.sluice(&["vf", "reset", "eth0", "1"]);
    assert!(stderr(&o).contains("held by vm-a (generation 1)"), "{}", stderr(&o));
    let o = t.sluice(&["vf", "reset", "eth0", "1", "--owner", "vm-a", "--generation", "2"]);
    assert!(stderr(&o).contains("not by vm-a (generation 2)"), "{}", stderr(&o));
    // The record is still vm-a's.
    let rec = fs::read_to_string(t.root().join("state/claims/0000:01:00.0/vf1.json")).unwrap();
    assert!(rec.contains("\"vm-a\"") && rec.contains("\"generation\":1"), "{rec}");
    // Same-state numvfs is a no-op that succeeds.
    let o = t.sluice(&["numvfs", "eth0", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
}
