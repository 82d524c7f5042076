//! `/v1/ports`: create = bind request (allocates a VF for direct, macvtap
//! and virtio-forwarder ports), delete = release.
//!
//! Order of effects, chosen so a crash at any point is repaired by
//! [`crate::reconcile::claims`] and the reconciler at the next start:
//! - bind: store transaction (allocate + write port) → host claim (reset,
//!   then claim record) → store the claim token → trigger the reconciler,
//!   which plugs the port and sets its status (`bound` → `active`);
//! - release: unplug (switch port, macvtap, VF back to its default driver)
//!   → host reset guarded by the token → store transaction (free the VF,
//!   delete the port) → trigger the reconciler.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::{ApiResult, App, blocking, json, parse_body, plain};
use crate::error::Error;
use crate::model::{Port, PortRequest};
use crate::store::Kind;

pub(super) fn routes() -> axum::Router<App> {
    axum::Router::new().route("/v1/ports", get(list).post(create)).route("/v1/ports/{id}", get(show).delete(delete))
}

async fn list(State(app): State<App>) -> ApiResult<Response> {
    plain::list::<Port>(app, Kind::Port).await
}

/// Binds a port (blocking; the API runs it on the blocking pool). Holds
/// the port's lock, so a release of the same id cannot interleave.
pub fn bind(app: &App, req: &PortRequest) -> crate::error::Result<Port> {
    let r = bind_locked(app, req);
    match &r {
        Ok(p) => app.reconciler.trigger_port(&p.spec.id),
        Err(_) => app.reconciler.trigger(),
    }
    r
}

fn bind_locked(app: &App, req: &PortRequest) -> crate::error::Result<Port> {
    let _guard = app.locks.lock(&req.id);
    let port = app.store.bind(req)?;
    let Some(b) = port.binding.clone() else { return Ok(port) };
    match app.host.claim(&b.pf_bus_id, b.vf, &req.id) {
        Ok(token) => app.store.set_host_claim(&req.id, b.generation, &token),
        Err(e) => {
            // The store says the VF is ours; a host record naming someone
            // else is a leftover (a crash, an operator). Repair as at start-up.
            tracing::warn!(port = req.id, vf = b.vf, error = %e, "host claim refused; repairing the claim record");
            let slot = app
                .store
                .get::<crate::model::Pool>(Kind::Pool, &b.pool)?
                .and_then(|p| p.vfs.into_iter().find(|s| s.pf_bus_id == b.pf_bus_id && s.vf == b.vf));
            let repaired = match slot {
                Some(s) => crate::reconcile::vf(&app.store, &app.host, &s, &mut Default::default()),
                None => Err(e),
            };
            match repaired {
                Ok(()) => app.store.get(Kind::Port, &req.id)?.ok_or(Error::NotFound {
                    kind: "port",
                    id: req.id.clone(),
                    field: None,
                }),
                Err(e) => {
                    app.store.release(&req.id, None, Some(b.generation))?;
                    Err(e)
                }
            }
        }
    }
}

/// Releases a port: host reset guarded by the claim token, then the store.
/// Holds the port's lock.
pub fn release(app: &App, id: &str, owner: Option<&str>, generation: Option<u64>) -> crate::error::Result<Port> {
    let guard = app.locks.lock(id);
    let port: Port =
        app.store.get(Kind::Port, id)?.ok_or_else(|| Error::NotFound { kind: "port", id: id.into(), field: None })?;
    let held = port.binding.as_ref().map(|b| b.generation);
    if owner.is_some_and(|o| o != port.spec.owner) || generation.is_some_and(|g| Some(g) != held) {
        return Err(Error::StaleRelease {
            port: id.into(),
            expected: format!("owner {} generation {:?}", owner.unwrap_or("(any)"), generation),
            actual: format!("owner {} generation {:?}", port.spec.owner, held),
        });
    }
    if let Err(e) = app.reconciler.teardown(&port) {
        // The store is the authority: the release goes on, and the next
        // start-up sweep removes what is left.
        app.reconciler.stats.errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(port = id, error = %e, "cannot unplug the port completely; releasing it anyway");
    }
    if let Some(b) = &port.binding {
        app.host.release(&b.pf_bus_id, b.vf, b.host_claim.as_ref(), false)?;
    }
    let out = app.store.release(id, owner, generation);
    drop(guard);
    app.reconciler.trigger_port(id);
    out
}

async fn create(State(app): State<App>, body: Bytes) -> ApiResult<Response> {
    let req: PortRequest = parse_body(&body)?;
    let port = blocking(move || bind(&app, &req)).await?;
    Ok(json(StatusCode::CREATED, &port))
}

async fn show(s: State<App>, id: Path<String>) -> ApiResult<Response> {
    plain::show::<Port>(s, id, Kind::Port).await
}

/// Release guard: both optional; when given they must match the port.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseQuery {
    owner: Option<String>,
    generation: Option<u64>,
}

async fn delete(
    State(app): State<App>,
    Path(id): Path<String>,
    q: Result<Query<ReleaseQuery>, QueryRejection>,
) -> ApiResult<StatusCode> {
    let Query(q) = q.map_err(|e| {
        let message = e.body_text();
        let field = ["owner", "generation"].into_iter().find(|f| message.contains(f)).unwrap_or("query");
        Error::invalid(field, format!("is not a valid release guard: {message}"))
    })?;
    blocking(move || release(&app, &id, q.owner.as_deref(), q.generation)).await?;
    Ok(StatusCode::NO_CONTENT)
}
