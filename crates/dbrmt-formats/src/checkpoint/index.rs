//! `model.safetensors.index.json` of a sharded checkpoint: which shard file holds each tensor.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::error::FormatError;

/// The name of the index file of a sharded checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// Reads the index's `weight_map` (tensor name → shard file name, relative to the model directory).
pub fn read_weight_map(path: &Path) -> Result<BTreeMap<String, String>, FormatError> {
    let text =
        crate::files::read_text_capped(path, crate::limits::MAX_INDEX_BYTES).map_err(|source| FormatError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    parse_weight_map(&text).map_err(|msg| FormatError::Checkpoint {
        path: path.to_path_buf(),
        msg,
    })
}

fn parse_weight_map(text: &str) -> Result<BTreeMap<String, String>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let map = match value.get("weight_map") {
        Some(Value::Object(map)) => map,
        Some(_) => return Err("`weight_map` is not an object".into()),
        None => return Err("missing field `weight_map`".into()),
    };
    let mut out = BTreeMap::new();
    for (name, file) in map {
        let Some(file) = file.as_str() else {
            return Err(format!("`weight_map` entry for `{name}` is not a file name"));
        };
        // Shards sit beside the index; a path that leaves the directory is not a shard of this checkpoint.
        let plain = Path::new(file)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if file.is_empty() || !plain {
            return Err(format!(
                "`weight_map` entry for `{name}` names `{file}`, not a file in this directory"
            ));
        }
        out.insert(name.clone(), file.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_weight_map() {
        let m = parse_weight_map(r#"{"metadata": {}, "weight_map": {"a": "x.safetensors", "b": "y.safetensors"}}"#);
        assert_eq!(m.unwrap().get("b").map(String::as_str), Some("y.safetensors"));
    }

    #[test]
    fn rejects_bad_index() {
        assert!(parse_weight_map("{").unwrap_err().contains("not valid JSON"));
        assert!(parse_weight_map("{}")
            .unwrap_err()
            .contains("missing field `weight_map`"));
        assert!(parse_weight_map(r#"{"weight_map": {"a": 3}}"#)
            .unwrap_err()
            .contains("`a`"));
        assert!(parse_weight_map(r#"{"weight_map": {"a": "../x.safetensors"}}"#)
            .unwrap_err()
            .contains("not a file"));
        assert!(parse_weight_map(r#"{"weight_map": {"a": "/x.safetensors"}}"#)
            .unwrap_err()
            .contains("not a file"));
    }
}
