//! The crate's only direct system calls: `flock(2)` for claim records
//! (`File::lock` needs Rust 1.89; the workspace MSRV is 1.85) and
//! `SO_RCVTIMEO` on netlink sockets (netlink-sys has no setter), and the
//! TUNSETIFF/TUNSETPERSIST `ioctl`s that create a persistent TAP.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Takes an exclusive `flock` on `f`, blocking until it is free. The lock
/// is released when `f` is closed.
pub(crate) fn lock_exclusive(f: &File) -> io::Result<()> {
    let fd = f.as_raw_fd();
    loop {
        // SAFETY: `fd` is an open descriptor owned by `f`, which outlives
        // this call; flock takes no pointers and cannot touch our memory.
        let r = unsafe { libc::flock(fd, libc::LOCK_EX) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Sets `SO_RCVTIMEO` so a lost netlink reply becomes an error instead of
/// a hang.
pub(crate) fn set_recv_timeout(fd: std::os::fd::RawFd, t: std::time::Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_usec: libc::suseconds_t::from(t.subsec_micros()),
    };
    // SAFETY: `tv` is a valid, initialised timeval that lives across the
    // call, and the length passed is exactly its size; `fd` is an open
    // socket owned by the caller.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast::<libc::c_void>(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if r == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags (a
/// union in C; 40 bytes in all on 64-bit Linux).
#[repr(C)]
struct IfReqFlags {
    name: [u8; 16],
    flags: libc::c_short,
    _pad: [u8; 22],
}

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETPERSIST: libc::c_ulong = 0x4004_54cb;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;

/// Creates (or re-attaches to) TAP `name` and makes it persistent, so it
/// outlives this descriptor. There is no rtnetlink way to create a TAP: the
/// kernel's tun driver refuses `RTM_NEWLINK` ("tun/tap creation via
/// rtnetlink is not supported"). The caller checked the name's length.
pub(crate) fn create_persistent_tap(name: &str) -> io::Result<()> {
    let f = std::fs::OpenOptions::new().read(true).write(true).open("/dev/net/tun")?;
    let mut req = IfReqFlags { name: [0; 16], flags: IFF_TAP | IFF_NO_PI, _pad: [0; 22] };
    let n = name.len().min(15);
    req.name[..n].copy_from_slice(&name.as_bytes()[..n]);
    // SAFETY: `f` is an open /dev/net/tun descriptor that outlives the
    // call; `req` is a valid, initialised 40-byte ifreq (NUL-terminated
    // name, flags) that lives across it, which is what TUNSETIFF reads and
    // writes.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), TUNSETIFF as _, &raw mut req) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: TUNSETPERSIST takes an integer argument, no pointer; `f` is
    // open and now attached to the TAP.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), TUNSETPERSIST as _, 1 as libc::c_ulong) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
