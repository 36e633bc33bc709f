//! The memory state on the device: f32 `A` `[states, D, d]` and `z` `[states, D]`.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream};
use dbrmt_kernels::KernelError;

use dbrmt_formats::state::{LayerState, MemoryState};

/// `states` memory states (one per layer and request slot), zero before segment 0.
#[derive(Debug)]
pub struct DeviceState {
    pub a: CudaSlice<f32>,
    pub z: CudaSlice<f32>,
    pub states: usize,
    pub d_key: usize,
    pub hidden: usize,
}

impl DeviceState {
    pub fn zeros(stream: &Arc<CudaStream>, states: usize, d_key: usize, hidden: usize) -> Result<Self, KernelError> {
        Ok(Self {
            a: stream.alloc_zeros(states * d_key * hidden)?,
            z: stream.alloc_zeros(states * d_key)?,
            states,
            d_key,
            hidden,
        })
    }

    /// Uploads `state` (one request's layers) as states `0..layers`.
    pub fn upload(stream: &Arc<CudaStream>, state: &MemoryState) -> Result<Self, KernelError> {
        let a: Vec<f32> = state.layers.iter().flat_map(|l| l.a.iter().copied()).collect();
        let z: Vec<f32> = state.layers.iter().flat_map(|l| l.z.iter().copied()).collect();
        Ok(Self {
            a: stream.clone_htod(&a)?,
            z: stream.clone_htod(&z)?,
            states: state.layers.len(),
            d_key: state.d_key,
            hidden: state.hidden,
        })
    }

    /// Device bytes held.
    pub fn bytes(&self) -> usize {
        (self.a.len() + self.z.len()) * 4
    }

    /// Resets every state to zero (a new request).
    pub fn clear(&mut self, stream: &Arc<CudaStream>) -> Result<(), KernelError> {
        stream.memset_zeros(&mut self.a)?;
        stream.memset_zeros(&mut self.z)?;
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
