//! A request's prompt → token ids: text through the tokenizer (off the reactor: a long text takes a while), chat
//! messages through the chat template, ids checked against the vocabulary.

use std::sync::Arc;

use dbrmt_model::input::validate_ids;
use dbrmt_tokenizer::ChatMessage;

use crate::app::App;
use crate::error::ApiError;
use crate::protocol::PromptInput;

/// The ids of `prompt`. `continues`: the text goes on from a stored state, so no BOS is added and a chat gets no
/// default system prompt.
pub async fn prompt_ids(app: &Arc<App>, prompt: PromptInput, continues: bool) -> Result<Vec<u32>, ApiError> {
    let vocab = app.model.vocab;
    let ids = match prompt {
        PromptInput::Ids(ids) if ids.is_empty() => return Ok(Vec::new()),
        PromptInput::Ids(ids) => ids,
        PromptInput::Text(text) => {
            let tok = app.tokenizer()?.clone();
            blocking(move || {
                let ids = if continues {
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
                let text = tok
                    .apply_chat_messages(&messages, continues)
                    .map_err(|e| ApiError::invalid_field("messages", format!("the chat template: {e}")))?;
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
