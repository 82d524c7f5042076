//! `/v1/networks`: flat, VLAN, VXLAN or GRE segments.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

use super::{ApiResult, App, blocking, json, parse_body, plain};
use crate::model::Network;
use crate::store::Kind;

pub(super) fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route("/v1/networks", get(list).post(create))
        .route("/v1/networks/{name}", get(show).delete(delete))
}

async fn list(State(app): State<App>) -> ApiResult<Response> {
    plain::list::<Network>(app, Kind::Network).await
}

async fn create(State(app): State<App>, body: Bytes) -> ApiResult<Response> {
    let n: Network = parse_body(&body)?;
    let out = n.clone();
    blocking(move || app.store.create_network(&n)).await?;
    Ok(json(StatusCode::CREATED, &out))
}

async fn show(s: State<App>, id: Path<String>) -> ApiResult<Response> {
    plain::show::<Network>(s, id, Kind::Network).await
}

async fn delete(State(app): State<App>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    plain::delete(app, id, Kind::Network).await
}
