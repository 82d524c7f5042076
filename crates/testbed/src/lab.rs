//! A runner for the QEMU SR-IOV lab (`shared/lab/sriov-vm.sh`).
//!
//! The lab boots a throw-away guest with an emulated Intel 82576 (real igb
//! driver, real VFs) and optionally netdevsim (hundreds of VFs, switchdev,
//! representors), runs one payload as root and exits with its status. A boot
//! costs 7–10 s under emulation, so batch many checks into one
//! [`Lab::run_script`]: a POSIX `sh` script (busybox in the guest: call
//! `/usr/sbin/ip`, `/usr/sbin/tc`, `/usr/sbin/devlink` by full path) with the
//! files it needs (the `sluice` binary, fixtures) under `/share`.
//!
//! Runs are serialised across processes by a lock file, because two emulated
//! guests on a two-core machine slow each other past their timeouts.
//! Setting `SLUICE_SKIP_LAB=1` makes every run return [`LabError::Skipped`];
//! CI never sets it.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Why a lab run produced no result.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// `SLUICE_SKIP_LAB=1` is set.
    #[error("the QEMU lab is skipped because SLUICE_SKIP_LAB=1 is set")]
    Skipped,
    /// The lab script could not be found.
    #[error(
        "the QEMU lab script was not found: set SLUICE_LAB_SCRIPT or keep shared/lab/sriov-vm.sh beside the repository"
    )]
    NoScript,
    /// Preparing the run or starting the script failed.
    #[error("could not run the QEMU lab: {0}")]
    Io(#[from] std::io::Error),
    /// The lab itself failed (exit 125: no exit marker from the guest), or
    /// the VM hit its timeout (124).
    #[error("the QEMU lab failed (exit {status}); its log ends with:\n{log_tail}")]
    Lab {
        /// The script's exit status.
        status: i32,
        /// The last lines the script wrote to standard error.
        log_tail: String,
    },
}

/// What a payload printed and how it exited.
#[derive(Debug, Clone)]
pub struct LabRun {
    /// The payload's exit status.
    pub status: i32,
    /// The payload's output (standard output and error, as the guest console
    /// carried them).
    pub output: String,
    /// The lab script's own log (boot timing, console log path).
    pub log: String,
}

impl LabRun {
    /// The output lines that start with `prefix`, with the prefix removed.
    pub fn lines_with<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.output.lines().filter_map(move |l| l.strip_prefix(prefix))
    }
}

/// A lab configuration: the options of `sriov-vm.sh`.
#[derive(Debug, Clone)]
pub struct Lab {
    vfs: u32,
    pfs: u32,
    iommu: bool,
    netdevsim: bool,
    nsim_vfs: u32,
    switchdev: bool,
    timeout: Duration,
    mem_mb: u32,
}

impl Default for Lab {
    fn default() -> Self {
        Lab {
            vfs: 0,
            pfs: 1,
            iommu: true,
            netdevsim: false,
            nsim_vfs: 0,
            switchdev: false,
            timeout: Duration::from_secs(300),
            mem_mb: 1024,
        }
    }
}

impl Lab {
    /// One igb PF, no VFs, no netdevsim, a 300 s timeout.
    pub fn new() -> Lab {
        Lab::default()
    }

    /// Create `n` VFs on every PF before the payload starts (igb: 1..=7).
    pub fn vfs(mut self, n: u32) -> Lab {
        self.vfs = n;
        self
    }

    /// Number of emulated igb PFs.
    pub fn pfs(mut self, n: u32) -> Lab {
        self.pfs = n.max(1);
        self
    }

    /// Without the emulated IOMMU (vfio-pci then refuses VFs).
    pub fn no_iommu(mut self) -> Lab {
        self.iommu = false;
        self
    }

    /// Give the guest netdevsim (device `netdevsim1`).
    pub fn netdevsim(mut self, on: bool) -> Lab {
        self.netdevsim = on;
        self
    }

    /// Create `n` VFs on netdevsim1 (implies netdevsim).
    pub fn nsim_vfs(mut self, n: u32) -> Lab {
        self.nsim_vfs = n;
        self.netdevsim |= n > 0;
        self
    }

    /// Put netdevsim1 in switchdev mode before its VFs are created, so they
    /// get representors (implies netdevsim).
    pub fn switchdev(mut self, on: bool) -> Lab {
        self.switchdev = on;
        self.netdevsim |= on;
        self
    }

    /// Hard limit for the whole VM run.
    pub fn timeout(mut self, t: Duration) -> Lab {
        self.timeout = t;
        self
    }

    /// Guest memory in MiB.
    pub fn mem_mb(mut self, mb: u32) -> Lab {
        self.mem_mb = mb;
        self
    }

    /// Runs `binary ARGS…` in the guest.
    pub fn run(&self, binary: &Path, args: &[&str]) -> Result<LabRun, LabError> {
        let mut argv: Vec<String> = vec!["--".into(), binary.display().to_string()];
        argv.extend(args.iter().map(|a| a.to_string()));
        self.invoke(None, &argv)
    }

    /// Copies `files` into a fresh directory the guest sees as `/share`,
    /// and runs `script` there with busybox `sh` (`set -e` is not implied).
    /// The script's working directory is `/`.
    pub fn run_script(&self, script: &str, files: &[&Path]) -> Result<LabRun, LabError> {
        let share = tempfile::Builder::new().prefix("sluice-lab-share-").tempdir()?;
        for f in files {
            let name =
                f.file_name().ok_or_else(|| std::io::Error::other(format!("{} has no file name", f.display())))?;
            std::fs::copy(f, share.path().join(name))?;
        }
        let payload = share.path().join("payload.sh");
        std::fs::write(&payload, format!("#!/bin/sh\n{script}\n"))?;
        make_executable(&payload)?;
        let argv = vec!["--".to_string(), payload.display().to_string()];
        self.invoke(Some(share.path()), &argv)
    }

    fn invoke(&self, share: Option<&Path>, tail: &[String]) -> Result<LabRun, LabError> {
        if std::env::var_os("SLUICE_SKIP_LAB").is_some_and(|v| v == "1") {
            return Err(LabError::Skipped);
        }
        let script = lab_script().ok_or(LabError::NoScript)?;
        let _lock = LabLock::acquire()?;
        let mut c = Command::new("bash");
        c.arg(&script)
            .args(["--vfs", &self.vfs.to_string()])
            .args(["--pfs", &self.pfs.to_string()])
            .args(["--timeout", &self.timeout.as_secs().to_string()])
            .args(["--mem", &self.mem_mb.to_string()]);
        if !self.iommu {
            c.arg("--no-iommu");
        }
        if self.netdevsim {
            c.arg("--netdevsim");
        }
        if self.nsim_vfs > 0 {
            c.args(["--nsim-vfs", &self.nsim_vfs.to_string()]);
        }
        if self.switchdev {
            c.arg("--switchdev");
        }
        if let Some(dir) = share {
            c.arg("--share").arg(dir);
        }
        c.args(tail);
        let out = c.output()?;
        let status = out.status.code().unwrap_or(125);
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        if status == 124 || status == 125 {
            let log_tail = log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>();
            return Err(LabError::Lab { status, log_tail: log_tail.join("\n") });
        }
        Ok(LabRun { status, output: String::from_utf8_lossy(&out.stdout).into_owned(), log })
    }
}

/// `binary` and the shared libraries it links (per `ldd`), for
/// [`Lab::run_script`]'s `files`: the guest has only the libraries of the
/// lab's own tools, so a script that runs a project binary from `/share`
/// ships its libraries beside it and sets `LD_LIBRARY_PATH=/share`.
pub fn binary_with_libraries(binary: &Path) -> Vec<PathBuf> {
    let mut out = vec![binary.to_path_buf()];
    if let Ok(o) = Command::new("ldd").arg(binary).output() {
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            if let Some((_, rest)) = line.split_once("=> ") {
                let p = rest.split(" (").next().unwrap_or("").trim();
                if p.starts_with('/') {
                    out.push(PathBuf::from(p));
                }
            }
        }
    }
    out
}

/// The lab script: `$SLUICE_LAB_SCRIPT`, or `shared/lab/sriov-vm.sh` in
/// this checkout or beside it.
pub fn lab_script() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SLUICE_LAB_SCRIPT") {
        return Some(PathBuf::from(p));
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .flat_map(|dir| [dir.join("shared/lab/sriov-vm.sh"), dir.join("../shared/lab/sriov-vm.sh")])
        .find(|p| p.is_file())
}

fn make_executable(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut perm = std::fs::metadata(p)?.permissions();
    perm.set_mode(0o755);
    std::fs::set_permissions(p, perm)
}

/// An exclusive `flock` on a well-known file, held while a guest runs.
struct LabLock {
    _file: File,
}

impl LabLock {
    fn acquire() -> std::io::Result<LabLock> {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(std::env::temp_dir().join("sluice-lab.lock"))?;
        // SAFETY: flock only operates on the descriptor, which `file` owns
        // and keeps open; the lock is released when the descriptor closes.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(LabLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One boot checks that the lab delivers what the test bed promises:
    /// shared files, the payload's output and exit status, the igb PF with
    /// its VFs, and netdevsim's VFs.
    #[test]
    fn lab_runs_a_script_with_shared_files_and_reports_status() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("hello.txt");
        std::fs::write(&data, "from-the-host\n").unwrap();
        let script = r#"
echo "share: $(cat /share/hello.txt)"
echo "pf: $LAB_PF numvfs=$(cat /sys/class/net/$LAB_PF/device/sriov_numvfs)"
echo "nsim-vfs: $(cat $LAB_NSIM_SYS/sriov_numvfs)"
exit 7
"#;
        let run = match Lab::new().vfs(2).nsim_vfs(3).run_script(script, &[&data]) {
            Err(LabError::Skipped) => return eprintln!("SKIPPED: SLUICE_SKIP_LAB=1"),
            r => r.unwrap(),
        };
        assert_eq!(run.status, 7, "output: {}\nlog: {}", run.output, run.log);
        assert_eq!(run.lines_with("share: ").next(), Some("from-the-host"), "{}", run.output);
        assert_eq!(run.lines_with("pf: ").next(), Some("eth0 numvfs=2"), "{}", run.output);
        assert_eq!(run.lines_with("nsim-vfs: ").next(), Some("3"), "{}", run.output);
    }
}
