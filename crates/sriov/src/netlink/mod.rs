//! Netlink: the synchronous socket wrapper, the attribute walker, and the
//! protocol modules ([`rt`] for rtnetlink VF settings, [`link`] for the
//! macvtap/TAP netdevs the agent puts on VFs and in front of VMs,
//! [`devlink`] for the devlink generic-netlink family).
//!
//! Messages are built with `netlink-packet-route` / `netlink-packet-core`
//! types. Replies are read whole (the buffer is sized from a
//! `MSG_PEEK|MSG_TRUNC` peek, so replies above 64 KiB arrive intact) and
//! walked by [`walk`], a total parser: it never panics and never reads out
//! of bounds, whatever the bytes.
//!
//! Test fixtures: with `SLUICE_NETLINK_CAPTURE=DIR` set, every reply
//! datagram is also written to `DIR/<seq>-<op>.bin` (this is how the files
//! in `testdata/` were captured in the QEMU lab).

pub mod devlink;
pub mod link;
pub mod rt;
pub mod walk;

use std::io;

use netlink_sys::{Socket, SocketAddr};

use crate::error::{Error, Result, errno_text};
use walk::{Attr, NlMsg, attrs, messages};

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
/// How long to wait for any kernel reply.
const RECV_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A connected, blocking netlink socket with extended acks enabled.
pub(crate) struct NlSocket {
    sock: Socket,
    seq: u32,
}

/// The outcome of one request: an errno (0 = success) and the kernel's
/// extended-ack text, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ack {
    pub errno: i32,
    pub extack: Option<String>,
}

impl Ack {
    /// `: "text"` or empty, for error messages.
    pub fn extack_suffix(&self, sep: &str) -> String {
        self.extack.as_ref().map(|m| format!("{sep}\"{m}\"")).unwrap_or_default()
    }

    pub fn into_result(self, op: impl Into<String>) -> Result<()> {
        if self.errno == 0 {
            return Ok(());
        }
        Err(Error::Kernel {
            op: op.into(),
            errno_text: errno_text(self.errno),
            errno: self.errno,
            extack: self.extack_suffix(": "),
        })
    }
}

fn nl_err(op: &str) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Netlink { op: op.to_string(), source }
}

impl NlSocket {
    pub fn open(protocol: isize) -> Result<Self> {
        let mut sock = Socket::new(protocol).map_err(nl_err("socket"))?;
        sock.bind_auto().map_err(nl_err("bind"))?;
        sock.connect(&SocketAddr::new(0, 0)).map_err(nl_err("connect"))?;
        // Best effort: older kernels lack these options; acks still work.
        let _ = sock.set_ext_ack(true);
        let _ = sock.set_cap_ack(true);
        let _ = sock.set_rx_buf_sz(4 << 20);
        // A driver holding RTNL can delay a reply, but never for this long.
        crate::sys::set_recv_timeout(std::os::fd::AsRawFd::as_raw_fd(&sock), RECV_TIMEOUT)
            .map_err(nl_err("setsockopt SO_RCVTIMEO"))?;
        Ok(NlSocket { sock, seq: 1 })
    }

    /// The next sequence number.
    pub fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    pub fn send(&self, bytes: &[u8]) -> Result<()> {
        let n = self.sock.send(bytes, 0).map_err(nl_err("send"))?;
        if n != bytes.len() {
            return Err(Error::Netlink {
                op: "send".into(),
                source: io::Error::new(io::ErrorKind::WriteZero, "short netlink send"),
            });
        }
        Ok(())
    }

    /// Receives one datagram whole, whatever its size.
    pub fn recv(&self) -> Result<Vec<u8>> {
        let buf = self.recv_inner()?;
        capture(&buf);
        Ok(buf)
    }

    fn recv_inner(&self) -> Result<Vec<u8>> {
        let mut peek: Vec<u8> = Vec::with_capacity(64);
        let len = self.sock.recv(&mut peek, libc::MSG_PEEK | libc::MSG_TRUNC).map_err(nl_err("recv (peek)"))?;
        let mut buf: Vec<u8> = Vec::with_capacity(len.max(64));
        let got = self.sock.recv(&mut buf, 0).map_err(nl_err("recv"))?;
        buf.truncate(got.min(buf.len()));
        Ok(buf)
    }

    /// Sends a batch of requests (each carrying NLM_F_ACK, sequence numbers
    /// `seqs`) in one datagram and collects one [`Ack`] per sequence number,
    /// in the order of `seqs`.
    pub fn transact_acks(&self, bytes: &[u8], seqs: &[u32]) -> Result<Vec<Ack>> {
        self.send(bytes)?;
        let mut acks: Vec<Option<Ack>> = vec![None; seqs.len()];
        let mut missing = seqs.len();
        let first = seqs.first().copied().unwrap_or(0);
        while missing > 0 {
            let buf = self.recv()?;
            for m in messages(&buf) {
                if m.kind != NLMSG_ERROR {
                    continue;
                }
                let ack = parse_ack(&m);
                // Sequence numbers in a batch are consecutive.
                let slot = m.seq.wrapping_sub(first) as usize;
                if let Some(a @ None) = acks.get_mut(slot) {
                    *a = Some(ack);
                    missing -= 1;
                }
            }
        }
        Ok(acks.into_iter().map(|a| a.unwrap_or(Ack { errno: 0, extack: None })).collect())
    }

    /// Sends one request and collects every data message of the reply (up
    /// to NLMSG_DONE for dumps, or the single reply), as owned datagrams.
    /// An NLMSG_ERROR with a non-zero code becomes an error.
    pub fn request(&self, bytes: &[u8], seq: u32, dump: bool, op: &str) -> Result<Vec<Vec<u8>>> {
        self.send(bytes)?;
        let mut out = Vec::new();
        loop {
            let buf = self.recv()?;
            let mut finished = false;
            let mut datagram_has_data = false;
            for m in messages(&buf) {
                if m.seq != seq {
                    continue;
                }
                match m.kind {
                    NLMSG_DONE => finished = true,
                    NLMSG_ERROR => {
                        parse_ack(&m).into_result(op)?;
                        finished = true;
                    }
                    _ => {
                        datagram_has_data = true;
                        if !dump {
                            finished = true;
                        }
                    }
                }
            }
            if datagram_has_data {
                out.push(buf);
            }
            if finished {
                return Ok(out);
            }
        }
    }
}

/// Writes a received datagram to `$SLUICE_NETLINK_CAPTURE/<n>.bin` when
/// that variable is set (fixture capture; failures are ignored).
fn capture(buf: &[u8]) {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    if let Some(dir) = std::env::var_os("SLUICE_NETLINK_CAPTURE") {
        let n = N.fetch_add(1, Ordering::Relaxed);
        let _ = std::fs::write(std::path::Path::new(&dir).join(format!("{}-{n:04}.bin", std::process::id())), buf);
    }
}

/// Decodes an NLMSG_ERROR message: errno and extended-ack text.
pub(crate) fn parse_ack(m: &NlMsg<'_>) -> Ack {
    let p = m.payload;
    let code = p.get(0..4).map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]])).unwrap_or(-libc::EBADMSG);
    let mut extack = None;
    if m.flags & NLM_F_ACK_TLVS != 0 {
        // After the errno comes the original header, and its payload too
        // unless the kernel capped it.
        let orig_len = p.get(4..8).map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize).unwrap_or(0);
        let skip = if m.flags & NLM_F_CAPPED != 0 { 16 } else { orig_len.max(16) };
        let tlv_start = 4usize.saturating_add(walk::align4(skip));
        if let Some(tlvs) = p.get(tlv_start..) {
            for a in attrs(tlvs) {
                if a.kind == NLMSGERR_ATTR_MSG {
                    extack = Some(c_string(a.value));
                }
            }
        }
    }
    Ack { errno: code.checked_neg().unwrap_or(i32::MAX).max(0), extack }
}

/// A NUL-terminated string attribute as UTF-8 (lossy).
pub(crate) fn c_string(v: &[u8]) -> String {
    let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

pub(crate) fn attr_u32(a: &Attr<'_>) -> Option<u32> {
    a.value.get(0..4).map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

pub(crate) fn attr_u16(a: &Attr<'_>) -> Option<u16> {
    a.value.get(0..2).map(|b| u16::from_ne_bytes([b[0], b[1]]))
}

pub(crate) fn attr_u64(a: &Attr<'_>) -> Option<u64> {
    a.value.get(0..8).map(|b| u64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_msg(code: i32, flags: u16, tlvs: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        let len = 16 + 4 + 16 + tlvs.len();
        v.extend_from_slice(&(len as u32).to_ne_bytes());
        v.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&7u32.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(&code.to_ne_bytes());
        // original header (capped)
        v.extend_from_slice(&[0x30, 0, 0, 0, 0x13, 0, 5, 0, 7, 0, 0, 0, 0, 0, 0, 0]);
        v.extend_from_slice(tlvs);
        v
    }

    #[test]
    fn ack_with_extack_message() {
        let text = b"Not supported in switchdev mode\0";
        let mut tlv = Vec::new();
        let l = 4 + text.len();
        tlv.extend_from_slice(&(l as u16).to_ne_bytes());
        tlv.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        tlv.extend_from_slice(text);
        while tlv.len() % 4 != 0 {
            tlv.push(0);
        }
        let buf = err_msg(-libc::EOPNOTSUPP, NLM_F_CAPPED | NLM_F_ACK_TLVS, &tlv);
        let m: Vec<_> = messages(&buf).collect();
        assert_eq!(m.len(), 1);
        let ack = parse_ack(&m[0]);
        assert_eq!(ack.errno, libc::EOPNOTSUPP);
        assert_eq!(ack.extack.as_deref(), Some("Not supported in switchdev mode"));
        let e = ack.into_result("x").unwrap_err().to_string();
        assert!(e.contains("switchdev"), "{e}");
    }

    #[test]
    fn plain_ack_is_success() {
        let buf = err_msg(0, NLM_F_CAPPED, &[]);
        let m: Vec<_> = messages(&buf).collect();
        assert_eq!(parse_ack(&m[0]), Ack { errno: 0, extack: None });
    }

    proptest::proptest! {
        #[test]
        fn ack_parser_total(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200), flags in proptest::num::u16::ANY) {
            let mut buf = err_msg(-22, flags, &bytes);
            buf.truncate(bytes.len());
            for m in messages(&buf) { let _ = parse_ack(&m); }
            let full = err_msg(-22, flags, &bytes);
            for m in messages(&full) { let _ = parse_ack(&m); }
        }
    }
}
