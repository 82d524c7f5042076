//! `sluice-switch`: the running switch — what `sluice serve` and
//! `sluice demo` start.
//!
//! **Owns:** the switch configuration (TOML for `serve`, the same types in
//! JSON on the control socket; [`config`]); opening ports through
//! `sluice-io` by type (TAP, AF_PACKET, AF_XDP); the bridges (several
//! NORMAL bridges behind one datapath, [`bridges`]); the [`Switch`] that
//! ties them to `sluice-datapath`'s threads; the control socket
//! ([`control`]: show, add/remove ports, change VLANs, dump flows, trace,
//! MAC tables); packet specs for tracing ([`spec`]).
//!
//! **Must not:** forward packets itself (the datapath threads do), or
//! touch SR-IOV or the agent's store. Adding or removing a port never
//! pauses the other ports: the datapath swaps its port table between
//! batches.

#![forbid(unsafe_code)]

pub mod bridges;
pub mod config;
pub mod control;
pub mod spec;
mod switch;

pub use config::{ConfigError, PortConfig, PortType, SwitchConfig, VlanConfig};
pub use control::{ControlServer, Request};
pub use switch::{MacShow, PortShow, Show, Switch, SwitchError, ThreadShow, Trace};
