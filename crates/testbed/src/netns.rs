//! Network namespaces and the devices inside them.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Prefix of every namespace the test bed makes: `sltb-<pid>-<n>`.
const PREFIX: &str = "sltb-";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A command the test bed ran did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The program could not be started at all.
    #[error("could not start `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why it could not start.
        source: std::io::Error,
    },
    /// The program ran and exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it wrote to standard error.
        stderr: String,
    },
    /// Entering the namespace failed.
    #[error("could not enter network namespace {name}: {source}")]
    Enter {
        /// The namespace.
        name: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A suffix unique to this process and call: `<pid>-<n>`. Use it for names
/// that live outside a test bed namespace (files, sockets).
pub fn unique_suffix() -> String {
    format!("{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A network namespace that is deleted, with every device in it, on drop.
///
/// Devices are created inside the namespace, so their names only need to be
/// unique within it: tests may call their interfaces `eth0` and `veth0`
/// without colliding with each other. A veth pair whose ends live in two
/// test bed namespaces vanishes when either namespace is dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a fresh namespace with its loopback up.
    pub fn new() -> Result<Netns, CommandError> {
        sweep_stale();
        let name = format!("{PREFIX}{}", unique_suffix());
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A [`Command`] for `program` that runs inside this namespace.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Runs `argv` inside the namespace, waits, and returns its output
    /// whatever the exit status.
    pub fn exec(&self, argv: &[&str]) -> Result<Output, CommandError> {
        let (program, args) = split(argv);
        let mut c = self.command(program);
        c.args(args);
        let line = describe(&c);
        c.output().map_err(|source| CommandError::Spawn { command: line, source })
    }

    /// Runs `argv` inside the namespace and returns its standard output;
    /// a non-zero exit is an error carrying standard error.
    pub fn run(&self, argv: &[&str]) -> Result<String, CommandError> {
        let (program, args) = split(argv);
        let mut c = self.command(program);
        c.args(args);
        run(&mut c)
    }

    /// Starts `argv` inside the namespace without waiting. Standard output
    /// and error are piped. The caller owns the child (kill it before the
    /// namespace is dropped, or it keeps running in a deleted namespace).
    pub fn spawn(&self, argv: &[&str]) -> Result<Child, CommandError> {
        let (program, args) = split(argv);
        let mut c = self.command(program);
        c.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let line = describe(&c);
        c.spawn().map_err(|source| CommandError::Spawn { command: line, source })
    }

    /// `ip -n NAME ARGS…`, returning standard output.
    pub fn ip(&self, args: &[&str]) -> Result<String, CommandError> {
        run(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// Runs `f` on a new thread whose network namespace is this one, and
    /// returns its result. Sockets the closure opens stay in this namespace
    /// for their whole life, whichever thread uses them later.
    pub fn enter<F, R>(&self, f: F) -> Result<R, CommandError>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let path = Path::new("/var/run/netns").join(&self.name);
        let file = File::open(&path).map_err(|source| CommandError::Enter { name: self.name.clone(), source })?;
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns only reads the descriptor, which `file` keeps
                // open for the duration of the call, and changes the network
                // namespace of this (scoped, short-lived) thread only.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                if rc != 0 {
                    return Err(CommandError::Enter {
                        name: self.name.clone(),
                        source: std::io::Error::last_os_error(),
                    });
                }
                Ok(f())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Creates a veth pair: `name` in this namespace, `peer_name` in `peer`.
    /// Both ends are brought up.
    pub fn add_veth(&self, name: &str, peer: &Netns, peer_name: &str) -> Result<(), CommandError> {
        self.ip(&["link", "add", name, "type", "veth", "peer", "name", peer_name, "netns", &peer.name])?;
        self.ip(&["link", "set", name, "up"])?;
        peer.ip(&["link", "set", peer_name, "up"])?;
        Ok(())
    }

    /// Creates a Linux bridge and brings it up.
    pub fn add_bridge(&self, name: &str) -> Result<(), CommandError> {
        self.ip(&["link", "add", name, "type", "bridge"])?;
        self.ip(&["link", "set", name, "up"])?;
        Ok(())
    }

    /// Makes `port` a port of `bridge`.
    pub fn enslave(&self, port: &str, bridge: &str) -> Result<(), CommandError> {
        self.ip(&["link", "set", port, "master", bridge])?;
        Ok(())
    }

    /// Creates a VXLAN device with `vni` from `local` to `remote` on the
    /// given UDP port, over `dev`, and brings it up.
    pub fn add_vxlan(
        &self,
        name: &str,
        vni: u32,
        local: &str,
        remote: &str,
        dev: &str,
        port: u16,
    ) -> Result<(), CommandError> {
        let vni = vni.to_string();
        let port = port.to_string();
        self.ip(&[
            "link", "add", name, "type", "vxlan", "id", &vni, "local", local, "remote", remote, "dev", dev, "dstport",
            &port,
        ])?;
        self.ip(&["link", "set", name, "up"])?;
        Ok(())
    }

    /// Creates a persistent TAP device (`multi_queue` with `vnet_hdr`) and
    /// brings it up. Its carrier comes when a process attaches a queue.
    pub fn add_tap(&self, name: &str) -> Result<(), CommandError> {
        self.ip(&["tuntap", "add", "dev", name, "mode", "tap", "multi_queue", "vnet_hdr"])?;
        self.ip(&["link", "set", name, "up"])?;
        Ok(())
    }

    /// Adds an address (`10.0.0.1/24`, `fd00::1/64`) to `dev`.
    pub fn addr_add(&self, dev: &str, cidr: &str) -> Result<(), CommandError> {
        let mut args = vec!["addr", "add", cidr, "dev", dev];
        if cidr.contains(':') {
            // No duplicate address detection: tests must not wait 1–2 s for it.
            args.push("nodad");
        }
        self.ip(&args)?;
        Ok(())
    }

    /// Sets the MAC address of `dev`.
    pub fn set_mac(&self, dev: &str, mac: &str) -> Result<(), CommandError> {
        self.ip(&["link", "set", dev, "address", mac])?;
        Ok(())
    }

    /// Names of the links in the namespace.
    pub fn links(&self) -> Result<Vec<String>, CommandError> {
        let out = self.ip(&["-o", "link", "show"])?;
        Ok(out
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .collect())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        kill_pids(&self.name);
        // The kernel tears a deleted namespace's devices down asynchronously;
        // delete them first so that a veth peer elsewhere is gone when drop
        // returns and its name can be reused at once.
        for link in self.links().unwrap_or_default() {
            if link != "lo" {
                let _ = self.ip(&["link", "del", &link]);
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).stderr(Stdio::null()).status();
    }
}

/// Kills the processes still running in namespace `name`.
fn kill_pids(name: &str) {
    let Ok(out) = Command::new("ip").args(["netns", "pids", name]).output() else {
        return;
    };
    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        if let Ok(pid) = pid.parse::<i32>() {
            // SAFETY: kill(2) takes plain integers and touches no memory of ours.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Deletes test bed namespaces whose creating process no longer exists
/// (a test binary that was killed cannot run its destructors).
fn sweep_stale() {
    let Ok(dir) = std::fs::read_dir("/var/run/netns") else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            kill_pids(&name);
            let _ = Command::new("ip").args(["netns", "del", &name]).stderr(Stdio::null()).status();
        }
    }
}

fn split<'a>(argv: &'a [&'a str]) -> (&'a str, &'a [&'a str]) {
    match argv.split_first() {
        Some((p, rest)) => (p, rest),
        None => ("true", &[]),
    }
}

fn describe(c: &Command) -> String {
    std::iter::once(c.get_program()).chain(c.get_args()).map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")
}

/// Runs a command to completion; success returns standard output.
pub(crate) fn run(c: &mut Command) -> Result<String, CommandError> {
    let command = describe(c);
    let out = c.output().map_err(|source| CommandError::Spawn { command: command.clone(), source })?;
    if !out.status.success() {
        return Err(CommandError::Failed {
            command,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_is_removed_on_drop_and_devices_with_it() {
        let a = Netns::new().unwrap();
        let b = Netns::new().unwrap();
        a.add_veth("va", &b, "vb").unwrap();
        a.add_bridge("br0").unwrap();
        a.add_tap("tap0").unwrap();
        let links = a.links().unwrap();
        for l in ["lo", "va", "br0", "tap0"] {
            assert!(links.iter().any(|x| x == l), "{l} missing from {links:?}");
        }
        let name = a.name().to_string();
        drop(a);
        assert!(!Path::new("/var/run/netns").join(&name).exists());
        // The peer vanished with the pair.
        assert!(!b.links().unwrap().iter().any(|x| x == "vb"));
    }

    #[test]
    fn ping_across_a_veth_pair() {
        let a = Netns::new().unwrap();
        let b = Netns::new().unwrap();
        a.add_veth("v", &b, "v").unwrap();
        a.addr_add("v", "10.11.0.1/24").unwrap();
        b.addr_add("v", "10.11.0.2/24").unwrap();
        a.run(&["ping", "-c", "1", "-W", "2", "10.11.0.2"]).unwrap();
        // A third namespace with nothing in it cannot reach either.
        let c = Netns::new().unwrap();
        assert!(c.run(&["ping", "-c", "1", "-W", "1", "10.11.0.2"]).is_err());
    }

    #[test]
    fn enter_runs_a_closure_inside_the_namespace() {
        let a = Netns::new().unwrap();
        a.add_bridge("brx").unwrap();
        // /sys shows the mount namespace's view, so ask the kernel by name.
        let idx = a
            .enter(|| {
                let name = std::ffi::CString::new("brx").unwrap();
                // SAFETY: `name` is a valid NUL-terminated string for the call.
                unsafe { libc::if_nametoindex(name.as_ptr()) }
            })
            .unwrap();
        assert!(idx > 0, "brx not visible inside the namespace");
        let outside = {
            let name = std::ffi::CString::new("brx").unwrap();
            // SAFETY: as above.
            unsafe { libc::if_nametoindex(name.as_ptr()) }
        };
        assert_eq!(outside, 0, "brx leaked into the root namespace");
    }

    #[test]
    fn vxlan_between_two_namespaces_carries_pings() {
        let a = Netns::new().unwrap();
        let b = Netns::new().unwrap();
        a.add_veth("u", &b, "u").unwrap();
        a.addr_add("u", "192.168.77.1/24").unwrap();
        b.addr_add("u", "192.168.77.2/24").unwrap();
        a.add_vxlan("vx", 42, "192.168.77.1", "192.168.77.2", "u", 4789).unwrap();
        b.add_vxlan("vx", 42, "192.168.77.2", "192.168.77.1", "u", 4789).unwrap();
        a.addr_add("vx", "10.42.0.1/24").unwrap();
        b.addr_add("vx", "10.42.0.2/24").unwrap();
        a.run(&["ping", "-c", "1", "-W", "2", "10.42.0.2"]).unwrap();
    }

    #[test]
    fn failing_command_reports_its_stderr() {
        let a = Netns::new().unwrap();
        let err = a.ip(&["link", "set", "nosuchdev", "up"]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("nosuchdev"), "{msg}");
    }
}
