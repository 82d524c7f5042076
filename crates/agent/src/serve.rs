//! Running the agent: open the store, repair host claims, listen on a
//! unix socket (mode 0600) until SIGTERM or Ctrl-C.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use sluice_sriov::{Host, SysfsRoot};

use crate::api::{App, router};
use crate::host::{HostSide, VfReset};
use crate::model::{Physnet, Pool};
use crate::store::{Kind, Store};

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

/// Opens the state and builds the handler state (also used by tests).
pub fn open(cfg: &Config) -> anyhow::Result<App> {
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
    Ok(App { store: Arc::new(store), host: Arc::new(host), locks: Arc::default() })
}

/// Runs the agent until SIGTERM or Ctrl-C.
pub fn run(cfg: Config) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start tokio")?;
    rt.block_on(async move {
        let app = open(&cfg)?;
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
