//! `sluice-flow`: the fast path's data structures, in the Open vSwitch
//! two-tier style.
//!
//! It owns:
//! - [`FlowKey`]: every field a rule may match, extracted from a frame in
//!   one pass ([`FlowKey::extract`]); [`Mask`] and [`Match`] over it, with
//!   each field inspectable on its own ([`Field`]).
//! - [`Classifier`]: rules with priorities in a tuple-space search, whose
//!   lookups report the mask bits they consulted; shared with datapath
//!   threads as RCU-style snapshots ([`ClassifierWriter`] /
//!   [`ClassifierReader`]).
//! - [`MegaflowCache`]: non-overlapping masked entries to action lists, one
//!   per datapath thread, with idle expiry, a flow limit with eviction,
//!   targeted revalidation and per-entry stats.
//! - [`Emc`]: the exact-match cache in front of it, with an admission
//!   policy that does not thrash under flow churn, keyed by flow keys or,
//!   for frames of the common shape, by [`FrameKey`]s (IPv4) and
//!   [`FrameKey6`]s (IPv6) read straight from
//!   the header bytes; [`FlowCache`] chains them, and skips the EMC on most
//!   batches while its hit rate is too low to pay for it.
//! - [`Smc`]: the signature-match cache between the two, which finds an
//!   untagged IPv4 frame's megaflow from its frame key when the EMC cannot
//!   hold its flows (a million of them), with no flow key built.
//! - [`Actions`]: compact, shareable action lists.
//!
//! It must not do I/O, make syscalls, read a clock (`now` is an argument,
//! in **milliseconds** of any monotonic clock the caller chooses) or take
//! locks, and nothing on a lookup path allocates. Executing actions on
//! packets belongs to `sluice-datapath`; deciding them (the slow path) too.
//!
//! It has no `unsafe` but one software-prefetch call in `prefetch` and
//! one SSE2 compare in `simd`; each module says why.

#![deny(unsafe_code)]

pub mod actions;
pub mod cache;
pub mod classifier;
pub mod emc;
pub mod frame;
mod hash;
pub mod key;
pub mod megaflow;
#[allow(unsafe_code)]
mod prefetch;
#[allow(unsafe_code)]
mod simd;
pub mod smc;

pub use actions::{Action, ActionError, Actions, ActionsBuilder, TunnelKind, TunnelSpec, TunnelTemplate};
pub use cache::FlowCache;
pub use classifier::{Classifier, ClassifierError, ClassifierReader, ClassifierWriter, Published, Rule, RuleId};
pub use emc::{Emc, EmcStats, ExactKey, InsertPolicy};
pub use frame::{FrameKey, FrameKey6};
pub use key::{Field, FieldDef, FieldKind, FlowKey, KEY_WORDS, Mask, Match, Metadata, TunnelMeta};
pub use megaflow::{FlowId, Megaflow, MegaflowCache, MegaflowError, RevalidateStats, Revalidation};
pub use smc::{Smc, SmcStats};
