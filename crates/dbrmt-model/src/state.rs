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
        let layer = LayerState { a: vec![0.0; d_key * hidden], z: vec![0.0; d_key] };
        Self { d_key, hidden, layers: vec![layer; layers] }
    }
}
