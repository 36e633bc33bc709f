//! The packed executor of the engine's device: the CPU model's or the GPU's, behind one set of calls.

use dbrmt_formats::MemoryState;
use dbrmt_model::{
    cpu, gpu,
    packed::{PassCell, PassLogits},
    ModelError,
};

/// A state copy started by [`Packed::stage_state`].
#[derive(Debug)]
pub(crate) enum Staged {
    /// Already on the host (the CPU backend).
    Ready(MemoryState),
    /// In a page-locked buffer of the GPU executor, once the copy is done.
    Gpu(usize),
}

/// Either backend's packed executor.
#[derive(Debug)]
pub(crate) enum Packed<'e> {
    Cpu(cpu::PackedExecutor<'e>),
    Gpu(Box<gpu::PackedExecutor<'e>>),
}

impl Packed<'_> {
    pub fn admit(&mut self, state: Option<&MemoryState>) -> Result<usize, ModelError> {
        match self {
            Packed::Cpu(x) => x.admit(state),
            Packed::Gpu(x) => x.admit(state),
        }
    }

    pub fn release(&mut self, slot: usize) -> Result<(), ModelError> {
        match self {
            Packed::Cpu(x) => x.release(slot),
            Packed::Gpu(x) => x.release(slot),
        }
    }

    /// Starts copying a request's state to the host, after the launches so far (on the CPU: copies it now).
    pub fn stage_state(&mut self, slot: usize) -> Result<Staged, ModelError> {
        match self {
            Packed::Cpu(x) => Ok(Staged::Ready(x.state(slot)?)),
            Packed::Gpu(x) => Ok(Staged::Gpu(x.stage_state(slot)?)),
        }
    }

    /// The state of a [`Packed::stage_state`] copy (waits for it on the GPU).
    pub fn take_state(&mut self, staged: Staged) -> Result<MemoryState, ModelError> {
        match (self, staged) {
            (_, Staged::Ready(state)) => Ok(state),
            (Packed::Gpu(x), Staged::Gpu(i)) => x.take_state(i),
            (Packed::Cpu(_), Staged::Gpu(i)) => Err(ModelError::InvalidInput(format!("no state copy {i}"))),
        }
    }

    /// Sizes the device pool for `requests` live requests up front, as far as `limit` and the free memory (less the
    /// reserve) allow; nothing on the CPU.
    pub fn reserve(&mut self, requests: usize, limit: Option<usize>) -> Result<(), ModelError> {
        let Packed::Gpu(x) = self else { return Ok(()) };
        let per = x.bytes_per_request().max(1);
        let free = x
            .free_device_bytes()?
            .saturating_sub(gpu::PackedExecutor::RESERVE_BYTES);
        let available = match limit {
            Some(l) => free.min(l.saturating_sub(x.device_bytes())),
            None => free,
        };
        x.reserve(requests.min(available / per))
    }

    /// Whether greedy ids are chosen on the device (the GPU's default; the CPU model always returns logits).
    pub fn set_device_argmax(&mut self, on: bool) {
        if let Packed::Gpu(x) = self {
            x.set_device_argmax(on);
        }
    }

    /// Host time the GPU executor's steps waited for the device before copying logits or ids out (zero on the CPU).
    pub fn copy_wait(&self) -> std::time::Duration {
        match self {
            Packed::Cpu(_) => std::time::Duration::ZERO,
            Packed::Gpu(x) => x.copy_wait(),
        }
    }

    /// Waits for the device (nothing on the CPU).
    pub fn synchronize(&self) -> Result<(), ModelError> {
        match self {
            Packed::Cpu(_) => Ok(()),
            Packed::Gpu(x) => x.synchronize(),
        }
    }

    pub fn step(&mut self, cells: &[PassCell<'_>]) -> Result<Vec<PassLogits>, ModelError> {
        match self {
            Packed::Cpu(x) => x.step(cells),
            Packed::Gpu(x) => x.step(cells),
        }
    }

    /// Device bytes one more request would add, and the bytes available to it (`limit`: the most the executor may
    /// hold); `None` on the CPU.
    pub fn admission_bytes(&self, limit: Option<usize>) -> Result<Option<(usize, usize)>, ModelError> {
        match self {
            Packed::Cpu(_) => Ok(None),
            Packed::Gpu(x) => {
                let need = x.bytes_to_admit();
                let free = x
                    .free_device_bytes()?
                    .saturating_sub(gpu::PackedExecutor::RESERVE_BYTES);
                let available = match limit {
                    Some(l) => free.min(l.saturating_sub(x.device_bytes())),
                    None => free,
                };
                Ok(Some((need, available)))
            }
        }
    }

    /// Device bytes held (0 on the CPU).
    pub fn device_bytes(&self) -> usize {
        match self {
            Packed::Cpu(_) => 0,
            Packed::Gpu(x) => x.device_bytes(),
        }
    }
}
