//! The REST API (axum) under `/v1/`: one file per resource, JSON bodies
//! that reject unknown fields, errors as `{"error": "...", "field": "..."}`.
//!
//! Handlers run store and host work on the blocking pool: redb
//! serialises write transactions, so concurrent binds queue there and the
//! pool is never over-subscribed.

mod networks;
mod physnets;
mod pools;
mod ports;
mod qos_policies;
mod security_groups;

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::host::HostSide;
use crate::model::{Pool, Port, PortState, Validate};
use crate::reconcile::Reconciler;
use crate::store::{Kind, Store};

/// The OpenAPI 3 document, committed as `crates/agent/openapi.json`.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// Every (method, path) the router serves; a test checks it against
/// [`OPENAPI`] both ways and against the router.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/openapi.json"),
    ("get", "/v1/physnets"),
    ("post", "/v1/physnets"),
    ("get", "/v1/physnets/{name}"),
    ("delete", "/v1/physnets/{name}"),
    ("get", "/v1/networks"),
    ("post", "/v1/networks"),
    ("get", "/v1/networks/{name}"),
    ("delete", "/v1/networks/{name}"),
    ("get", "/v1/ports"),
    ("post", "/v1/ports"),
    ("get", "/v1/ports/{id}"),
    ("delete", "/v1/ports/{id}"),
    ("get", "/v1/pools"),
    ("get", "/v1/pools/{name}"),
    ("get", "/v1/security-groups"),
    ("post", "/v1/security-groups"),
    ("get", "/v1/security-groups/{id}"),
    ("delete", "/v1/security-groups/{id}"),
    ("get", "/v1/qos-policies"),
    ("post", "/v1/qos-policies"),
    ("get", "/v1/qos-policies/{id}"),
    ("delete", "/v1/qos-policies/{id}"),
    ("get", "/metrics"),
];

/// Shared state of the handlers.
#[derive(Debug, Clone)]
pub struct App {
    /// The intent store.
    pub store: Arc<Store>,
    /// The host side.
    pub host: Arc<HostSide>,
    /// Per-port-id locks: bind, release and the reconciler's work on one
    /// id never interleave.
    pub locks: Arc<PortLocks>,
    /// The reconciler (triggered after every bind and release).
    pub reconciler: Arc<Reconciler>,
    /// More `/metrics` text (the datapath's counters, added by `sluice serve`).
    pub metrics: Arc<Vec<Arc<dyn MetricsSource>>>,
}

/// A source of more Prometheus text for `/metrics`. `sluice serve`
/// registers the datapath's counters through this
/// ([`crate::serve::Extras::metrics`]).
pub trait MetricsSource: Send + Sync + std::fmt::Debug {
    /// Appends metric families (with `# HELP` and `# TYPE` lines) to `out`.
    fn write_metrics(&self, out: &mut String);
}

/// Striped locks keyed by port id (64 stripes; distinct ids may share a
/// stripe, which only serialises them).
#[derive(Debug)]
pub struct PortLocks {
    stripes: Vec<std::sync::Mutex<()>>,
}

impl Default for PortLocks {
    fn default() -> Self {
        PortLocks { stripes: (0..64).map(|_| std::sync::Mutex::new(())).collect() }
    }
}

impl PortLocks {
    /// Locks the stripe of `id` (a poisoned stripe is still a lock: the
    /// guarded data is `()`).
    pub fn lock(&self, id: &str) -> std::sync::MutexGuard<'_, ()> {
        let h = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
        // Invariant: 64 stripes, index < 64.
        let m = &self.stripes[(h % 64) as usize];
        m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// An [`Error`] as an HTTP response.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(error = %self.0, "request failed");
        }
        let body = serde_json::json!({ "error": self.0.to_string(), "field": self.0.field() });
        (status, axum::Json(body)).into_response()
    }
}

/// Handler result.
pub type ApiResult<T> = Result<T, ApiError>;

/// Runs store/host work on the blocking pool.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> crate::error::Result<T> + Send + 'static) -> ApiResult<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError),
        Err(e) => Err(ApiError(Error::Store(format!("request task failed: {e}")))),
    }
}

/// Parses and validates a JSON request body. Type errors name the field
/// path (`segment.id`); unknown and missing fields name the field.
pub fn parse_body<T: DeserializeOwned + Validate>(body: &Bytes) -> ApiResult<T> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let v: T = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        let named = ["unknown field `", "missing field `"].iter().find_map(|p| {
            let rest = message.split_once(p)?.1;
            let n = rest.split_once('`')?.0;
            Some(if n.is_empty() { "(empty field name)".to_string() } else { n.to_string() })
        });
        let field = match (named, path.as_str()) {
            (Some(n), "." | "") => Some(n),
            (Some(n), p) if p.ends_with(n.as_str()) => Some(p.to_string()),
            (Some(n), p) => Some(format!("{p}.{n}")),
            (None, "." | "") => Some("body".to_string()),
            (None, p) => Some(p.to_string()),
        };
        ApiError(Error::Body { field, message })
    })?;
    v.validate()?;
    Ok(v)
}

/// JSON with a status.
pub fn json<T: serde::Serialize>(status: StatusCode, v: &T) -> Response {
    (status, axum::Json(v)).into_response()
}

/// Middleware for the TCP listener: the request must carry
/// `Authorization: Bearer <token>` (compared in constant time).
pub async fn require_bearer(token: Arc<str>, req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let (a, b) = (given.as_bytes(), token.as_bytes());
    let diff = a.iter().zip(b).fold(a.len() ^ b.len(), |d, (x, y)| d | usize::from(x ^ y));
    if diff != 0 || b.is_empty() {
        let body = serde_json::json!({
            "error": "a valid bearer token is required on the TCP listener",
            "field": "Authorization",
        });
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    }
    next.run(req).await
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn not_found() -> ApiError {
    ApiError(Error::NotFound { kind: "route", id: "for this path".into(), field: None })
}

async fn method_not_allowed(method: axum::http::Method) -> Response {
    let body = serde_json::json!({
        "error": format!("method {method} is not allowed on this path; see /v1/openapi.json for the methods each path takes"),
        "field": "method",
    });
    (StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response()
}

/// Prometheus text: ports by state, pool usage, the reconciler's passes
/// and errors, then every registered [`MetricsSource`].
pub fn metrics_text(app: &App) -> crate::error::Result<String> {
    let mut out = store_metrics(&app.store)?;
    let st = &app.reconciler.stats;
    let counters = [
        ("sluice_agent_reconcile_passes_total", "Reconcile passes run.", st.passes.load(Ordering::Relaxed)),
        (
            "sluice_agent_reconcile_errors_total",
            "Reconcile errors: ports a pass left in error, and passes that failed.",
            st.errors.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, v) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
    }
    let _ = writeln!(
        out,
        "# HELP sluice_agent_reconcile_last_pass_seconds Duration of the last reconcile pass.\n\
         # TYPE sluice_agent_reconcile_last_pass_seconds gauge\n\
         sluice_agent_reconcile_last_pass_seconds {:.6}",
        st.last_pass_us.load(Ordering::Relaxed) as f64 / 1e6
    );
    for m in app.metrics.iter() {
        m.write_metrics(&mut out);
    }
    Ok(out)
}

/// Ports by state and pool usage, from the store.
pub fn store_metrics(store: &Store) -> crate::error::Result<String> {
    let ports: Vec<Port> = store.list(Kind::Port)?;
    let pools: Vec<Pool> = store.list(Kind::Pool)?;
    let mut out = String::new();
    let _ = writeln!(out, "# HELP sluice_agent_ports Ports by state.\n# TYPE sluice_agent_ports gauge");
    for st in PortState::ALL {
        let n = ports.iter().filter(|p| p.status.state == st).count();
        let _ = writeln!(out, "sluice_agent_ports{{state=\"{}\"}} {n}", st.as_str());
    }
    let _ = writeln!(out, "# HELP sluice_agent_pool_vfs VFs per pool by use.\n# TYPE sluice_agent_pool_vfs gauge");
    for p in &pools {
        let _ = writeln!(out, "sluice_agent_pool_vfs{{pool=\"{}\",state=\"free\"}} {}", p.name, p.free());
        let _ = writeln!(out, "sluice_agent_pool_vfs{{pool=\"{}\",state=\"used\"}} {}", p.name, p.used());
    }
    let _ =
        writeln!(out, "# HELP sluice_agent_pool_size VFs per pool (free + used).\n# TYPE sluice_agent_pool_size gauge");
    for p in &pools {
        let _ = writeln!(out, "sluice_agent_pool_size{{pool=\"{}\"}} {}", p.name, p.vfs.len());
    }
    let _ = writeln!(
        out,
        "# HELP sluice_agent_pool_pfs_held PFs per pool held whole by direct-physical ports.\n\
         # TYPE sluice_agent_pool_pfs_held gauge"
    );
    for p in &pools {
        let held = p.pfs.iter().filter(|s| s.holder.is_some()).count();
        let _ = writeln!(out, "sluice_agent_pool_pfs_held{{pool=\"{}\"}} {held}", p.name);
    }
    Ok(out)
}

async fn metrics(axum::extract::State(app): axum::extract::State<App>) -> ApiResult<Response> {
    let text = blocking(move || metrics_text(&app)).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// The router with every route in [`ROUTES`].
pub fn router(app: App) -> Router {
    Router::new()
        .route("/v1/openapi.json", get(openapi))
        .merge(physnets::routes())
        .merge(networks::routes())
        .merge(ports::routes())
        .merge(pools::routes())
        .merge(security_groups::routes())
        .merge(qos_policies::routes())
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app)
}

/// Handlers shared by the plain resources (security groups, QoS policies).
pub(crate) mod plain {
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use axum::response::Response;
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use super::{ApiResult, App, blocking, json};
    use crate::error::Error;
    use crate::store::Kind;

    pub async fn list<T: DeserializeOwned + Serialize + Send + 'static>(app: App, kind: Kind) -> ApiResult<Response> {
        let v: Vec<T> = blocking(move || app.store.list(kind)).await?;
        Ok(json(StatusCode::OK, &v))
    }

    pub async fn show<T: DeserializeOwned + Serialize + Send + 'static>(
        State(app): State<App>,
        Path(id): Path<String>,
        kind: Kind,
    ) -> ApiResult<Response> {
        let id2 = id.clone();
        let v: Option<T> = blocking(move || app.store.get(kind, &id2)).await?;
        let v = v.ok_or(Error::NotFound { kind: kind.noun(), id, field: None })?;
        Ok(json(StatusCode::OK, &v))
    }

    pub async fn delete(app: App, id: String, kind: Kind) -> ApiResult<StatusCode> {
        blocking(move || app.store.delete(kind, &id)).await?;
        Ok(StatusCode::NO_CONTENT)
    }
}
