//! A request's prompt → token ids: text through the tokenizer (off the reactor: a long text takes a while), chat
//! messages through the chat template, ids checked against the vocabulary.

use std::sync::Arc;

use dbrmt_model::input::validate_ids;
use dbrmt_tokenizer::ChatMessage;

use crate::app::App;
use crate::error::ApiError;
use crate::protocol::PromptInput;

/// How a prompt relates to what the model has read before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continues {
    /// Nothing: a new text (BOS where the model adds one; a chat gets the template's default system prompt).
    No,
    /// The text goes on from a stored state: no BOS, no default system prompt.
    Yes,
    /// As `Yes`, and the state ends with an end-of-turn token, which the chat template follows with a newline.
    AfterTurn,
}

/// The ids of `prompt`.
pub async fn prompt_ids(app: &Arc<App>, prompt: PromptInput, continues: Continues) -> Result<Vec<u32>, ApiError> {
    let plain = continues != Continues::No;
    let vocab = app.model.vocab;
    let ids = match prompt {
        PromptInput::Ids(ids) if ids.is_empty() => return Ok(Vec::new()),
        PromptInput::Ids(ids) => ids,
        PromptInput::Text(text) => {
            let tok = app.tokenizer()?.clone();
            blocking(move || {
                let ids = if plain {
                    tok.encode_plain(&text)
                } else {
                    tok.encode(&text)
                };
                ids.map_err(|e| ApiError::invalid_field("prompt", format!("tokenising the prompt: {e}")))
            })
            .await?
        }
        PromptInput::Chat(turns) => {
            let tok = app.tokenizer()?.clone();
            blocking(move || {
                let messages: Vec<ChatMessage<'_>> = turns
                    .iter()
                    .map(|(role, content)| ChatMessage { role, content })
                    .collect();
                let mut text = tok
                    .apply_chat_messages(&messages, plain)
                    .map_err(|e| ApiError::invalid_field("messages", format!("the chat template: {e}")))?;
                if continues == Continues::AfterTurn {
                    text.insert(0, '\n');
                }
                tok.encode_plain(&text)
                    .map_err(|e| ApiError::invalid_field("messages", format!("tokenising the chat: {e}")))
            })
            .await?
        }
    };
    validate_ids(&ids, vocab).map_err(|e| ApiError::invalid_field("prompt", e.to_string()))
}

/// Runs `f` on the blocking pool.
async fn blocking<T: Into<i64> + Send + 'static>(
    f: impl FnOnce() -> Result<Vec<T>, ApiError> + Send + 'static,
) -> Result<Vec<i64>, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("tokenising: {e}")))?
        .map(|ids| ids.into_iter().map(Into::into).collect())
}
