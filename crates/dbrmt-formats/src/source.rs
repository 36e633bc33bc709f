//! [`ModelSource`]: an opened model whose tensors are read one at a time — as f32 pieces of bounded size, or as
//! the stored bf16 bytes themselves — so that a GPU upload never builds an f32 copy of the model, and the CPU
//! model's f32 weights ([`ModelSource::load`]) are read through the same code.
//!
//! Opening checks everything that can be checked without reading tensor data: the config, that every tensor the
//! config calls for is present (in either name layout, aliases identical), its shape and its dtype; reading a
//! tensor afterwards cannot fail on a well-formed file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use half::bf16;
use safetensors::Dtype;

use crate::armt_file::{sha256_hex, ArmtFile};
use crate::armt_init::{init_armt, ArmtInit};
use crate::checkpoint::{convert, Checkpoint};
use crate::config::{ConfigFile, ModelConfig};
use crate::error::FormatError;
use crate::gguf::{self, GgmlType, GgufFile};
use crate::load::{expected_shape, LoadOptions, Model, CONFIG_FILE};
use crate::names::{LayerTensor, NameLayout, TensorId};
use crate::weights::{LayerWeights, Weights};

/// Largest piece [`ModelSource::read_f32`] converts at once when it reads a whole tensor: whole tensors are read
/// only by the CPU model, which holds them anyway.
const WHOLE: usize = usize::MAX;

/// An opened model: its config, and where each of its tensors is.
#[derive(Debug)]
pub struct ModelSource {
    pub config: ModelConfig,
    /// The tensor-name layout found in the checkpoint.
    pub layout: NameLayout,
    /// Checkpoint tensors the model does not use (e.g. rotary `inv_freq` buffers), sorted.
    pub unused_tensors: Vec<String>,
    store: Store,
    /// The memory parameters of a checkpoint without them: drawn from `LoadOptions::armt_init`, or read from
    /// `LoadOptions::armt_file`.
    init: Option<Memory>,
}

/// Where the memory parameters of a checkpoint without them come from.
#[derive(Debug)]
enum Memory {
    /// Drawn from a seed (`W_mv` zero, not stored), and the seed.
    Init(u64, ArmtInit),
    /// A trained ARMT file.
    File(ArmtFile),
}

impl Memory {
    /// The values of memory tensor `id`; `None` for a zero `W_mv` and for tensors that are not memory tensors.
    fn values(&self, id: TensorId) -> Option<&[f32]> {
        match self {
            Memory::Init(_, init) => init.values(id),
            Memory::File(file) => file.values(id),
        }
    }
}

#[derive(Debug)]
enum Store {
    /// safetensors: the stored name of every tensor the model reads (a tied embedding stored only as `lm_head`
    /// is read from there).
    Safetensors {
        checkpoint: Checkpoint,
        names: BTreeMap<TensorId, String>,
    },
    /// A LLaMA GGUF (q/k rows stored in llama.cpp's order, put back as they are read).
    Gguf(GgufFile),
}

impl ModelSource {
    /// Opens the model at `path`: a directory with `config.json` plus safetensors (single or sharded), or a LLaMA
    /// GGUF file — given as the file or as a directory whose only weights are one `*.gguf` file — which needs
    /// `opts.armt_init` and `opts.armt_params`.
    pub fn open(path: &Path, opts: &LoadOptions) -> Result<Self, FormatError> {
        match gguf::gguf_path(path)? {
            Some(file) => Self::open_gguf(&file, opts),
            None => Self::open_safetensors(path, opts),
        }
    }

    fn open_safetensors(dir: &Path, opts: &LoadOptions) -> Result<Self, FormatError> {
        if dir.is_file() {
            return Err(not_a_model(dir));
        }
        if opts.armt_file.is_some() {
            return Err(FormatError::Config {
                path: dir.to_path_buf(),
                msg: "--armt applies a trained memory to a GGUF backbone; a safetensors checkpoint carries its \
                      memory tensors itself"
                    .into(),
            });
        }
        let config = ConfigFile::read(&dir.join(CONFIG_FILE))?.model_config(opts.armt_params)?;
        let checkpoint = Checkpoint::open(dir)?;
        check_layer_count(&checkpoint, config.llama.num_layers)?;
        let layout = NameLayout::detect(checkpoint.names());
        let mut names = BTreeMap::new();
        let locate = |id: TensorId| locate(&checkpoint, layout, id);

        // Decide how the memory is obtained before looking further.
        let mut armt_found = 0;
        for id in TensorId::armt_tensors(config.llama.num_layers) {
            armt_found += usize::from(locate(id)?.is_some());
        }
        let seed = match (armt_found, opts.armt_init) {
            (0, None) => match opts.armt_init_when_missing {
                Some(seed) => Some(seed),
                None => {
                    return Err(FormatError::NoArmtTensors {
                        path: dir.to_path_buf(),
                    })
                }
            },
            (0, Some(seed)) => Some(seed),
            (_, Some(_)) => {
                return Err(FormatError::ArmtInitConflict {
                    path: dir.to_path_buf(),
                })
            }
            // Some but not all present: looking them up below names the first missing one.
            (_, None) => None,
        };

        let tied = config.llama.tie_word_embeddings;
        let mut used = BTreeSet::new();
        let mut mark_used = |id: TensorId| {
            for name in layout.candidates(id) {
                if checkpoint.contains(&name) {
                    used.insert(name);
                }
            }
        };
        for id in tensor_ids(&config) {
            if seed.is_some() && id.is_armt() {
                continue;
            }
            // A tied model may store its one matrix under either name (`safetensors.torch.save_model` keeps
            // `lm_head`); a stored tied head is accepted and ignored.
            let stored = match id {
                TensorId::Embed if tied && locate(id)?.is_none() && locate(TensorId::LmHead)?.is_some() => {
                    TensorId::LmHead
                }
                _ => id,
            };
            let Some(name) = locate(stored)? else {
                return Err(FormatError::MissingTensor {
                    path: checkpoint.dir().to_path_buf(),
                    name: layout.name(stored),
                    layout,
                });
            };
            check_entry(&checkpoint, &name, &expected_shape(id, &config))?;
            mark_used(stored);
            names.insert(id, name);
        }
        if tied {
            mark_used(TensorId::LmHead);
        }
        let unused_tensors = checkpoint
            .names()
            .filter(|n| !used.contains(*n))
            .map(String::from)
            .collect();
        let mut source = Self {
            config,
            layout,
            unused_tensors,
            store: Store::Safetensors { checkpoint, names },
            init: None,
        };
        if let Some(seed) = seed {
            source.init = Some(Memory::Init(seed, source.draw_init(seed)?));
        }
        Ok(source)
    }

    fn open_gguf(path: &Path, opts: &LoadOptions) -> Result<Self, FormatError> {
        Self::from_gguf(GgufFile::open(path)?, opts)
    }

    /// The model of an opened LLaMA GGUF file (which needs `opts.armt_init` and `opts.armt_params`).
    pub fn from_gguf(file: GgufFile, opts: &LoadOptions) -> Result<Self, FormatError> {
        let path = &file.path().to_path_buf();
        let llama = gguf::llama_config(&file)?;
        let (params, seed, trained) = match (&opts.armt_file, opts.armt_init) {
            (Some(_), Some(_)) => {
                return Err(FormatError::Config {
                    path: path.to_path_buf(),
                    msg: "--armt (a trained memory) and --armt-init (a memory drawn from a seed) exclude each other"
                        .into(),
                })
            }
            (Some(armt), None) => {
                let sha = sha256_hex(file.file_bytes());
                let trained = ArmtFile::open(armt, llama.num_layers, llama.hidden_size, path, &sha)?;
                (trained.params, None, Some(trained))
            }
            (None, seed) => {
                let Some(seed) = seed.or(opts.armt_init_when_missing) else {
                    return Err(FormatError::NoArmtTensors {
                        path: path.to_path_buf(),
                    });
                };
                let Some(params) = opts.armt_params else {
                    return Err(FormatError::Config {
                        path: path.to_path_buf(),
                        msg: "a GGUF file has no ARMT parameters: give them with --armt-init SEED --segment-size T \
                              --mem-tokens M --d-mem D"
                            .into(),
                    });
                };
                (params, Some(seed), None)
            }
        };
        // The same validation as for a config.json without an `armt` object.
        let config = ConfigFile {
            path: path.to_path_buf(),
            llama,
            armt: None,
            fields: crate::limits::GGUF,
        }
        .model_config(Some(params))?;
        gguf::llama::refuse_biases(&file)?;
        // Every tensor is looked up and checked before anything is allocated from the metadata's sizes: a corrupt
        // block count stops at the first missing layer instead of allocating for it.
        let mut used = BTreeSet::new();
        for id in tensor_ids(&config).filter(|id| !id.is_armt()) {
            let name = gguf::llama::tensor_name(id).unwrap_or_default();
            let Some(t) = file.tensor(&name) else {
                return Err(FormatError::MissingTensor {
                    path: path.to_path_buf(),
                    name,
                    layout: NameLayout::Gguf,
                });
            };
            let expected = expected_shape(id, &config);
            if t.shape() != expected {
                return Err(FormatError::GgufShape {
                    path: path.to_path_buf(),
                    name,
                    expected,
                    found: t.shape(),
                });
            }
            if !gguf::dequant::is_supported(t.ggml_type) {
                return Err(FormatError::GgufTensorType {
                    path: path.to_path_buf(),
                    name,
                    ggml_type: t.ggml_type.to_string(),
                });
            }
            if unpermute_heads(id, &config).is_some_and(|n| !expected[0].is_multiple_of(2 * n)) {
                return Err(FormatError::Gguf {
                    path: path.to_path_buf(),
                    msg: format!("tensor `{name}` does not split into heads of an even size"),
                });
            }
            used.insert(name);
        }
        let unused_tensors = file
            .tensors()
            .iter()
            .map(|t| t.name.clone())
            .filter(|n| !used.contains(n))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut source = Self {
            config,
            layout: NameLayout::Gguf,
            unused_tensors,
            store: Store::Gguf(file),
            init: trained.map(Memory::File),
        };
        if let Some(seed) = seed {
            source.init = Some(Memory::Init(seed, source.draw_init(seed)?));
        }
        Ok(source)
    }

    /// The memory parameters from `seed`, as the original initialises them (the memory tokens scaled by the
    /// embedding's standard deviation, read in pieces).
    fn draw_init(&self, seed: u64) -> Result<ArmtInit, FormatError> {
        const PIECE: usize = 1 << 22;
        let c = &self.config;
        let (l, d) = (c.llama.num_layers, c.llama.hidden_size);
        let per_layer = crate::memory::mul_bytes(&[2, c.armt.d_mem, d]).saturating_add(d as u64 + 1);
        let values = per_layer
            .saturating_mul(l as u64)
            .saturating_add(crate::memory::mul_bytes(&[c.armt.num_mem_tokens, d]));
        crate::memory::check_host("the memory parameters drawn for --armt-init", values.saturating_mul(4))?;
        let n = self.len(TensorId::Embed);
        let mut sum = 0.0f64;
        self.read_pieces(TensorId::Embed, PIECE, |_, x| {
            // one running sum in element order: the same bits as `sample_std` over the whole matrix
            for &v in x {
                sum += f64::from(v);
            }
            Ok::<(), FormatError>(())
        })?;
        let mean = sum / n as f64;
        let mut squares = 0.0f64;
        self.read_pieces(TensorId::Embed, PIECE, |_, x| {
            for &v in x {
                squares += (f64::from(v) - mean).powi(2);
            }
            Ok::<(), FormatError>(())
        })?;
        let std = if n < 2 {
            0.0
        } else {
            (squares / (n as f64 - 1.0)).sqrt()
        };
        Ok(init_armt(
            seed,
            c.llama.num_layers,
            c.llama.hidden_size,
            c.armt.d_mem,
            c.armt.num_mem_tokens,
            std,
        ))
    }

    /// Whether the memory was initialised from a seed rather than loaded.
    pub fn armt_initialised(&self) -> bool {
        matches!(self.init, Some(Memory::Init(..)))
    }

    /// The trained ARMT file applied on top of the backbone (`--armt`), if any.
    pub fn armt_file(&self) -> Option<&ArmtFile> {
        match &self.init {
            Some(Memory::File(f)) => Some(f),
            _ => None,
        }
    }

    /// The seed the memory was initialised from; `None` when it is loaded (trained).
    pub fn armt_seed(&self) -> Option<u64> {
        match &self.init {
            Some(Memory::Init(seed, _)) => Some(*seed),
            _ => None,
        }
    }

    /// Every tensor of the model, in the canonical order (the order of the model's identity): the embedding, the
    /// final norm, the memory tokens, the LM head when untied, then each layer's backbone and memory tensors.
    pub fn tensor_ids(&self) -> impl Iterator<Item = TensorId> {
        tensor_ids(&self.config)
    }

    /// Elements of tensor `id`.
    pub fn len(&self, id: TensorId) -> usize {
        expected_shape(id, &self.config).iter().product()
    }

    /// The stored bytes of `id` when it is stored as little-endian bf16 in the model's row order (to copy as they
    /// are); `None` when it must be converted — and when it holds a NaN or an infinity, so that the caller's
    /// fallback, [`ModelSource::read_pieces`], reports it.
    pub fn stored_bf16(&self, id: TensorId) -> Option<&[u8]> {
        self.stored_bf16_unchecked(id).filter(|b| bf16_all_finite(b))
    }

    fn stored_bf16_unchecked(&self, id: TensorId) -> Option<&[u8]> {
        if self.init.is_some() && id.is_armt() {
            return None;
        }
        match &self.store {
            Store::Safetensors { checkpoint, names } => {
                let name = names.get(&id)?;
                (checkpoint.entry(name)?.dtype == Dtype::BF16)
                    .then(|| checkpoint.bytes(name))
                    .flatten()
            }
            Store::Gguf(file) => {
                let name = gguf::llama::tensor_name(id)?;
                let stored_as_is =
                    file.tensor(&name)?.ggml_type == GgmlType::BF16 && unpermute_heads(id, &self.config).is_none();
                stored_as_is.then(|| file.tensor_data(&name)).flatten()
            }
        }
    }

    /// Calls `f(first, values)` on consecutive pieces of tensor `id` as f32 (row-major, in the model's row order),
    /// `first` being the index of the piece's first element. Pieces hold whole rows (whole heads for GGUF q/k) and
    /// at most `max` elements unless one row (head) is larger.
    pub fn read_pieces<E: From<FormatError>>(
        &self,
        id: TensorId,
        max: usize,
        mut f: impl FnMut(usize, &[f32]) -> Result<(), E>,
    ) -> Result<(), E> {
        let shape = expected_shape(id, &self.config);
        let len: usize = shape.iter().product();
        // a matrix is read by rows; a vector is one row
        let (rows, cols) = match shape[..] {
            [r, c] => (r, c),
            _ => (1, len),
        };
        if let (Some(init), true) = (&self.init, id.is_armt()) {
            return match init.values(id) {
                // whole rows, at most `max` elements unless one row is larger
                Some(values) => {
                    let step = (max / cols).max(1) * cols;
                    let mut at = 0;
                    while at < values.len() {
                        let n = step.min(values.len() - at);
                        f(at, &values[at..at + n])?;
                        at += n;
                    }
                    Ok(())
                }
                // W_v: zero, never stored
                None => {
                    let zeros = vec![0.0f32; max.clamp(1, len).div_ceil(cols) * cols];
                    let mut at = 0;
                    while at < len {
                        let n = zeros.len().min(len - at);
                        f(at, &zeros[..n])?;
                        at += n;
                    }
                    Ok(())
                }
            };
        }
        // rows per piece: whole rows, and for GGUF q/k whole heads
        let group = match (&self.store, unpermute_heads(id, &self.config)) {
            (Store::Gguf(_), Some(heads)) => rows / heads,
            _ => 1,
        };
        let step = (max / (cols * group)).max(1) * group;
        let mut row = 0;
        while row < rows {
            let n = step.min(rows - row);
            let piece = self.rows_f32(id, row, n, cols)?;
            // a NaN or an infinity in the weights makes every logit NaN (or 0) without a word: refuse it here,
            // where every piece of every tensor passes on its way to either backend
            if let Some(i) = piece.iter().position(|x| !x.is_finite()) {
                return Err(self.non_finite(id, row * cols + i, piece[i]).into());
            }
            f(row * cols, &piece)?;
            row += n;
        }
        Ok(())
    }

    /// The error for a NaN or infinity at element `index` of tensor `id`.
    fn non_finite(&self, id: TensorId, index: usize, value: f32) -> FormatError {
        let (path, name) = match &self.store {
            Store::Safetensors { checkpoint, names } => {
                let name = names.get(&id).cloned().unwrap_or_else(|| format!("{id:?}"));
                (checkpoint.path_of(&name).to_path_buf(), name)
            }
            Store::Gguf(file) => (
                file.path().to_path_buf(),
                gguf::llama::tensor_name(id).unwrap_or_else(|| format!("{id:?}")),
            ),
        };
        FormatError::NonFinite {
            path,
            name,
            index,
            value,
        }
    }

    /// Rows `row .. row + n` of `id` (a `[.., cols]` matrix, or a vector as one row) as f32.
    fn rows_f32(&self, id: TensorId, row: usize, n: usize, cols: usize) -> Result<Vec<f32>, FormatError> {
        match &self.store {
            Store::Safetensors { checkpoint, names } => {
                let name = names.get(&id).ok_or_else(|| internal(id))?;
                let entry = checkpoint.entry(name).ok_or_else(|| internal(id))?;
                let bytes = checkpoint.bytes(name).ok_or_else(|| internal(id))?;
                let size = entry.dtype.bitsize() / 8;
                let piece = bytes
                    .get(row * cols * size..(row + n) * cols * size)
                    .ok_or_else(|| internal(id))?;
                convert::to_f32(entry.dtype, piece).ok_or_else(|| internal(id))
            }
            Store::Gguf(file) => {
                let name = gguf::llama::tensor_name(id).ok_or_else(|| internal(id))?;
                let t = file.tensor(&name).ok_or_else(|| internal(id))?;
                let row_bytes = t.ggml_type.bytes_for(cols as u64).ok_or_else(|| internal(id))? as usize;
                let bytes = file.tensor_data(&name).ok_or_else(|| internal(id))?;
                let piece = bytes
                    .get(row * row_bytes..(row + n) * row_bytes)
                    .ok_or_else(|| internal(id))?;
                let values = gguf::dequant::dequantize(t.ggml_type, piece).map_err(|e| FormatError::Gguf {
                    path: file.path().to_path_buf(),
                    msg: format!("tensor `{name}`: {e}"),
                })?;
                match unpermute_heads(id, &self.config) {
                    // whole heads (read_pieces cuts at head boundaries), each put back in Hugging Face order
                    Some(heads) => {
                        let hd = expected_shape(id, &self.config)[0] / heads;
                        gguf::permute::unpermute_rows(&values, n / hd, cols).ok_or_else(|| internal(id))
                    }
                    None => Ok(values),
                }
            }
        }
    }

    /// Tensor `id` as f32, whole.
    pub fn read_f32(&self, id: TensorId) -> Result<Vec<f32>, FormatError> {
        let mut out = Vec::with_capacity(self.len(id));
        self.read_pieces(id, WHOLE, |_, x| {
            out.extend_from_slice(x);
            Ok::<(), FormatError>(())
        })?;
        Ok(out)
    }

    /// The f32 host model (what the CPU backend runs); refused before anything is read when the machine cannot
    /// hold it.
    pub fn load(self) -> Result<Model, FormatError> {
        crate::memory::check_host(
            "the CPU model's f32 weights",
            crate::memory::cpu_model_bytes(&self.config),
        )?;
        let weights = read_weights(&self)?;
        let armt_seed = self.armt_seed();
        Ok(Model {
            config: self.config,
            weights,
            layout: self.layout,
            unused_tensors: self.unused_tensors,
            armt_seed,
        })
    }
}

/// Why a file that is not GGUF cannot be a model: a safetensors file needs its directory (for `config.json`),
/// anything else is named for what it is not.
fn not_a_model(path: &Path) -> FormatError {
    let msg = if crate::checkpoint::looks_like_safetensors(path) {
        "this is a safetensors file: pass the directory that holds it with its config.json".to_string()
    } else {
        "neither a GGUF file (it does not start with the GGUF magic) nor a model directory (config.json and \
         safetensors)"
            .to_string()
    };
    FormatError::Checkpoint {
        path: path.to_path_buf(),
        msg,
    }
}

/// Every tensor of `src` as f32 host weights (the CPU model's form).
pub fn read_weights(src: &impl TensorRead) -> Result<Weights, FormatError> {
    let c = src.config();
    let read = |id| -> Result<Vec<f32>, FormatError> {
        let mut out = Vec::with_capacity(src.len(id));
        src.read_pieces(id, WHOLE, |_, x| {
            out.extend_from_slice(x);
            Ok::<(), FormatError>(())
        })?;
        Ok(out)
    };
    let embed = read(TensorId::Embed)?;
    let lm_head = match c.llama.tie_word_embeddings {
        true => None,
        false => Some(read(TensorId::LmHead)?),
    };
    let mut layers = Vec::with_capacity(c.llama.num_layers);
    for i in 0..c.llama.num_layers {
        use LayerTensor as T;
        let layer_read = |t| read(TensorId::Layer(i, t));
        let mut layer = LayerWeights::read_backbone(layer_read)?;
        layer.mem_q = layer_read(T::MemQ)?;
        layer.mem_k = layer_read(T::MemK)?;
        layer.mem_v = layer_read(T::MemV)?;
        layer.mem_beta = layer_read(T::MemBeta)?;
        // Shape [1] was checked, so there is exactly one value.
        layer.mem_beta_bias = layer_read(T::MemBetaBias)?.first().copied().unwrap_or_default();
        layers.push(layer);
    }
    Ok(Weights {
        embed,
        layers,
        norm: read(TensorId::Norm)?,
        lm_head,
        memory: read(TensorId::Memory)?,
    })
}

/// What a backend needs to take a model's tensors: its config, the stored bf16 bytes where a tensor has them, and
/// every tensor as f32 pieces. [`ModelSource`] reads a checkpoint this way; a [`Model`] in memory (random weights,
/// tests) serves the same interface, so the GPU upload has one path.
pub trait TensorRead {
    fn config(&self) -> &ModelConfig;
    /// See [`ModelSource::stored_bf16`].
    fn stored_bf16(&self, id: TensorId) -> Option<&[u8]>;
    /// See [`ModelSource::read_pieces`].
    fn read_pieces<E: From<FormatError>>(
        &self,
        id: TensorId,
        max: usize,
        f: impl FnMut(usize, &[f32]) -> Result<(), E>,
    ) -> Result<(), E>;
    /// Elements of tensor `id`.
    fn len(&self, id: TensorId) -> usize {
        expected_shape(id, self.config()).iter().product()
    }
}

impl TensorRead for ModelSource {
    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn stored_bf16(&self, id: TensorId) -> Option<&[u8]> {
        ModelSource::stored_bf16(self, id)
    }

    fn read_pieces<E: From<FormatError>>(
        &self,
        id: TensorId,
        max: usize,
        f: impl FnMut(usize, &[f32]) -> Result<(), E>,
    ) -> Result<(), E> {
        ModelSource::read_pieces(self, id, max, f)
    }
}

impl TensorRead for Model {
    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn stored_bf16(&self, _: TensorId) -> Option<&[u8]> {
        None
    }

    /// The whole tensor as one piece (it is in memory already); a tensor the model lacks (a tied head) is empty.
    fn read_pieces<E: From<FormatError>>(
        &self,
        id: TensorId,
        _max: usize,
        mut f: impl FnMut(usize, &[f32]) -> Result<(), E>,
    ) -> Result<(), E> {
        f(0, self.weights.tensor(id).unwrap_or_default())
    }
}

/// The canonical tensor order of a model of `config` (see [`ModelSource::tensor_ids`]).
pub fn tensor_ids(config: &ModelConfig) -> impl Iterator<Item = TensorId> {
    let head = (!config.llama.tie_word_embeddings).then_some(TensorId::LmHead);
    let layers = (0..config.llama.num_layers).flat_map(|i| {
        LayerTensor::BACKBONE
            .into_iter()
            .chain(LayerTensor::ARMT)
            .map(move |t| TensorId::Layer(i, t))
    });
    [TensorId::Embed, TensorId::Norm, TensorId::Memory]
        .into_iter()
        .chain(head)
        .chain(layers)
}

/// The checkpoint may not hold layers beyond the config's `num_hidden_layers`: their weights would be dropped
/// without a word (fewer layers are reported as the first missing tensor). A layer counts when it holds a weight
/// of the model (`…layers.{i}.…q_proj.weight`, `…layers.{i}.W_mq.weight`, …); other tensors under a layer's name
/// (rotary `inv_freq` buffers) are only listed as unused.
fn check_layer_count(checkpoint: &Checkpoint, layers: usize) -> Result<(), FormatError> {
    let extra = checkpoint.names().find_map(|name| {
        let (_, after) = name.split_once("layers.")?;
        let (index, rest) = after.split_once('.')?;
        let index = index.parse::<u64>().ok()?;
        let weight = LayerTensor::BACKBONE
            .into_iter()
            .chain(LayerTensor::ARMT)
            .any(|t| rest.ends_with(t.key()));
        (weight && index >= layers as u64).then_some((index, name))
    });
    match extra {
        None => Ok(()),
        Some((index, name)) => Err(FormatError::Checkpoint {
            path: checkpoint.path_of(name).to_path_buf(),
            msg: format!(
                "holds layer {index} (tensor `{name}`) but config.json has num_hidden_layers = {layers}: the \
                 checkpoint's layer count must equal the config's"
            ),
        }),
    }
}

/// The heads whose rows a GGUF stores permuted (q: all heads, k: the kv heads).
fn unpermute_heads(id: TensorId, c: &ModelConfig) -> Option<usize> {
    match id {
        TensorId::Layer(_, LayerTensor::Q) => Some(c.llama.num_heads),
        TensorId::Layer(_, LayerTensor::K) => Some(c.llama.num_kv_heads),
        _ => None,
    }
}

/// The checkpoint name holding `id` in `layout`, if any. When a file holds both aliases of a layer tensor they must
/// be identical (the original loads either, so differing copies make the checkpoint ambiguous).
fn locate(checkpoint: &Checkpoint, layout: NameLayout, id: TensorId) -> Result<Option<String>, FormatError> {
    let mut present = layout.candidates(id).into_iter().filter(|n| checkpoint.contains(n));
    let Some(first) = present.next() else {
        return Ok(None);
    };
    for other in present {
        let kind = |n: &str| checkpoint.entry(n).map(|e| (e.dtype, e.shape.clone()));
        let same = kind(&first) == kind(&other) && checkpoint.bytes(&first) == checkpoint.bytes(&other);
        if !same {
            return Err(FormatError::Checkpoint {
                path: checkpoint.path_of(&other).to_path_buf(),
                msg: format!("`{first}` and its alias `{other}` differ"),
            });
        }
    }
    Ok(Some(first))
}

/// `name`'s shape must be `expected`, its dtype one the loader converts, and its bytes inside its file.
fn check_entry(checkpoint: &Checkpoint, name: &str, expected: &[usize]) -> Result<(), FormatError> {
    let path = || checkpoint.path_of(name).to_path_buf();
    let entry = checkpoint.entry(name).ok_or_else(|| FormatError::Checkpoint {
        path: checkpoint.dir().to_path_buf(),
        msg: format!("no tensor `{name}`"),
    })?;
    if entry.shape != expected {
        return Err(FormatError::Shape {
            path: path(),
            name: name.to_string(),
            expected: expected.to_vec(),
            found: entry.shape.clone(),
        });
    }
    if !convert::is_supported(entry.dtype) {
        return Err(FormatError::Dtype {
            path: path(),
            name: name.to_string(),
            dtype: entry.dtype.to_string(),
        });
    }
    if checkpoint.bytes(name).is_none() {
        return Err(FormatError::Checkpoint {
            path: path(),
            msg: format!("tensor `{name}` lies outside the file"),
        });
    }
    Ok(())
}

/// A tensor that `open` checked cannot be read: a bug, reported rather than panicking.
fn internal(id: TensorId) -> FormatError {
    FormatError::Checkpoint {
        path: Default::default(),
        msg: format!("internal error: tensor {id:?} was checked on open but cannot be read"),
    }
}

/// Whether little-endian bf16 `bytes` hold only finite values (a NaN or an infinity has all exponent bits set).
pub fn bf16_all_finite(bytes: &[u8]) -> bool {
    bytes.chunks_exact(2).all(|b| b[1] & 0x7f != 0x7f || b[0] & 0x80 == 0)
}

/// bf16 from f32, round to nearest even (the GPU's weights).
pub fn to_bf16(values: &[f32], out: &mut Vec<bf16>) {
    out.clear();
    out.extend(values.iter().map(|&x| bf16::from_f32(x)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_scan_finds_nan_and_inf_only() {
        let bytes = |xs: &[f32]| -> Vec<u8> { xs.iter().flat_map(|&x| bf16::from_f32(x).to_le_bytes()).collect() };
        let finite = [0.0, -0.0, 1.0, -3.3e38, 3.3e38, f32::MIN_POSITIVE, 1e-40, -65504.0];
        assert!(bf16_all_finite(&bytes(&finite)));
        for bad in [f32::NAN, -f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut xs = finite.to_vec();
            xs.insert(3, bad);
            assert!(!bf16_all_finite(&bytes(&xs)), "{bad}");
        }
        // every bit pattern: the scan agrees with the f32 value
        for bits in 0..=u16::MAX {
            let v = bf16::from_bits(bits);
            assert_eq!(
                bf16_all_finite(&bits.to_le_bytes()),
                v.to_f32().is_finite(),
                "{bits:#06x}"
            );
        }
    }
}
