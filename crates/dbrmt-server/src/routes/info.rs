//! `GET /v1/models`, `GET /health`, `GET /metrics`, and the JSON 404 / 405 of routes that do not exist.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::app::App;
use crate::error::ApiError;

pub async fn models(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    let m = &app.model;
    Json(json!({
        "object": "list",
        "data": [{
            "id": m.name,
            "object": "model",
            "created": m.created,
            "owned_by": "dbrmt",
            "dbrmt": {
                "identity": m.identity,
                "layers": m.layers,
                "segment_size": m.segment_size,
                "mem_tokens": m.mem_tokens,
                "vocab_size": m.vocab,
                "state_bytes": m.state_bytes,
                "tokenizer": app.shared.tokenizer.is_some(),
            },
        }],
    }))
}

/// 200 while the engine's thread runs; 503 once it has stopped.
pub async fn health(State(app): State<Arc<App>>) -> Response {
    if app.scheduler.is_alive() {
        Json(json!({"status": "ok"})).into_response()
    } else {
        ApiError::unavailable("the engine has stopped").into_response()
    }
}

pub async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        app.render_metrics(),
    )
        .into_response()
}

pub async fn no_route() -> ApiError {
    ApiError::not_found("not_found", "no such route")
}

pub async fn no_method() -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        ..ApiError::invalid("this route does not take that method")
    }
}
