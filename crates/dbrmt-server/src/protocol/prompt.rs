//! `prompt`: a string, an array of token ids, or a one-element array of either (a list of several prompts is a
//! batch, which this server does not take: one request, one choice).

use serde_json::Value;

use crate::error::ApiError;

/// The prompt, before tokenisation.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptInput {
    Text(String),
    /// Token ids as sent (checked against the vocabulary once the model is known).
    Ids(Vec<i64>),
    /// Chat messages, rendered with the model's chat template.
    Chat(Vec<(String, String)>),
}

impl PromptInput {
    /// Reads `prompt`.
    pub fn from_value(v: Value) -> Result<Self, ApiError> {
        let bad = |m: &str| ApiError::invalid_field("prompt", m.to_string());
        match v {
            Value::String(s) => Ok(PromptInput::Text(s)),
            Value::Array(items) if items.iter().all(Value::is_number) => ids(&items).map(PromptInput::Ids),
            Value::Array(mut items) if items.len() == 1 => match items.pop() {
                Some(Value::String(s)) => Ok(PromptInput::Text(s)),
                Some(Value::Array(inner)) => ids(&inner).map(PromptInput::Ids),
                _ => Err(bad("`prompt` must be a string or an array of token ids")),
            },
            Value::Array(_) => Err(bad(
                "`prompt` holds several prompts; this server takes one prompt per request",
            )),
            _ => Err(bad("`prompt` must be a string or an array of token ids")),
        }
    }
}

fn ids(items: &[Value]) -> Result<Vec<i64>, ApiError> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_i64().ok_or_else(|| {
                ApiError::invalid_field("prompt", format!("`prompt[{i}]` is {v}, not an integer token id"))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_ids_and_single_element_lists() {
        let read = |v| PromptInput::from_value(v);
        assert_eq!(read(json!("hi")).unwrap(), PromptInput::Text("hi".into()));
        assert_eq!(read(json!([1, 2, 3])).unwrap(), PromptInput::Ids(vec![1, 2, 3]));
        assert_eq!(read(json!(["hi"])).unwrap(), PromptInput::Text("hi".into()));
        assert_eq!(read(json!([[4, 5]])).unwrap(), PromptInput::Ids(vec![4, 5]));
        assert_eq!(read(json!([])).unwrap(), PromptInput::Ids(vec![]));
        for bad in [
            json!(["a", "b"]),
            json!([1.5]),
            json!([[1], [2]]),
            json!({"a": 1}),
            json!(7),
            json!([true]),
        ] {
            let e = read(bad.clone()).unwrap_err();
            assert_eq!((e.status.as_u16(), e.param), (400, Some("prompt")), "{bad}");
        }
    }
}
