//! Running the agent: open the store, repair host claims, sweep leftovers,
//! run a first reconcile pass, then listen on a unix socket (mode 0600) and
//! reconcile after every bind and release and every
//! [`Config::reconcile_interval`], until SIGTERM or Ctrl-C.
//!
//! `sluice serve` calls [`run_with`], handing in what it owns through
//! [`Extras`]: its switch (as [`SwitchPorts`]) and its counters (as
//! [`MetricsSource`]).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use sluice_sriov::{Host, SysfsRoot};

use crate::api::{App, MetricsSource, router};
use crate::host::{HostSide, VfReset};
use crate::model::{Physnet, Pool};
use crate::plumb::{MemoryPlumbing, Plumbing, SriovPlumbing};
use crate::reconcile::Reconciler;
use crate::store::{Kind, Store};
use crate::switch::{MemorySwitchPorts, SwitchPorts, TapSwitchPorts};

/// Where the agent keeps its state and listens.
#[derive(Debug, Clone)]
pub struct Config {
    /// State directory: `store.redb`, host claim records under `sriov/`.
    pub state_dir: PathBuf,
    /// Socket path (default `<state_dir>/api.sock`).
    pub socket: PathBuf,
    /// sysfs root (`/sys`, or a synthetic tree).
    pub sysfs_root: PathBuf,
    /// VF reset mode.
    pub vf_reset: VfReset,
    /// Optional TCP listener; every request on it must carry
    /// `Authorization: Bearer <token>`.
    pub tcp: Option<TcpListen>,
    /// Time between periodic reconcile passes (default 30 s).
    pub reconcile_interval: std::time::Duration,
}

/// Pause after a trigger before the pass (coalesces bursts of binds).
const TRIGGER_DEBOUNCE: std::time::Duration = std::time::Duration::from_millis(20);

/// Default time between periodic reconcile passes.
pub const DEFAULT_RECONCILE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

impl Config {
    /// A configuration with the defaults: socket `<state_dir>/api.sock`,
    /// sysfs at `/sys`, VF resets over rtnetlink, no TCP, reconcile every
    /// 30 s.
    pub fn new(state_dir: impl Into<PathBuf>) -> Config {
        let state_dir = state_dir.into();
        Config {
            socket: state_dir.join("api.sock"),
            state_dir,
            sysfs_root: PathBuf::from("/sys"),
            vf_reset: VfReset::Netlink,
            tcp: None,
            reconcile_interval: DEFAULT_RECONCILE_INTERVAL,
        }
    }
}

/// What the embedding binary adds to the agent.
#[derive(Debug, Default, Clone)]
pub struct Extras {
    /// The switch `normal` and `virtio-forwarder` ports are attached to.
    /// `None`: persistent TAPs on a real host ([`TapSwitchPorts`], records
    /// under `<state_dir>/switch`), memory on a synthetic one
    /// (`VfReset::ClaimOnly`).
    pub switch: Option<Arc<dyn SwitchPorts>>,
    /// More `/metrics` text (the datapath's counters).
    pub metrics: Vec<Arc<dyn MetricsSource>>,
}

/// The optional TCP listener.
#[derive(Clone)]
pub struct TcpListen {
    /// Address (`127.0.0.1:7480`).
    pub addr: std::net::SocketAddr,
    /// The bearer token.
    pub token: String,
}

impl std::fmt::Debug for TcpListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListen").field("addr", &self.addr).field("token", &"<redacted>").finish()
    }
}

/// Opens the state and builds the handler state with no [`Extras`] (also
/// used by tests).
pub fn open(cfg: &Config) -> anyhow::Result<App> {
    open_with(cfg, Extras::default())
}

/// Opens the state, repairs host claims, sweeps leftovers and runs the
/// first reconcile pass; returns the handler state.
pub fn open_with(cfg: &Config, extras: Extras) -> anyhow::Result<App> {
    std::fs::create_dir_all(&cfg.state_dir)
        .with_context(|| format!("cannot create state directory {}", cfg.state_dir.display()))?;
    std::fs::set_permissions(&cfg.state_dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict state directory {}", cfg.state_dir.display()))?;
    let store = Store::open(&cfg.state_dir.join("store.redb")).context("cannot open the store")?;
    let host = HostSide::new(Host::new(SysfsRoot::new(&cfg.sysfs_root), cfg.state_dir.join("sriov")), cfg.vf_reset);
    // Pick up VFs that appeared since the last run; keep holders.
    for p in store.list::<Physnet>(Kind::Physnet)? {
        match host.build_pool(&p) {
            Ok(fresh) => {
                let merged: Pool = store.refresh_pool(&fresh)?;
                tracing::info!(pool = p.name, vfs = merged.vfs.len(), free = merged.free(), "pool ready");
            }
            Err(e) => tracing::warn!(physnet = p.name, error = %e, "cannot refresh pool; keeping the stored one"),
        }
    }
    crate::reconcile::claims(&store, &host).context("cannot repair host claim records")?;
    let synthetic = cfg.vf_reset == VfReset::ClaimOnly;
    let plumbing: Arc<dyn Plumbing> =
        if synthetic { Arc::new(MemoryPlumbing::default()) } else { Arc::new(SriovPlumbing::new(host.host().clone())) };
    let switch: Arc<dyn SwitchPorts> = match extras.switch {
        Some(s) => s,
        None if synthetic => Arc::new(MemorySwitchPorts::default()),
        None => Arc::new(TapSwitchPorts::new(cfg.state_dir.join("switch"))?),
    };
    let store = Arc::new(store);
    let locks: Arc<crate::api::PortLocks> = Arc::default();
    let reconciler = Arc::new(Reconciler::new(store.clone(), locks.clone(), plumbing, switch));
    match reconciler.sweep() {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "swept leftovers of released ports"),
        Err(e) => tracing::warn!(error = %e, "cannot sweep leftovers of released ports"),
    }
    if let Ok(r) = reconciler.pass() {
        tracing::info!(ports = r.ports, active = r.active, errors = r.errors, "first reconcile pass");
    }
    Ok(App { store, host: Arc::new(host), locks, reconciler, metrics: Arc::new(extras.metrics) })
}

/// Runs reconcile passes when triggered and every `interval`, forever. A
/// trigger is followed by a short pause, so a burst of binds gets one pass.
pub async fn reconcile_loop(rec: Arc<Reconciler>, interval: std::time::Duration) {
    loop {
        let triggered = tokio::select! {
            () = rec.triggered() => {
                tokio::time::sleep(TRIGGER_DEBOUNCE).await;
                true
            }
            () = tokio::time::sleep(interval) => false,
        };
        let r = rec.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || if triggered { r.pass_pending() } else { r.pass() }).await {
            tracing::error!(error = %e, "reconcile pass panicked");
        }
    }
}

/// Runs the agent until SIGTERM or Ctrl-C.
pub fn run(cfg: Config) -> anyhow::Result<()> {
    run_with(cfg, Extras::default())
}

/// Runs the agent with what the embedding binary adds, until SIGTERM or
/// Ctrl-C.
pub fn run_with(cfg: Config, extras: Extras) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start tokio")?;
    rt.block_on(async move {
        let app = open_with(&cfg, extras)?;
        let interval = cfg.reconcile_interval.max(std::time::Duration::from_millis(100));
        let looper = tokio::spawn(reconcile_loop(app.reconciler.clone(), interval));
        let listener = bind_socket(&cfg.socket)?;
        tracing::info!(socket = %cfg.socket.display(), "sluice agent listening");
        let stop = Arc::new(tokio::sync::Notify::new());
        let unix = {
            let stop = stop.clone();
            axum::serve(listener, router(app.clone())).with_graceful_shutdown(async move { stop.notified().await })
        };
        let tcp = match &cfg.tcp {
            Some(t) => {
                let l = tokio::net::TcpListener::bind(t.addr)
                    .await
                    .with_context(|| format!("cannot listen on {}", t.addr))?;
                tracing::info!(addr = %t.addr, "sluice agent listening on TCP (bearer token required)");
                let token: Arc<str> = Arc::from(t.token.as_str());
                let r = router(app).layer(axum::middleware::from_fn(move |req, next| {
                    crate::api::require_bearer(token.clone(), req, next)
                }));
                let stop = stop.clone();
                Some(axum::serve(l, r).with_graceful_shutdown(async move { stop.notified().await }))
            }
            None => None,
        };
        let signal = async move {
            shutdown().await;
            stop.notify_waiters();
        };
        let tcp = async move {
            match tcp {
                Some(t) => t.await,
                None => Ok(()),
            }
        };
        let (u, t, ()) = tokio::join!(unix, tcp, signal);
        looper.abort();
        u.context("unix socket server failed")?;
        t.context("TCP server failed")
    })
}

/// Binds the socket at a temporary name, restricts it to 0600 and renames
/// it into place, so no client can connect while it is world-accessible.
fn bind_socket(path: &std::path::Path) -> anyhow::Result<tokio::net::UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let l = tokio::net::UnixListener::bind(&tmp).with_context(|| format!("cannot bind {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot chmod {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot move the socket to {}", path.display()))?;
    Ok(l)
}

async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}
