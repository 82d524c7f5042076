//! `/v1/qos-policies`: ingress/egress rate and burst; stored now, enforced by the switch later.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

use super::{ApiResult, App, blocking, json, parse_body, plain};
use crate::model::QosPolicy;
use crate::store::Kind;

pub(super) fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route("/v1/qos-policies", get(list).post(create))
        .route("/v1/qos-policies/{id}", get(show).delete(delete))
}

async fn list(State(app): State<App>) -> ApiResult<Response> {
    plain::list::<QosPolicy>(app, Kind::QosPolicy).await
}

async fn create(State(app): State<App>, body: Bytes) -> ApiResult<Response> {
    let q: QosPolicy = parse_body(&body)?;
    let out = q.clone();
    blocking(move || app.store.create_plain(Kind::QosPolicy, &q.id, &q)).await?;
    Ok(json(StatusCode::CREATED, &out))
}

async fn show(s: State<App>, id: Path<String>) -> ApiResult<Response> {
    plain::show::<QosPolicy>(s, id, Kind::QosPolicy).await
}

async fn delete(State(app): State<App>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    plain::delete(app, id, Kind::QosPolicy).await
}
