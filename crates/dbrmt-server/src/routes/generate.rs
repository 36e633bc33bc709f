//! `POST /v1/completions` and `POST /v1/chat/completions`: read and check the request, turn its prompt into ids,
//! submit it to the scheduler, and answer with the whole completion or a stream of server-sent events.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use tokio::sync::mpsc::UnboundedReceiver;

use super::prompt_ids::{prompt_ids, Continues};
use super::stream::{sse, StreamOptions};
use crate::app::App;
use crate::error::ApiError;
use crate::protocol::{parse_json, Endpoint, GenerateRequest, Shape};
use crate::scheduler::{Event, Job};

pub async fn completions(State(app): State<Arc<App>>, body: Body) -> Response {
    generate(app, Endpoint::Completions, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub async fn chat(State(app): State<Arc<App>>, body: Body) -> Response {
    generate(app, Endpoint::Chat, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn generate(app: Arc<App>, endpoint: Endpoint, body: Body) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    let body = super::body(body, app.limits.max_body_bytes).await?;
    let request: GenerateRequest = parse_json(&body)?;
    let v = request.validate(endpoint, &app.model.name, &app.limits)?;
    let state = match &v.state {
        Some(id) => Some(app.states()?.get(id).ok_or_else(|| state_not_found(&app, id))?),
        None => None,
    };
    if v.store_state {
        check_state_fits(&app)?;
    }
    if !v.stop.is_empty() {
        app.tokenizer()?;
    }
    let continues = match (&state, app.shared.tokenizer.as_deref()) {
        (None, _) => Continues::No,
        (Some(s), Some(t)) if s.open_ids.last().is_some_and(|id| t.stop_ids().contains(id)) => Continues::AfterTurn,
        (Some(_), _) => Continues::Yes,
    };
    let ids = prompt_ids(&app, v.prompt.clone(), continues).await?;
    if ids.is_empty() && state.as_ref().is_none_or(|s| s.open_ids.is_empty()) {
        return Err(ApiError::invalid_field("prompt", "the prompt is empty"));
    }
    let job = Job {
        ids,
        state,
        temperature: v.temperature,
        top_p: v.top_p,
        seed: v.seed.unwrap_or_else(crate::app::process_seed),
        max_tokens: v.max_tokens,
        stop: v.stop.clone(),
        ignore_eos: v.ignore_eos,
        store_state: v.store_state,
        progress: v.progress,
        arrived,
    };
    let events = app.scheduler.submit(job)?;
    let shape = Shape {
        endpoint,
        id: app.response_id(match endpoint {
            Endpoint::Completions => "cmpl",
            Endpoint::Chat => "chatcmpl",
        }),
        created: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        model: app.model.name.clone(),
    };
    // without a tokenizer the ids are the only output
    let token_ids = v.token_ids || app.shared.tokenizer.is_none();
    if v.stream {
        let opts = StreamOptions {
            token_ids,
            include_usage: v.include_usage,
        };
        return Ok(sse(shape, events, opts, app.limits.keep_alive).into_response());
    }
    collect(shape, events, v.token_ids)
        .await
        .map(IntoResponse::into_response)
}

/// Waits for the whole completion. If the client goes away meanwhile, this future is dropped with the receiver,
/// which cancels the request.
async fn collect(
    shape: Shape,
    mut events: UnboundedReceiver<Event>,
    token_ids: bool,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (mut text, mut ids) = (String::new(), Vec::new());
    while let Some(event) = events.recv().await {
        match event {
            Event::Progress { .. } => {}
            Event::Delta { text: t, ids: i } => {
                text.push_str(&t);
                ids.extend(i);
            }
            Event::Finished {
                reason,
                usage,
                state_id,
            } => {
                let ids = token_ids.then_some(ids.as_slice());
                return Ok(Json(shape.full(text, reason, usage, ids, state_id.as_deref())));
            }
            Event::Failed(e) => return Err(e),
        }
    }
    Err(ApiError::internal("the engine stopped before the request finished"))
}

fn state_not_found(app: &App, id: &str) -> ApiError {
    ApiError::not_found(
        "state_not_found",
        format!(
            "no stored state `{id}`: it was never stored, was deleted, or was evicted (the store keeps the {} \
             most recently used states within {} bytes)",
            app.limits.max_states, app.limits.max_state_bytes
        ),
    )
}

/// `store_state` on a server whose store cannot hold one state is refused before any work is done.
fn check_state_fits(app: &App) -> Result<(), ApiError> {
    let need = app.model.state_bytes;
    if app.limits.max_states == 0 || need > app.limits.max_state_bytes {
        return Err(ApiError::invalid_field(
            "store_state",
            format!(
                "this server stores no states of this model (a state is {need} bytes; --max-states {}, \
                 --max-state-mb allows {} bytes)",
                app.limits.max_states, app.limits.max_state_bytes
            ),
        ));
    }
    Ok(())
}
