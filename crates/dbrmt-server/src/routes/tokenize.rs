//! `POST /tokenize` (text or chat messages → ids) and `POST /detokenize` (ids → text), as vLLM names them.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::prompt_ids::{prompt_ids, Continues};
use crate::app::App;
use crate::error::ApiError;
use crate::protocol::{parse_json, Message, PromptInput};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenizeRequest {
    model: Option<String>,
    prompt: Option<String>,
    messages: Option<Vec<Message>>,
    /// BOS / EOS where the model adds them (default true); chat prompts never get them.
    add_special_tokens: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DetokenizeRequest {
    model: Option<String>,
    tokens: Vec<i64>,
}

fn check_model(app: &App, model: Option<&String>) -> Result<(), ApiError> {
    match model {
        Some(m) if *m != app.model.name => Err(ApiError::not_found(
            "model_not_found",
            format!(
                "the model `{m}` does not exist; this server serves `{}`",
                app.model.name
            ),
        )),
        _ => Ok(()),
    }
}

pub async fn tokenize(State(app): State<Arc<App>>, body: Body) -> Response {
    let run = async {
        let body = super::body(body, app.limits.max_body_bytes).await?;
        let r: TokenizeRequest = parse_json(&body)?;
        check_model(&app, r.model.as_ref())?;
        let (prompt, continues) = match (r.prompt, r.messages) {
            (Some(p), None) => {
                let special = r.add_special_tokens.unwrap_or(true);
                (
                    PromptInput::Text(p),
                    if special { Continues::No } else { Continues::Yes },
                )
            }
            (None, Some(m)) => {
                let turns = m
                    .into_iter()
                    .enumerate()
                    .map(|(i, m)| m.into_turn(i))
                    .collect::<Result<_, _>>()?;
                (PromptInput::Chat(turns), Continues::No)
            }
            _ => return Err(ApiError::invalid("give one of `prompt` and `messages`")),
        };
        app.tokenizer()?;
        let ids = prompt_ids(&app, prompt, continues).await?;
        Ok(Json(json!({"tokens": ids, "count": ids.len()})))
    };
    run.await
        .map_or_else(IntoResponse::into_response, IntoResponse::into_response)
}

pub async fn detokenize(State(app): State<Arc<App>>, body: Body) -> Response {
    let run = async {
        let body = super::body(body, app.limits.max_body_bytes).await?;
        let r: DetokenizeRequest = parse_json(&body)?;
        check_model(&app, r.model.as_ref())?;
        let tok = app.tokenizer()?;
        let ids = dbrmt_model::input::validate_ids(&r.tokens, app.model.vocab)
            .or_else(|e| if r.tokens.is_empty() { Ok(Vec::new()) } else { Err(e) })
            .map_err(|e| ApiError::invalid_field("tokens", e.to_string()))?;
        let text = tok
            .decode(&ids)
            .map_err(|e| ApiError::invalid_field("tokens", e.to_string()))?;
        Ok::<_, ApiError>(Json(json!({"prompt": text})))
    };
    run.await
        .map_or_else(IntoResponse::into_response, IntoResponse::into_response)
}
