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
//!
//! A guest starved of CPU can hang in early boot (RCU stalls, init never
//! started; seen once in CI under load) and would then burn its whole
//! timeout. So a run first does the lab's setup (cached after the first
//! time), then boots; a guest that has not said it is ready within
//! [`Lab::boot_limit`] (default [`BOOT_LIMIT`]) is killed and booted once
//! more, and a second hang is reported as [`LabError::BootHung`].
//!
//! Setting `SLUICE_SKIP_LAB=1` makes every run return [`LabError::Skipped`];
//! CI never sets it.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a guest may take from the start of its boot to its readiness
/// marker before it is taken for hung: boots take 7–30 s here, under load.
pub const BOOT_LIMIT: Duration = Duration::from_secs(150);
/// Boots a run tries before it reports [`LabError::BootHung`].
pub const BOOTS: u32 = 2;
/// What the lab script logs when the guest printed its readiness marker.
const READY: &str = "guest ready after";

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
    /// Every boot hung: no guest said it was ready within the boot limit.
    #[error(
        "the QEMU lab's guest was not ready within {} s in any of {boots} boots (killed each time); the last log ends with:\n{log_tail}",
        limit.as_secs()
    )]
    BootHung {
        /// The limit each boot had.
        limit: Duration,
        /// Boots tried.
        boots: u32,
        /// The last lines the script wrote to standard error, last boot.
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
    boot_limit: Duration,
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
            boot_limit: BOOT_LIMIT,
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

    /// How long a boot may take to the guest's readiness before it is
    /// killed and tried again (see the module docs).
    pub fn boot_limit(mut self, t: Duration) -> Lab {
        self.boot_limit = t;
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
        // The setup first, without a limit: a fresh machine downloads and
        // builds here, which must not count against the boot.
        let setup = self.command(&script, None).arg("--setup").output()?;
        if !setup.status.success() {
            let log = String::from_utf8_lossy(&setup.stderr).into_owned();
            return Err(LabError::Lab { status: setup.status.code().unwrap_or(125), log_tail: last_lines(&log) });
        }
        let mut boot = 1;
        loop {
            let mut c = self.command(&script, share);
            c.args(tail);
            let (status, output, log, hung) = run_watched(c, self.boot_limit)?;
            if hung && boot < BOOTS {
                boot += 1;
                eprintln!(
                    "lab: the guest was not ready within {} s (a hung boot); killed it, booting again ({boot} of {BOOTS})",
                    self.boot_limit.as_secs(),
                );
                continue;
            }
            if hung {
                return Err(LabError::BootHung { limit: self.boot_limit, boots: BOOTS, log_tail: last_lines(&log) });
            }
            if status == 124 || status == 125 {
                return Err(LabError::Lab { status, log_tail: last_lines(&log) });
            }
            return Ok(LabRun { status, output, log });
        }
    }

    /// The lab script with this configuration's options.
    fn command(&self, script: &Path, share: Option<&Path>) -> Command {
        let mut c = Command::new("bash");
        c.arg(script)
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
        c
    }
}

/// Runs the lab script `c` to its end, reading its log as it comes; when
/// the log has not said the guest is ready within `limit`, kills the
/// script and everything it started. Returns the exit status, the
/// standard output, the log, and whether the boot was taken for hung.
fn run_watched(mut c: Command, limit: Duration) -> std::io::Result<(i32, String, String, bool)> {
    let mut child = c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let (ready, seen) = mpsc::channel();
    let err = child.stderr.take();
    let log = std::thread::spawn(move || {
        let mut log = String::new();
        for line in err.into_iter().flat_map(|e| BufReader::new(e).lines()).map_while(Result::ok) {
            if line.contains(READY) {
                let _ = ready.send(());
            }
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    let out = child.stdout.take();
    let output = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut o) = out {
            let _ = o.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    });
    // Ready, or the log ended first (the script ended), or the limit.
    let hung = matches!(seen.recv_timeout(limit), Err(mpsc::RecvTimeoutError::Timeout));
    if hung {
        kill_tree(child.id());
    }
    let status = child.wait()?.code().unwrap_or(125);
    let log = log.join().unwrap_or_default();
    let output = output.join().unwrap_or_default();
    Ok((status, output, log, hung))
}

/// Stops process `root` and all its descendants, then kills them. (The
/// lab's QEMU runs under `timeout`, which makes its own process group, so
/// a process group kill would miss it.) Stopped first so that none starts
/// another process between the listing and the kill.
fn kill_tree(root: u32) {
    for signal in [libc::SIGSTOP, libc::SIGKILL] {
        let mut all = descendants(root);
        all.push(root);
        for pid in all {
            // SAFETY: kill takes plain integers and touches no memory of
            // ours; the pids are of our own child and its descendants.
            unsafe { libc::kill(pid as libc::pid_t, signal) };
        }
    }
}

/// The processes below `root` (children, their children, ...), from
/// their parents in `/proc`.
fn descendants(root: u32) -> Vec<u32> {
    let parent_of: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, proc_stat(pid)?.1)))
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parent_of.iter().filter(|&&(_, pp)| pp == p).map(|&(c, _)| c));
        i += 1;
    }
    found.remove(0);
    found
}

/// Process `pid`'s state letter and parent, from `/proc/PID/stat`
/// ("pid (comm) state ppid ...", where comm may hold spaces and
/// parentheses).
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut rest = stat.rsplit_once(')')?.1.split_whitespace();
    let state = rest.next()?.chars().next()?;
    Some((state, rest.next()?.parse().ok()?))
}

/// The last 40 lines of `log`.
fn last_lines(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
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

    /// A boot that is not ready in time is killed, QEMU and all, and tried
    /// once more; then the run says so. The payload would take a minute,
    /// so the run must end well before that; and no QEMU may be left
    /// orphaned (killing the script alone ends the run just as soon, but
    /// leaves `timeout` and QEMU running, adopted by init).
    #[test]
    fn a_boot_not_ready_in_time_is_killed_and_tried_again() {
        let start = std::time::Instant::now();
        let lab = Lab::new().boot_limit(Duration::from_secs(2)).timeout(Duration::from_secs(300));
        match lab.run_script("sleep 60; echo too-late", &[]) {
            Err(LabError::Skipped) => eprintln!("SKIPPED: SLUICE_SKIP_LAB=1"),
            Err(LabError::BootHung { boots, limit, .. }) => {
                assert_eq!((boots, limit), (BOOTS, Duration::from_secs(2)));
                let took = start.elapsed();
                assert!(took < Duration::from_secs(60), "two killed boots took {took:?}");
                let orphans: Vec<u32> = descendants(1)
                    .into_iter()
                    .filter(|&p| comm(p).is_some_and(|c| c.starts_with("qemu-system")))
                    .filter(|&p| {
                        parent(p).is_some_and(|t| comm(t).as_deref() == Some("timeout") && parent(t) == Some(1))
                    })
                    .collect();
                assert!(orphans.is_empty(), "QEMU left running under an orphaned timeout: {orphans:?}");
            }
            other => panic!("expected a hung boot, got {other:?}"),
        }
    }

    /// The command name of process `pid`.
    fn comm(pid: u32) -> Option<String> {
        Some(std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?.trim_end().to_string())
    }

    /// The parent of process `pid`.
    fn parent(pid: u32) -> Option<u32> {
        Some(proc_stat(pid)?.1)
    }

    /// The kill reaches a descendant in its own session and process group
    /// (as `timeout` puts QEMU), and the child's own children.
    #[test]
    fn kill_tree_reaches_descendants_in_other_process_groups() {
        let mut child = Command::new("bash")
            .args(["-c", "sleep 300 & setsid sleep 301 & wait"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let root = child.id();
        let mut below = Vec::new();
        for _ in 0..100 {
            below = descendants(root);
            if below.len() >= 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(below.len() >= 2, "the two sleeps should be below {root}: {below:?}");
        kill_tree(root);
        child.wait().unwrap();
        // Gone, or a zombie waiting for whoever inherited it (a kill is
        // delivered asynchronously: allow it a moment).
        let state = |pid: u32| proc_stat(pid).map(|(s, _)| s);
        for pid in below {
            let mut s = state(pid);
            for _ in 0..250 {
                if matches!(s, None | Some('Z')) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
                s = state(pid);
            }
            assert!(matches!(s, None | Some('Z')), "process {pid} survived: state {s:?}");
        }
    }
}
