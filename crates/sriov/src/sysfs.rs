//! sysfs: PF and VF inventory, the VF count, driver binding.
//!
//! Every path is resolved under a [`SysfsRoot`] (normally `/sys`), so unit
//! tests build a synthetic tree in a temporary directory. This module only
//! reads and writes files and symlinks; it makes no netlink calls.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};

/// The root of a sysfs tree (`/sys` on a host, a temp dir in tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysfsRoot {
    root: PathBuf,
}

impl Default for SysfsRoot {
    fn default() -> Self {
        SysfsRoot::new("/sys")
    }
}

/// What kind of device a PF is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PfKind {
    /// A PCI SR-IOV physical function.
    Pci,
    /// A netdevsim device (simulated; VFs are configuration only).
    Netdevsim,
}

/// Link facts of a netdev.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct LinkFacts {
    /// `operstate` (up, down, ...).
    pub operstate: Option<String>,
    /// `carrier` (None when the interface is administratively down).
    pub carrier: Option<bool>,
    /// `speed` in Mbps (None when unknown).
    pub speed_mbps: Option<u32>,
}

/// A physical function as sysfs describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pf {
    /// Display name: the netdev if there is one, else the bus id.
    pub name: String,
    /// PCI or netdevsim.
    pub kind: PfKind,
    /// Bus id: PCI address (`0000:01:00.0`) or netdevsim name (`netdevsim1`).
    pub bus_id: String,
    /// Device directory under the sysfs root.
    #[serde(skip)]
    pub dev_dir: PathBuf,
    /// The PF's netdev.
    pub netdev: Option<String>,
    /// PCI vendor id (`0x8086`).
    pub vendor: Option<String>,
    /// PCI device id.
    pub device: Option<String>,
    /// Bound driver.
    pub driver: Option<String>,
    /// NUMA node (-1 when the platform has none).
    pub numa_node: Option<i32>,
    /// Maximum VF count (`sriov_totalvfs`, or netdevsim's debugfs `max_vfs`).
    pub totalvfs: Option<u32>,
    /// Current VF count.
    pub numvfs: u32,
    /// `sriov_drivers_autoprobe`.
    pub drivers_autoprobe: Option<bool>,
    /// Link facts of the netdev.
    pub link: LinkFacts,
    /// `phys_switch_id` of the netdev (None when unsupported).
    pub phys_switch_id: Option<String>,
    /// `phys_port_name` of the netdev (None when unsupported).
    pub phys_port_name: Option<String>,
}

impl Pf {
    /// The devlink handle (`pci/0000:01:00.0`, `netdevsim/netdevsim1`).
    pub fn devlink_handle(&self) -> (String, String) {
        match self.kind {
            PfKind::Pci => ("pci".into(), self.bus_id.clone()),
            PfKind::Netdevsim => ("netdevsim".into(), self.bus_id.clone()),
        }
    }
}

/// A virtual function as sysfs describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct VfDevice {
    /// VF index on its PF.
    pub index: u32,
    /// PCI address (None for netdevsim VFs, which have no PCI function).
    pub pci_addr: Option<String>,
    /// PCI vendor id.
    pub vendor: Option<String>,
    /// PCI device id.
    pub device: Option<String>,
    /// Bound driver (`igbvf`, `vfio-pci`, ...).
    pub driver: Option<String>,
    /// `driver_override`, if set.
    pub driver_override: Option<String>,
    /// The VF's netdev, when a netdev driver is bound.
    pub netdev: Option<String>,
    /// IOMMU group number.
    pub iommu_group: Option<u32>,
    /// NUMA node.
    pub numa_node: Option<i32>,
    /// Representor netdev (switchdev mode).
    pub representor: Option<String>,
}

impl SysfsRoot {
    /// A sysfs root at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        SysfsRoot { root: root.into() }
    }

    /// The root path.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// `rel` resolved under the root.
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.join(rel)
    }

    fn pci_dev(&self, addr: &str) -> PathBuf {
        self.join("bus/pci/devices").join(addr)
    }

    /// Every SR-IOV capable PF: PCI functions with `sriov_totalvfs`, and
    /// netdevsim devices.
    pub fn pfs(&self) -> Result<Vec<Pf>> {
        let mut out = Vec::new();
        for addr in list_dir(&self.join("bus/pci/devices"))? {
            let dir = self.pci_dev(&addr);
            if dir.join("sriov_totalvfs").exists() {
                out.push(self.pci_pf(&addr)?);
            }
        }
        for name in list_dir(&self.join("bus/netdevsim/devices"))? {
            let dir = self.join("bus/netdevsim/devices").join(&name);
            if dir.join("sriov_numvfs").exists() {
                out.push(self.nsim_pf(&name)?);
            }
        }
        Ok(out)
    }

    /// Finds a PF by netdev name, PCI address or netdevsim name.
    pub fn find_pf(&self, key: &str) -> Result<Pf> {
        self.pfs()?
            .into_iter()
            .find(|p| p.name == key || p.bus_id == key || p.netdev.as_deref() == Some(key))
            .ok_or_else(|| Error::NoSuchPf(key.to_string()))
    }

    /// Re-reads a PF (after a change).
    pub fn refresh(&self, pf: &Pf) -> Result<Pf> {
        match pf.kind {
            PfKind::Pci => self.pci_pf(&pf.bus_id),
            PfKind::Netdevsim => self.nsim_pf(&pf.bus_id),
        }
    }

    fn pci_pf(&self, addr: &str) -> Result<Pf> {
        let dir = self.pci_dev(addr);
        let netdev = first_entry(&dir.join("net"))?;
        let (link, switch_id, port_name) = self.netdev_facts(netdev.as_deref());
        Ok(Pf {
            name: netdev.clone().unwrap_or_else(|| addr.to_string()),
            kind: PfKind::Pci,
            bus_id: addr.to_string(),
            netdev,
            vendor: read_opt(&dir.join("vendor"))?,
            device: read_opt(&dir.join("device"))?,
            driver: link_name(&dir.join("driver"))?,
            numa_node: read_parsed_opt(&dir.join("numa_node"))?,
            totalvfs: read_parsed_opt(&dir.join("sriov_totalvfs"))?,
            numvfs: read_parsed_opt(&dir.join("sriov_numvfs"))?.unwrap_or(0),
            drivers_autoprobe: read_parsed_opt::<u8>(&dir.join("sriov_drivers_autoprobe"))?.map(|v| v != 0),
            link,
            phys_switch_id: switch_id,
            phys_port_name: port_name,
            dev_dir: dir,
        })
    }

    fn nsim_pf(&self, name: &str) -> Result<Pf> {
        let dir = self.join("bus/netdevsim/devices").join(name);
        // The port netdev is the one whose phys_port_name is `p<N>`;
        // representors (`pf0vfN`) share the directory.
        let mut netdev = None;
        for n in list_dir(&dir.join("net"))? {
            let ppn = read_opt(&self.join("class/net").join(&n).join("phys_port_name")).ok().flatten();
            if ppn.as_deref().is_some_and(|p| p.starts_with('p') && !p.starts_with("pf")) {
                netdev = Some(n);
                break;
            }
        }
        let (link, switch_id, port_name) = self.netdev_facts(netdev.as_deref());
        Ok(Pf {
            name: netdev.clone().unwrap_or_else(|| name.to_string()),
            kind: PfKind::Netdevsim,
            bus_id: name.to_string(),
            netdev,
            vendor: None,
            device: None,
            driver: Some("netdevsim".into()),
            numa_node: None,
            totalvfs: read_parsed_opt(&self.join("kernel/debug/netdevsim").join(name).join("max_vfs"))?,
            numvfs: read_parsed_opt(&dir.join("sriov_numvfs"))?.unwrap_or(0),
            drivers_autoprobe: None,
            link,
            phys_switch_id: switch_id,
            phys_port_name: port_name,
            dev_dir: dir,
        })
    }

    /// Link facts, switch id and port name of a netdev; unsupported or
    /// unreadable attributes are `None` (igb answers EOPNOTSUPP for the
    /// switch attributes, a down link answers EINVAL for `carrier`).
    fn netdev_facts(&self, netdev: Option<&str>) -> (LinkFacts, Option<String>, Option<String>) {
        let Some(n) = netdev else {
            return (LinkFacts::default(), None, None);
        };
        let d = self.join("class/net").join(n);
        let get = |f: &str| read_opt(&d.join(f)).ok().flatten();
        let link = LinkFacts {
            operstate: get("operstate"),
            carrier: get("carrier").map(|c| c == "1"),
            speed_mbps: get("speed").and_then(|s| s.parse::<i64>().ok()).and_then(|s| {
                // -1 (unknown) and absurd values are "unknown".
                u32::try_from(s).ok().filter(|s| *s > 0)
            }),
        };
        (link, get("phys_switch_id").filter(|s| !s.is_empty()), get("phys_port_name").filter(|s| !s.is_empty()))
    }

    /// The VFs of a PF as sysfs sees them, indexed 0..numvfs. netdevsim VFs
    /// have no PCI functions, so only `index` and `representor` are filled.
    pub fn vfs(&self, pf: &Pf) -> Result<Vec<VfDevice>> {
        let reps = self.representors(pf)?;
        let mut out = Vec::with_capacity(pf.numvfs as usize);
        for index in 0..pf.numvfs {
            let mut vf = VfDevice {
                index,
                representor: reps.iter().find(|(i, _)| *i == index).map(|(_, n)| n.clone()),
                ..Default::default()
            };
            if pf.kind == PfKind::Pci
                && let Some(addr) = link_name(&pf.dev_dir.join(format!("virtfn{index}")))?
            {
                let d = self.pci_dev(&addr);
                vf.vendor = read_opt(&d.join("vendor"))?;
                vf.device = read_opt(&d.join("device"))?;
                vf.driver = link_name(&d.join("driver"))?;
                vf.driver_override = read_opt(&d.join("driver_override"))?.filter(|s| s != "(null)" && !s.is_empty());
                vf.netdev = first_entry(&d.join("net"))?;
                vf.iommu_group = link_name(&d.join("iommu_group"))?.and_then(|g| g.parse().ok());
                vf.numa_node = read_parsed_opt(&d.join("numa_node"))?;
                vf.pci_addr = Some(addr);
            }
            out.push(vf);
        }
        Ok(out)
    }

    /// Number of `virtfn*` links present (PCI functions that exist).
    pub fn virtfn_count(&self, pf: &Pf) -> Result<u32> {
        let n = list_dir(&pf.dev_dir)?
            .iter()
            .filter(|e| e.strip_prefix("virtfn").is_some_and(|r| r.parse::<u32>().is_ok()))
            .count();
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Representors of `pf`: netdevs whose `phys_switch_id` equals the PF's
    /// and whose `phys_port_name` is `[cN]pfMvfK`. Returns (vf index, netdev).
    pub fn representors(&self, pf: &Pf) -> Result<Vec<(u32, String)>> {
        let Some(sw) = pf.phys_switch_id.as_deref() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for n in list_dir(&self.join("class/net"))? {
            if Some(n.as_str()) == pf.netdev.as_deref() {
                continue;
            }
            let d = self.join("class/net").join(&n);
            let id = read_opt(&d.join("phys_switch_id")).ok().flatten();
            if id.as_deref() != Some(sw) {
                continue;
            }
            if let Some(vf) = read_opt(&d.join("phys_port_name")).ok().flatten().and_then(|p| parse_vf_port_name(&p)) {
                out.push((vf, n));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Writes the VF count (one write; callers go through 0 themselves).
    pub fn write_numvfs(&self, pf: &Pf, n: u32) -> Result<()> {
        write_file(&pf.dev_dir.join("sriov_numvfs"), &n.to_string())
    }

    /// Sets `sriov_drivers_autoprobe`.
    pub fn write_autoprobe(&self, pf: &Pf, on: bool) -> Result<()> {
        write_file(&pf.dev_dir.join("sriov_drivers_autoprobe"), if on { "1" } else { "0" })
    }

    /// The sysfs directory of a PCI function.
    pub fn pci_device_dir(&self, addr: &str) -> PathBuf {
        self.pci_dev(addr)
    }

    /// Binds a VF to `driver` (or, with `None`, clears the override and lets
    /// the kernel pick its default driver): `driver_override`, unbind,
    /// `drivers_probe`. Returns the driver the VF is bound to afterwards.
    /// Does not verify; see [`crate::ops::bind_vf`].
    pub fn rebind(&self, vf_addr: &str, driver: Option<&str>) -> Result<Option<String>> {
        let d = self.pci_dev(vf_addr);
        write_file(&d.join("driver_override"), driver.unwrap_or("\n"))?;
        if link_name(&d.join("driver"))?.is_some() {
            write_file(&d.join("driver/unbind"), vf_addr)?;
        }
        write_file(&self.join("bus/pci/drivers_probe"), vf_addr)?;
        link_name(&d.join("driver"))
    }

    /// True if `driver` is registered with the PCI bus (module loaded).
    pub fn pci_driver_loaded(&self, driver: &str) -> bool {
        self.join("bus/pci/drivers").join(driver).exists()
    }
}

/// Parses `pf0vf3` or `c1pf0vf3` into the VF number.
pub fn parse_vf_port_name(s: &str) -> Option<u32> {
    let s = match s.strip_prefix('c') {
        Some(rest) => rest.trim_start_matches(|c: char| c.is_ascii_digit()),
        None => s,
    };
    let rest = s.strip_prefix("pf")?;
    let (pfnum, vf) = rest.split_once("vf")?;
    if pfnum.is_empty() || !pfnum.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    vf.parse().ok()
}

fn sysfs_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Sysfs { op, path: path.to_path_buf(), source }
}

/// Names in a directory, sorted; an absent directory is empty.
pub(crate) fn list_dir(dir: &Path) -> Result<Vec<String>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(sysfs_err("list", dir)(e)),
    };
    let mut v: Vec<String> = rd.filter_map(|e| e.ok()).filter_map(|e| e.file_name().into_string().ok()).collect();
    v.sort_by(|a, b| natural_cmp(a, b));
    Ok(v)
}

/// Orders `eth2` before `eth10`.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let split = |s: &str| {
        let i = s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        (s[..i].to_string(), s[i..].parse::<u64>().ok())
    };
    split(a).cmp(&split(b)).then_with(|| a.cmp(b))
}

fn first_entry(dir: &Path) -> Result<Option<String>> {
    Ok(list_dir(dir)?.into_iter().next())
}

/// Reads a sysfs file, trimmed; `None` if it does not exist or the kernel
/// answers that the attribute is unsupported or invalid in this state.
pub(crate) fn read_opt(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s.trim().to_string())),
        Err(e)
            if e.kind() == io::ErrorKind::NotFound
                || matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EINVAL | libc::ENODEV)) =>
        {
            Ok(None)
        }
        Err(e) => Err(sysfs_err("read", path)(e)),
    }
}

fn read_parsed_opt<T: std::str::FromStr>(path: &Path) -> Result<Option<T>> {
    match read_opt(path)? {
        None => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| Error::SysfsParse {
            path: path.to_path_buf(),
            content: s,
            expected: "a number",
        }),
    }
}

/// The file name a symlink points to (`driver` → `igbvf`); `None` if absent.
pub(crate) fn link_name(path: &Path) -> Result<Option<String>> {
    match fs::read_link(path) {
        Ok(t) => Ok(t.file_name().and_then(|n| n.to_str()).map(str::to_string)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(sysfs_err("readlink", path)(e)),
    }
}

/// Writes a value to an existing sysfs attribute in one `write(2)`.
pub(crate) fn write_file(path: &Path, value: &str) -> Result<()> {
    // O_TRUNC is ignored by sysfs and keeps synthetic trees exact.
    let mut f = fs::OpenOptions::new().write(true).truncate(true).open(path).map_err(sysfs_err("write", path))?;
    f.write_all(value.as_bytes()).map_err(sysfs_err("write", path))
}

#[cfg(test)]
pub(crate) mod testtree {
    //! Builders for synthetic sysfs trees.
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::{Path, PathBuf};

    pub struct Tree {
        pub dir: tempfile::TempDir,
    }

    impl Tree {
        pub fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            for d in ["bus/pci/devices", "bus/pci/drivers", "class/net", "devices", "kernel/iommu_groups"] {
                fs::create_dir_all(dir.path().join(d)).unwrap();
            }
            fs::write(dir.path().join("bus/pci/drivers_probe"), "").unwrap();
            Tree { dir }
        }
        pub fn root(&self) -> &Path {
            self.dir.path()
        }
        pub fn file(&self, rel: impl AsRef<Path>, content: &str) {
            let p = self.root().join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, content).unwrap();
        }
        pub fn link(&self, rel: impl AsRef<Path>, target: impl AsRef<Path>) {
            let p = self.root().join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            let _ = fs::remove_file(&p);
            symlink(target, p).unwrap();
        }
        fn dev(&self, addr: &str) -> PathBuf {
            PathBuf::from("devices/pci0000:00").join(addr)
        }
        pub fn driver(&self, name: &str) {
            fs::create_dir_all(self.root().join("bus/pci/drivers").join(name)).unwrap();
            fs::write(self.root().join("bus/pci/drivers").join(name).join("unbind"), "").unwrap();
        }
        pub fn netdev(&self, name: &str, devrel: &Path, files: &[(&str, &str)]) {
            let nd = devrel.join("net").join(name);
            fs::create_dir_all(self.root().join(&nd)).unwrap();
            for (f, c) in files {
                self.file(nd.join(f), c);
            }
            self.link(PathBuf::from("class/net").join(name), self.root().join(nd));
        }
        /// An igb-like PF with `n` VFs (driver igbvf, netdevs, IOMMU groups).
        pub fn igb_pf(&self, addr: &str, netdev: &str, total: u32, n: u32) {
            self.driver("igb");
            self.driver("igbvf");
            let d = self.dev(addr);
            self.file(d.join("vendor"), "0x8086\n");
            self.file(d.join("device"), "0x10c9\n");
            self.file(d.join("numa_node"), "-1\n");
            self.file(d.join("sriov_totalvfs"), &format!("{total}\n"));
            self.file(d.join("sriov_numvfs"), &format!("{n}\n"));
            self.file(d.join("sriov_drivers_autoprobe"), "1\n");
            self.link(d.join("driver"), self.root().join("bus/pci/drivers/igb"));
            self.link(PathBuf::from("bus/pci/devices").join(addr), self.root().join(&d));
            self.netdev(netdev, &d, &[("operstate", "up\n"), ("carrier", "1\n"), ("speed", "1000\n")]);
            for i in 0..n {
                let vaddr = format!("{}:{:02x}.{}", &addr[..7], 0x10 + (i * 2) / 8, (i * 2) % 8);
                let vd = self.dev(&vaddr);
                self.file(vd.join("vendor"), "0x8086\n");
                self.file(vd.join("device"), "0x10ca\n");
                self.file(vd.join("numa_node"), "-1\n");
                self.file(vd.join("driver_override"), "(null)\n");
                self.link(vd.join("driver"), self.root().join("bus/pci/drivers/igbvf"));
                let g = 10 + i;
                fs::create_dir_all(self.root().join(format!("kernel/iommu_groups/{g}"))).unwrap();
                self.link(vd.join("iommu_group"), self.root().join(format!("kernel/iommu_groups/{g}")));
                self.link(vd.join("physfn"), self.root().join(&d));
                self.link(d.join(format!("virtfn{i}")), self.root().join(&vd));
                self.link(PathBuf::from("bus/pci/devices").join(&vaddr), self.root().join(&vd));
                self.netdev(&format!("eth{}", 10 + i), &vd, &[("operstate", "up\n")]);
            }
        }
        /// A netdevsim device with `n` VFs, optionally with representors.
        pub fn nsim(&self, name: &str, port: &str, max: u32, n: u32, reps: bool) {
            let d = PathBuf::from("devices/netdevsim").join(name);
            self.file(d.join("sriov_numvfs"), &format!("{n}\n"));
            self.link(PathBuf::from("bus/netdevsim/devices").join(name), self.root().join(&d));
            self.file(PathBuf::from("kernel/debug/netdevsim").join(name).join("max_vfs"), &format!("{max}\n"));
            let sw = "ab".repeat(32);
            self.netdev(
                port,
                &d,
                &[("phys_port_name", "p1\n"), ("phys_switch_id", &format!("{sw}\n")), ("operstate", "up\n")],
            );
            if reps {
                for i in 0..n {
                    self.netdev(
                        &format!("eth{}", 100 + i),
                        &d,
                        &[("phys_port_name", &format!("pf0vf{i}\n")), ("phys_switch_id", &format!("{sw}\n"))],
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testtree::Tree;
    use super::*;

    #[test]
    fn inventory_of_igb_pf_with_vfs() {
        let t = Tree::new();
        t.igb_pf("0000:01:00.0", "eth0", 7, 3);
        let root = SysfsRoot::new(t.root());
        let pfs = root.pfs().unwrap();
        assert_eq!(pfs.len(), 1);
        let pf = &pfs[0];
        assert_eq!(pf.name, "eth0");
        assert_eq!(pf.kind, PfKind::Pci);
        assert_eq!(pf.totalvfs, Some(7));
        assert_eq!(pf.numvfs, 3);
        assert_eq!(pf.driver.as_deref(), Some("igb"));
        assert_eq!(pf.link.speed_mbps, Some(1000));
        assert_eq!(pf.link.carrier, Some(true));
        assert_eq!(pf.drivers_autoprobe, Some(true));
        assert_eq!(pf.numa_node, Some(-1));
        assert_eq!(pf.phys_switch_id, None);
        let vfs = root.vfs(pf).unwrap();
        assert_eq!(vfs.len(), 3);
        assert_eq!(vfs[1].pci_addr.as_deref(), Some("0000:01:10.2"));
        assert_eq!(vfs[1].driver.as_deref(), Some("igbvf"));
        assert_eq!(vfs[1].netdev.as_deref(), Some("eth11"));
        assert_eq!(vfs[1].iommu_group, Some(11));
        assert_eq!(vfs[1].driver_override, None);
        assert_eq!(root.virtfn_count(pf).unwrap(), 3);
        // Lookup by every key.
        for key in ["eth0", "0000:01:00.0"] {
            assert_eq!(root.find_pf(key).unwrap().bus_id, "0000:01:00.0");
        }
        let e = root.find_pf("eth9").unwrap_err().to_string();
        assert!(e.contains("\"eth9\""), "{e}");
    }

    #[test]
    fn netdevsim_pf_and_representors() {
        let t = Tree::new();
        t.nsim("netdevsim1", "eth1", 256, 4, true);
        let root = SysfsRoot::new(t.root());
        let pf = root.find_pf("netdevsim1").unwrap();
        assert_eq!(pf.netdev.as_deref(), Some("eth1"));
        assert_eq!(pf.kind, PfKind::Netdevsim);
        assert_eq!(pf.totalvfs, Some(256));
        assert_eq!(pf.numvfs, 4);
        assert_eq!(pf.devlink_handle(), ("netdevsim".to_string(), "netdevsim1".to_string()));
        let vfs = root.vfs(&pf).unwrap();
        assert_eq!(vfs.len(), 4);
        assert_eq!(vfs[3].representor.as_deref(), Some("eth103"));
        assert_eq!(vfs[3].pci_addr, None);
    }

    #[test]
    fn representor_with_other_switch_id_is_ignored() {
        let t = Tree::new();
        t.nsim("netdevsim1", "eth1", 8, 2, true);
        t.file("devices/netdevsim/netdevsim1/net/eth100/phys_switch_id", "cd\n");
        let root = SysfsRoot::new(t.root());
        let pf = root.find_pf("eth1").unwrap();
        let reps = root.representors(&pf).unwrap();
        assert_eq!(reps, vec![(1, "eth101".to_string())]);
    }

    #[test]
    fn port_names() {
        assert_eq!(parse_vf_port_name("pf0vf12"), Some(12));
        assert_eq!(parse_vf_port_name("c1pf0vf3"), Some(3));
        assert_eq!(parse_vf_port_name("p1"), None);
        assert_eq!(parse_vf_port_name("pf0sf1"), None);
        assert_eq!(parse_vf_port_name("pfvf1"), None);
    }

    #[test]
    fn rebind_writes_override_unbind_probe() {
        let t = Tree::new();
        t.igb_pf("0000:01:00.0", "eth0", 7, 1);
        t.driver("vfio-pci");
        let root = SysfsRoot::new(t.root());
        let after = root.rebind("0000:01:10.0", Some("vfio-pci")).unwrap();
        // The synthetic tree has no kernel behind it: the driver link is unchanged.
        assert_eq!(after.as_deref(), Some("igbvf"));
        let d = root.pci_device_dir("0000:01:10.0");
        assert_eq!(fs::read_to_string(d.join("driver_override")).unwrap(), "vfio-pci");
        assert_eq!(fs::read_to_string(d.join("driver/unbind")).unwrap(), "0000:01:10.0");
        assert_eq!(fs::read_to_string(t.root().join("bus/pci/drivers_probe")).unwrap(), "0000:01:10.0");
        assert!(root.pci_driver_loaded("vfio-pci"));
        assert!(!root.pci_driver_loaded("pci-stub"));
    }

    #[test]
    fn unreadable_speed_is_unknown() {
        let t = Tree::new();
        t.igb_pf("0000:01:00.0", "eth0", 7, 0);
        t.file("devices/pci0000:00/0000:01:00.0/net/eth0/speed", "-1\n");
        let pf = SysfsRoot::new(t.root()).find_pf("eth0").unwrap();
        assert_eq!(pf.link.speed_mbps, None);
        assert_eq!(pf.numvfs, 0);
    }
}
