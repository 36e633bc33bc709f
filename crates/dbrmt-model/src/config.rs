//! `config.json`: Hugging Face LLaMA fields plus an `armt` object.

pub use dbrmt_kernels::reference::armt::MemShape;
pub use dbrmt_kernels::reference::rope::Llama3Scaling;

/// The ARMT hyper-parameters (`armt` object of `config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArmtParams {
    /// M: memory tokens appended to every segment.
    pub num_mem_tokens: usize,
    /// d_mem: width of the key/query projections before DPFP.
    pub d_mem: usize,
    /// T: text tokens per segment (memory tokens not included).
    pub segment_size: usize,
    /// ν: DPFP order (3 in the original).
    pub nu: usize,
    /// γ correction of the z update (original default: true).
    pub correction: bool,
}

/// Everything the model needs to know about its shapes.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f32,
    pub rope_theta: f64,
    pub rope_scaling: Option<Llama3Scaling>,
    pub tie_word_embeddings: bool,
    pub armt: ArmtParams,
}

impl ModelConfig {
    /// The memory shape of every layer.
    pub fn mem_shape(&self) -> MemShape {
        MemShape { hidden: self.hidden_size, d_mem: self.armt.d_mem, nu: self.armt.nu }
    }

    /// D = 2·ν·d_mem.
    pub fn d_key(&self) -> usize {
        self.mem_shape().d_key()
    }

    /// Width of the query projection (`H · hd`).
    pub fn q_dim(&self) -> usize {
        self.num_heads * self.head_dim
    }

    /// Width of each of the key and value projections (`KV · hd`).
    pub fn kv_dim(&self) -> usize {
        self.num_kv_heads * self.head_dim
    }

    /// Rows of one full segment: `T + M`.
    pub fn segment_rows(&self) -> usize {
        self.armt.segment_size + self.armt.num_mem_tokens
    }

    /// Number of segments for `tokens` text tokens (the last may be shorter).
    pub fn segments_for(&self, tokens: usize) -> usize {
        tokens.div_ceil(self.armt.segment_size)
    }
}
