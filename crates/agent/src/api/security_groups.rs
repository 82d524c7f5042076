//! `/v1/security-groups`: stored now, enforced by the switch later.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

use super::{ApiResult, App, blocking, json, parse_body, plain};
use crate::model::SecurityGroup;
use crate::store::Kind;

pub(super) fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route("/v1/security-groups", get(list).post(create))
        .route("/v1/security-groups/{id}", get(show).delete(delete))
}

async fn list(State(app): State<App>) -> ApiResult<Response> {
    plain::list::<SecurityGroup>(app, Kind::SecurityGroup).await
}

async fn create(State(app): State<App>, body: Bytes) -> ApiResult<Response> {
    let sg: SecurityGroup = parse_body(&body)?;
    let out = sg.clone();
    blocking(move || app.store.create_plain(Kind::SecurityGroup, &sg.id, &sg)).await?;
    Ok(json(StatusCode::CREATED, &out))
}

async fn show(s: State<App>, id: Path<String>) -> ApiResult<Response> {
    plain::show::<SecurityGroup>(s, id, Kind::SecurityGroup).await
}

async fn delete(State(app): State<App>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    plain::delete(app, id, Kind::SecurityGroup).await
}
