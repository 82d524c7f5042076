//! The test bed every Sluice integration test runs in.
//!
//! It owns two things:
//! - [`Netns`]: throw-away network namespaces with veth pairs, bridges,
//!   VXLAN devices and TAPs inside them, a way to run a command or a closure
//!   inside one, and removal of everything on drop — also when a test fails
//!   or panics. Names carry the process id, so parallel tests and parallel
//!   test binaries never collide, and namespaces left behind by a process
//!   that was killed are swept the next time a test bed starts.
//! - [`lab`]: a runner for the QEMU SR-IOV lab (`shared/lab/sriov-vm.sh`), for
//!   what this host's kernel lacks (SR-IOV drivers, netdevsim, cls_flower).
//!
//! It must not be a dependency of anything but tests and benchmarks. Devices
//! are made with iproute2 (`ip`), the tool an operator would use to set up the
//! same topology by hand: a failing test then prints the exact command to
//! replay, and the test bed cannot share a bug with Sluice's own netlink code.
//! Everything here needs root.

pub mod lab;
mod netns;
pub mod rng;

pub use netns::{CommandError, Netns, unique_suffix};
