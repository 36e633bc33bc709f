//! The associative memory state of every layer: `A` `[D, d]` and `z` `[D]`, f32.

/// `A` and `z` of one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerState {
    pub a: Vec<f32>,
    pub z: Vec<f32>,
}

/// The state of all layers of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryState {
    pub d_key: usize,
    pub hidden: usize,
    pub layers: Vec<LayerState>,
}

impl MemoryState {
    /// The state before segment 0: all zeros.
    pub fn zeros(layers: usize, d_key: usize, hidden: usize) -> Self {
        let layer = LayerState {
            a: vec![0.0; d_key * hidden],
            z: vec![0.0; d_key],
        };
        Self {
            d_key,
            hidden,
            layers: vec![layer; layers],
        }
    }
}

impl MemoryState {
    /// Writes `layers.{i}.A` (f32 `[D, d]`) and `layers.{i}.z` (f32 `[D]`) to a safetensors file.
    pub fn save_safetensors(&self, path: &std::path::Path) -> Result<(), crate::error::ModelError> {
        use safetensors::tensor::{Dtype, TensorView};
        let io = |e: std::io::Error| crate::error::ModelError::Io {
            path: path.to_path_buf(),
            source: e,
        };
        let mut views = Vec::with_capacity(2 * self.layers.len());
        for (i, l) in self.layers.iter().enumerate() {
            let a = TensorView::new(Dtype::F32, vec![self.d_key, self.hidden], bytemuck::cast_slice(&l.a));
            let z = TensorView::new(Dtype::F32, vec![self.d_key], bytemuck::cast_slice(&l.z));
            let (a, z) = match (a, z) {
                (Ok(a), Ok(z)) => (a, z),
                _ => return Err(io(std::io::Error::other("state tensor has an inconsistent size"))),
            };
            views.push((format!("layers.{i}.A"), a));
            views.push((format!("layers.{i}.z"), z));
        }
        safetensors::serialize_to_file(views, None, path).map_err(|e| io(std::io::Error::other(e.to_string())))
    }
}
