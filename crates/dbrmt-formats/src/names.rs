//! Tensor names: the model's tensors, and the two checkpoint layouts that name them (plain Hugging Face names,
//! or the state_dict names of the original ARMT wrapper with either alias of its decoder layers).

use std::fmt;

/// One tensor of a decoder layer (backbone or ARMT memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LayerTensor {
    InputNorm,
    Q,
    K,
    V,
    O,
    PostNorm,
    Gate,
    Up,
    Down,
    MemQ,
    MemK,
    MemV,
    MemBeta,
    MemBetaBias,
}

impl LayerTensor {
    /// The LLaMA backbone tensors of a layer.
    pub const BACKBONE: [Self; 9] = [
        Self::InputNorm,
        Self::Q,
        Self::K,
        Self::V,
        Self::O,
        Self::PostNorm,
        Self::Gate,
        Self::Up,
        Self::Down,
    ];
    /// The ARMT memory tensors of a layer.
    pub const ARMT: [Self; 5] = [Self::MemQ, Self::MemK, Self::MemV, Self::MemBeta, Self::MemBetaBias];

    /// The key under the layer's prefix, as Hugging Face and ARMT name it.
    pub fn key(self) -> &'static str {
        match self {
            Self::InputNorm => "input_layernorm.weight",
            Self::Q => "self_attn.q_proj.weight",
            Self::K => "self_attn.k_proj.weight",
            Self::V => "self_attn.v_proj.weight",
            Self::O => "self_attn.o_proj.weight",
            Self::PostNorm => "post_attention_layernorm.weight",
            Self::Gate => "mlp.gate_proj.weight",
            Self::Up => "mlp.up_proj.weight",
            Self::Down => "mlp.down_proj.weight",
            Self::MemQ => "W_mq.weight",
            Self::MemK => "W_mk.weight",
            Self::MemV => "W_mv.weight",
            Self::MemBeta => "W_mb.weight",
            Self::MemBetaBias => "W_mb.bias",
        }
    }

    /// Whether this is an ARMT memory parameter (absent from a plain LLaMA checkpoint).
    pub fn is_armt(self) -> bool {
        Self::ARMT.contains(&self)
    }
}

/// Any tensor of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TensorId {
    Embed,
    Layer(usize, LayerTensor),
    Norm,
    LmHead,
    /// The memory-token embeddings.
    Memory,
}

impl TensorId {
    /// Whether this is an ARMT parameter (absent from a plain LLaMA checkpoint).
    pub fn is_armt(self) -> bool {
        match self {
            Self::Memory => true,
            Self::Layer(_, t) => t.is_armt(),
            Self::Embed | Self::Norm | Self::LmHead => false,
        }
    }

    /// Every ARMT tensor of a model with `layers` layers.
    pub fn armt_tensors(layers: usize) -> impl Iterator<Item = Self> {
        (0..layers)
            .flat_map(|i| LayerTensor::ARMT.map(|t| Self::Layer(i, t)))
            .chain([Self::Memory])
    }
}

/// Which naming convention a checkpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameLayout {
    /// Plain Hugging Face LLaMA names, ARMT tensors as `model.layers.{i}.W_m*` and `memory`.
    Hf,
    /// The original ARMT wrapper's names: `memory_cell.model.model.layers.{i}.layer.<hf key>`,
    /// `memory_cell.model.model.layers.{i}.W_m*`, `memory_cell.memory`, … (what the ARMT trainer saves).
    Armt,
    /// The original's names with decoder layers under the `memory_cell.layers.{i}.` alias (what
    /// `safetensors.torch.save_model` keeps, the alphabetically smaller of the two).
    ArmtLayersAlias,
    /// llama.cpp's GGUF names (`token_embd.weight`, `blk.{i}.attn_q.weight`, …); a GGUF file has no ARMT tensors.
    Gguf,
}

impl NameLayout {
    /// The layout of a checkpoint with these tensor names: ARMT when any name starts with `memory_cell.`.
    pub fn detect<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let (mut armt, mut canonical, mut alias) = (false, false, false);
        for name in names {
            armt |= name.starts_with("memory_cell.");
            canonical |= name.starts_with("memory_cell.model.model.layers.");
            alias |= name.starts_with("memory_cell.layers.");
        }
        match (armt, canonical, alias) {
            (false, _, _) => Self::Hf,
            (true, false, true) => Self::ArmtLayersAlias,
            _ => Self::Armt,
        }
    }

    /// The checkpoint names of `id` in this layout, the preferred first. In the ARMT layouts both aliases of a
    /// layer tensor are listed, as the original loads either.
    pub fn candidates(self, id: TensorId) -> Vec<String> {
        match self {
            Self::Hf => vec![hf_name(id)],
            Self::Gguf => crate::gguf::llama::tensor_name(id).into_iter().collect(),
            Self::Armt | Self::ArmtLayersAlias => {
                let Some((i, rest)) = armt_layer_suffix(id) else {
                    return vec![armt_top_level_name(id)];
                };
                let canonical = format!("memory_cell.model.model.layers.{i}.{rest}");
                let alias = format!("memory_cell.layers.{i}.{rest}");
                if self == Self::Armt {
                    vec![canonical, alias]
                } else {
                    vec![alias, canonical]
                }
            }
        }
    }

    /// The preferred checkpoint name of `id` in this layout.
    pub fn name(self, id: TensorId) -> String {
        self.candidates(id).into_iter().next().unwrap_or_default()
    }
}

impl fmt::Display for NameLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Hf => "Hugging Face names (model.layers.{i}.…, memory)",
            Self::Armt => "ARMT names (memory_cell.model.model.layers.{i}.…, memory_cell.memory)",
            Self::ArmtLayersAlias => "ARMT names with the layer alias (memory_cell.layers.{i}.…, memory_cell.memory)",
            Self::Gguf => "GGUF names (token_embd.weight, blk.{i}.…, output_norm.weight)",
        })
    }
}

/// The plain Hugging Face name (also `armt_ref`'s internal name).
pub fn hf_name(id: TensorId) -> String {
    match id {
        TensorId::Embed => "model.embed_tokens.weight".into(),
        TensorId::Layer(i, t) => format!("model.layers.{i}.{}", t.key()),
        TensorId::Norm => "model.norm.weight".into(),
        TensorId::LmHead => "lm_head.weight".into(),
        TensorId::Memory => "memory".into(),
    }
}

/// For a layer tensor: its layer and its name under the wrapped layer (`layer.<hf key>` for backbone
/// tensors, which the memory cell wraps, `W_m*` for the memory parameters it adds beside them).
fn armt_layer_suffix(id: TensorId) -> Option<(usize, String)> {
    let TensorId::Layer(i, t) = id else {
        return None;
    };
    Some((
        i,
        if t.is_armt() {
            t.key().to_string()
        } else {
            format!("layer.{}", t.key())
        },
    ))
}

/// ARMT names of the tensors outside the layers: the backbone sits under `memory_cell.model.`.
fn armt_top_level_name(id: TensorId) -> String {
    match id {
        TensorId::Memory => "memory_cell.memory".into(),
        other => format!("memory_cell.model.{}", hf_name(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_anchor_table() {
        let q = TensorId::Layer(3, LayerTensor::Q);
        let mq = TensorId::Layer(0, LayerTensor::MemQ);
        assert_eq!(NameLayout::Hf.name(q), "model.layers.3.self_attn.q_proj.weight");
        assert_eq!(
            NameLayout::Armt.name(q),
            "memory_cell.model.model.layers.3.layer.self_attn.q_proj.weight"
        );
        assert_eq!(
            NameLayout::ArmtLayersAlias.name(q),
            "memory_cell.layers.3.layer.self_attn.q_proj.weight"
        );
        assert_eq!(
            NameLayout::Armt.name(mq),
            "memory_cell.model.model.layers.0.W_mq.weight"
        );
        assert_eq!(NameLayout::Armt.candidates(mq)[1], "memory_cell.layers.0.W_mq.weight");
        assert_eq!(NameLayout::Armt.name(TensorId::Memory), "memory_cell.memory");
        assert_eq!(
            NameLayout::Armt.name(TensorId::Embed),
            "memory_cell.model.model.embed_tokens.weight"
        );
        assert_eq!(
            NameLayout::Armt.name(TensorId::Norm),
            "memory_cell.model.model.norm.weight"
        );
        assert_eq!(
            NameLayout::Armt.name(TensorId::LmHead),
            "memory_cell.model.lm_head.weight"
        );
        assert_eq!(
            NameLayout::Hf.name(TensorId::Layer(1, LayerTensor::MemBetaBias)),
            "model.layers.1.W_mb.bias"
        );
    }

    #[test]
    fn detects_layouts() {
        assert_eq!(
            NameLayout::detect(["model.embed_tokens.weight", "memory"]),
            NameLayout::Hf
        );
        assert_eq!(
            NameLayout::detect(["memory_cell.model.model.layers.0.W_mq.weight"]),
            NameLayout::Armt
        );
        assert_eq!(
            NameLayout::detect(["memory_cell.layers.0.W_mq.weight", "memory_cell.model.lm_head.weight"]),
            NameLayout::ArmtLayersAlias
        );
        assert_eq!(NameLayout::detect([]), NameLayout::Hf);
    }

    #[test]
    fn armt_tensor_list() {
        let ids: Vec<_> = TensorId::armt_tensors(2).collect();
        assert_eq!(ids.len(), 11);
        assert!(ids.iter().all(|id| id.is_armt()));
        assert!(!TensorId::Layer(0, LayerTensor::Down).is_armt());
    }
}
