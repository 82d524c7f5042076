//! Every syscall of this crate, and every `unsafe` block.
//!
//! Functions here take and return safe types (`OwnedFd`, slices,
//! `io::Result`); each `unsafe` block says why it is sound. Constants that
//! the `libc` crate does not export on every target are spelt out here from
//! the kernel's uapi headers (`linux/if_packet.h`, `linux/if_tun.h`).

use std::ffi::CString;
use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

// linux/if_packet.h
pub(crate) const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
pub(crate) const PACKET_RX_RING: libc::c_int = 5;
pub(crate) const PACKET_STATISTICS: libc::c_int = 6;
pub(crate) const PACKET_VERSION: libc::c_int = 10;
pub(crate) const PACKET_QDISC_BYPASS: libc::c_int = 20;
pub(crate) const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
pub(crate) const PACKET_MR_PROMISC: libc::c_ushort = 1;
pub(crate) const TPACKET_V3: libc::c_int = 2;
pub(crate) const TP_STATUS_KERNEL: u32 = 0;
pub(crate) const TP_STATUS_USER: u32 = 1;
pub(crate) const TP_STATUS_CSUMNOTREADY: u32 = 1 << 3;
pub(crate) const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
pub(crate) const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;
const ETH_P_ALL: u16 = 0x0003;

// linux/if_tun.h
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const TUNSETVNETHDRSZ: libc::c_ulong = 0x4004_54d8;
pub(crate) const IFF_TAP: libc::c_short = 0x0002;
pub(crate) const IFF_NO_PI: libc::c_short = 0x1000;
pub(crate) const IFF_VNET_HDR: libc::c_short = 0x4000;
pub(crate) const IFF_MULTI_QUEUE: libc::c_short = 0x0100;

/// `struct tpacket_req3`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct TpacketReq3 {
    pub block_size: u32,
    pub block_nr: u32,
    pub frame_size: u32,
    pub frame_nr: u32,
    pub retire_blk_tov: u32,
    pub sizeof_priv: u32,
    pub feature_req_word: u32,
}

/// `struct tpacket_stats_v3`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TpacketStatsV3 {
    pub packets: u32,
    pub drops: u32,
    pub freeze_q_cnt: u32,
}

/// `struct packet_mreq`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct PacketMreq {
    pub ifindex: libc::c_int,
    pub kind: libc::c_ushort,
    pub alen: libc::c_ushort,
    pub address: [u8; 8],
}

/// An unbound, non-blocking AF_PACKET raw socket that receives nothing
/// until it is bound (protocol 0).
pub(crate) fn packet_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes plain integers.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    owned(fd)
}

/// A datagram socket, for interface ioctls.
fn inet_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes plain integers.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    owned(fd)
}

fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc) }
}

/// `setsockopt(fd, level, name, &value)` for a plain-data option value.
pub(crate) fn setsockopt<T: Copy>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` points to `size_of::<T>()` readable bytes for the call;
    // `T: Copy` option structs are `repr(C)` plain data (or integers).
    let rc = unsafe {
        libc::setsockopt(fd.as_raw_fd(), level, name, (value as *const T).cast(), size_of::<T>() as libc::socklen_t)
    };
    check(rc).map(drop)
}

/// Reads and resets the ring counters (`PACKET_STATISTICS`, TPACKET_V3 layout).
pub(crate) fn packet_stats(fd: BorrowedFd<'_>) -> io::Result<TpacketStatsV3> {
    let mut stats = TpacketStatsV3::default();
    let mut len = size_of::<TpacketStatsV3>() as libc::socklen_t;
    // SAFETY: `stats` and `len` are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            PACKET_STATISTICS,
            (&mut stats as *mut TpacketStatsV3).cast(),
            &mut len,
        )
    };
    check(rc)?;
    Ok(stats)
}

/// The index of interface `name` in the calling thread's network namespace.
pub(crate) fn if_nametoindex(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `c` is a valid NUL-terminated string for the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 { Err(io::Error::last_os_error()) } else { Ok(idx) }
}

fn ifreq_for(name: &str) -> io::Result<libc::ifreq> {
    let bytes = name.as_bytes();
    // SAFETY: `ifreq` is plain data (a name array and a union of integers
    // and pointers) for which all-zero bytes are a valid value.
    let mut ifr: libc::ifreq = unsafe { zeroed() };
    if bytes.is_empty() || bytes.len() >= ifr.ifr_name.len() || bytes.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    for (d, s) in ifr.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    Ok(ifr)
}

/// The MTU of interface `name` (SIOCGIFMTU) in the calling thread's namespace.
pub(crate) fn interface_mtu(name: &str) -> io::Result<u32> {
    let sock = inet_socket()?;
    let mut ifr = ifreq_for(name)?;
    // SAFETY: SIOCGIFMTU reads the name from and writes the MTU into `ifr`,
    // which is valid for the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU, &mut ifr) };
    check(rc)?;
    // SAFETY: after a successful SIOCGIFMTU the union holds `ifru_mtu`.
    let mtu = unsafe { ifr.ifr_ifru.ifru_mtu };
    u32::try_from(mtu).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Binds an AF_PACKET socket to `ifindex` for every protocol.
pub(crate) fn bind_packet(fd: BorrowedFd<'_>, ifindex: u32) -> io::Result<()> {
    // SAFETY: `sockaddr_ll` is plain data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ETH_P_ALL.to_be();
    sll.sll_ifindex = ifindex as libc::c_int;
    // SAFETY: `sll` is a valid `sockaddr_ll` of the length given.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    check(rc).map(drop)
}

/// The interface index an AF_PACKET socket is bound to: -1 once the kernel
/// has unbound it because the device was unregistered.
pub(crate) fn bound_ifindex(fd: BorrowedFd<'_>) -> io::Result<i32> {
    // SAFETY: `sockaddr_ll` is plain data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
    let mut len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `sll` and `len` are valid for writes of the sizes given.
    let rc = unsafe { libc::getsockname(fd.as_raw_fd(), (&mut sll as *mut libc::sockaddr_ll).cast(), &mut len) };
    check(rc)?;
    Ok(sll.sll_ifindex)
}

/// Reads and clears the socket's pending error (SO_ERROR): 0 when none.
pub(crate) fn take_socket_error(fd: BorrowedFd<'_>) -> io::Result<i32> {
    let mut err: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` and `len` are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    check(rc)?;
    Ok(err)
}

/// A shared read-write mapping of a socket's ring, unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; moving the owner
// to another thread is fine. It is not `Sync`: the ring protocol assumes one
// user-space reader.
unsafe impl Send for Mmap {}

impl Mmap {
    /// Maps `len` bytes of `fd` (a packet socket with a ring set up).
    pub(crate) fn shared(fd: BorrowedFd<'_>, len: usize) -> io::Result<Mmap> {
        // SAFETY: a fresh mapping chosen by the kernel (addr NULL) aliases no
        // Rust memory; the result is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        Mmap::from_raw(ptr, len)
    }

    /// Takes ownership of what `mmap(2)` returned.
    fn from_raw(ptr: *mut libc::c_void, len: usize) -> io::Result<Mmap> {
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        NonNull::new(ptr.cast::<u8>())
            .map(|ptr| Mmap { ptr, len })
            .ok_or_else(|| io::Error::other("mmap returned NULL"))
    }

    /// The 64-bit word at `offset` (AF_XDP descriptors). `None` when out of
    /// range.
    pub(crate) fn read_u64(&self, offset: usize) -> Option<u64> {
        let b = self.bytes(offset, 8)?;
        Some(u64::from_ne_bytes(b.try_into().ok()?))
    }

    /// Writes `bytes` at `offset` (a user-owned ring slot or UMEM frame).
    /// False when out of range.
    pub(crate) fn write(&self, offset: usize, bytes: &[u8]) -> bool {
        let Some(end) = offset.checked_add(bytes.len()) else { return false };
        if end > self.len {
            return false;
        }
        let p = self.ptr.as_ptr().wrapping_add(offset);
        // SAFETY: `p..p + bytes.len()` is in range of the live mapping; the
        // ring protocol gives this region to user space now, so the kernel
        // neither reads nor writes it during the copy, and no slice from
        // `bytes()` over it is alive (callers copy out before handing a
        // region back); `bytes` is a Rust slice outside the mapping.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) };
        true
    }

    /// The 32-bit word at `offset`, for status fields the kernel and we hand
    /// back and forth. `None` when out of range or misaligned.
    pub(crate) fn word(&self, offset: usize) -> Option<&AtomicU32> {
        if !offset.is_multiple_of(4) || offset.checked_add(4)? > self.len {
            return None;
        }
        let p = self.ptr.as_ptr().wrapping_add(offset).cast::<AtomicU32>();
        // SAFETY: `p` is in range and 4-aligned (the mapping is
        // page-aligned); the kernel accesses this status word in the ring
        // protocol's order, and an `AtomicU32` may alias shared memory.
        Some(unsafe { &*p })
    }

    /// The bytes `offset..offset + len`. Only for a region the ring protocol
    /// currently gives to user space (a block whose status says USER): the
    /// kernel does not write it until we hand it back.
    pub(crate) fn bytes(&self, offset: usize, len: usize) -> Option<&[u8]> {
        if offset.checked_add(len)? > self.len {
            return None;
        }
        let p = self.ptr.as_ptr().wrapping_add(offset);
        // SAFETY: `p..p + len` is in range of a live mapping owned by `self`;
        // the caller only asks for user-owned ring regions, which nobody
        // writes meanwhile.
        Some(unsafe { std::slice::from_raw_parts(p, len) })
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping made by `shared` and not yet
        // unmapped; no reference into it outlives `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Most frames one `sendmmsg` call takes.
pub(crate) const SEND_BATCH: usize = 64;

/// Sends each of `frames` as one datagram on a bound packet socket with one
/// `sendmmsg(2)`. Returns how many were sent (the first error only when none
/// was).
pub(crate) fn send_frames(fd: BorrowedFd<'_>, frames: &[&[u8]]) -> io::Result<usize> {
    let n = frames.len().min(SEND_BATCH);
    if n == 0 {
        return Ok(0);
    }
    // SAFETY: `iovec` and `mmsghdr` are plain data; all-zero is valid (null
    // pointers, zero lengths).
    let mut iov: [libc::iovec; SEND_BATCH] = unsafe { zeroed() };
    // SAFETY: as above.
    let mut msgs: [libc::mmsghdr; SEND_BATCH] = unsafe { zeroed() };
    for i in 0..n {
        iov[i].iov_base = frames[i].as_ptr() as *mut libc::c_void;
        iov[i].iov_len = frames[i].len();
        msgs[i].msg_hdr.msg_iov = &mut iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: `msgs[..n]` point at `iov[..n]`, which point at the frames; all
    // outlive the call, and the kernel only reads the frames.
    let rc = unsafe { libc::sendmmsg(fd.as_raw_fd(), msgs.as_mut_ptr(), n as libc::c_uint, libc::MSG_DONTWAIT) };
    check(rc).map(|n| n as usize)
}

/// Opens one queue of TAP device `name` with `flags` (IFF_*), non-blocking.
pub(crate) fn open_tap_queue(name: &str, flags: libc::c_short) -> io::Result<OwnedFd> {
    let path = c"/dev/net/tun";
    // SAFETY: `path` is a valid NUL-terminated string.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC) };
    let fd = owned(fd)?;
    let mut ifr = ifreq_for(name)?;
    ifr.ifr_ifru.ifru_flags = flags;
    // SAFETY: TUNSETIFF reads (and may write back) `ifr`, valid for the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, &mut ifr) };
    check(rc)?;
    Ok(fd)
}

/// TUNSETOFFLOAD: which offloads (TUN_F_*) this side can take from the kernel.
pub(crate) fn tap_set_offload(fd: BorrowedFd<'_>, flags: libc::c_uint) -> io::Result<()> {
    // SAFETY: TUNSETOFFLOAD takes an integer argument by value.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETOFFLOAD as _, flags as libc::c_ulong) };
    check(rc).map(drop)
}

/// TUNSETVNETHDRSZ: the virtio-net header size in front of every frame.
pub(crate) fn tap_set_vnet_hdr_size(fd: BorrowedFd<'_>, size: libc::c_int) -> io::Result<()> {
    // SAFETY: TUNSETVNETHDRSZ reads an int through the pointer, valid for the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETVNETHDRSZ as _, &size) };
    check(rc).map(drop)
}

/// read(2) into `buf`.
pub(crate) fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
    let rc = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc as usize) }
}

/// writev(2) of two pieces (a header and a frame).
pub(crate) fn write2(fd: BorrowedFd<'_>, a: &[u8], b: &[u8]) -> io::Result<usize> {
    let iov = [
        libc::iovec { iov_base: a.as_ptr() as *mut libc::c_void, iov_len: a.len() },
        libc::iovec { iov_base: b.as_ptr() as *mut libc::c_void, iov_len: b.len() },
    ];
    // SAFETY: both iovecs point at live slices the kernel only reads.
    let rc = unsafe { libc::writev(fd.as_raw_fd(), iov.as_ptr(), 2) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc as usize) }
}

/// Waits until one of `fds` is readable or reports an error/hang-up, or
/// `timeout` passes. Returns how many are ready (0 on timeout; EINTR counts
/// as 0). For datapath threads that sleep when idle.
pub fn wait_readable(fds: &[BorrowedFd<'_>], timeout: Duration) -> io::Result<usize> {
    const MAX: usize = 64;
    // SAFETY: `pollfd` is plain data; all-zero is valid.
    let mut pfds: [libc::pollfd; MAX] = unsafe { zeroed() };
    let n = fds.len().min(MAX);
    for (p, fd) in pfds.iter_mut().zip(&fds[..n]) {
        p.fd = fd.as_raw_fd();
        p.events = libc::POLLIN;
    }
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `pfds[..n]` is valid for reads and writes for the call.
    let rc = unsafe { libc::poll(pfds.as_mut_ptr(), n as libc::nfds_t, ms) };
    match check(rc) {
        Ok(n) => Ok(n as usize),
        Err(e) if e.raw_os_error() == Some(libc::EINTR) => Ok(0),
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------------------
// eBPF and AF_XDP (linux/bpf.h, linux/if_xdp.h)

const BPF_MAP_CREATE: libc::c_int = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_LINK_CREATE: libc::c_int = 28;
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
/// `XDP_FLAGS_SKB_MODE`: generic XDP, after the skb is built.
pub(crate) const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// `XDP_FLAGS_DRV_MODE`: native XDP in the driver.
pub(crate) const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

const AF_XDP: libc::c_int = 44;
const SOL_XDP: libc::c_int = 283;
const XDP_MMAP_OFFSETS: libc::c_int = 1;
const XDP_RX_RING: libc::c_int = 2;
const XDP_TX_RING: libc::c_int = 3;
const XDP_UMEM_REG: libc::c_int = 4;
const XDP_UMEM_FILL_RING: libc::c_int = 5;
const XDP_UMEM_COMPLETION_RING: libc::c_int = 6;
const XDP_PGOFF_RX_RING: libc::off_t = 0;
const XDP_PGOFF_TX_RING: libc::off_t = 0x8000_0000;
const XDP_UMEM_PGOFF_FILL_RING: libc::off_t = 0x1_0000_0000;
const XDP_UMEM_PGOFF_COMPLETION_RING: libc::off_t = 0x1_8000_0000;
/// Bind flag: copy mode.
pub(crate) const XDP_COPY: u16 = 1 << 1;
/// Bind flag: zero-copy mode.
pub(crate) const XDP_ZEROCOPY: u16 = 1 << 2;
/// Bind flag: the kernel says when it needs a wake-up syscall.
pub(crate) const XDP_USE_NEED_WAKEUP: u16 = 1 << 3;
/// Ring flag: the kernel needs a wake-up syscall.
pub(crate) const XDP_RING_NEED_WAKEUP: u32 = 1;

/// `bpf(2)` with an attribute struct of type `T`.
fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, fully initialised `repr(C)` attribute
    // struct of the size passed; the kernel reads it (and for some commands
    // writes back into it) during the call only.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, size_of::<T>() as libc::c_uint) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc) }
}

/// Creates an XSKMAP with `entries` slots (one per rx queue).
pub(crate) fn xskmap_create(entries: u32) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct Attr {
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        map_flags: u32,
    }
    let mut attr =
        Attr { map_type: BPF_MAP_TYPE_XSKMAP, key_size: 4, value_size: 4, max_entries: entries, map_flags: 0 };
    owned(bpf(BPF_MAP_CREATE, &mut attr)? as libc::c_int)
}

/// Sets `map[key] = value` (an XSKMAP slot to a socket fd).
pub(crate) fn map_update_u32(map: BorrowedFd<'_>, key: u32, value: u32) -> io::Result<()> {
    #[repr(C)]
    struct Attr {
        map_fd: u32,
        _pad: u32,
        key: u64,
        value: u64,
        flags: u64,
    }
    let mut attr = Attr {
        map_fd: map.as_raw_fd() as u32,
        _pad: 0,
        key: &key as *const u32 as u64,
        value: &value as *const u32 as u64,
        flags: 0,
    };
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
}

/// Loads the XDP program that redirects every frame to the socket in
/// `xskmap[rx_queue_index]`, and passes it to the stack when that slot is
/// empty. Hand-assembled (six instructions) so that no BPF toolchain is
/// needed; it is what libxdp's default AF_XDP program does:
///
/// ```text
/// r2 = *(u32 *)(r1 + 16)        ; ctx->rx_queue_index
/// r1 = xskmap ll                ; map fd, relocated by the kernel
/// r3 = 2                        ; XDP_PASS when the slot is empty
/// call bpf_redirect_map         ; helper 51
/// exit
/// ```
pub(crate) fn xdp_redirect_prog(xskmap: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
        u64::from(code)
            | (u64::from(dst & 0xf) << 8)
            | (u64::from(src & 0xf) << 12)
            | (u64::from(off as u16) << 16)
            | (u64::from(imm as u32) << 32)
    }
    let map_fd = xskmap.as_raw_fd();
    let insns: [u64; 6] = [
        insn(0x61, 2, 1, 16, 0),     // ldxw r2, [r1 + 16]
        insn(0x18, 1, 1, 0, map_fd), // ld_imm64 r1, map fd (BPF_PSEUDO_MAP_FD)
        0,                           //   (second half of ld_imm64)
        insn(0xb7, 3, 0, 0, 2),      // mov64 r3, XDP_PASS
        insn(0x85, 0, 0, 0, 51),     // call bpf_redirect_map
        insn(0x95, 0, 0, 0, 0),      // exit
    ];
    let license = c"GPL";
    let mut log = [0u8; 4096];
    #[repr(C)]
    struct Attr {
        prog_type: u32,
        insn_cnt: u32,
        insns: u64,
        license: u64,
        log_level: u32,
        log_size: u32,
        log_buf: u64,
        kern_version: u32,
        prog_flags: u32,
        prog_name: [u8; 16],
        prog_ifindex: u32,
        expected_attach_type: u32,
    }
    let mut name = [0u8; 16];
    name[..10].copy_from_slice(b"sluice_xsk");
    let mut attr = Attr {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        kern_version: 0,
        prog_flags: 0,
        prog_name: name,
        prog_ifindex: 0,
        expected_attach_type: BPF_XDP,
    };
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => owned(fd as libc::c_int),
        Err(e) => {
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            Err(io::Error::new(e.kind(), format!("{e}; verifier said: {}", text.trim())))
        }
    }
}

/// Attaches an XDP program to `ifindex` as a BPF link (detached when the
/// returned fd closes) in the mode `flags` selects.
pub(crate) fn xdp_link(prog: BorrowedFd<'_>, ifindex: u32, flags: u32) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct Attr {
        prog_fd: u32,
        target_ifindex: u32,
        attach_type: u32,
        flags: u32,
    }
    let mut attr = Attr { prog_fd: prog.as_raw_fd() as u32, target_ifindex: ifindex, attach_type: BPF_XDP, flags };
    owned(bpf(BPF_LINK_CREATE, &mut attr)? as libc::c_int)
}

/// An unbound AF_XDP socket.
pub(crate) fn xdp_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes plain integers.
    let fd = unsafe { libc::socket(AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    owned(fd)
}

/// An anonymous, page-aligned, zeroed shared mapping (the UMEM).
pub(crate) fn anon_mapping(len: usize) -> io::Result<Mmap> {
    // SAFETY: a fresh anonymous mapping aliases no Rust memory; the result is
    // checked before use.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        )
    };
    Mmap::from_raw(ptr, len)
}

/// Registers `umem` (frames of `frame_size`) with an AF_XDP socket.
pub(crate) fn xdp_umem_reg(fd: BorrowedFd<'_>, umem: &Mmap, frame_size: u32) -> io::Result<()> {
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct UmemReg {
        addr: u64,
        len: u64,
        chunk_size: u32,
        headroom: u32,
    }
    let reg = UmemReg { addr: umem.ptr.as_ptr() as u64, len: umem.len as u64, chunk_size: frame_size, headroom: 0 };
    setsockopt(fd, SOL_XDP, XDP_UMEM_REG, &reg)
}

/// Which of the four AF_XDP rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum XskRing {
    Rx,
    Tx,
    Fill,
    Completion,
}

/// Sizes ring `which` to `entries` (a power of two).
pub(crate) fn xdp_ring_size(fd: BorrowedFd<'_>, which: XskRing, entries: u32) -> io::Result<()> {
    let opt = match which {
        XskRing::Rx => XDP_RX_RING,
        XskRing::Tx => XDP_TX_RING,
        XskRing::Fill => XDP_UMEM_FILL_RING,
        XskRing::Completion => XDP_UMEM_COMPLETION_RING,
    };
    setsockopt(fd, SOL_XDP, opt, &entries)
}

/// Where a ring's producer index, consumer index, flags and descriptors sit
/// in its mapping.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub(crate) struct RingOffsets {
    pub producer: u64,
    pub consumer: u64,
    pub desc: u64,
    pub flags: u64,
}

/// The offsets of the rx, tx, fill and completion rings (XDP_MMAP_OFFSETS).
pub(crate) fn xdp_mmap_offsets(fd: BorrowedFd<'_>) -> io::Result<[RingOffsets; 4]> {
    let mut off = [RingOffsets::default(); 4];
    let mut len = size_of::<[RingOffsets; 4]>() as libc::socklen_t;
    // SAFETY: `off` and `len` are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            SOL_XDP,
            XDP_MMAP_OFFSETS,
            (&mut off as *mut [RingOffsets; 4]).cast(),
            &mut len,
        )
    };
    check(rc)?;
    if len as usize != size_of::<[RingOffsets; 4]>() {
        return Err(io::Error::other("kernel without AF_XDP ring flags (need Linux 5.4 or later)"));
    }
    Ok(off)
}

/// Maps ring `which` of an AF_XDP socket: `len` bytes.
pub(crate) fn xdp_map_ring(fd: BorrowedFd<'_>, which: XskRing, len: usize) -> io::Result<Mmap> {
    let pgoff = match which {
        XskRing::Rx => XDP_PGOFF_RX_RING,
        XskRing::Tx => XDP_PGOFF_TX_RING,
        XskRing::Fill => XDP_UMEM_PGOFF_FILL_RING,
        XskRing::Completion => XDP_UMEM_PGOFF_COMPLETION_RING,
    };
    // SAFETY: a fresh shared mapping of the socket's ring chosen by the
    // kernel (addr NULL) aliases no Rust memory; checked before use.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            fd.as_raw_fd(),
            pgoff,
        )
    };
    Mmap::from_raw(ptr, len)
}

/// Binds an AF_XDP socket to (`ifindex`, `queue`) with `flags`.
pub(crate) fn xdp_bind(fd: BorrowedFd<'_>, ifindex: u32, queue: u32, flags: u16) -> io::Result<()> {
    #[repr(C)]
    struct SockaddrXdp {
        family: u16,
        flags: u16,
        ifindex: u32,
        queue_id: u32,
        shared_umem_fd: u32,
    }
    let sa = SockaddrXdp { family: AF_XDP as u16, flags, ifindex, queue_id: queue, shared_umem_fd: 0 };
    // SAFETY: `sa` is a valid `sockaddr_xdp` of the length given.
    let rc = unsafe {
        libc::bind(fd.as_raw_fd(), (&sa as *const SockaddrXdp).cast(), size_of::<SockaddrXdp>() as libc::socklen_t)
    };
    check(rc).map(drop)
}

/// `struct xdp_statistics`: what the kernel dropped on an AF_XDP socket.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct XdpStatistics {
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    pub rx_ring_full: u64,
    pub rx_fill_ring_empty_descs: u64,
    pub tx_ring_empty_descs: u64,
}

/// Reads the socket's drop counters (XDP_STATISTICS; cumulative, not reset).
pub(crate) fn xdp_statistics(fd: BorrowedFd<'_>) -> io::Result<XdpStatistics> {
    const XDP_STATISTICS: libc::c_int = 7;
    let mut stats = XdpStatistics::default();
    let mut len = size_of::<XdpStatistics>() as libc::socklen_t;
    // SAFETY: `stats` and `len` are valid for writes of the sizes given; an
    // older kernel writes fewer fields and leaves the rest zero.
    let rc = unsafe {
        libc::getsockopt(fd.as_raw_fd(), SOL_XDP, XDP_STATISTICS, (&mut stats as *mut XdpStatistics).cast(), &mut len)
    };
    check(rc)?;
    Ok(stats)
}

/// Kicks the kernel to process the tx ring (`sendto` with no data).
pub(crate) fn xdp_kick_tx(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: a zero-length send with null buffers and address reads no memory.
    let rc = unsafe { libc::sendto(fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Kicks the kernel to refill from the fill ring, and reports whether the
/// socket is still bound (`recvfrom` with no buffer: ENXIO once unbound).
pub(crate) fn xdp_kick_rx(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: a zero-length receive with null buffers writes no memory.
    let rc = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            std::ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}
