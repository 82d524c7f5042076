//! A total walker over netlink messages and attributes.
//!
//! Why hand-written: `netlink-packet-core`'s `NlasIterator` trusts each
//! attribute's 16-bit `nla_len`, and the kernel writes a *wrapped* length
//! for an `IFLA_VFINFO_LIST` nest above 65535 bytes (lab §8.5: 222+ VFs with
//! stats, 331+ without). Recovering the whole VF list needs attribute
//! offsets, which that iterator does not expose. Everything here works on
//! slices with checked arithmetic: no input can make it panic or read out of
//! bounds (see the property tests), and per-VF payloads are still decoded by
//! `netlink-packet-route`.

/// Rounds up to the netlink alignment (4).
pub(crate) fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

/// One netlink message inside a datagram.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NlMsg<'a> {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    /// Bytes after the 16-byte header, up to `nlmsg_len`.
    pub payload: &'a [u8],
}

/// Iterates over the messages of a datagram; stops at the first malformed one.
pub(crate) fn messages(buf: &[u8]) -> impl Iterator<Item = NlMsg<'_>> {
    let mut off = 0usize;
    std::iter::from_fn(move || {
        let h = buf.get(off..off.checked_add(16)?)?;
        let len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
        if len < 16 {
            return None;
        }
        let end = off.checked_add(len)?;
        let payload = buf.get(off + 16..end)?;
        let m = NlMsg {
            kind: u16::from_ne_bytes([h[4], h[5]]),
            flags: u16::from_ne_bytes([h[6], h[7]]),
            seq: u32::from_ne_bytes([h[8], h[9], h[10], h[11]]),
            payload,
        };
        off = align4(end);
        Some(m)
    })
}

/// One attribute: its type (flags masked off), value and where it starts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attr<'a> {
    pub kind: u16,
    /// The value bytes as `nla_len` declares them.
    pub value: &'a [u8],
    /// Offset of the attribute header in the walked buffer.
    pub offset: usize,
    /// The declared `nla_len`.
    pub len: u16,
}

/// Reads the attribute at `off`, if a well-formed one fits.
pub(crate) fn attr_at(buf: &[u8], off: usize) -> Option<Attr<'_>> {
    let h = buf.get(off..off.checked_add(4)?)?;
    let len = u16::from_ne_bytes([h[0], h[1]]);
    if usize::from(len) < 4 {
        return None;
    }
    let value = buf.get(off + 4..off.checked_add(usize::from(len))?)?;
    Some(Attr { kind: u16::from_ne_bytes([h[2], h[3]]) & 0x3fff, value, offset: off, len })
}

/// Iterates over consecutive attributes; stops at the first malformed one.
pub(crate) fn attrs(buf: &[u8]) -> impl Iterator<Item = Attr<'_>> {
    let mut off = 0usize;
    std::iter::from_fn(move || {
        let a = attr_at(buf, off)?;
        off = align4(off + usize::from(a.len));
        Some(a)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_messages_and_attrs() {
        // two attrs: kind 3 "eth0\0", kind 21 u32 5
        let mut a = Vec::new();
        a.extend_from_slice(&[9, 0, 3, 0, b'e', b't', b'h', b'0', 0, 0, 0, 0]);
        a.extend_from_slice(&[8, 0, 21, 0, 5, 0, 0, 0]);
        let v: Vec<_> = attrs(&a).collect();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].kind, 3);
        assert_eq!(v[0].value, b"eth0\0");
        assert_eq!(v[1].offset, 12);
        // nested flag masked
        let n = [8u8, 0, 22, 0x80, 0, 0, 0, 0];
        assert_eq!(attrs(&n).next().unwrap().kind, 22);
        // length past the end: nothing
        let bad = [200u8, 0, 1, 0, 0];
        assert_eq!(attrs(&bad).count(), 0);
    }

    proptest::proptest! {
        #[test]
        fn walkers_total(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600), off in 0usize..700) {
            for m in messages(&bytes) {
                for a in attrs(m.payload) { let _ = a.value.len(); }
            }
            for a in attrs(&bytes) { let _ = a.value.len(); }
            let _ = attr_at(&bytes, off);
            let _ = attr_at(&bytes, usize::MAX - 2);
        }
    }
}
