//! The on-host claim record that guards VF resets.
//!
//! Design (for `sluice-agent` and for operators):
//! - The agent's store is the authority on who *should* hold a VF. This
//!   module only arbitrates the race the field reports describe: a late
//!   release of an old holder must never reset a VF already handed to a new
//!   one (sriov-cni issue 219).
//! - Per VF there is one small JSON record `<state_dir>/<pf bus id>/vf<N>.json`
//!   holding `{owner, generation}` and a lock file next to it. Every claim
//!   bumps the generation; the claimer gets a [`ClaimToken`] (owner +
//!   generation) and stores it with its allocation.
//! - [`ClaimStore::release_with`] is a compare-and-reset: under the VF's
//!   exclusive `flock`, it compares the record with the caller's token and
//!   only then runs the reset and clears the owner (keeping the generation,
//!   so the next claim gets a fresh one). A stale token gets
//!   [`Error::StaleClaim`] and nothing on the host changes.
//! - Claims and releases of the same VF serialise on the lock, so "check,
//!   then reset" cannot interleave with a new claim.
//! - The default directory is under `/run` (tmpfs): after a reboot every VF
//!   is re-created and wiped, so old claims must not survive either.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Default state directory.
pub const DEFAULT_STATE_DIR: &str = "/run/sluice/sriov";

/// What the host records about a VF's holder.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClaimRecord {
    /// Current holder, `None` when free.
    pub owner: Option<String>,
    /// Bumped by every claim.
    pub generation: u64,
}

/// Proof of a claim: present it to release (reset) the VF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimToken {
    /// Holder name (VM, pod, port id).
    pub owner: String,
    /// Generation returned by the claim.
    pub generation: u64,
}

impl std::fmt::Display for ClaimToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (generation {})", self.owner, self.generation)
    }
}

/// Claim records under a state directory.
#[derive(Debug, Clone)]
pub struct ClaimStore {
    dir: PathBuf,
}

fn state_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::State { path: path.to_path_buf(), source }
}

impl ClaimStore {
    /// A store rooted at `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ClaimStore { dir: dir.into() }
    }

    fn record_path(&self, pf: &str, vf: u32) -> PathBuf {
        self.dir.join(pf).join(format!("vf{vf}.json"))
    }

    fn lock(&self, pf: &str, vf: u32) -> Result<File> {
        let d = self.dir.join(pf);
        fs::create_dir_all(&d).map_err(state_err(&d))?;
        let p = d.join(format!("vf{vf}.lock"));
        let f = OpenOptions::new().create(true).truncate(false).write(true).open(&p).map_err(state_err(&p))?;
        crate::sys::lock_exclusive(&f).map_err(state_err(&p))?;
        Ok(f)
    }

    /// The record of a VF (a never-claimed VF has the default record).
    pub fn read(&self, pf: &str, vf: u32) -> Result<ClaimRecord> {
        let p = self.record_path(pf, vf);
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| Error::State {
                path: p.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ClaimRecord::default()),
            Err(e) => Err(state_err(&p)(e)),
        }
    }

    fn write(&self, pf: &str, vf: u32, r: &ClaimRecord) -> Result<()> {
        let p = self.record_path(pf, vf);
        let tmp = p.with_extension("json.tmp");
        let body =
            serde_json::to_vec(r).map_err(|e| Error::State { path: p.clone(), source: std::io::Error::other(e) })?;
        let mut f = File::create(&tmp).map_err(state_err(&tmp))?;
        f.write_all(&body).map_err(state_err(&tmp))?;
        f.sync_all().map_err(state_err(&tmp))?;
        fs::rename(&tmp, &p).map_err(state_err(&p))
    }

    /// Claims a free VF for `owner`. Fails if another owner holds it;
    /// re-claiming by the same owner returns a new generation.
    pub fn claim(&self, pf: &str, vf: u32, owner: &str) -> Result<ClaimToken> {
        if owner.is_empty() {
            return Err(Error::invalid("owner", "must be a non-empty name"));
        }
        let _lock = self.lock(pf, vf)?;
        let mut r = self.read(pf, vf)?;
        if let Some(cur) = r.owner.as_deref().filter(|o| *o != owner) {
            return Err(Error::StaleClaim {
                pf: pf.to_string(),
                vf,
                expected: format!("no owner (claim by {owner})"),
                actual: format!("{cur} (generation {})", r.generation),
            });
        }
        r.generation += 1;
        r.owner = Some(owner.to_string());
        self.write(pf, vf, &r)?;
        Ok(ClaimToken { owner: owner.to_string(), generation: r.generation })
    }

    /// Compare-and-reset: if the record still names `token`, runs `reset`
    /// under the VF's lock and frees the VF. Otherwise returns
    /// [`Error::StaleClaim`] without calling `reset`. With `token = None`
    /// the VF must be free unless `force`.
    pub fn release_with<T>(
        &self,
        pf: &str,
        vf: u32,
        token: Option<&ClaimToken>,
        force: bool,
        reset: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let _lock = self.lock(pf, vf)?;
        let mut r = self.read(pf, vf)?;
        let matches = match token {
            Some(t) => r.owner.as_deref() == Some(t.owner.as_str()) && r.generation == t.generation,
            None => r.owner.is_none(),
        };
        if !matches && !force {
            return Err(Error::StaleClaim {
                pf: pf.to_string(),
                vf,
                expected: token
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "no owner (give --owner and --generation, or --force)".into()),
                actual: match &r.owner {
                    Some(o) => format!("{o} (generation {})", r.generation),
                    None => format!("nobody (free since generation {})", r.generation),
                },
            });
        }
        let out = reset()?;
        if r.owner.is_some() {
            r.owner = None;
            self.write(pf, vf, &r)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_release_cannot_reset_a_reassigned_vf() {
        let d = tempfile::tempdir().unwrap();
        let s = ClaimStore::new(d.path());
        let old = s.claim("0000:01:00.0", 2, "vm-a").unwrap();
        assert_eq!(old.generation, 1);
        // vm-a releases properly, vm-b claims.
        let mut resets = 0;
        s.release_with("0000:01:00.0", 2, Some(&old), false, || {
            resets += 1;
            Ok(())
        })
        .unwrap();
        let new = s.claim("0000:01:00.0", 2, "vm-b").unwrap();
        assert_eq!(new.generation, 2);
        // A duplicated (late) release by vm-a must not reset vm-b's VF.
        let e = s
            .release_with("0000:01:00.0", 2, Some(&old), false, || {
                resets += 1;
                Ok(())
            })
            .unwrap_err()
            .to_string();
        assert_eq!(resets, 1);
        assert!(e.contains("vm-b (generation 2)") && e.contains("vm-a (generation 1)"), "{e}");
        assert_eq!(s.read("0000:01:00.0", 2).unwrap().owner.as_deref(), Some("vm-b"));
        // Same owner, old generation: also stale.
        let e =
            s.release_with("0000:01:00.0", 2, Some(&ClaimToken { owner: "vm-b".into(), generation: 1 }), false, || {
                Ok(())
            });
        assert!(e.is_err());
    }

    #[test]
    fn claim_refuses_a_held_vf_and_untokened_reset_needs_force() {
        let d = tempfile::tempdir().unwrap();
        let s = ClaimStore::new(d.path());
        s.claim("nsim", 0, "pod-1").unwrap();
        assert!(s.claim("nsim", 0, "pod-2").is_err());
        assert!(s.release_with("nsim", 0, None, false, || Ok(())).is_err());
        s.release_with("nsim", 0, None, true, || Ok(())).unwrap();
        assert_eq!(s.read("nsim", 0).unwrap(), ClaimRecord { owner: None, generation: 1 });
        // A free VF resets without a token.
        s.release_with("nsim", 0, None, false, || Ok(())).unwrap();
        assert!(s.claim("nsim", 0, "").is_err());
    }

    #[test]
    fn failed_reset_keeps_the_claim() {
        let d = tempfile::tempdir().unwrap();
        let s = ClaimStore::new(d.path());
        let t = s.claim("p", 1, "vm").unwrap();
        let r: Result<()> = s.release_with("p", 1, Some(&t), false, || Err(Error::Unsupported("boom".into())));
        assert!(r.is_err());
        assert_eq!(s.read("p", 1).unwrap().owner.as_deref(), Some("vm"));
    }
}
