//! The RSS indirection table (RETA): queue = `RETA[hash & (size - 1)]`.
//!
//! The index is the *low* bits of the hash; `hash % queues` is a different
//! (wrong) function that f-stack once shipped. Model the table explicitly:
//! drivers, users and PFs all rewrite it.

use crate::error::RetaError;

/// The largest RETA this crate models.
pub const MAX_RETA_SIZE: usize = 512;

/// An indirection table of 64, 128 or 512 entries, each a queue number.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Reta {
    entries: [u16; MAX_RETA_SIZE],
    size: u16,
}

impl Reta {
    /// The table sizes this model supports.
    pub const SIZES: [usize; 3] = [64, 128, 512];

    /// The Linux and DPDK default fill: entry `i` is queue `i % queues`
    /// (`ethtool_rxfh_indir_default`).
    pub fn spread(queues: u32, size: usize) -> Result<Reta, RetaError> {
        check_size(size)?;
        if queues == 0 || queues > u32::from(u16::MAX) {
            return Err(RetaError::Queues(queues));
        }
        let mut entries = [0u16; MAX_RETA_SIZE];
        for (i, e) in entries.iter_mut().take(size).enumerate() {
            // i < 512 and queues ≤ 65535, so the remainder fits in u16.
            *e = (i as u32 % queues) as u16;
        }
        Ok(Reta { entries, size: size as u16 })
    }

    /// A table from explicit entries (as read from a NIC).
    pub fn from_entries(entries: &[u32]) -> Result<Reta, RetaError> {
        check_size(entries.len())?;
        let mut table = [0u16; MAX_RETA_SIZE];
        for (slot, &q) in table.iter_mut().zip(entries) {
            *slot = u16::try_from(q).map_err(|_| RetaError::Queues(q))?;
        }
        Ok(Reta { entries: table, size: entries.len() as u16 })
    }

    /// Number of entries (64, 128 or 512).
    pub fn size(&self) -> usize {
        usize::from(self.size)
    }

    /// log2 of the size: how many low hash bits select the entry.
    pub fn bits(&self) -> u32 {
        self.size.trailing_zeros()
    }

    /// The entries, index 0 first.
    pub fn entries(&self) -> &[u16] {
        &self.entries[..self.size()]
    }

    /// The table index a hash selects: its low `bits()` bits.
    #[inline]
    pub fn index(&self, hash: u32) -> usize {
        (hash as usize) & (self.size() - 1)
    }

    /// The queue a hash lands on.
    #[inline]
    pub fn queue(&self, hash: u32) -> u16 {
        self.entries[self.index(hash)]
    }

    /// The largest queue number in the table.
    pub fn max_queue(&self) -> u16 {
        self.entries().iter().copied().max().unwrap_or(0)
    }
}

impl std::fmt::Debug for Reta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reta").field("size", &self.size).field("entries", &self.entries()).finish()
    }
}

fn check_size(size: usize) -> Result<(), RetaError> {
    if Reta::SIZES.contains(&size) { Ok(()) } else { Err(RetaError::Size(size)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_i_mod_q_and_uses_low_bits() {
        let r = Reta::spread(6, 128).unwrap();
        assert_eq!(r.bits(), 7);
        for i in 0..128 {
            assert_eq!(usize::from(r.entries()[i]), i % 6);
        }
        // Index is the low 7 bits: bits above are ignored.
        assert_eq!(r.queue(0xffff_ff80 | 13), r.entries()[13]);
        assert_eq!(r.index(0x1234_5679), 0x79);
        // With 6 queues, 128 entries do not divide evenly: 22 vs 21.
        let count = |q| r.entries().iter().filter(|&&e| e == q).count();
        assert_eq!(count(0), 22);
        assert_eq!(count(5), 21);
    }

    #[test]
    fn bad_sizes_and_queues_are_rejected() {
        assert_eq!(Reta::spread(4, 100), Err(RetaError::Size(100)));
        assert!(RetaError::Size(100).to_string().contains("64, 128 or 512, got 100"));
        assert_eq!(Reta::spread(0, 128), Err(RetaError::Queues(0)));
        assert!(Reta::from_entries(&[0; 256]).is_err());
        assert!(Reta::from_entries(&[70000; 64]).is_err());
        let r = Reta::from_entries(&[3; 64]).unwrap();
        assert_eq!(r.max_queue(), 3);
        assert_eq!(r.size(), 64);
    }
}
