//! Running an action list on one packet: header rewrites in place (with
//! incremental checksum updates), VLAN push and pop in the buffer's
//! headroom, tunnel encapsulation from prebuilt templates, and outputs into
//! the transmit batches (the last output moves the buffer, earlier ones
//! copy it into a buffer from the pool).
//!
//! Never panics on any packet: every offset comes from the parse of this
//! very frame (shifted by the VLAN pushes and pops done here), and every
//! access is checked anyway; a rewrite the packet cannot take drops it as
//! [`PipelineDrop::BadAction`].

use sluice_flow::{Action, Actions, FlowKey, TunnelTemplate};
use sluice_packet::checksum::{update_bytes, update_u16, update_u32};
use sluice_packet::{BufferPool, Headers, IpProtocol, PacketBuf};
use sluice_packet::{Fragment, L3};

use super::{PipelineDrop, PipelineStats, TxQueues};

/// Where the headers are in the packet as it is now.
struct Layout {
    l3: L3,
    l3_at: usize,
    /// L4 header offset, when there is an L4 header to rewrite (not a
    /// later fragment).
    l4_at: Option<usize>,
    protocol: IpProtocol,
}

impl Layout {
    fn of(h: &Headers) -> Layout {
        let l4_at = (h.l4_offset != 0 && h.fragment != Fragment::Later).then_some(usize::from(h.l4_offset));
        Layout { l3: h.l3, l3_at: usize::from(h.l3_offset), l4_at, protocol: h.protocol }
    }

    fn shift(&mut self, by: isize) {
        self.l3_at = self.l3_at.wrapping_add_signed(by);
        self.l4_at = self.l4_at.map(|a| a.wrapping_add_signed(by));
    }

    /// Offset of the L4 checksum field, for the protocols whose checksum
    /// covers the IP addresses and ports.
    fn l4_csum_at(&self) -> Option<(usize, bool)> {
        let at = self.l4_at?;
        match self.protocol {
            IpProtocol::Tcp => Some((at + 16, false)),
            // UDP over IPv4 may carry no checksum (zero): leave it so.
            IpProtocol::Udp => Some((at + 6, true)),
            IpProtocol::Icmpv6 => Some((at + 2, false)),
            _ => None,
        }
    }
}

fn rd16(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|s| u16::from_be_bytes([s[0], s[1]]))
}

fn wr16(b: &mut [u8], at: usize, v: u16) -> Option<()> {
    b.get_mut(at..at + 2)?.copy_from_slice(&v.to_be_bytes());
    Some(())
}

/// Rewrites the checksum at `at` with `update` (an RFC 1624 update for the
/// changed field). `zero_means_none`: a UDP-over-IPv4 checksum of 0 means
/// "none" and stays 0, and a computed 0 is sent as 0xffff.
fn fix(b: &mut [u8], at: usize, zero_means_none: bool, update: impl FnOnce(u16) -> u16) -> Option<()> {
    let c = rd16(b, at)?;
    if zero_means_none && c == 0 {
        return Some(());
    }
    let n = update(c);
    wr16(b, at, if zero_means_none && n == 0 { 0xffff } else { n })
}

fn is_vlan_tpid(t: u16) -> bool {
    matches!(t, 0x8100 | 0x88a8)
}

fn push_vlan(buf: &mut PacketBuf, tpid: u16, tci: u16) -> Option<()> {
    if buf.len() < 14 {
        return None;
    }
    buf.push_front(4).ok()?;
    let b = buf.as_mut_slice();
    b.copy_within(4..16, 0);
    wr16(b, 12, tpid)?;
    wr16(b, 14, tci)
}

fn pop_vlan(buf: &mut PacketBuf) -> Option<()> {
    let b = buf.as_mut_slice();
    if b.len() < 18 || !is_vlan_tpid(rd16(b, 12)?) {
        return None;
    }
    b.copy_within(0..12, 4);
    buf.pull_front(4).ok()
}

fn set_ipv4(b: &mut [u8], lay: &Layout, dst: bool, addr: std::net::Ipv4Addr) -> Option<()> {
    if lay.l3 != L3::Ipv4 {
        return None;
    }
    let at = lay.l3_at + if dst { 16 } else { 12 };
    let field = b.get_mut(at..at + 4)?;
    let old = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
    let new = u32::from(addr);
    field.copy_from_slice(&new.to_be_bytes());
    fix(b, lay.l3_at + 10, false, |c| update_u32(c, old, new))?;
    if let Some((c, z)) = lay.l4_csum_at()
        && lay.protocol != IpProtocol::Icmpv6
    {
        fix(b, c, z, |c| update_u32(c, old, new))?;
    }
    Some(())
}

fn set_ipv6(b: &mut [u8], lay: &Layout, dst: bool, addr: std::net::Ipv6Addr) -> Option<()> {
    if lay.l3 != L3::Ipv6 {
        return None;
    }
    let at = lay.l3_at + if dst { 24 } else { 8 };
    let field = b.get_mut(at..at + 16)?;
    let mut old = [0u8; 16];
    old.copy_from_slice(field);
    let new = addr.octets();
    field.copy_from_slice(&new);
    if let Some((c, _)) = lay.l4_csum_at() {
        let v = rd16(b, c)?;
        wr16(b, c, update_bytes(v, &old, &new))?;
    }
    Some(())
}

fn set_port(b: &mut [u8], lay: &Layout, dst: bool, port: u16) -> Option<()> {
    if !matches!(lay.protocol, IpProtocol::Tcp | IpProtocol::Udp) {
        return None;
    }
    let at = lay.l4_at? + if dst { 2 } else { 0 };
    let old = rd16(b, at)?;
    wr16(b, at, port)?;
    let (c, z) = lay.l4_csum_at()?;
    fix(b, c, z && lay.l3 == L3::Ipv4, |c| update_u16(c, old, port))
}

/// Decrements the TTL; `Err(())` when it ran out.
fn dec_ttl(b: &mut [u8], lay: &Layout) -> Option<Result<(), ()>> {
    match lay.l3 {
        L3::Ipv4 => {
            let at = lay.l3_at + 8;
            let old = rd16(b, at)?;
            let ttl = (old >> 8) as u8;
            if ttl <= 1 {
                return Some(Err(()));
            }
            let new = old - 0x100;
            wr16(b, at, new)?;
            fix(b, lay.l3_at + 10, false, |c| update_u16(c, old, new))?;
            Some(Ok(()))
        }
        L3::Ipv6 => {
            let hl = b.get_mut(lay.l3_at + 7)?;
            if *hl <= 1 {
                return Some(Err(()));
            }
            *hl -= 1;
            Some(Ok(()))
        }
        _ => None,
    }
}

/// A copy of `buf` in a buffer from `pool`.
fn copy_of(buf: &PacketBuf, pool: &mut BufferPool) -> Option<PacketBuf> {
    let mut c = pool.get()?;
    if c.fill(buf.as_slice()).is_err() {
        pool.put(c);
        return None;
    }
    Some(c)
}

/// Runs `actions` on `buf` (see the module docs). `drop_counted`: a drop
/// decision for this packet was already counted by its upcall.
#[allow(clippy::too_many_arguments)]
pub(super) fn run(
    actions: &Actions,
    buf: PacketBuf,
    key: &FlowKey,
    headers: &Headers,
    pool: &mut BufferPool,
    out: &mut TxQueues,
    stats: &mut PipelineStats,
    drop_counted: bool,
) {
    let list = actions.as_slice();
    // The common list: one output (what NORMAL installs for a known station).
    if let [Action::Output(p)] = list {
        match out.push(*p, buf) {
            Ok(()) => stats.outputs += 1,
            Err((b, why)) => {
                stats.count_drop(why, 1);
                pool.put(b);
            }
        }
        return;
    }
    if actions.is_drop() {
        if !drop_counted {
            stats.count_drop(PipelineDrop::FlowDrop, 1);
        }
        pool.put(buf);
        return;
    }
    // The last action that sends the packet itself; earlier sends copy it.
    let last_send = list.iter().rposition(|a| matches!(a, Action::Output(_) | Action::TunnelPush { .. }));
    let mut lay = Layout::of(headers);
    let mut buf = Some(buf);
    for (idx, a) in list.iter().enumerate() {
        let Some(b) = buf.as_mut() else { return };
        let ok = match *a {
            Action::Output(p) | Action::Mirror(p) => {
                let send = if Some(idx) == last_send && matches!(a, Action::Output(_)) {
                    buf.take()
                } else {
                    copy_of(b, pool)
                };
                match send {
                    Some(s) => match out.push(p, s) {
                        Ok(()) => stats.outputs += 1,
                        Err((s, why)) => {
                            stats.count_drop(why, 1);
                            pool.put(s);
                        }
                    },
                    None => stats.count_drop(PipelineDrop::NoBuffer, 1),
                }
                continue;
            }
            Action::TunnelPush { header, out_port } => {
                let send = if Some(idx) == last_send { buf.take() } else { copy_of(b, pool) };
                let Some(mut s) = send else {
                    stats.count_drop(PipelineDrop::NoBuffer, 1);
                    continue;
                };
                let done = match actions.tunnel(header) {
                    // Source port from the inner flow: spreads tunnels over
                    // the receiver's RSS queues (RFC 7348 §5).
                    Some(TunnelTemplate::Vxlan(t)) => t.encap(&mut s, 0xc000 | (key.hash() as u16 & 0x3fff)).is_ok(),
                    Some(TunnelTemplate::Gre(t)) => t.encap(&mut s).is_ok(),
                    None => false,
                };
                if !done {
                    stats.count_drop(PipelineDrop::Encap, 1);
                    pool.put(s);
                    continue;
                }
                match out.push(out_port, s) {
                    Ok(()) => stats.outputs += 1,
                    Err((s, why)) => {
                        stats.count_drop(why, 1);
                        pool.put(s);
                    }
                }
                continue;
            }
            Action::Drop => Some(()),
            Action::PushVlan { tpid, tci } => push_vlan(b, tpid, tci).inspect(|()| lay.shift(4)),
            Action::PopVlan => pop_vlan(b).inspect(|()| lay.shift(-4)),
            Action::SetVlan { vid, pcp } => {
                let s = b.as_mut_slice();
                match (rd16(s, 12), rd16(s, 14)) {
                    (Some(t), Some(tci)) if is_vlan_tpid(t) => {
                        wr16(s, 14, (u16::from(pcp & 7) << 13) | (tci & 0x1000) | (vid & 0x0fff))
                    }
                    _ => None,
                }
            }
            Action::SetEthDst(m) => b.as_mut_slice().get_mut(0..6).map(|d| d.copy_from_slice(&m.0)),
            Action::SetEthSrc(m) => b.as_mut_slice().get_mut(6..12).map(|d| d.copy_from_slice(&m.0)),
            Action::SetIpv4Src(ip) => set_ipv4(b.as_mut_slice(), &lay, false, ip),
            Action::SetIpv4Dst(ip) => set_ipv4(b.as_mut_slice(), &lay, true, ip),
            Action::SetIpv6Src(ip) => set_ipv6(b.as_mut_slice(), &lay, false, ip),
            Action::SetIpv6Dst(ip) => set_ipv6(b.as_mut_slice(), &lay, true, ip),
            Action::SetTpSrc(p) => set_port(b.as_mut_slice(), &lay, false, p),
            Action::SetTpDst(p) => set_port(b.as_mut_slice(), &lay, true, p),
            Action::DecTtl => match dec_ttl(b.as_mut_slice(), &lay) {
                Some(Ok(())) => Some(()),
                Some(Err(())) => {
                    stats.count_drop(PipelineDrop::TtlExpired, 1);
                    if let Some(b) = buf.take() {
                        pool.put(b);
                    }
                    return;
                }
                None => None,
            },
            Action::TunnelPop { .. }
            | Action::Meter(_)
            | Action::Conntrack { .. }
            | Action::Recirculate(_)
            | Action::Upcall { .. } => {
                stats.count_drop(PipelineDrop::Unsupported, 1);
                if let Some(b) = buf.take() {
                    pool.put(b);
                }
                return;
            }
        };
        if ok.is_none() {
            stats.count_drop(PipelineDrop::BadAction, 1);
            if let Some(b) = buf.take() {
                pool.put(b);
            }
            return;
        }
    }
    if let Some(b) = buf {
        // A list that never sends the packet itself drops it.
        if last_send.is_none() && !drop_counted {
            stats.count_drop(PipelineDrop::FlowDrop, 1);
        }
        pool.put(b);
    }
}
