//! Synthetic sysfs trees for tests and demos: an igb-like PF with VFs,
//! laid out like `/sys` so [`sluice_sriov::SysfsRoot`] reads it. Writes
//! only under the directory it is given.

use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// Builds one igb-like PF at PCI address `addr` (`0000:01:00.0`) with
/// netdev `netdev`, `n` VFs bound to igbvf with netdevs `<netdev>v<i>`,
/// IOMMU groups, and NUMA node `numa` (on the PF and its VFs).
pub fn igb_pf(root: &Path, addr: &str, netdev: &str, n: u32, numa: i32) -> io::Result<()> {
    let file = |rel: &Path, content: &str| -> io::Result<()> {
        let p = root.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(p, content)
    };
    let link = |rel: &Path, target: &Path| -> io::Result<()> {
        let p = root.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent)?;
        }
        let _ = fs::remove_file(&p);
        symlink(root.join(target), p)
    };
    for d in ["bus/pci/devices", "class/net", "kernel/iommu_groups"] {
        fs::create_dir_all(root.join(d))?;
    }
    for drv in ["igb", "igbvf"] {
        file(&PathBuf::from("bus/pci/drivers").join(drv).join("unbind"), "")?;
    }
    file(Path::new("bus/pci/drivers_probe"), "")?;
    let bus = addr.get(..7).ok_or_else(|| io::Error::other(format!("PCI address {addr:?} is too short")))?;
    let d = PathBuf::from("devices/pci0000:00").join(addr);
    let netdev_dir = |name: &str, dev: &Path, files: &[(&str, &str)]| -> io::Result<()> {
        let nd = dev.join("net").join(name);
        fs::create_dir_all(root.join(&nd))?;
        for (f, c) in files {
            file(&nd.join(f), c)?;
        }
        link(&PathBuf::from("class/net").join(name), &nd)
    };
    file(&d.join("vendor"), "0x8086\n")?;
    file(&d.join("device"), "0x10c9\n")?;
    file(&d.join("numa_node"), &format!("{numa}\n"))?;
    file(&d.join("sriov_totalvfs"), &format!("{n}\n"))?;
    file(&d.join("sriov_numvfs"), &format!("{n}\n"))?;
    file(&d.join("sriov_drivers_autoprobe"), "1\n")?;
    link(&d.join("driver"), Path::new("bus/pci/drivers/igb"))?;
    link(&PathBuf::from("bus/pci/devices").join(addr), &d)?;
    netdev_dir(netdev, &d, &[("operstate", "up\n"), ("carrier", "1\n"), ("speed", "10000\n")])?;
    for i in 0..n {
        let vaddr = format!("{bus}:{:02x}.{}", 0x10 + i / 8, i % 8);
        let vd = PathBuf::from("devices/pci0000:00").join(&vaddr);
        file(&vd.join("vendor"), "0x8086\n")?;
        file(&vd.join("device"), "0x10ca\n")?;
        file(&vd.join("numa_node"), &format!("{numa}\n"))?;
        file(&vd.join("driver_override"), "(null)\n")?;
        link(&vd.join("driver"), Path::new("bus/pci/drivers/igbvf"))?;
        let g = PathBuf::from(format!("kernel/iommu_groups/{}", 100 + i));
        fs::create_dir_all(root.join(&g))?;
        link(&vd.join("iommu_group"), &g)?;
        link(&vd.join("physfn"), &d)?;
        link(&d.join(format!("virtfn{i}")), &vd)?;
        link(&PathBuf::from("bus/pci/devices").join(&vaddr), &vd)?;
        netdev_dir(&format!("{netdev}v{i}"), &vd, &[("operstate", "up\n")])?;
    }
    Ok(())
}
