//! `/v1/pools`: who holds which VF (read-only).

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;

use super::{ApiResult, App, plain};
use crate::model::Pool;
use crate::store::Kind;

pub(super) fn routes() -> axum::Router<App> {
    axum::Router::new().route("/v1/pools", get(list)).route("/v1/pools/{name}", get(show))
}

async fn list(State(app): State<App>) -> ApiResult<Response> {
    plain::list::<Pool>(app, Kind::Pool).await
}

async fn show(s: State<App>, id: Path<String>) -> ApiResult<Response> {
    plain::show::<Pool>(s, id, Kind::Pool).await
}
