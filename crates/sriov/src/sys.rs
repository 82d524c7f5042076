//! The crate's only direct system calls: `flock(2)` for claim records
//! (`File::lock` needs Rust 1.89; the workspace MSRV is 1.85) and
//! `SO_RCVTIMEO` on netlink sockets (netlink-sys has no setter).

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
