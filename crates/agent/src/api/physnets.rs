//! `/v1/physnets`: physical networks with device specs; creating one
//! builds its VF pool from the host inventory.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

use super::{ApiResult, App, blocking, json, parse_body, plain};
use crate::error::Error;
use crate::model::{Physnet, Pool};
use crate::store::Kind;

pub(super) fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route("/v1/physnets", get(list).post(create))
        .route("/v1/physnets/{name}", get(show).delete(delete))
}

async fn list(State(app): State<App>) -> ApiResult<Response> {
    plain::list::<Physnet>(app, Kind::Physnet).await
}

async fn create(State(app): State<App>, body: Bytes) -> ApiResult<Response> {
    let p: Physnet = parse_body(&body)?;
    let out = p.clone();
    blocking(move || {
        let pool = app.host.build_pool(&p)?;
        app.store.create_physnet(&p, &pool)
    })
    .await?;
    Ok(json(StatusCode::CREATED, &out))
}

async fn show(s: State<App>, id: Path<String>) -> ApiResult<Response> {
    plain::show::<Physnet>(s, id, Kind::Physnet).await
}

async fn delete(State(app): State<App>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let app2 = app.clone();
    let id2 = id.clone();
    let pool: Option<Pool> = blocking(move || app2.store.get(Kind::Pool, &id2)).await?;
    if let Some(h) = pool.iter().flat_map(|p| &p.vfs).find_map(|v| v.holder.as_ref()) {
        return Err(Error::InUse { kind: Kind::Physnet.noun(), id, user: format!("port {}", h.port) }.into());
    }
    plain::delete(app, id, Kind::Physnet).await
}
