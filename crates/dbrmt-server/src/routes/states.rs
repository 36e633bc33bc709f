//! `GET /v1/states` (the list), `GET / PUT / DELETE /v1/states/{id}`: export a stored state as a state file (the
//! format of `dbrmt generate --save-state`), import one, delete one. An upload is checked whole — the model's
//! identity, the shapes, the checksum, the open segment — before anything in the store changes.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use dbrmt_formats::{SavedState, StateExpect};
use serde_json::json;

use crate::app::App;
use crate::error::ApiError;
use crate::states::covered_tokens;

/// Ids a client may choose: what is safe in a URL path and a file name.
fn check_id(id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "state id `{id}`: use 1 to 128 of A-Z, a-z, 0-9, `.`, `_`, `-`"
        )))
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found("state_not_found", format!("no stored state `{id}`"))
}

pub async fn list(State(app): State<Arc<App>>) -> Response {
    let states = match app.states() {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let data: Vec<_> = states
        .list(app.model.segment_size)
        .into_iter()
        .map(|(id, bytes, tokens)| json!({"id": id, "object": "state", "bytes": bytes, "tokens": tokens}))
        .collect();
    Json(json!({
        "object": "list",
        "data": data,
        "max_states": states.max_states(),
        "max_bytes": states.max_bytes(),
    }))
    .into_response()
}

pub async fn export(State(app): State<Arc<App>>, UrlPath(id): UrlPath<String>) -> Response {
    let run = async {
        let state = app.states()?.get(&id).ok_or_else(|| not_found(&id))?;
        let identity = app.model.identity.clone();
        let bytes = tokio::task::spawn_blocking(move || state.to_bytes(&identity))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(|e| ApiError::internal(format!("writing the state: {e}")))?;
        Ok::<_, ApiError>(
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/octet-stream")],
                bytes,
            )
                .into_response(),
        )
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

pub async fn import(State(app): State<Arc<App>>, UrlPath(id): UrlPath<String>, body: Body) -> Response {
    let run = async {
        // the body is read first: answering before it is read would reset a client still sending
        let body = super::body(body, app.model.state_file_bytes).await?;
        check_id(&id)?;
        let facts = app.model.clone();
        let state = tokio::task::spawn_blocking(move || read_state(&body, &facts))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))??;
        let (bytes, tokens) = (state.bytes(), covered_tokens(&state, app.model.segment_size));
        app.states()?
            .insert(id.clone(), state)
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        Ok::<_, ApiError>(
            (
                StatusCode::CREATED,
                Json(json!({"id": id, "object": "state", "bytes": bytes, "tokens": tokens})),
            )
                .into_response(),
        )
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

pub async fn delete(State(app): State<Arc<App>>, UrlPath(id): UrlPath<String>) -> Response {
    let run = async {
        if !app.states()?.remove(&id) {
            return Err(not_found(&id));
        }
        Ok(Json(json!({"id": id, "object": "state", "deleted": true})).into_response())
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// A state file for this model, or the 400 that says what is wrong with it: the checks of
/// [`SavedState::from_bytes`] (identity, tensors, shapes, finite values, open ids), and a checksum, which a stored
/// state must have — without one a corrupted tensor cannot be told from a good one.
fn read_state(bytes: &[u8], m: &crate::app::ModelFacts) -> Result<SavedState, ApiError> {
    let bad = |msg: String| ApiError::invalid(format!("refused state: {msg}"));
    let expect = StateExpect {
        identity: &m.identity,
        layers: m.layers,
        d_key: m.d_key,
        hidden: m.hidden,
        vocab: Some(m.vocab),
        segment_size: Some(m.segment_size),
        parts: None,
    };
    let loaded = SavedState::from_bytes(Path::new("upload"), bytes, &expect).map_err(|e| bad(e.to_string()))?;
    if loaded.warning.is_some() {
        return Err(bad(
            "it has no checksum (written by an older dbrmt); save it again with this one".into(),
        ));
    }
    Ok(loaded.saved)
}
