//! The memory state on the device: f32 `A` `[states, D, d]` and `z` `[states, D]`, and with the pre-split read
//! `A`'s split form for it (a derived copy, made again whenever `A` changes: [`DeviceState::derive_split`]).

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream};
use dbrmt_kernels::armt_state_split::{armt_state_split, split_len};
use dbrmt_kernels::{Gpu, KernelError};

use dbrmt_formats::state::{LayerState, MemoryState};

/// `states` memory states (one per layer and request slot), zero before segment 0.
#[derive(Debug)]
pub struct DeviceState {
    pub a: CudaSlice<f32>,
    pub z: CudaSlice<f32>,
    /// `A` split for the pre-split read (`[states·d, 2·D]` u32, `armt_state_split`), when the model reads that way
    /// (`MemoryProducts::read_pre_split`). Whoever changes `A` makes it again for the states changed
    /// ([`DeviceState::derive_split`]); zeros split to zeros.
    pub split: Option<CudaSlice<u32>>,
    pub states: usize,
    pub d_key: usize,
    pub hidden: usize,
}

impl DeviceState {
    /// `states` zero states, with their split form when `pre_split`.
    pub fn zeros(
        stream: &Arc<CudaStream>,
        states: usize,
        d_key: usize,
        hidden: usize,
        pre_split: bool,
    ) -> Result<Self, KernelError> {
        Ok(Self {
            a: stream.alloc_zeros(states * d_key * hidden)?,
            z: stream.alloc_zeros(states * d_key)?,
            split: match pre_split {
                true => Some(stream.alloc_zeros(split_len(states, d_key, hidden))?),
                false => None,
            },
            states,
            d_key,
            hidden,
        })
    }

    /// Uploads `state` (one request's layers) as states `0..layers`, and splits them when `pre_split` is the GPU to
    /// do it on.
    pub fn upload(stream: &Arc<CudaStream>, state: &MemoryState, pre_split: Option<&Gpu>) -> Result<Self, KernelError> {
        let a: Vec<f32> = state.layers.iter().flat_map(|l| l.a.iter().copied()).collect();
        let z: Vec<f32> = state.layers.iter().flat_map(|l| l.z.iter().copied()).collect();
        let layers = state.layers.len();
        let mut st = Self {
            a: stream.clone_htod(&a)?,
            z: stream.clone_htod(&z)?,
            split: None,
            states: layers,
            d_key: state.d_key,
            hidden: state.hidden,
        };
        if let Some(gpu) = pre_split {
            st.split = Some(stream.alloc_zeros(split_len(layers, state.d_key, state.hidden))?);
            st.derive_split(gpu, stream, &(0..layers).collect::<Vec<_>>())?;
        }
        Ok(st)
    }

    /// Makes the split form of `states` from their `A` (after `A` changed), on `stream`; nothing without one.
    pub fn derive_split(&mut self, gpu: &Gpu, stream: &CudaStream, states: &[usize]) -> Result<(), KernelError> {
        match self.split.as_mut() {
            Some(split) if !states.is_empty() => {
                armt_state_split(gpu, stream, &self.a, split, states, self.d_key, self.hidden)
            }
            _ => Ok(()),
        }
    }

    /// Device bytes held.
    pub fn bytes(&self) -> usize {
        (self.a.len() + self.z.len() + self.split.as_ref().map_or(0, |s| s.len())) * 4
    }

    /// Resets every state to zero (a new request).
    pub fn clear(&mut self, stream: &Arc<CudaStream>) -> Result<(), KernelError> {
        stream.memset_zeros(&mut self.a)?;
        stream.memset_zeros(&mut self.z)?;
        if let Some(split) = self.split.as_mut() {
            stream.memset_zeros(split)?;
        }
        Ok(())
    }

    /// Copies states `first..first + layers` to the host (synchronising the stream).
    pub fn download(&self, stream: &Arc<CudaStream>, first: usize, layers: usize) -> Result<MemoryState, KernelError> {
        let (da, dz) = (self.d_key * self.hidden, self.d_key);
        let a = stream.clone_dtoh(&self.a.slice(first * da..(first + layers) * da))?;
        let z = stream.clone_dtoh(&self.z.slice(first * dz..(first + layers) * dz))?;
        let layers = a
            .chunks_exact(da)
            .zip(z.chunks_exact(dz))
            .map(|(a, z)| LayerState {
                a: a.to_vec(),
                z: z.to_vec(),
            })
            .collect();
        Ok(MemoryState {
            d_key: self.d_key,
            hidden: self.hidden,
            layers,
        })
    }
}
