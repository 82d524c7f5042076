//! The MAC learning table: which port a station (VLAN, MAC) was last seen
//! on, with aging, station moves and a per-port limit.
//!
//! Sans-IO: `now` (milliseconds on any monotonic clock) is an argument. The
//! table is bounded: it holds at most `capacity` stations and each port at
//! most `per_port_limit`, so a flood of forged source MACs on one port can
//! neither grow memory nor push out the stations of other ports.

use std::collections::HashMap;

use sluice_packet::MacAddr;

use super::PortId;

/// Why a station was not learned, or what learning it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// A new station.
    New,
    /// Known on this port already; its age was refreshed.
    Refreshed,
    /// Known on another port before: it moved (a VM migrated, or a loop).
    Moved {
        /// Where it was.
        from: PortId,
    },
    /// Not learned: the port holds its limit of stations.
    PortLimit,
    /// Not learned: the table is full of live stations.
    TableFull,
    /// Not learned: a multicast or all-zero source is never a station.
    NotUnicast,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    port: PortId,
    last_seen: u64,
}

/// Counters of the table's life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MacTableStats {
    /// Stations learned.
    pub learned: u64,
    /// Stations that moved between ports.
    pub moved: u64,
    /// Stations aged out.
    pub expired: u64,
    /// Learning refused at a port's limit.
    pub port_limit: u64,
    /// Learning refused with the table full.
    pub table_full: u64,
}

/// The learning table of one bridge.
#[derive(Debug)]
pub struct MacTable {
    entries: HashMap<(u16, MacAddr), Entry>,
    per_port: HashMap<PortId, usize>,
    capacity: usize,
    per_port_limit: usize,
    max_age_ms: u64,
    stats: MacTableStats,
}

impl MacTable {
    /// A table of at most `capacity` stations, `per_port_limit` per port,
    /// forgetting stations not seen for `max_age_ms` (OVS: 300 s).
    pub fn new(capacity: usize, per_port_limit: usize, max_age_ms: u64) -> MacTable {
        MacTable {
            entries: HashMap::with_capacity(capacity),
            per_port: HashMap::new(),
            capacity,
            per_port_limit,
            max_age_ms,
            stats: MacTableStats::default(),
        }
    }

    /// Records that `mac` on `vlan` was seen on `port` at `now`.
    pub fn learn(&mut self, vlan: u16, mac: MacAddr, port: PortId, now: u64) -> Learned {
        if !mac.is_unicast() {
            return Learned::NotUnicast;
        }
        let key = (vlan, mac);
        if let Some(e) = self.entries.get_mut(&key) {
            let expired = now.saturating_sub(e.last_seen) > self.max_age_ms;
            if e.port == port {
                e.last_seen = now;
                return if expired { Learned::New } else { Learned::Refreshed };
            }
            // A move: check the new port's limit before taking the station.
            if self.per_port.get(&port).copied().unwrap_or(0) >= self.per_port_limit {
                self.stats.port_limit += 1;
                return Learned::PortLimit;
            }
            let from = e.port;
            e.port = port;
            e.last_seen = now;
            dec(&mut self.per_port, from);
            *self.per_port.entry(port).or_insert(0) += 1;
            self.stats.moved += 1;
            return if expired { Learned::New } else { Learned::Moved { from } };
        }
        if self.per_port.get(&port).copied().unwrap_or(0) >= self.per_port_limit {
            self.stats.port_limit += 1;
            return Learned::PortLimit;
        }
        if self.entries.len() >= self.capacity {
            self.expire(now);
            if self.entries.len() >= self.capacity {
                self.stats.table_full += 1;
                return Learned::TableFull;
            }
        }
        self.entries.insert(key, Entry { port, last_seen: now });
        *self.per_port.entry(port).or_insert(0) += 1;
        self.stats.learned += 1;
        Learned::New
    }

    /// What [`learn`](Self::learn) would return now, without changing
    /// anything (for tracing and revalidation). A full table is reported
    /// as [`Learned::TableFull`] even when expiry would make room.
    pub fn would_learn(&self, vlan: u16, mac: MacAddr, port: PortId, now: u64) -> Learned {
        if !mac.is_unicast() {
            return Learned::NotUnicast;
        }
        let room = self.per_port.get(&port).copied().unwrap_or(0) < self.per_port_limit;
        match self.entries.get(&(vlan, mac)) {
            Some(e) if now.saturating_sub(e.last_seen) > self.max_age_ms && (e.port == port || room) => Learned::New,
            Some(e) if e.port == port => Learned::Refreshed,
            Some(_) if !room => Learned::PortLimit,
            Some(e) => Learned::Moved { from: e.port },
            None if !room => Learned::PortLimit,
            None if self.entries.len() >= self.capacity => Learned::TableFull,
            None => Learned::New,
        }
    }

    /// The port `mac` on `vlan` was last seen on, unless it aged out.
    pub fn lookup(&self, vlan: u16, mac: MacAddr, now: u64) -> Option<PortId> {
        self.entries.get(&(vlan, mac)).filter(|e| now.saturating_sub(e.last_seen) <= self.max_age_ms).map(|e| e.port)
    }

    /// Forgets stations not seen for longer than the maximum age; returns
    /// how many.
    pub fn expire(&mut self, now: u64) -> usize {
        let max_age = self.max_age_ms;
        let per_port = &mut self.per_port;
        let before = self.entries.len();
        self.entries.retain(|_, e| {
            let keep = now.saturating_sub(e.last_seen) <= max_age;
            if !keep {
                dec(per_port, e.port);
            }
            keep
        });
        let n = before - self.entries.len();
        self.stats.expired += n as u64;
        n
    }

    /// Forgets every station on `port` (the port was removed or went down).
    pub fn flush_port(&mut self, port: PortId) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, e| e.port != port);
        self.per_port.remove(&port);
        before - self.entries.len()
    }

    /// Stations known (live or not yet expired by [`expire`](Self::expire)).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no station is known.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Stations on `port`.
    pub fn port_count(&self, port: PortId) -> usize {
        self.per_port.get(&port).copied().unwrap_or(0)
    }

    /// Counters.
    pub fn stats(&self) -> MacTableStats {
        self.stats
    }

    /// Every station: (VLAN, MAC, port, age in ms at `now`), sorted by VLAN
    /// and MAC, for `sluice dp` listings.
    pub fn dump(&self, now: u64) -> Vec<(u16, MacAddr, PortId, u64)> {
        let mut v: Vec<_> =
            self.entries.iter().map(|(&(vlan, mac), e)| (vlan, mac, e.port, now.saturating_sub(e.last_seen))).collect();
        v.sort_by_key(|&(vlan, mac, ..)| (vlan, mac));
        v
    }
}

fn dec(per_port: &mut HashMap<PortId, usize>, port: PortId) {
    if let Some(n) = per_port.get_mut(&port) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            per_port.remove(&port);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, n])
    }

    #[test]
    fn learns_refreshes_moves_and_ages() {
        let mut t = MacTable::new(16, 8, 1000);
        assert_eq!(t.learn(10, mac(1), PortId(1), 0), Learned::New);
        assert_eq!(t.learn(10, mac(1), PortId(1), 500), Learned::Refreshed);
        assert_eq!(t.lookup(10, mac(1), 1400), Some(PortId(1)));
        assert_eq!(t.lookup(20, mac(1), 1400), None, "VLANs are separate tables");
        assert_eq!(t.learn(10, mac(1), PortId(2), 1400), Learned::Moved { from: PortId(1) });
        assert_eq!((t.port_count(PortId(1)), t.port_count(PortId(2))), (0, 1));
        assert_eq!(t.lookup(10, mac(1), 2401), None, "aged out after 1000 ms");
        assert_eq!(t.expire(2401), 1);
        assert!(t.is_empty());
        assert_eq!(t.stats().expired, 1);
    }

    #[test]
    fn a_port_flooding_forged_macs_cannot_push_out_others() {
        let mut t = MacTable::new(8, 4, 300_000);
        assert_eq!(t.learn(1, mac(200), PortId(9), 0), Learned::New);
        let outcomes: Vec<_> = (0..20).map(|i| t.learn(1, mac(i), PortId(1), 1)).collect();
        assert_eq!(outcomes.iter().filter(|&&o| o == Learned::New).count(), 4);
        assert_eq!(outcomes.iter().filter(|&&o| o == Learned::PortLimit).count(), 16);
        assert_eq!(t.lookup(1, mac(200), 2), Some(PortId(9)));
        assert_eq!(t.stats().port_limit, 16);
        // Fill the table from other ports; then it is full of live entries.
        for p in 2..5u16 {
            t.learn(1, mac(100 + p as u8), PortId(p), 2);
        }
        assert_eq!(t.len(), 8);
        assert_eq!(t.learn(1, mac(150), PortId(7), 3), Learned::TableFull);
        assert_eq!(t.flush_port(PortId(1)), 4);
        assert_eq!(t.learn(1, mac(150), PortId(7), 3), Learned::New);
    }

    #[test]
    fn multicast_and_zero_sources_are_never_learned() {
        let mut t = MacTable::new(8, 8, 1000);
        assert_eq!(t.learn(1, MacAddr([1, 0, 0x5e, 0, 0, 1]), PortId(1), 0), Learned::NotUnicast);
        assert_eq!(t.learn(1, MacAddr::ZERO, PortId(1), 0), Learned::NotUnicast);
        assert_eq!(t.learn(1, MacAddr::BROADCAST, PortId(1), 0), Learned::NotUnicast);
        assert!(t.is_empty());
    }
}
